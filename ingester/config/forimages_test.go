package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// minimalForImages is the file of a configuration with only the required settings, as
// every operator has written it: WrittenAlways, at their values. A change here changes
// every Ingester's ConfigMap and pod-template hash at the operator's upgrade (and rolls
// its pods); a changed default of these reaches images pinned older than it.
const minimalForImages = `adminAddress: :8080
drainTimeout: 20s
encoding: otlp_proto
kafka:
  brokers:
  - k:9092
  commitInterval: 1s
  consumerGroup: g
  heartbeatInterval: 3s
  initialOffset: earliest
  maxBytes: 1048576
  maxWait: 500ms
  minBytes: 1
  rebalanceTimeout: 30s
  sasl: {}
  sessionTimeout: 30s
  tls: {}
  topic: spans
maxInFlightBytes: 67108864
parallelism: 8
processing:
  batchLinger: 100ms
  batchSize: 1000
  onDecodeError: fail
  retry:
    attempts: 8
    max: 10s
    min: 100ms
storage:
  file:
    maxFileBytes: 67108864
  otlp:
    compression: gzip
    protocol: grpc
    timeout: 10s
  type: blackhole
`

// TestMarshalForImagesWritesWhatImagesRead: the operator's form of the file holds the
// settings every image reads, at their values, and others only where they differ from
// the defaults; it reads back as it was, and for the settings that exist now it is what
// the operator wrote before it left any out (so the upgrade rolls no pods).
func TestMarshalForImagesWritesWhatImagesRead(t *testing.T) {
	minimal, err := valid().MarshalForImages()
	if err != nil {
		t.Fatal(err)
	}
	if string(minimal) != minimalForImages {
		t.Errorf("the minimal configuration is written as\n%s\nwant\n%s", minimal, minimalForImages)
	}
	cases := []struct {
		name   string
		mutate func(*Config)
	}{
		{"only the required", func(*Config) {}},
		{"settings away from their defaults", func(c *Config) {
			c.Parallelism, c.Kafka.MaxWait = 3, Duration(250*time.Millisecond)
			c.Kafka.IsolationLevel, c.Kafka.ClientID, c.Kafka.Rack = ReadCommitted, "team-a", "zone-b"
			c.Processing.Retry.Attempts, c.Processing.DeadLetterTopic, c.Profiling = 2, "dead", true
		}},
		{"a large byte bound, exactly", func(c *Config) { c.MaxInFlightBytes = 1<<60 + 1 }},
		{"TLS, SASL, an OTLP backend with headers", func(c *Config) {
			c.Kafka.TLS = KafkaTLS{Enabled: true, CAFile: "/ca"}
			c.Kafka.SASL = KafkaSASL{Mechanism: SASLScramSHA512, UsernameFile: "/u", PasswordFile: "/p"}
			c.Storage.Type, c.Storage.OTLP.Endpoint, c.Storage.OTLP.CompressionLevel = StorageOTLP, "tempo:4317", 1
			c.Storage.OTLP.Headers = map[string]string{"authorization": "${env:TOKEN}"}
		}},
		{"a file store", func(c *Config) {
			c.Storage.Type, c.Storage.File = StorageFile, FileStorage{Path: "/data", Gzip: true, MaxFileBytes: 1 << 20}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			data, err := c.MarshalForImages()
			if err != nil {
				t.Fatal(err)
			}
			if full, _ := c.Marshal(); string(data) != string(full) {
				t.Errorf("written as\n%s\nwhere the full form is\n%s", data, full)
			}
			path := filepath.Join(t.TempDir(), "ingester.yaml")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			back, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, c) {
				t.Errorf("read back as\n%+v\nwant\n%+v\nfrom\n%s", back, c, data)
			}
		})
	}
}

// TestSettingsAddedLaterAreWrittenWhenUsed: a setting not in WrittenAlways — one a newer
// operator adds — is left out at its default, whatever its kind, written where it
// differs, and written as zero where it is zero and its default is not (an omitted zero
// would read back as the default).
func TestSettingsAddedLaterAreWrittenWhenUsed(t *testing.T) {
	tree := func(s string) map[string]any {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	defaults := tree(`{"kafka": {"topic": "", "later": {"window": "5m", "on": true}, "sessions": 3}, "tls": {}}`)
	always := []string{"kafka.topic", "tls"}
	for _, tc := range []struct{ set, want string }{
		{`{"kafka": {"topic": "", "later": {"window": "5m", "on": true}, "sessions": 3}, "tls": {}}`,
			`{"kafka": {"topic": ""}, "tls": {}}`},
		{`{"kafka": {"topic": "spans", "later": {"window": "1m", "on": true}, "sessions": 4}, "tls": {"enabled": true}}`,
			`{"kafka": {"topic": "spans", "later": {"window": "1m"}, "sessions": 4}, "tls": {"enabled": true}}`},
		{`{"kafka": {"topic": "spans", "later": {"window": "5m"}}, "tls": {}}`, // "on" false and "sessions" 0 omitted
			`{"kafka": {"topic": "spans", "later": {"on": false}, "sessions": 0}, "tls": {}}`},
	} {
		got, _ := json.Marshal(withoutDefaults(tree(tc.set), defaults, "", always))
		want, _ := json.Marshal(tree(tc.want))
		if string(got) != string(want) {
			t.Errorf("%s written as %s, want %s", tc.set, got, want)
		}
	}
	// Every setting written always exists.
	var paths []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			paths = append(paths, prefix+k)
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
			}
		}
	}
	var all map[string]any
	data, _ := valid().Marshal()
	if err := yaml.Unmarshal(data, &all); err != nil {
		t.Fatal(err)
	}
	walk("", all)
	for _, p := range WrittenAlways {
		if !slices.Contains(paths, p) {
			t.Errorf("WrittenAlways names %s, which the configuration does not hold", p)
		}
	}
}
