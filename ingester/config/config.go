// Package config is the configuration of `spanflow ingest`: the file format the operator
// renders into a ConfigMap, its defaults, and its validation. The operator and the ingester
// share this package, so the file they agree on is defined once.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Encodings the ingester can decode.
const (
	EncodingOTLPProto = "otlp_proto"
	EncodingOTLPJSON  = "otlp_json"
	// EncodingJaegerProto is one Jaeger model.Span per message, as the Jaeger collector writes.
	EncodingJaegerProto = "jaeger_proto"
	// EncodingJaegerJSON is one Jaeger model.Span in protobuf-JSON per message.
	EncodingJaegerJSON = "jaeger_json"
	// EncodingZipkinJSON is a Zipkin v2 JSON array of spans.
	EncodingZipkinJSON = "zipkin_json"
	// EncodingZipkinProto is a Zipkin v2 protobuf ListOfSpans.
	EncodingZipkinProto = "zipkin_proto"
	// EncodingZipkinThrift is a Zipkin v1 Thrift list of spans, as the Jaeger v1 ingester read.
	EncodingZipkinThrift = "zipkin_thrift"
)

// Encodings lists every supported encoding.
var Encodings = []string{EncodingOTLPProto, EncodingOTLPJSON, EncodingJaegerProto, EncodingJaegerJSON,
	EncodingZipkinJSON, EncodingZipkinProto, EncodingZipkinThrift}

// Storage types the ingester can write to.
const (
	StorageBlackhole = "blackhole"
	StorageFile      = "file"
	StorageOTLP      = "otlp"
)

// StorageTypes lists every storage type.
var StorageTypes = []string{StorageBlackhole, StorageFile, StorageOTLP}

// What to do with a message that cannot be decoded.
const (
	// OnDecodeErrorFail pauses the partition: nothing is skipped without being told to.
	OnDecodeErrorFail = "fail"
	// OnDecodeErrorDeadletter produces the message to the dead-letter topic and moves on.
	OnDecodeErrorDeadletter = "deadletter"
	// OnDecodeErrorSkip counts the message, logs it and moves on.
	OnDecodeErrorSkip = "skip"
)

// Initial offsets for a consumer group with nothing committed.
const (
	OffsetEarliest = "earliest"
	OffsetLatest   = "latest"
)

// Isolation levels: which records of transactional producers are read.
const (
	ReadUncommitted = "read_uncommitted"
	ReadCommitted   = "read_committed"
)

// MaxParallelism bounds the parallelism setting: deliveries in flight per pod.
const MaxParallelism = 1000

// Config is the whole configuration of one ingester process.
type Config struct {
	// Kafka says where messages are read from.
	Kafka Kafka `json:"kafka"`
	// Encoding is the format of every message on the topic.
	Encoding string `json:"encoding"`
	// Storage says where decoded spans are written.
	Storage Storage `json:"storage"`
	// Processing tunes batching, retries and the failure policy.
	Processing Processing `json:"processing"`
	// Parallelism is the number of deliveries processed at once: storage writes in flight.
	// A delivery is a run of one partition's messages of about processing.batchSize spans.
	Parallelism int `json:"parallelism"`
	// MaxInFlightBytes bounds the bytes of the messages of the deliveries in flight, and
	// the fetched responses the partitions hold (shared: a pod of many partitions fetches
	// less than kafka.maxBytes of each).
	MaxInFlightBytes int64 `json:"maxInFlightBytes"`
	// AdminAddress is the listen address of /metrics, /healthz and /readyz.
	AdminAddress string `json:"adminAddress"`
	// Profiling serves Go's profiler on the admin port under /debug/pprof/. Off by default:
	// the port is reachable through the pods' Service, and profiles show the process's memory.
	Profiling bool `json:"profiling,omitempty"`
	// DrainTimeout bounds the wait for in-flight messages when a partition is revoked or
	// the process is told to stop; what is still in flight then is read again later.
	DrainTimeout Duration `json:"drainTimeout"`
}

// Processing tunes how messages become storage writes and what happens on failure.
type Processing struct {
	// BatchSize is about how many spans a delivery holds: a run of one partition's
	// messages written to storage in one request. Deliveries of fewer than a tenth as many
	// spans (a topic of many partitions at a modest rate) written at about the same time
	// share one request of up to this many.
	BatchSize int `json:"batchSize"`
	// BatchLinger is the longest the first message of a delivery waits for more, and the
	// longest a delivery of fewer than a tenth of BatchSize spans waits for others to share
	// its write.
	BatchLinger Duration `json:"batchLinger"`
	// Retry paces the retries of failed writes.
	Retry Retry `json:"retry"`
	// OnDecodeError is fail, deadletter or skip.
	OnDecodeError string `json:"onDecodeError"`
	// DeadLetterTopic receives messages that could not be written after the retries (and
	// undecodable ones with onDecodeError: deadletter). Empty: none; the partition pauses.
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`
}

// Retry is exponential backoff with full jitter.
type Retry struct {
	Min Duration `json:"min"`
	Max Duration `json:"max"`
	// Attempts bounds the tries of one write before the failure policy applies; tries
	// that fail slowly end after the third once they failed for twice the longest their
	// backoff waits.
	Attempts int `json:"attempts"`
}

// Kafka holds the consumer's connection and group settings.
type Kafka struct {
	Brokers       []string `json:"brokers"`
	Topic         string   `json:"topic"`
	ConsumerGroup string   `json:"consumerGroup"`
	// InitialOffset is "earliest" or "latest": where a group with no committed offset starts.
	InitialOffset string `json:"initialOffset"`
	// IsolationLevel is "read_uncommitted" (Kafka's default: every record, those of
	// transactions aborted or still open too) or "read_committed" (only what
	// transactional producers committed, read up to the oldest transaction still open).
	// Empty is read_uncommitted, and is what the operator writes for it, so that an
	// ingester image older than the field still reads its configuration.
	IsolationLevel string `json:"isolationLevel,omitempty"`

	SessionTimeout    Duration `json:"sessionTimeout"`
	HeartbeatInterval Duration `json:"heartbeatInterval"`
	RebalanceTimeout  Duration `json:"rebalanceTimeout"`
	// MaxWait is how long a fetch waits for MinBytes before returning what it has.
	MaxWait  Duration `json:"maxWait"`
	MinBytes int      `json:"minBytes"`
	// MaxBytes bounds one fetch a partition (a first record batch larger than it comes
	// whole); a partition holds its last response and, beside the deliveries' own bytes,
	// at most one more its deliveries in flight are slices of.
	MaxBytes int `json:"maxBytes"`
	// CommitInterval is the longest a finished offset waits to be committed (and how soon
	// a failed commit is tried again); offsets are committed as soon as deliveries finish.
	CommitInterval Duration `json:"commitInterval"`
	// ClientID is the client.id of every request to the brokers, which key quotas, logs
	// and the group's member list by it; DefaultClientID when empty.
	ClientID string `json:"clientID,omitempty"`
	// Rack is where this process runs (its zone), as the brokers' broker.rack name them;
	// empty: none. Brokers that select replicas by rack (replica.selector.class
	// RackAwareReplicaSelector, Kafka 2.4 and later) then have the partitions read from a
	// replica in it (KIP-392), so that the records do not cross zones.
	Rack string `json:"rack,omitempty"`
	// TLS encrypts the connections to the brokers.
	TLS KafkaTLS `json:"tls,omitempty"`
	// SASL authenticates to the brokers.
	SASL KafkaSASL `json:"sasl,omitempty"`
}

// validClientID is what a client.id may hold: the characters Kafka allowed in one before
// it let any through, which quota and ACL tooling still expect.
var validClientID = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,255}$`)

// DefaultClientID is the client.id of the ingester's requests unless kafka.clientID says.
const DefaultClientID = "spanflow"

// KafkaTLS configures TLS to the brokers. Keys and certificates are read from files (the
// operator mounts them from Secrets), never from the config itself.
type KafkaTLS struct {
	Enabled bool `json:"enabled,omitempty"`
	// CAFile is a PEM bundle of the CAs that sign the brokers' certificates; empty: the
	// system's roots.
	CAFile string `json:"caFile,omitempty"`
	// CertFile and KeyFile are a PEM client certificate and key, for mutual TLS.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// InsecureSkipVerify accepts any broker certificate. For trials only.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// KafkaSASL configures SASL authentication. The credentials are read from files.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL.
	Mechanism    string `json:"mechanism,omitempty"`
	UsernameFile string `json:"usernameFile,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
}

// SASL mechanisms.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Storage selects and configures the writer.
type Storage struct {
	// Type is otlp, file or blackhole (counts and drops the spans); required.
	Type string `json:"type"`
	// File configures the file store.
	File FileStorage `json:"file,omitempty"`
	// OTLP configures the OTLP exporter.
	OTLP OTLPStorage `json:"otlp,omitempty"`
}

// OTLPStorage sends batches to an OTLP backend (Jaeger v2, Tempo, an OpenTelemetry
// Collector) over gRPC or HTTP/protobuf.
type OTLPStorage struct {
	// Endpoint is host:port for gRPC (or http://host:port with insecure, https://host:port
	// without, as the Collector takes it), or a URL for HTTP (/v1/traces is added when the
	// URL has no path).
	Endpoint string `json:"endpoint,omitempty"`
	// Protocol is grpc or http.
	Protocol string `json:"protocol,omitempty"`
	// Insecure sends in plaintext (no TLS).
	Insecure bool `json:"insecure,omitempty"`
	// CAFile, CertFile, KeyFile and InsecureSkipVerify configure TLS, as for Kafka.
	CAFile             string `json:"caFile,omitempty"`
	CertFile           string `json:"certFile,omitempty"`
	KeyFile            string `json:"keyFile,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
	// Headers are sent with every request. ${env:NAME} in a value is replaced with the
	// environment variable NAME ("Bearer ${env:TOKEN}"), so that credentials come from
	// Secrets, never from this file; $$ stands for $.
	Headers map[string]string `json:"headers,omitempty"`
	// Compression is gzip, zstd, snappy or none.
	Compression string `json:"compression,omitempty"`
	// CompressionLevel is the level of gzip (1 fastest to 9 smallest, -1 gzip's default)
	// or zstd (zstd's levels: 1 fastest, 3 default, 6 and 11 smaller), as the Collector's
	// compression_params.level; 0 is the compression's default.
	CompressionLevel int `json:"compressionLevel,omitempty"`
	// Timeout bounds one export.
	Timeout Duration `json:"timeout,omitempty"`
}

// OTLP protocols and compressions.
const (
	OTLPProtocolGRPC  = "grpc"
	OTLPProtocolHTTP  = "http"
	CompressionGzip   = "gzip"
	CompressionZstd   = "zstd"
	CompressionSnappy = "snappy"
	CompressionNone   = "none"
)

// compressionLevelProblem says what is wrong with a compression level, or "".
func compressionLevelProblem(compression string, level int) string {
	switch {
	case level == 0:
		return ""
	case compression == CompressionGzip && (level == -1 || level >= 1 && level <= 9):
		return ""
	case compression == CompressionGzip:
		return fmt.Sprintf("gzip's levels are 1 (fastest) to 9 (smallest) or -1, got %d", level)
	case compression == CompressionZstd && level >= 1 && level <= 22:
		return ""
	case compression == CompressionZstd:
		return fmt.Sprintf("zstd's levels are 1 (fastest) to 22, got %d", level)
	}
	return fmt.Sprintf("%s has no levels", compression)
}

// Compressions lists the compressions of OTLP exports: what the OpenTelemetry Collector's
// receivers (Jaeger v2, Tempo) accept over both gRPC and HTTP.
var Compressions = []string{CompressionGzip, CompressionZstd, CompressionSnappy, CompressionNone}

// FileStorage writes OTLP JSON lines (one ExportTraceServiceRequest per line, the format of
// the OpenTelemetry Collector's file exporter) to rotating files in a directory.
type FileStorage struct {
	// Path is the directory of the files.
	Path string `json:"path,omitempty"`
	// MaxFileBytes rotates to a new file once the current one reaches this size.
	MaxFileBytes int64 `json:"maxFileBytes,omitempty"`
	// Gzip compresses the files (.jsonl.gz), flushing a complete block per batch.
	Gzip bool `json:"gzip,omitempty"`
}

// Default returns a configuration with every optional field set to its default.
func Default() Config {
	return Config{
		Kafka: Kafka{
			InitialOffset:     OffsetEarliest,
			SessionTimeout:    Duration(30 * time.Second),
			HeartbeatInterval: Duration(3 * time.Second),
			RebalanceTimeout:  Duration(30 * time.Second),
			MaxWait:           Duration(500 * time.Millisecond),
			MinBytes:          1,
			MaxBytes:          1 << 20,
			CommitInterval:    Duration(time.Second),
		},
		Encoding: EncodingOTLPProto,
		// No storage type: one that drops the spans while their offsets are committed must
		// be asked for, not fallen into by leaving the setting out.
		Storage: Storage{
			File: FileStorage{MaxFileBytes: 64 << 20},
			OTLP: OTLPStorage{Protocol: OTLPProtocolGRPC, Compression: CompressionGzip, Timeout: Duration(10 * time.Second)},
		},
		Processing: Processing{
			BatchSize:     1000,
			BatchLinger:   Duration(100 * time.Millisecond),
			Retry:         Retry{Min: Duration(100 * time.Millisecond), Max: Duration(10 * time.Second), Attempts: 8},
			OnDecodeError: OnDecodeErrorFail,
		},
		// Measured (make bench): 8 writes in flight keep both cores busy decoding into a
		// blackhole and hide an OTLP backend's latency, while a SIGKILL re-reads at most
		// 8 deliveries of written-but-uncommitted spans.
		Parallelism:      8,
		MaxInFlightBytes: 64 << 20,
		AdminAddress:     ":8080",
		// Shorter than the rebalance timeout: a member still draining when the rebalance
		// times out is evicted, its commit refused, and its rejoin starts another rebalance.
		DrainTimeout: Duration(20 * time.Second),
	}
}

// Load reads a YAML file over the defaults; unknown fields are an error, so a typo in
// the file does not silently fall back to a default.
func Load(path string) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("reading config: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		var wrongKind *json.UnmarshalTypeError
		if errors.As(err, &wrongKind) && wrongKind.Field != "" {
			return cfg, fmt.Errorf("parsing config %s: %s: %s is expected%s, not %s", path, wrongKind.Field, kindOf(wrongKind.Type), itemOf(wrongKind), article(wrongKind.Value))
		}
		if where := locate(data); where != "" {
			return cfg, fmt.Errorf("parsing config %s: %s", path, where)
		}
		return cfg, fmt.Errorf("parsing config %s: %w", path, err)
	}
	return cfg, nil
}

// itemOf is " for each item" (" for each value") when the value of the wrong kind is an
// item of the list (mapping) that the error's field names, not the field: brokers: [[a]].
func itemOf(e *json.UnmarshalTypeError) string {
	t := reflect.TypeFor[Config]()
	for _, name := range strings.Split(e.Field, ".") {
		switch t.Kind() {
		case reflect.Struct:
			f, ok := jsonField(t, name)
			if !ok {
				return ""
			}
			t = f.Type
		case reflect.Map:
			t = t.Elem()
		default:
			return ""
		}
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
	}
	if kindOf(t) == kindOf(e.Type) {
		return ""
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return " for each item"
	case reflect.Map:
		return " for each value"
	}
	return ""
}

// jsonField is the field of struct t that JSON names name.
func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name || (tag == "" && f.Name == name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// kindOf says what a setting of type t is written as.
func kindOf(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping (key: value)"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "text"
}

// article names a JSON value's kind as the decoder reports it ("string", "number 1.5").
func article(value string) string {
	kind, detail, _ := strings.Cut(value, " ")
	switch kind {
	case "array":
		return "a list"
	case "object":
		return "a mapping"
	case "string":
		return "text"
	case "bool":
		return "true or false"
	case "number":
		if detail != "" {
			return "the number " + detail
		}
		return "a number"
	}
	return value
}

// Marshal renders the configuration as YAML, the form the operator puts in a ConfigMap.
func (c Config) Marshal() ([]byte, error) {
	return yaml.Marshal(c)
}

// Validate checks every field and reports all problems at once, each naming its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers", "at least one broker address is required")
	}
	for i, b := range c.Kafka.Brokers {
		if !strings.Contains(b, ":") {
			bad(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if id := c.Kafka.ClientID; id != "" && !validClientID.MatchString(id) {
		bad("kafka.clientID", "%q: only letters, digits, '.', '_' and '-', at most 255", id)
	}
	if c.Kafka.Topic == "" {
		bad("kafka.topic", "required")
	}
	if c.Kafka.ConsumerGroup == "" {
		bad("kafka.consumerGroup", "required")
	}
	if c.Kafka.InitialOffset != OffsetEarliest && c.Kafka.InitialOffset != OffsetLatest {
		bad("kafka.initialOffset", "%q is neither %q nor %q", c.Kafka.InitialOffset, OffsetEarliest, OffsetLatest)
	}
	if c.Kafka.IsolationLevel != "" && c.Kafka.IsolationLevel != ReadUncommitted && c.Kafka.IsolationLevel != ReadCommitted {
		bad("kafka.isolationLevel", "%q is neither %q nor %q", c.Kafka.IsolationLevel, ReadUncommitted, ReadCommitted)
	}
	positive := map[string]Duration{
		"kafka.sessionTimeout":    c.Kafka.SessionTimeout,
		"kafka.heartbeatInterval": c.Kafka.HeartbeatInterval,
		"kafka.rebalanceTimeout":  c.Kafka.RebalanceTimeout,
		"kafka.maxWait":           c.Kafka.MaxWait,
		"kafka.commitInterval":    c.Kafka.CommitInterval,
		"drainTimeout":            c.DrainTimeout,
		"processing.batchLinger":  c.Processing.BatchLinger,
		"processing.retry.min":    c.Processing.Retry.Min,
		"processing.retry.max":    c.Processing.Retry.Max,
	}
	for _, field := range slices.Sorted(maps.Keys(positive)) {
		if positive[field] <= 0 {
			bad(field, "must be a positive duration, got %s", positive[field].D())
		}
	}
	if c.Kafka.HeartbeatInterval >= c.Kafka.SessionTimeout && c.Kafka.SessionTimeout > 0 {
		bad("kafka.heartbeatInterval", "must be shorter than kafka.sessionTimeout (%s)", c.Kafka.SessionTimeout.D())
	}
	if c.DrainTimeout >= c.Kafka.RebalanceTimeout && c.Kafka.RebalanceTimeout > 0 {
		bad("drainTimeout", "must be shorter than kafka.rebalanceTimeout (%s): a member still draining when the rebalance times out is evicted and its commit refused", c.Kafka.RebalanceTimeout.D())
	}
	if t := c.Kafka.TLS; t.InsecureSkipVerify && t.CAFile != "" {
		bad("kafka.tls.insecureSkipVerify", "accepts any certificate, so kafka.tls.caFile would be ignored: set one or the other")
	}
	if o := c.Storage.OTLP; c.Storage.Type == StorageOTLP && o.InsecureSkipVerify && o.CAFile != "" {
		bad("storage.otlp.insecureSkipVerify", "accepts any certificate, so storage.otlp.caFile would be ignored: set one or the other")
	}
	if t := c.Kafka.TLS; !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify) {
		bad("kafka.tls.enabled", "must be true when other kafka.tls settings are given")
	}
	if (c.Kafka.TLS.CertFile == "") != (c.Kafka.TLS.KeyFile == "") {
		bad("kafka.tls.certFile", "certFile and keyFile go together")
	}
	switch c.Kafka.SASL.Mechanism {
	case "":
		if c.Kafka.SASL.UsernameFile != "" || c.Kafka.SASL.PasswordFile != "" {
			bad("kafka.sasl.mechanism", "required when SASL credentials are given")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.Kafka.SASL.UsernameFile == "" || c.Kafka.SASL.PasswordFile == "" {
			bad("kafka.sasl.usernameFile", "usernameFile and passwordFile are required with SASL")
		}
	default:
		bad("kafka.sasl.mechanism", "%q is none of %s, %s, %s", c.Kafka.SASL.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	if c.Kafka.MinBytes < 1 {
		bad("kafka.minBytes", "must be at least 1, got %d", c.Kafka.MinBytes)
	}
	if c.Kafka.MaxBytes < c.Kafka.MinBytes {
		bad("kafka.maxBytes", "must be at least kafka.minBytes (%d), got %d", c.Kafka.MinBytes, c.Kafka.MaxBytes)
	}
	if !slices.Contains(Encodings, c.Encoding) {
		bad("encoding", "%q is not supported (supported: %s)", c.Encoding, strings.Join(Encodings, ", "))
	}
	switch c.Storage.Type {
	case "":
		bad("storage.type", "required: otlp (an OTLP backend: Jaeger, Tempo, a Collector), file, or blackhole (counts the spans and drops them, committing their offsets)")
	case StorageBlackhole:
	case StorageFile:
		if c.Storage.File.Path == "" {
			bad("storage.file.path", "required for file storage")
		}
		if c.Storage.File.MaxFileBytes < 1 {
			bad("storage.file.maxFileBytes", "must be positive, got %d", c.Storage.File.MaxFileBytes)
		}
	case StorageOTLP:
		o := c.Storage.OTLP
		if o.Endpoint == "" {
			bad("storage.otlp.endpoint", "required for otlp storage")
		}
		if o.Protocol != OTLPProtocolGRPC && o.Protocol != OTLPProtocolHTTP {
			bad("storage.otlp.protocol", "%q is neither %s nor %s", o.Protocol, OTLPProtocolGRPC, OTLPProtocolHTTP)
		}
		if o.Endpoint != "" {
			if msg := o.endpointProblem(); msg != "" {
				bad("storage.otlp.endpoint", "%s", msg)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(o.Headers)) {
			if !validHeaderName(name) {
				bad("storage.otlp.headers", "%q is not a header name", name)
			}
		}
		if !slices.Contains(Compressions, o.Compression) {
			bad("storage.otlp.compression", "%q is none of %s", o.Compression, strings.Join(Compressions, ", "))
		}
		if msg := compressionLevelProblem(o.Compression, o.CompressionLevel); msg != "" {
			bad("storage.otlp.compressionLevel", "%s", msg)
		}
		if o.Timeout <= 0 {
			bad("storage.otlp.timeout", "must be a positive duration")
		}
		if (o.CertFile == "") != (o.KeyFile == "") {
			bad("storage.otlp.certFile", "certFile and keyFile go together")
		}
		if o.Insecure && (o.CAFile != "" || o.CertFile != "" || o.InsecureSkipVerify) {
			bad("storage.otlp.insecure", "insecure (no TLS) excludes the TLS settings")
		}
	default:
		bad("storage.type", "%q is not supported (supported: %s)", c.Storage.Type, strings.Join(StorageTypes, ", "))
	}
	if c.Parallelism < 1 || c.Parallelism > MaxParallelism {
		bad("parallelism", "must be between 1 and %d, got %d", MaxParallelism, c.Parallelism)
	}
	if c.MaxInFlightBytes < 1 {
		bad("maxInFlightBytes", "must be positive, got %d", c.MaxInFlightBytes)
	}
	if c.Processing.BatchSize < 1 {
		bad("processing.batchSize", "must be at least 1, got %d", c.Processing.BatchSize)
	}
	if c.Processing.Retry.Max < c.Processing.Retry.Min {
		bad("processing.retry.max", "must be at least processing.retry.min (%s)", c.Processing.Retry.Min.D())
	}
	if c.Processing.Retry.Attempts < 1 {
		bad("processing.retry.attempts", "must be at least 1, got %d", c.Processing.Retry.Attempts)
	}
	switch c.Processing.OnDecodeError {
	case OnDecodeErrorFail, OnDecodeErrorSkip:
	case OnDecodeErrorDeadletter:
		if c.Processing.DeadLetterTopic == "" {
			bad("processing.onDecodeError", "deadletter needs processing.deadLetterTopic")
		}
	default:
		bad("processing.onDecodeError", "%q is none of fail, deadletter, skip", c.Processing.OnDecodeError)
	}
	if c.Processing.DeadLetterTopic != "" && c.Processing.DeadLetterTopic == c.Kafka.Topic {
		bad("processing.deadLetterTopic", "must differ from kafka.topic, or dead letters would be consumed again")
	}
	if c.AdminAddress == "" {
		bad("adminAddress", "required")
	}
	return errors.Join(errs...)
}

// WrittenAlways are the settings the operator wrote, whatever their value, into every
// ingester ConfigMap before it began to leave settings out: every ingester image that
// ran under an operator reads them. They stay written whatever their value, so that an
// image's own defaults, which may differ from this version's (kafka.maxBytes was 10 MiB
// once), never stand in for what the Ingester says. A path names its whole value.
var WrittenAlways = []string{
	"adminAddress", "drainTimeout", "encoding", "maxInFlightBytes", "parallelism",
	"kafka.brokers", "kafka.commitInterval", "kafka.consumerGroup", "kafka.heartbeatInterval",
	"kafka.initialOffset", "kafka.maxBytes", "kafka.maxWait", "kafka.minBytes",
	"kafka.rebalanceTimeout", "kafka.sasl", "kafka.sessionTimeout", "kafka.tls", "kafka.topic",
	"processing.batchLinger", "processing.batchSize", "processing.onDecodeError",
	"processing.retry.attempts", "processing.retry.max", "processing.retry.min",
	"storage.file.maxFileBytes", "storage.otlp.compression", "storage.otlp.protocol",
	"storage.otlp.timeout", "storage.type",
}

// MarshalForImages renders the configuration as the operator puts it in a ConfigMap: the
// settings of WrittenAlways as Marshal writes them, and any other only where it differs
// from Default() — so that an ingester image older than a setting (Load refuses fields it
// does not know) reads the file unless the Ingester uses that setting, and a setting a
// newer operator adds changes nothing the pods read until it is used. Load reads it back
// as c; should it not, the full form is returned.
func (c Config) MarshalForImages() ([]byte, error) {
	set, err := settingsTree(c)
	if err != nil {
		return nil, err
	}
	defaults, err := settingsTree(Default())
	if err != nil {
		return nil, err
	}
	data, err := yaml.Marshal(withoutDefaults(set, defaults, "", WrittenAlways))
	if err != nil {
		return nil, err
	}
	back := Default()
	if err := yaml.UnmarshalStrict(data, &back); err != nil || !reflect.DeepEqual(back, c) {
		return c.Marshal()
	}
	return data, nil
}

// settingsTree is the configuration as the JSON objects it is written as, numbers exact.
func settingsTree(c Config) (map[string]any, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree map[string]any
	return tree, dec.Decode(&tree)
}

// withoutDefaults keeps the settings of set under prefix that are written always, or
// that differ from defaults. A setting set leaves out (a zero value it omits) where the
// default is not zero is written as zero, so that reading over the defaults does not
// bring the default back.
func withoutDefaults(set, defaults map[string]any, prefix string, always []string) map[string]any {
	kept := map[string]any{}
	for key, value := range set {
		path := prefix + key
		def, hasDefault := defaults[key]
		sub, isObject := value.(map[string]any)
		defSub, defIsObject := def.(map[string]any)
		switch {
		case slices.Contains(always, path):
			kept[key] = value
		case isObject && defIsObject:
			if sub = withoutDefaults(sub, defSub, path+".", always); len(sub) > 0 {
				kept[key] = sub
			}
		case !hasDefault || !reflect.DeepEqual(value, def):
			kept[key] = value
		}
	}
	for key, def := range defaults {
		if _, ok := set[key]; ok {
			continue
		}
		switch def.(type) {
		case string:
			kept[key] = ""
		case bool:
			kept[key] = false
		case json.Number:
			kept[key] = 0
		case map[string]any, []any:
			kept[key] = nil
		}
	}
	return kept
}
