package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/failure"
	"github.com/spanflow/spanflow/ingester/kafkaclient"
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
	grpc    ptraceotlp.GRPCClient
	conn    *grpc.ClientConn
	http    *http.Client
	url     string
}

// NewOTLP returns an exporter for the configured backend.
func NewOTLP(cfg config.OTLPStorage) (*OTLP, error) {
	o := &OTLP{cfg: cfg, headers: map[string]string{}}
	for k, v := range cfg.Headers {
		if name, ok := strings.CutPrefix(v, "${env:"); ok && strings.HasSuffix(name, "}") {
			name = strings.TrimSuffix(name, "}")
			value, set := os.LookupEnv(name)
			if !set {
				return nil, fmt.Errorf("storage.otlp.headers[%s]: environment variable %s is not set", k, name)
			}
			v = value
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
		cc, err := grpc.NewClient(cfg.Endpoint, grpc.WithTransportCredentials(creds))
		if err != nil {
			return nil, fmt.Errorf("storage.otlp.endpoint: %w", err)
		}
		o.conn, o.grpc = cc, ptraceotlp.NewGRPCClient(cc)
	case config.OTLPProtocolHTTP:
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("storage.otlp.endpoint: %q is not a URL", cfg.Endpoint)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		o.url = u.String()
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.TLSClientConfig = conn.TLS
		o.http = &http.Client{Transport: transport}
	default:
		return nil, fmt.Errorf("storage.otlp.protocol: %q", cfg.Protocol)
	}
	return o, nil
}

// Write exports the traces.
func (o *OTLP) Write(ctx context.Context, traces ptrace.Traces) error {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout.D())
	defer cancel()
	req := ptraceotlp.NewExportRequestFromTraces(traces)
	if o.grpc != nil {
		return o.writeGRPC(ctx, req)
	}
	return o.writeHTTP(ctx, req)
}

func (o *OTLP) writeGRPC(ctx context.Context, req ptraceotlp.ExportRequest) error {
	if len(o.headers) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, metadata.New(o.headers))
	}
	var opts []grpc.CallOption
	if o.cfg.Compression != config.CompressionNone {
		opts = append(opts, grpc.UseCompressor(o.cfg.Compression)) // registered in compression.go
	}
	resp, err := o.grpc.Export(ctx, req, opts...)
	if err != nil {
		return grpcFailure(err)
	}
	return partialSuccess(resp)
}

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

func (o *OTLP) writeHTTP(ctx context.Context, req ptraceotlp.ExportRequest) error {
	body, err := req.MarshalProto()
	if err != nil {
		return failure.Permanent(fmt.Errorf("otlp/http: encoding: %w", err))
	}
	if encode, ok := httpEncoders[o.cfg.Compression]; ok {
		if body, err = encode(body); err != nil {
			return fmt.Errorf("otlp/http: %s: %w", o.cfg.Compression, err)
		}
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("otlp/http: %w", err)
	}
	httpReq.Header.Set("Content-Type", "application/x-protobuf")
	if o.cfg.Compression != config.CompressionNone {
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
