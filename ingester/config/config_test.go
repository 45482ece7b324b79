package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func valid() Config {
	c := Default()
	c.Kafka.Brokers = []string{"k:9092"}
	c.Kafka.Topic = "spans"
	c.Kafka.ConsumerGroup = "g"
	c.Storage.Type = StorageBlackhole
	return c
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no brokers", func(c *Config) { c.Kafka.Brokers = nil }, "kafka.brokers: at least one"},
		{"broker without port", func(c *Config) { c.Kafka.Brokers = []string{"k:9092", "kafka"} }, "kafka.brokers[1]"},
		{"no topic", func(c *Config) { c.Kafka.Topic = "" }, "kafka.topic: required"},
		{"no group", func(c *Config) { c.Kafka.ConsumerGroup = "" }, "kafka.consumerGroup: required"},
		{"no storage", func(c *Config) { c.Storage.Type = "" }, "storage.type: required: otlp"},
		{"bad offset", func(c *Config) { c.Kafka.InitialOffset = "oldest" }, "kafka.initialOffset"},
		{"bad isolation level", func(c *Config) { c.Kafka.IsolationLevel = "committed" }, "kafka.isolationLevel"},
		{"client id with a space", func(c *Config) { c.Kafka.ClientID = "team a" }, "kafka.clientID"},
		{"zero max wait", func(c *Config) { c.Kafka.MaxWait = 0 }, "kafka.maxWait: must be a positive duration"},
		{"heartbeat too long", func(c *Config) { c.Kafka.HeartbeatInterval = c.Kafka.SessionTimeout }, "kafka.heartbeatInterval: must be shorter"},
		{"max below min bytes", func(c *Config) { c.Kafka.MinBytes, c.Kafka.MaxBytes = 100, 10 }, "kafka.maxBytes"},
		{"bad encoding", func(c *Config) { c.Encoding = "avro" }, `encoding: "avro" is not supported`},
		{"bad storage", func(c *Config) { c.Storage.Type = "s3" }, "storage.type"},
		{"zero parallelism", func(c *Config) { c.Parallelism = 0 }, "parallelism: must be between"},
		{"no admin address", func(c *Config) { c.AdminAddress = "" }, "adminAddress: required"},
		{"drain as long as the rebalance", func(c *Config) { c.DrainTimeout = c.Kafka.RebalanceTimeout }, "drainTimeout: must be shorter than kafka.rebalanceTimeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := Config{}.Validate()
	if err == nil {
		t.Fatal("the empty config is valid")
	}
	for _, field := range []string{"kafka.brokers", "kafka.topic", "kafka.consumerGroup", "encoding", "storage.type", "parallelism"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
}

func TestLoadRoundTrip(t *testing.T) {
	c := valid()
	c.Kafka.MaxWait = Duration(250 * time.Millisecond)
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "maxWait: 250ms") {
		t.Errorf("durations are not written as strings:\n%s", data)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kafka.MaxWait != c.Kafka.MaxWait || got.Kafka.Topic != "spans" || got.Parallelism != c.Parallelism {
		t.Errorf("round trip changed the config: %+v", got)
	}
}

func TestLoadKeepsDefaultsAndRefusesUnknownFields(t *testing.T) {
	dir := t.TempDir()
	partial := filepath.Join(dir, "partial.yaml")
	if err := os.WriteFile(partial, []byte("kafka:\n  topic: spans\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(partial)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Topic != "spans" || c.Kafka.CommitInterval != Default().Kafka.CommitInterval || c.Encoding != EncodingOTLPProto {
		t.Errorf("defaults lost: %+v", c)
	}

	typo := filepath.Join(dir, "typo.yaml")
	if err := os.WriteFile(typo, []byte("kafka:\n  topik: spans\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(typo); err == nil || !strings.Contains(err.Error(), "topik") {
		t.Errorf("a misspelt field is accepted: %v", err)
	}

	badDuration := filepath.Join(dir, "dur.yaml")
	if err := os.WriteFile(badDuration, []byte("kafka:\n  maxWait: soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(badDuration); err == nil {
		t.Error("an unparsable duration is accepted")
	}
	// Parse errors name the field, as validation does.
	for doc, want := range map[string]string{
		"kafka:\n  maxWait: soon\n":                          `kafka.maxWait: time: invalid duration "soon"`,
		"kafka:\n  sessionTimeout: 30\n":                     "kafka.sessionTimeout: a duration must be a string",
		"storage:\n  otlp:\n    compresion: gzip\n":          "storage.otlp.compresion: unknown field",
		"kafka:\n  topic: spans\n  brokers: [a:1]\n  x: 1\n": "kafka.x: unknown field",
		// A value of the wrong kind names the field in words, not in Go's types.
		"kafka:\n  brokers: \"a:1\"\n": "kafka.brokers: a list is expected, not text",
		"parallelism: eight\n":         "parallelism: a whole number is expected, not text",
		"storage:\n  otlp: [grpc]\n":   "storage.otlp: a mapping (key: value) is expected, not a list",
		"profiling: 1\n":               "profiling: true or false is expected, not a number",
		// An item of the wrong kind is said to be one, not the list.
		"kafka:\n  brokers: [[a]]\n":                 "kafka.brokers: text is expected for each item, not a list",
		"storage:\n  otlp:\n    headers: {a: [b]}\n": "storage.otlp.headers: text is expected for each value, not a list",
	} {
		path := filepath.Join(dir, "located.yaml")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", doc, err, want)
		}
	}
}

func TestValidateTLSAndSASL(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"tls files without enabled", func(c *Config) { c.Kafka.TLS.CAFile = "/ca.pem" }, "kafka.tls.enabled"},
		{"cert without key", func(c *Config) { c.Kafka.TLS = KafkaTLS{Enabled: true, CertFile: "/c.pem"} }, "kafka.tls.certFile"},
		{"unknown mechanism", func(c *Config) { c.Kafka.SASL.Mechanism = "GSSAPI" }, "kafka.sasl.mechanism"},
		{"mechanism without files", func(c *Config) { c.Kafka.SASL.Mechanism = SASLPlain }, "kafka.sasl.usernameFile"},
		{"files without mechanism", func(c *Config) { c.Kafka.SASL.PasswordFile = "/p" }, "kafka.sasl.mechanism"},
		{"skip verify with a CA", func(c *Config) { c.Kafka.TLS = KafkaTLS{Enabled: true, CAFile: "/ca.pem", InsecureSkipVerify: true} }, "kafka.tls.insecureSkipVerify"},
		{"otlp skip verify with a CA", func(c *Config) {
			c.Storage = Storage{Type: StorageOTLP, OTLP: OTLPStorage{Endpoint: "t:4317", Protocol: OTLPProtocolGRPC, Compression: CompressionGzip,
				Timeout: Duration(time.Second), CAFile: "/ca.pem", InsecureSkipVerify: true}}
		}, "storage.otlp.insecureSkipVerify"},
		{"valid mTLS and SCRAM", func(c *Config) {
			c.Kafka.TLS = KafkaTLS{Enabled: true, CAFile: "/ca", CertFile: "/c", KeyFile: "/k"}
			c.Kafka.SASL = KafkaSASL{Mechanism: SASLScramSHA512, UsernameFile: "/u", PasswordFile: "/p"}
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Errorf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestCompressionLevels: a level the compression does not have is refused.
func TestCompressionLevels(t *testing.T) {
	for _, tc := range []struct {
		compression string
		level       int
		ok          bool
	}{
		{CompressionGzip, 0, true}, {CompressionGzip, -1, true}, {CompressionGzip, 1, true},
		{CompressionGzip, 9, true}, {CompressionGzip, 10, false}, {CompressionGzip, -2, false},
		{CompressionZstd, 1, true}, {CompressionZstd, 22, true}, {CompressionZstd, 23, false},
		{CompressionZstd, -1, false}, {CompressionSnappy, 1, false}, {CompressionNone, 3, false},
		{CompressionNone, 0, true},
	} {
		c := valid()
		c.Storage = Storage{Type: StorageOTLP, OTLP: OTLPStorage{Endpoint: "t:4317", Protocol: OTLPProtocolGRPC,
			Compression: tc.compression, CompressionLevel: tc.level, Timeout: Duration(time.Second)}}
		err := c.Validate()
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), "storage.otlp.compressionLevel") {
			t.Errorf("%s level %d: err %v, want ok=%v", tc.compression, tc.level, err, tc.ok)
		}
	}
}

// TestOTLPEndpoints: an endpoint gRPC or HTTP cannot use is refused at start-up, naming
// the field and never a password in it, instead of failing every write as if the backend
// were down; the Collector's http(s):// in front of a gRPC host:port is taken, and every
// target gRPC resolves itself (a resolver scheme, a host without a port) stays valid.
func TestOTLPEndpoints(t *testing.T) {
	otlp := func(protocol, endpoint string, insecure bool) Config {
		c := valid()
		c.Storage = Storage{Type: StorageOTLP, OTLP: OTLPStorage{Endpoint: endpoint, Protocol: protocol, Insecure: insecure,
			Compression: CompressionGzip, Timeout: Duration(time.Second), Headers: map[string]string{"authorization": "Bearer x"}}}
		return c
	}
	for _, tc := range []struct {
		protocol, endpoint string
		insecure           bool
		want               string // "" when valid
	}{
		{OTLPProtocolGRPC, "jaeger:4317", true, ""},
		{OTLPProtocolGRPC, "http://jaeger:4317", true, ""},
		{OTLPProtocolGRPC, "https://jaeger:4317", false, ""},
		{OTLPProtocolGRPC, "[::1]:4317", false, ""},
		{OTLPProtocolGRPC, "http://jaeger:4317", false, "http:// goes with insecure: true"},
		{OTLPProtocolGRPC, "https://jaeger:4317", true, "http:// goes with insecure: true"},
		// What gRPC resolves itself stays as it was.
		{OTLPProtocolGRPC, "collector.example.com", false, ""},
		{OTLPProtocolGRPC, "dns:///jaeger:4317", true, ""},
		{OTLPProtocolGRPC, "unix:///var/run/otel.sock", true, ""},
		{OTLPProtocolGRPC, "::1", true, ""},
		{OTLPProtocolGRPC, "http://jaeger:4317/v1/traces", true, "without a path or credentials"},
		{OTLPProtocolGRPC, "https://bob:s3cret-pw@jaeger:4317", false, "without a path or credentials"},
		{OTLPProtocolGRPC, "bob:s3cret-pw@jaeger:4317", true, "carries no credentials"},
		{OTLPProtocolHTTP, "http://jaeger:4318", false, ""},
		{OTLPProtocolHTTP, "https://jaeger/otlp/v1/traces", false, ""},
		{OTLPProtocolHTTP, "jaeger:4318", true, "is not an http:// or https:// URL"},
		{OTLPProtocolHTTP, "bob:s3cret-pw@jaeger:4318", true, "is not an http:// or https:// URL"},
	} {
		err := otlp(tc.protocol, tc.endpoint, tc.insecure).Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %s: %v", tc.protocol, tc.endpoint, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "storage.otlp.endpoint") || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %s: error %v, want storage.otlp.endpoint and %q", tc.protocol, tc.endpoint, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "s3cret-pw"):
			t.Errorf("%s %s: the password is in the error: %v", tc.protocol, tc.endpoint, err)
		}
	}
	c := otlp(OTLPProtocolGRPC, "jaeger:4317", true)
	c.Storage.OTLP.Headers = map[string]string{"x api key": "v"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "storage.otlp.headers") {
		t.Errorf("a header name with spaces: %v", err)
	}
	if got := (OTLPStorage{Endpoint: "https://jaeger:4317"}).GRPCTarget(); got != "jaeger:4317" {
		t.Errorf("gRPC target %q", got)
	}
}
