package store

import (
	"bytes"
	"cmp"
	stdgzip "compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/stats"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/internal/spangen"
)

// payloadSizes is a gRPC server stats handler that records the compressed size of every
// request it receives.
type payloadSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (p *payloadSizes) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (p *payloadSizes) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (p *payloadSizes) HandleConn(context.Context, stats.ConnStats)                       {}
func (p *payloadSizes) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok {
		p.mu.Lock()
		p.sizes = append(p.sizes, in.CompressedLength)
		p.mu.Unlock()
	}
}

func (p *payloadSizes) last() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sizes[len(p.sizes)-1]
}

// TestCompressionLevelsReachTheWire sends the same request at the fastest and the smallest
// level of gzip and zstd, over gRPC and HTTP: the receiver decodes every one (the spans
// arrive), and the smallest level's request is smaller on the wire — the level is applied,
// not just accepted.
func TestCompressionLevelsReachTheWire(t *testing.T) {
	t.Cleanup(func() { // the gRPC level is the process's: the other tests run at the default
		setGRPCLevel(config.CompressionGzip, 0)
		setGRPCLevel(config.CompressionZstd, 0)
	})
	if _, err := NewOTLP(func() config.OTLPStorage {
		c := otlpConfig("http://127.0.0.1:1", config.OTLPProtocolHTTP)
		c.CompressionLevel = 12
		return c
	}()); err == nil {
		t.Error("a writer was built with gzip level 12")
	}
	sizes := &payloadSizes{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.StatsHandler(sizes))
	sink := &grpcSink{}
	ptraceotlp.RegisterGRPCServer(srv, sink)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	var httpMu sync.Mutex
	var httpSize, httpSpans int
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var plain []byte
		var err error
		switch r.Header.Get("Content-Encoding") {
		case "gzip":
			var zr *gzip.Reader
			if zr, err = gzip.NewReader(bytes.NewReader(body)); err == nil {
				plain, err = io.ReadAll(zr)
			}
		case "zstd":
			var zr *zstd.Decoder
			if zr, err = zstd.NewReader(nil); err == nil {
				plain, err = zr.DecodeAll(body, nil)
			}
		}
		req := ptraceotlp.NewExportRequest()
		if err == nil {
			err = req.UnmarshalProto(plain)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		httpMu.Lock()
		httpSize, httpSpans = len(body), req.Traces().SpanCount()
		httpMu.Unlock()
	}))
	defer web.Close()

	request := otlpwire.RequestOf(variedTraces(400))
	send := func(protocol, compression string, level int) int {
		endpoint := l.Addr().String()
		if protocol == config.OTLPProtocolHTTP {
			endpoint = web.URL
		}
		cfg := otlpConfig(endpoint, protocol)
		cfg.Compression, cfg.CompressionLevel = compression, level
		w, err := NewOTLP(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close(context.Background())
		if err := w.Write(context.Background(), request); err != nil {
			t.Fatalf("%s %s level %d: %v", protocol, compression, level, err)
		}
		if protocol == config.OTLPProtocolHTTP {
			httpMu.Lock()
			defer httpMu.Unlock()
			if httpSpans != 400 {
				t.Errorf("%s %s level %d: the receiver decoded %d spans of 400", protocol, compression, level, httpSpans)
			}
			return httpSize
		}
		return sizes.last()
	}
	for _, protocol := range []string{config.OTLPProtocolGRPC, config.OTLPProtocolHTTP} {
		for _, tc := range []struct {
			compression     string
			fastest, lowest int
		}{{config.CompressionGzip, 1, 9}, {config.CompressionZstd, 1, 19}} {
			spansBefore := sink.spans
			fast := send(protocol, tc.compression, tc.fastest)
			small := send(protocol, tc.compression, tc.lowest)
			byDefault := send(protocol, tc.compression, 0)
			if small >= fast {
				t.Errorf("%s %s: level %d sent %d bytes, level %d %d: the level did not reach the compressor",
					protocol, tc.compression, tc.fastest, fast, tc.lowest, small)
			}
			if byDefault <= 0 || byDefault > fast {
				t.Errorf("%s %s: the default level sent %d bytes, the fastest %d", protocol, tc.compression, byDefault, fast)
			}
			if protocol == config.OTLPProtocolGRPC && sink.spans-spansBefore != 1200 {
				t.Errorf("grpc %s: the receiver decoded %d spans of 1200", tc.compression, sink.spans-spansBefore)
			}
		}
	}
}

// variedTraces are n spans with random IDs and times and attributes drawn from a small
// vocabulary: compressible as real spans are, so that levels differ in what they achieve.
func variedTraces(n int) ptrace.Traces {
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("GET POST /api/cart /api/checkout /health db.query redis.get kafka.produce 200 404 500 " +
		"checkout-service cart-service frontend us-east-1 eu-west-1 SELECT * FROM orders WHERE id = ? timeout retry")
	td := ptrace.NewTraces()
	var ss ptrace.ScopeSpans
	for i := range n {
		if i%50 == 0 { // a ResourceSpans, and a piece of the request, every 50 spans
			ss = td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
		}
		span := ss.Spans().AppendEmpty()
		span.SetName(words[rng.IntN(len(words))])
		var tid [16]byte
		var sid [8]byte
		binary.LittleEndian.PutUint64(tid[:], rng.Uint64())
		binary.LittleEndian.PutUint64(tid[8:], rng.Uint64())
		binary.LittleEndian.PutUint64(sid[:], rng.Uint64())
		span.SetTraceID(tid)
		span.SetSpanID(sid)
		start := 1_700_000_000_000_000_000 + rng.Uint64N(1e12)
		span.SetStartTimestamp(pcommon.Timestamp(start))
		span.SetEndTimestamp(pcommon.Timestamp(start + rng.Uint64N(1e9)))
		for i := range 8 {
			span.Attributes().PutStr(words[(i*7)%len(words)], words[rng.IntN(len(words))]+" "+words[rng.IntN(len(words))])
		}
	}
	return td
}

// BenchmarkCompression compresses the request of one delivery of the peers benchmark's
// otlp_proto topic (about 1,000 spans in 210 messages of one trace each, in the pieces they
// arrive in, merged by resource) as the gRPC writer does, with each compression: the CPU a
// span costs there is a ceiling on the spans per CPU-second of the whole path (1e9 ÷
// ns/span), before Kafka, decoding or gRPC take their share. Beside ours, in the same run:
// the same messages as they came, unmerged (as the Collector's batch processor joins them),
// at gzip's default level, and what Jaeger v2's and the Collector's OTLP gRPC exporter do
// for `compression: gzip` (gRPC's own gzip, the standard library's compress/gzip at its
// default level) on them.
func BenchmarkCompression(b *testing.B) {
	gen := spangen.New(1)
	start := time.Unix(1_780_000_000, 0)
	var merged, asTheyCame otlpwire.Batch
	for i := range 210 {
		td, _, err := gen.OTLPTrace(uint64(i), start.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		msg := otlpwire.RequestOf(td).AppendTo(nil)
		if _, err := merged.AppendValidated(msg); err != nil {
			b.Fatal(err)
		}
		asTheyCame.AppendRequest(msg, td.SpanCount())
	}
	peer := func(w io.Writer) (io.WriteCloser, error) {
		return stdgzip.NewWriterLevel(w, stdgzip.DefaultCompression)
	}
	for _, tc := range []struct {
		name        string
		compression string
		level       int
		compress    func(io.Writer) (io.WriteCloser, error) // ours when nil
		unmerged    bool
	}{
		{compression: config.CompressionGzip}, {compression: config.CompressionGzip, level: 1},
		{compression: config.CompressionGzip, level: 2}, {compression: config.CompressionGzip, level: 3},
		{compression: config.CompressionZstd}, {compression: config.CompressionSnappy},
		{name: "gzip-level-0-unmerged", compression: config.CompressionGzip, unmerged: true},
		{name: "peer-grpc-gzip-stdlib-default-unmerged", compress: peer, unmerged: true},
	} {
		req := merged.Request()
		if tc.unmerged {
			req = asTheyCame.Request()
		}
		name := cmp.Or(tc.name, fmt.Sprintf("%s-level-%d", tc.compression, tc.level))
		b.Run(name, func(b *testing.B) {
			compress := tc.compress
			if compress == nil {
				setGRPCLevel(tc.compression, tc.level)
				defer setGRPCLevel(tc.compression, 0)
				compress = encoding.GetCompressor(tc.compression).Compress
			}
			var out bytes.Buffer
			b.SetBytes(int64(req.Len()))
			for b.Loop() {
				out.Reset()
				w, err := compress(&out)
				if err != nil {
					b.Fatal(err)
				}
				for _, p := range req.Pieces {
					if _, err := w.Write(p); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			nsPerSpan := float64(b.Elapsed().Nanoseconds()) / float64(b.N*req.Spans)
			b.ReportMetric(nsPerSpan, "ns/span")
			b.ReportMetric(1e9/nsPerSpan, "ceiling-spans/cpu-s")
			b.ReportMetric(float64(out.Len())/float64(req.Spans), "sent-bytes/span")
			b.ReportMetric(float64(req.Len())/float64(req.Spans), "request-bytes/span")
		})
	}
}

// TestDecompressorsGoBackToTheirPool reads many responses at once with each gRPC
// compressor: a decompressor is used again only once its stream was read to the end, so
// each reads its own stream whole (the race detector watches the sharing).
func TestDecompressorsGoBackToTheirPool(t *testing.T) {
	for _, name := range []string{config.CompressionGzip, config.CompressionZstd, config.CompressionSnappy} {
		t.Run(name, func(t *testing.T) {
			c := encoding.GetCompressor(name)
			// One after the other, a stream read to its end lets the next use its reader.
			seen, reused := map[io.Reader]bool{}, 0
			for i := range 20 {
				var compressed bytes.Buffer
				w, _ := c.Compress(&compressed)
				_, _ = fmt.Fprintf(w, "stream %d", i)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				r, err := c.Decompress(&compressed)
				if err != nil {
					t.Fatal(err)
				}
				if seen[r] {
					reused++
				}
				seen[r] = true
				if got, err := io.ReadAll(r); err != nil || string(got) != fmt.Sprintf("stream %d", i) {
					t.Fatalf("stream %d read as %q (%v)", i, got, err)
				}
			}
			if reused == 0 {
				t.Error("no decompressor was used twice in 20 streams read one after the other")
			}
			// At once: each reads its own stream whole.
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := range 50 {
						want := bytes.Repeat([]byte(fmt.Sprintf("stream %d of reader %d; ", i, g)), 1+i*10)
						var compressed bytes.Buffer
						w, err := c.Compress(&compressed)
						if err != nil {
							t.Error(err)
							return
						}
						if _, err := w.Write(want); err != nil || w.Close() != nil {
							t.Errorf("compressing: %v", err)
							return
						}
						r, err := c.Decompress(&compressed)
						if err != nil {
							t.Error(err)
							return
						}
						got, err := io.ReadAll(r)
						if err != nil || !bytes.Equal(got, want) {
							t.Errorf("stream %d of reader %d: %d bytes (%v), want %d", i, g, len(got), err, len(want))
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
