package store

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/encoding"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// The OTLP exporter compresses with klauspost/compress, as the OpenTelemetry Collector
// does: its gzip costs a fraction of the standard library's for the same ratio (measured,
// stdlib gzip was 40% of the ingester's CPU on the OTLP path). The gRPC compressors are
// registered under the names the Collector's receivers (Jaeger v2, Tempo) accept — gzip,
// zstd, and snappy in its framed format — replacing grpc-go's own gzip in this process.
func init() {
	encoding.RegisterCompressor(grpcGzip)
	encoding.RegisterCompressor(grpcZstd)
	encoding.RegisterCompressor(&grpcCompressor{name: config.CompressionSnappy,
		newWriter: func(w io.Writer, _ int) resettableWriter { return snappy.NewBufferedWriter(w) },
		newReader: func(r io.Reader) (resettableReader, error) { return snappyReader{snappy.NewReader(r)}, nil }})
}

var (
	grpcGzip = &grpcCompressor{name: config.CompressionGzip,
		newWriter: func(w io.Writer, level int) resettableWriter {
			z, _ := gzip.NewWriterLevel(w, gzipLevel(level))
			return z
		},
		newReader: func(r io.Reader) (resettableReader, error) { return gzip.NewReader(r) }}
	grpcZstd = &grpcCompressor{name: config.CompressionZstd,
		newWriter: func(w io.Writer, level int) resettableWriter {
			z, _ := zstd.NewWriter(w, append(zstdOptions(level), zstd.WithEncoderConcurrency(1))...)
			return z
		},
		newReader: func(r io.Reader) (resettableReader, error) {
			return zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		}}
)

// resettableReader is a decompressing reader that can be used again for another stream.
type resettableReader interface {
	io.Reader
	Reset(io.Reader) error
}

// snappyReader is snappy's reader, whose Reset cannot fail.
type snappyReader struct{ *snappy.Reader }

func (r snappyReader) Reset(from io.Reader) error {
	r.Reader.Reset(from)
	return nil
}

// gzipLevel is the gzip level of a compressionLevel: gzip's default when unset.
func gzipLevel(level int) int {
	if level == 0 {
		return gzip.DefaultCompression
	}
	return level
}

// zstdOptions favour speed (the Collector's default level unless one is set) and bound the
// window, so that a receiver decodes with little memory. Levels are zstd's own numbers,
// mapped as the Collector maps them.
func zstdOptions(level int) []zstd.EOption {
	encoderLevel := zstd.SpeedDefault
	if level != 0 {
		encoderLevel = zstd.EncoderLevelFromZstd(level)
	}
	return []zstd.EOption{zstd.WithEncoderLevel(encoderLevel), zstd.WithWindowSize(512 << 10)}
}

// checkLevel reports a level the compression's library refuses (the config's validation
// refuses them first; this keeps a writer built without it from failing on first use).
func checkLevel(compression string, level int) error {
	if compression == config.CompressionGzip {
		if _, err := gzip.NewWriterLevel(io.Discard, gzipLevel(level)); err != nil {
			return err
		}
	}
	return nil
}

// setGRPCLevel sets the level of the gRPC compressor named compression. gRPC finds
// compressors by the name it sends, so the level is the process's: it has one OTLP writer.
func setGRPCLevel(compression string, level int) {
	switch compression {
	case config.CompressionGzip:
		grpcGzip.level.Store(int64(level))
	case config.CompressionZstd:
		grpcZstd.level.Store(int64(level))
	}
}

// resettableWriter is a compressing writer that can be used again for another stream.
type resettableWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// grpcCompressor is a grpc encoding.Compressor keeping its writers in a pool a level.
type grpcCompressor struct {
	name      string
	newWriter func(w io.Writer, level int) resettableWriter
	newReader func(io.Reader) (resettableReader, error)
	level     atomic.Int64
	writers   sync.Map  // level → *sync.Pool
	readers   sync.Pool // of *pooledReader
}

func (c *grpcCompressor) Name() string { return c.name }

func (c *grpcCompressor) Compress(w io.Writer) (io.WriteCloser, error) {
	level := int(c.level.Load())
	pool, ok := c.writers.Load(level)
	if !ok {
		pool, _ = c.writers.LoadOrStore(level, &sync.Pool{})
	}
	pw, ok := pool.(*sync.Pool).Get().(*pooledWriter)
	if ok {
		pw.out.Reset(w)
		pw.resettableWriter.Reset(pw.out)
	} else {
		out := bufio.NewWriterSize(w, compressedChunk)
		pw = &pooledWriter{resettableWriter: c.newWriter(out, level), out: out, pool: pool.(*sync.Pool)}
	}
	return pw, nil
}

// compressedChunk is the size of the pieces compressed output is handed to gRPC in: the
// compressors write a few hundred bytes at a time, and gRPC copies every write into a
// buffer of its own (800,000 allocations over 500,000 spans before this buffer).
const compressedChunk = 32 << 10

// Decompress reads a response. Its reader goes back to the pool once it has read the
// response to the end: a new one each time was a 32 KB window (gzip) or a decoder (zstd)
// a request.
func (c *grpcCompressor) Decompress(r io.Reader) (io.Reader, error) {
	if pr, ok := c.readers.Get().(*pooledReader); ok {
		if err := pr.resettableReader.Reset(r); err != nil {
			return nil, err
		}
		return pr, nil
	}
	d, err := c.newReader(r)
	if err != nil {
		return nil, err
	}
	return &pooledReader{resettableReader: d, pool: &c.readers}, nil
}

// pooledReader is a decompressor that puts itself back in its pool at the end of its
// stream: gRPC reads a message to the end and never closes it.
type pooledReader struct {
	resettableReader
	pool *sync.Pool
}

func (r *pooledReader) Read(p []byte) (int, error) {
	n, err := r.resettableReader.Read(p)
	if err == io.EOF {
		r.pool.Put(r)
	}
	return n, err
}

// pooledWriter is a compressor writing through out; Close flushes both and puts it back
// in its pool.
type pooledWriter struct {
	resettableWriter
	out  *bufio.Writer
	pool *sync.Pool
}

func (w *pooledWriter) Close() error {
	err := w.resettableWriter.Close()
	if flushErr := w.out.Flush(); err == nil {
		err = flushErr
	}
	w.out.Reset(nil) // let go of gRPC's writer
	w.pool.Put(w)
	return err
}

// httpEncoder compresses a request into an HTTP body for its Content-Encoding, at one level.
type httpEncoder func(req otlpwire.Request) ([]byte, error)

// newHTTPEncoder returns the encoder of a compression at a level, or nil for none. snappy
// is the block format, which is what Content-Encoding: snappy means to the Collector.
func newHTTPEncoder(compression string, level int) (httpEncoder, error) {
	switch compression {
	case config.CompressionGzip:
		writers := sync.Pool{New: func() any { z, _ := gzip.NewWriterLevel(io.Discard, gzipLevel(level)); return z }}
		return func(req otlpwire.Request) ([]byte, error) {
			var buf bytes.Buffer
			z := writers.Get().(*gzip.Writer)
			defer writers.Put(z)
			z.Reset(&buf)
			for _, p := range req.Pieces {
				if _, err := z.Write(p); err != nil {
					return nil, err
				}
			}
			if err := z.Close(); err != nil {
				return nil, err
			}
			return buf.Bytes(), nil
		}, nil
	case config.CompressionZstd:
		// EncodeAll may be called concurrently (by as many deliveries at once as there
		// are cores).
		enc, err := zstd.NewWriter(nil, zstdOptions(level)...)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return func(req otlpwire.Request) ([]byte, error) {
			return enc.EncodeAll(contiguous(req), make([]byte, 0, req.Len()/4)), nil
		}, nil
	case config.CompressionSnappy:
		return func(req otlpwire.Request) ([]byte, error) { return snappy.Encode(nil, contiguous(req)), nil }, nil
	}
	return nil, nil
}

// contiguous is the request in one piece, for the compressors that take their input whole.
func contiguous(req otlpwire.Request) []byte {
	if len(req.Pieces) == 1 {
		return req.Pieces[0]
	}
	return req.AppendTo(nil)
}
