package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// TestMarshalOverDefaultsWritesOnlyWhatWasSet: the operator's form of the file holds the
// settings that differ from the defaults and nothing else — so an ingester image older
// than a setting reads it unless that setting is used — and reads back as it was.
func TestMarshalOverDefaultsWritesOnlyWhatWasSet(t *testing.T) {
	required := []string{"kafka.brokers", "kafka.consumerGroup", "kafka.topic"}
	cases := []struct {
		name   string
		mutate func(*Config)
		extra  []string // the settings written beside the required ones
	}{
		{"only the required", func(*Config) {}, nil},
		{"defaults set explicitly", func(c *Config) {
			c.Parallelism, c.Kafka.InitialOffset, c.MaxInFlightBytes = 8, OffsetEarliest, 64<<20
			c.Processing.Retry.Max = Duration(10 * time.Second)
		}, nil},
		{"settings away from their defaults", func(c *Config) {
			c.Parallelism, c.Kafka.MaxWait = 3, Duration(250*time.Millisecond)
			c.Kafka.IsolationLevel, c.Processing.Retry.Attempts = ReadCommitted, 2
		}, []string{"kafka.isolationLevel", "kafka.maxWait", "parallelism", "processing.retry.attempts"}},
		{"a large byte bound, exactly", func(c *Config) { c.MaxInFlightBytes = 1<<60 + 1 }, []string{"maxInFlightBytes"}},
		{"an OTLP backend with headers", func(c *Config) {
			c.Storage.Type, c.Storage.OTLP.Endpoint = StorageOTLP, "tempo:4317"
			c.Storage.OTLP.Headers = map[string]string{"authorization": "${env:TOKEN}"}
		}, []string{"storage.otlp.endpoint", "storage.otlp.headers.authorization", "storage.type"}},
		{"zero where the default is not", func(c *Config) {
			c.Storage.OTLP.Compression, c.Storage.File.MaxFileBytes = "", 0
		}, []string{"storage.file.maxFileBytes", "storage.otlp.compression"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			data, err := c.MarshalOverDefaults()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := settingPaths(t, data), slices.Sorted(slices.Values(append(tc.extra, required...))); !slices.Equal(got, want) {
				t.Errorf("written: %v, want %v:\n%s", got, want, data)
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

// settingPaths lists the dotted paths of a file's settings, sorted.
func settingPaths(t *testing.T, data []byte) []string {
	t.Helper()
	var tree map[string]any
	if err := yaml.Unmarshal(data, &tree); err != nil {
		t.Fatal(err)
	}
	var paths []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok && (prefix == "" || len(m) > 0) {
			for k, sub := range m {
				walk(prefix+k+".", sub)
			}
			return
		}
		paths = append(paths, prefix[:len(prefix)-1])
	}
	walk("", tree)
	slices.Sort(paths)
	return paths
}
