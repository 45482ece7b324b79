// Package config is the configuration of `spanflow ingest`: the file format the operator
// renders into a ConfigMap, its defaults, and its validation. The operator and the ingester
// share this package, so the file they agree on is defined once.
package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Encodings the ingester can decode.
const (
	EncodingOTLPProto = "otlp_proto"
	EncodingOTLPJSON  = "otlp_json"
)

// Storage types the ingester can write to.
const (
	StorageBlackhole = "blackhole"
)

// Initial offsets for a consumer group with nothing committed.
const (
	OffsetEarliest = "earliest"
	OffsetLatest   = "latest"
)

// Config is the whole configuration of one ingester process.
type Config struct {
	// Kafka says where messages are read from.
	Kafka Kafka `json:"kafka"`
	// Encoding is the format of every message on the topic.
	Encoding string `json:"encoding"`
	// Storage says where decoded spans are written.
	Storage Storage `json:"storage"`
	// Parallelism is the number of messages processed at once.
	Parallelism int `json:"parallelism"`
	// AdminAddress is the listen address of /metrics, /healthz and /readyz.
	AdminAddress string `json:"adminAddress"`
	// ShutdownTimeout bounds the drain of in-flight messages on SIGTERM.
	ShutdownTimeout Duration `json:"shutdownTimeout"`
}

// Kafka holds the consumer's connection and group settings.
type Kafka struct {
	Brokers       []string `json:"brokers"`
	Topic         string   `json:"topic"`
	ConsumerGroup string   `json:"consumerGroup"`
	// InitialOffset is "earliest" or "latest": where a group with no committed offset starts.
	InitialOffset string `json:"initialOffset"`

	SessionTimeout    Duration `json:"sessionTimeout"`
	HeartbeatInterval Duration `json:"heartbeatInterval"`
	RebalanceTimeout  Duration `json:"rebalanceTimeout"`
	// MaxWait is how long a fetch waits for MinBytes before returning what it has.
	MaxWait  Duration `json:"maxWait"`
	MinBytes int      `json:"minBytes"`
	MaxBytes int      `json:"maxBytes"`
	// CommitInterval is how often processed offsets are committed to the group.
	CommitInterval Duration `json:"commitInterval"`
}

// Storage selects and configures the writer.
type Storage struct {
	Type string `json:"type"`
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
			MaxBytes:          10 << 20,
			CommitInterval:    Duration(time.Second),
		},
		Encoding:        EncodingOTLPProto,
		Storage:         Storage{Type: StorageBlackhole},
		Parallelism:     4,
		AdminAddress:    ":8080",
		ShutdownTimeout: Duration(30 * time.Second),
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
		return cfg, fmt.Errorf("parsing config %s: %w", path, err)
	}
	return cfg, nil
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
	if c.Kafka.Topic == "" {
		bad("kafka.topic", "required")
	}
	if c.Kafka.ConsumerGroup == "" {
		bad("kafka.consumerGroup", "required")
	}
	if c.Kafka.InitialOffset != OffsetEarliest && c.Kafka.InitialOffset != OffsetLatest {
		bad("kafka.initialOffset", "%q is neither %q nor %q", c.Kafka.InitialOffset, OffsetEarliest, OffsetLatest)
	}
	positive := map[string]Duration{
		"kafka.sessionTimeout":    c.Kafka.SessionTimeout,
		"kafka.heartbeatInterval": c.Kafka.HeartbeatInterval,
		"kafka.rebalanceTimeout":  c.Kafka.RebalanceTimeout,
		"kafka.maxWait":           c.Kafka.MaxWait,
		"kafka.commitInterval":    c.Kafka.CommitInterval,
		"shutdownTimeout":         c.ShutdownTimeout,
	}
	for _, field := range slices.Sorted(maps.Keys(positive)) {
		if positive[field] <= 0 {
			bad(field, "must be a positive duration, got %s", positive[field].D())
		}
	}
	if c.Kafka.HeartbeatInterval >= c.Kafka.SessionTimeout && c.Kafka.SessionTimeout > 0 {
		bad("kafka.heartbeatInterval", "must be shorter than kafka.sessionTimeout (%s)", c.Kafka.SessionTimeout.D())
	}
	if c.Kafka.MinBytes < 1 {
		bad("kafka.minBytes", "must be at least 1, got %d", c.Kafka.MinBytes)
	}
	if c.Kafka.MaxBytes < c.Kafka.MinBytes {
		bad("kafka.maxBytes", "must be at least kafka.minBytes (%d), got %d", c.Kafka.MinBytes, c.Kafka.MaxBytes)
	}
	switch c.Encoding {
	case EncodingOTLPProto, EncodingOTLPJSON:
	default:
		bad("encoding", "%q is not supported (supported: %s, %s)", c.Encoding, EncodingOTLPProto, EncodingOTLPJSON)
	}
	if c.Storage.Type != StorageBlackhole {
		bad("storage.type", "%q is not supported (supported: %s)", c.Storage.Type, StorageBlackhole)
	}
	if c.Parallelism < 1 || c.Parallelism > 1024 {
		bad("parallelism", "must be between 1 and 1024, got %d", c.Parallelism)
	}
	if c.AdminAddress == "" {
		bad("adminAddress", "required")
	}
	return errors.Join(errs...)
}
