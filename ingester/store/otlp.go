package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/failure"
	"github.com/spanflow/spanflow/ingester/kafkaclient"
	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// OTLP sends each delivery as one OTLP ExportTraceServiceRequest. Its errors say what the
// chain should do: a request the backend refuses as bad (gRPC InvalidArgument, HTTP 400)
// is permanent — split until the refused messages are isolated; one refused for its size
// (HTTP 413, a gRPC message-size error) is TooLarge — split; a partial success is
// *failure.Rejected — counted as written. Everything else — unavailable, throttling,
// refused credentials or permissions, server errors, a wrong URL — is the backend's state,
// never a message's fault: transient, retried with backoff while the partition is held.
type OTLP struct {
	cfg     config.OTLPStorage
	headers map[string]string
	conn    *grpc.ClientConn
	codec   encodedCodec
	http    *http.Client
	url     string
	encode  httpEncoder // nil: the body goes uncompressed
}

// NewOTLP returns an exporter for the configured backend.
func NewOTLP(cfg config.OTLPStorage) (*OTLP, error) {
	if err := checkLevel(cfg.Compression, cfg.CompressionLevel); err != nil {
		return nil, fmt.Errorf("storage.otlp.compressionLevel: %w", err)
	}
	o := &OTLP{cfg: cfg, headers: map[string]string{}}
	for k, v := range cfg.Headers {
		v, err := config.ExpandEnv(v, os.LookupEnv)
		if err != nil {
			return nil, fmt.Errorf("storage.otlp.headers[%s]: %w", k, err)
		}
		if !config.ValidHeaderValue(v, cfg.Protocol) {
			// Never shown: it may be a credential.
			return nil, fmt.Errorf("storage.otlp.headers[%s]: the value holds a control character (or, for gRPC, a non-ASCII byte), which the header cannot carry", k)
		}
		o.headers[k] = v
	}
	var tlsMaterial kafkaclient.Material
	if !cfg.Insecure {
		tlsMaterial = kafkaclient.Material{TLS: true, InsecureSkipVerify: cfg.InsecureSkipVerify}
		for _, f := range []struct {
			path string
			dst  *[]byte
		}{{cfg.CAFile, &tlsMaterial.CA}, {cfg.CertFile, &tlsMaterial.Cert}, {cfg.KeyFile, &tlsMaterial.Key}} {
			if f.path == "" {
				continue
			}
			data, err := os.ReadFile(f.path)
			if err != nil {
				return nil, fmt.Errorf("storage.otlp: %w", err)
			}
			*f.dst = data
		}
	}
	conn, err := kafkaclient.FromMaterial(tlsMaterial) // the same TLS rules as for Kafka
	if err != nil {
		return nil, fmt.Errorf("storage.otlp: %w", err)
	}
	switch cfg.Protocol {
	case config.OTLPProtocolGRPC:
		creds := insecure.NewCredentials()
		if !cfg.Insecure {
			creds = credentials.NewTLS(conn.TLS)
		}
		cc, err := grpc.NewClient(cfg.GRPCTarget(), grpc.WithTransportCredentials(creds))
		if err != nil {
			return nil, fmt.Errorf("storage.otlp.endpoint: %w", err)
		}
		// Uncompressed, gRPC's transport may still be writing the request when Export
		// returns early (a deadline, an early error), and the caller reuses its bytes.
		o.conn, o.codec = cc, encodedCodec{copy: !o.compresses()}
		setGRPCLevel(cfg.Compression, cfg.CompressionLevel)
	case config.OTLPProtocolHTTP:
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("storage.otlp.endpoint: %q is not a URL", config.RedactEndpoint(cfg.Endpoint))
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		o.url = u.String()
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.TLSClientConfig = conn.TLS
		o.http = &http.Client{Transport: transport}
		if o.encode, err = newHTTPEncoder(cfg.Compression, cfg.CompressionLevel); err != nil {
			return nil, fmt.Errorf("storage.otlp.compression: %w", err)
		}
	default:
		return nil, fmt.Errorf("storage.otlp.protocol: %q", cfg.Protocol)
	}
	return o, nil
}

// Write exports the request's bytes as they are.
func (o *OTLP) Write(ctx context.Context, req otlpwire.Request) error {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout.D())
	defer cancel()
	if o.conn != nil {
		return o.writeGRPC(ctx, req.Pieces)
	}
	return o.writeHTTP(ctx, req)
}

// compresses reports whether requests are compressed (the codec copies them otherwise:
// the transport may still write them after Export returns).
func (o *OTLP) compresses() bool {
	return o.cfg.Compression != config.CompressionNone && o.cfg.Compression != ""
}

// exportMethod is the OTLP trace service's one method.
const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

func (o *OTLP) writeGRPC(ctx context.Context, req [][]byte) error {
	if len(o.headers) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, metadata.New(o.headers))
	}
	opts := []grpc.CallOption{grpc.ForceCodecV2(o.codec)}
	if o.compresses() {
		opts = append(opts, grpc.UseCompressor(o.cfg.Compression)) // registered in compression.go
	}
	scratch := marshalScratches.Get().(*marshalScratch)
	defer marshalScratches.Put(scratch)
	resp := ptraceotlp.NewExportResponse()
	err := o.conn.Invoke(ctx, exportMethod, encodedRequest{pieces: req, scratch: scratch}, &resp, opts...)
	scratch.clear() // gRPC read the pieces while it sent them: it holds none now
	if err != nil {
		return grpcFailure(err)
	}
	return partialSuccess(resp)
}

// encodedRequest is an ExportTraceServiceRequest already encoded, in pieces, and the
// room to hand them to gRPC in.
type encodedRequest struct {
	pieces  [][]byte
	scratch *marshalScratch
}

// marshalScratch is where the codec makes the pieces gRPC's buffers, kept from request to
// request: a request merged by resource is a thousand pieces or more, and two arrays that
// large a request were most of what the writer allocated.
type marshalScratch struct {
	buffers []mem.SliceBuffer
	pieces  mem.BufferSlice
}

var marshalScratches = sync.Pool{New: func() any { return new(marshalScratch) }}

// clear lets go of the pieces.
func (s *marshalScratch) clear() {
	clear(s.buffers)
	clear(s.pieces)
}

// encodedCodec sends an encodedRequest as it is, and reads the response with pdata.
type encodedCodec struct {
	// copy hands gRPC a copy of the request, which it frees when it is done with it;
	// compressed, gRPC reads the request only while it compresses it.
	copy bool
}

func (c encodedCodec) Marshal(v any) (mem.BufferSlice, error) {
	req, ok := v.(encodedRequest)
	if !ok {
		return nil, fmt.Errorf("otlp/grpc: cannot send a %T", v)
	}
	if c.copy {
		pool := mem.DefaultBufferPool()
		buf := pool.Get(otlpwire.Request{Pieces: req.pieces}.Len())
		*buf = otlpwire.Request{Pieces: req.pieces}.AppendTo((*buf)[:0])
		return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
	}
	// Pointers into one array: a SliceBuffer put in an interface by value would be an
	// allocation a piece.
	s := req.scratch
	if s == nil {
		s = new(marshalScratch)
	}
	s.buffers, s.pieces = slices.Grow(s.buffers[:0], len(req.pieces))[:len(req.pieces)], slices.Grow(s.pieces[:0], len(req.pieces))[:len(req.pieces)]
	for i, p := range req.pieces {
		s.buffers[i] = p
		s.pieces[i] = &s.buffers[i]
	}
	return s.pieces, nil
}

func (encodedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	resp, ok := v.(*ptraceotlp.ExportResponse)
	if !ok {
		return fmt.Errorf("otlp/grpc: cannot read a %T", v)
	}
	return resp.UnmarshalProto(data.Materialize())
}

// Name is the content subtype: application/grpc+proto, what OTLP receivers expect.
func (encodedCodec) Name() string { return "proto" }

// grpcFailure classifies an Export error (see OTLP).
func grpcFailure(exportErr error) error {
	st, _ := status.FromError(exportErr)
	err := fmt.Errorf("otlp/grpc: %w", exportErr)
	switch st.Code() {
	case codes.InvalidArgument:
		return failure.Permanent(err)
	case codes.ResourceExhausted:
		// Throttling comes with RetryInfo; a size limit (the server's or the client's own
		// "message larger than max") does not, and names the size.
		for _, d := range st.Details() {
			if _, ok := d.(*errdetails.RetryInfo); ok {
				return err
			}
		}
		if msg := strings.ToLower(st.Message()); strings.Contains(msg, "larger than") || strings.Contains(msg, "too large") || strings.Contains(msg, "size") {
			return failure.TooLarge(err)
		}
	}
	return err
}

func (o *OTLP) writeHTTP(ctx context.Context, req otlpwire.Request) error {
	var body []byte
	if o.encode != nil {
		var err error
		if body, err = o.encode(req); err != nil {
			return fmt.Errorf("otlp/http: %s: %w", o.cfg.Compression, err)
		}
	} else {
		// The transport may read a request body after Do returns; the caller reuses its.
		body = req.AppendTo(nil)
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("otlp/http: %w", err)
	}
	httpReq.Header.Set("Content-Type", "application/x-protobuf")
	if o.compresses() {
		httpReq.Header.Set("Content-Encoding", o.cfg.Compression)
	}
	for k, v := range o.headers {
		httpReq.Header.Set(k, v)
	}
	resp, err := o.http.Do(httpReq)
	if err != nil {
		return fmt.Errorf("otlp/http: %w", err) // network trouble: retry
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		answer := ptraceotlp.NewExportResponse()
		if len(data) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-protobuf") {
			if err := answer.UnmarshalProto(data); err == nil {
				return partialSuccess(answer)
			}
		}
		return nil
	}
	return httpFailure(resp.StatusCode, fmt.Errorf("otlp/http: %s: %.200s", resp.Status, data))
}

// httpFailure classifies an unsuccessful HTTP status (see OTLP).
func httpFailure(code int, err error) error {
	switch code {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return failure.Permanent(err)
	case http.StatusRequestEntityTooLarge:
		return failure.TooLarge(err)
	}
	return err
}

// partialSuccess turns a response that rejected spans into *failure.Rejected: the rest is
// stored, and sending the request again would only duplicate it.
func partialSuccess(resp ptraceotlp.ExportResponse) error {
	if ps := resp.PartialSuccess(); ps.RejectedSpans() > 0 {
		return &failure.Rejected{Spans: ps.RejectedSpans(), Message: ps.ErrorMessage()}
	}
	return nil
}

// Close closes the connection.
func (o *OTLP) Close(context.Context) error {
	if o.conn != nil {
		return o.conn.Close()
	}
	if o.http != nil {
		o.http.CloseIdleConnections()
	}
	return nil
}
