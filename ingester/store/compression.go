package store

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/encoding"

	"github.com/spanflow/spanflow/ingester/config"
)

// The OTLP exporter compresses with klauspost/compress, as the OpenTelemetry Collector
// does: its gzip costs a fraction of the standard library's for the same ratio (measured,
// stdlib gzip was 40% of the ingester's CPU on the OTLP path). The gRPC compressors are
// registered under the names the Collector's receivers (Jaeger v2, Tempo) accept — gzip,
// zstd, and snappy in its framed format — replacing grpc-go's own gzip in this process.
func init() {
	encoding.RegisterCompressor(&grpcCompressor{name: config.CompressionGzip,
		newWriter: func(w io.Writer) resettableWriter { z, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression); return z },
		newReader: func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }})
	encoding.RegisterCompressor(&grpcCompressor{name: config.CompressionZstd,
		newWriter: func(w io.Writer) resettableWriter {
			z, _ := zstd.NewWriter(w, append(zstdOptions, zstd.WithEncoderConcurrency(1))...)
			return z
		},
		newReader: func(r io.Reader) (io.Reader, error) {
			d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
			if err != nil {
				return nil, err
			}
			return d.IOReadCloser(), nil
		}})
	encoding.RegisterCompressor(&grpcCompressor{name: config.CompressionSnappy,
		newWriter: func(w io.Writer) resettableWriter { return snappy.NewBufferedWriter(w) },
		newReader: func(r io.Reader) (io.Reader, error) { return snappy.NewReader(r), nil }})
}

// zstdOptions favour speed (the Collector's default level) and bound the window, so that a
// receiver decodes with little memory.
var zstdOptions = []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(512 << 10)}

// resettableWriter is a compressing writer that can be used again for another stream.
type resettableWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// grpcCompressor is a grpc encoding.Compressor keeping its writers in a pool.
type grpcCompressor struct {
	name      string
	newWriter func(io.Writer) resettableWriter
	newReader func(io.Reader) (io.Reader, error)
	writers   sync.Pool
}

func (c *grpcCompressor) Name() string { return c.name }

func (c *grpcCompressor) Compress(w io.Writer) (io.WriteCloser, error) {
	z, ok := c.writers.Get().(resettableWriter)
	if !ok {
		z = c.newWriter(w)
	} else {
		z.Reset(w)
	}
	return &pooledWriter{resettableWriter: z, pool: &c.writers}, nil
}

func (c *grpcCompressor) Decompress(r io.Reader) (io.Reader, error) { return c.newReader(r) }

// pooledWriter returns its writer to the pool when closed.
type pooledWriter struct {
	resettableWriter
	pool *sync.Pool
}

func (w *pooledWriter) Close() error {
	err := w.resettableWriter.Close()
	w.pool.Put(w.resettableWriter)
	return err
}

// httpEncoders compress an HTTP request body for its Content-Encoding. snappy is the
// block format, which is what Content-Encoding: snappy means to the Collector.
var httpEncoders = map[string]func(body []byte) ([]byte, error){
	config.CompressionGzip: func(body []byte) ([]byte, error) {
		var buf bytes.Buffer
		z := gzipWriters.Get().(*gzip.Writer)
		defer gzipWriters.Put(z)
		z.Reset(&buf)
		if _, err := z.Write(body); err != nil {
			return nil, err
		}
		if err := z.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	},
	config.CompressionZstd: func(body []byte) ([]byte, error) {
		return zstdEncoder.EncodeAll(body, make([]byte, 0, len(body)/4)), nil
	},
	config.CompressionSnappy: func(body []byte) ([]byte, error) { return snappy.Encode(nil, body), nil },
}

var gzipWriters = sync.Pool{New: func() any { z, _ := gzip.NewWriterLevel(io.Discard, gzip.DefaultCompression); return z }}

// zstdEncoder encodes whole bodies; EncodeAll may be called concurrently (by as many
// deliveries at once as there are cores).
var zstdEncoder = func() *zstd.Encoder {
	enc, err := zstd.NewWriter(nil, zstdOptions...)
	if err != nil {
		panic(fmt.Sprintf("zstd: %v", err))
	}
	return enc
}()
