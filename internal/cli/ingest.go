package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spanflow/spanflow/ingester"
	"github.com/spanflow/spanflow/ingester/config"
)

// envPrefix names the environment variables that stand in for flags: --dead-letter-topic
// is SPANFLOW_DEAD_LETTER_TOPIC. A flag on the command line wins over its variable, and
// either wins over the config file.
const envPrefix = "SPANFLOW_"

// ingestOverrides are the flags of ingest that override a field of the configuration
// file, each with the field it sets; a flag's SPANFLOW_* variable sets the same. set
// takes the flag's parsed value: a string, or an int or bool for those kinds.
var ingestOverrides = []struct {
	name, usage string
	kind        flagKind
	set         func(c *config.Config, value any)
}{
	{"brokers", "comma-separated Kafka bootstrap addresses (kafka.brokers)", stringFlag,
		func(c *config.Config, v any) { c.Kafka.Brokers = strings.Split(v.(string), ",") }},
	{"topic", "Kafka topic to consume (kafka.topic)", stringFlag,
		func(c *config.Config, v any) { c.Kafka.Topic = v.(string) }},
	{"group", "Kafka consumer group (kafka.consumerGroup)", stringFlag,
		func(c *config.Config, v any) { c.Kafka.ConsumerGroup = v.(string) }},
	{"initial-offset", "where a group with no commits starts: earliest or latest (kafka.initialOffset)", stringFlag,
		func(c *config.Config, v any) { c.Kafka.InitialOffset = v.(string) }},
	{"client-id", "the client.id of every request to the brokers, which key quotas by it; spanflow when empty (kafka.clientID)", stringFlag,
		func(c *config.Config, v any) { c.Kafka.ClientID = v.(string) }},
	{"rack", "where this process runs (its zone), as the brokers' broker.rack say: partitions are read from a replica there when the brokers select replicas by rack (kafka.rack)", stringFlag,
		func(c *config.Config, v any) { c.Kafka.Rack = v.(string) }},
	{"isolation-level", "read_uncommitted or read_committed: whether aborted and open transactions' records are read (kafka.isolationLevel)", stringFlag,
		func(c *config.Config, v any) { c.Kafka.IsolationLevel = v.(string) }},
	{"encoding", "message format: " + strings.Join(config.Encodings, ", ") + " (encoding)", stringFlag,
		func(c *config.Config, v any) { c.Encoding = v.(string) }},
	{"storage", "storage type, required: otlp, file, or blackhole (counts the spans and drops them) (storage.type)", stringFlag,
		func(c *config.Config, v any) { c.Storage.Type = v.(string) }},
	{"file-path", "directory of the file store (storage.file.path)", stringFlag,
		func(c *config.Config, v any) { c.Storage.File.Path = v.(string) }},
	{"otlp-endpoint", "host:port of an OTLP gRPC receiver, or the URL of an OTLP/HTTP one (storage.otlp.endpoint)", stringFlag,
		func(c *config.Config, v any) { c.Storage.OTLP.Endpoint = v.(string) }},
	{"otlp-protocol", "grpc or http (storage.otlp.protocol)", stringFlag,
		func(c *config.Config, v any) { c.Storage.OTLP.Protocol = v.(string) }},
	{"otlp-compression", "compression of the OTLP requests: " + strings.Join(config.Compressions, ", ") + " (storage.otlp.compression)", stringFlag,
		func(c *config.Config, v any) { c.Storage.OTLP.Compression = v.(string) }},
	{"otlp-insecure", "send to the OTLP endpoint in plaintext, without TLS (storage.otlp.insecure)", boolFlag,
		func(c *config.Config, v any) { c.Storage.OTLP.Insecure = v.(bool) }},
	{"parallelism", "deliveries processed at once: storage writes in flight (parallelism)", intFlag,
		func(c *config.Config, v any) { c.Parallelism = v.(int) }},
	{"dead-letter-topic", "topic for messages that cannot be written (processing.deadLetterTopic)", stringFlag,
		func(c *config.Config, v any) { c.Processing.DeadLetterTopic = v.(string) }},
	{"on-decode-error", "undecodable messages: fail, deadletter or skip (processing.onDecodeError)", stringFlag,
		func(c *config.Config, v any) { c.Processing.OnDecodeError = v.(string) }},
	{"admin-address", "listen address of /metrics, /healthz and /readyz (adminAddress)", stringFlag,
		func(c *config.Config, v any) { c.AdminAddress = v.(string) }},
}

// overriddenField reads the field each of ingest's flags sets, as the flag would print it:
// its help shows the default from it.
var overriddenField = map[string]func(config.Config) any{
	"brokers":           func(c config.Config) any { return strings.Join(c.Kafka.Brokers, ",") },
	"topic":             func(c config.Config) any { return c.Kafka.Topic },
	"group":             func(c config.Config) any { return c.Kafka.ConsumerGroup },
	"initial-offset":    func(c config.Config) any { return c.Kafka.InitialOffset },
	"isolation-level":   func(c config.Config) any { return c.Kafka.IsolationLevel },
	"client-id":         func(c config.Config) any { return c.Kafka.ClientID },
	"rack":              func(c config.Config) any { return c.Kafka.Rack },
	"encoding":          func(c config.Config) any { return c.Encoding },
	"storage":           func(c config.Config) any { return c.Storage.Type },
	"file-path":         func(c config.Config) any { return c.Storage.File.Path },
	"otlp-endpoint":     func(c config.Config) any { return c.Storage.OTLP.Endpoint },
	"otlp-protocol":     func(c config.Config) any { return c.Storage.OTLP.Protocol },
	"otlp-compression":  func(c config.Config) any { return c.Storage.OTLP.Compression },
	"otlp-insecure":     func(c config.Config) any { return c.Storage.OTLP.Insecure },
	"parallelism":       func(c config.Config) any { return c.Parallelism },
	"dead-letter-topic": func(c config.Config) any { return c.Processing.DeadLetterTopic },
	"on-decode-error":   func(c config.Config) any { return c.Processing.OnDecodeError },
	"admin-address":     func(c config.Config) any { return c.AdminAddress },
}

// flagKind is what a flag parses its value as: a value of the wrong kind is a usage error.
// A value of the right kind is checked with the whole configuration, whose error names
// the field.
type flagKind int

const (
	stringFlag flagKind = iota
	intFlag
	boolFlag
)

// ingestFlags defines the flags of ingest: --config and the overrides.
func ingestFlags(stderr io.Writer) (fs *flag.FlagSet, configPath *string) {
	fs = newFlagSet("ingest", "Consume spans from a Kafka topic in a consumer group and write them to trace\n"+
		"storage, committing offsets only after the spans are stored. Settings come from\n"+
		"--config (YAML); each flag below, or its SPANFLOW_* environment variable\n"+
		"(--dead-letter-topic is SPANFLOW_DEAD_LETTER_TOPIC), overrides the file.", stderr)
	configPath = fs.String("config", "", "path of the YAML configuration file (the operator mounts it from a ConfigMap)")
	defaults := config.Default()
	for _, o := range ingestOverrides {
		usage := o.usage
		if v := fmt.Sprint(overriddenField[o.name](defaults)); v != "" && v != "0" && v != "false" {
			// The default is the file's, not the flag's: a flag left out leaves the file's value.
			usage += " (default " + v + ")"
		}
		switch o.kind {
		case boolFlag:
			fs.Bool(o.name, false, usage)
		case intFlag:
			fs.Int(o.name, 0, usage)
		default:
			fs.String(o.name, "", usage)
		}
	}
	return fs, configPath
}

// loadIngestConfig reads the configuration as it is now: the file at path (the defaults
// without one), then the flags set on fs (from the command line or their variables).
func loadIngestConfig(path string, fs *flag.FlagSet) (config.Config, error) {
	cfg := config.Default()
	if path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return cfg, err
		}
	}
	fs.Visit(func(f *flag.Flag) {
		for _, o := range ingestOverrides {
			if o.name == f.Name {
				o.set(&cfg, f.Value.(flag.Getter).Get())
			}
		}
	})
	return cfg, nil
}

func runIngest(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs, configPath := ingestFlags(stderr)
	logOpts := logFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := applyEnv(fs); err != nil {
		return err
	}
	log := newIngestLogger(logOpts, stderr).WithName("ingest")
	tuneGC(log)

	// The ingester loads the configuration again while running to follow a new parallelism.
	load := func() (config.Config, error) { return loadIngestConfig(*configPath, fs) }
	cfg, err := load()
	if err != nil {
		return err
	}
	if unknown := unknownEnv(fs, cfg); len(unknown) > 0 {
		// Names only: a value may be a credential. Before the validation, whose error a
		// misspelt variable may be the cause of.
		log.Info("Environment variables that name no flag are ignored: a misspelt setting?", "variables", unknown)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w%s", err, flagsNamed(err))
	}
	opts := ingester.Options{}
	if *configPath != "" {
		opts.Reload = load
	}
	return ingester.Run(ctx, cfg, opts, log)
}

// flagsNamed names the flags of the settings a validation error names, for those who set
// them with flags: "kafka.consumerGroup: required" is --group.
func flagsNamed(err error) string {
	var named []string
	for _, line := range strings.Split(err.Error(), "\n") {
		field, _, _ := strings.Cut(line, ":")
		if i := strings.IndexByte(field, '['); i >= 0 {
			field = field[:i] // kafka.brokers[0]
		}
		for _, o := range ingestOverrides {
			if flagField(o.usage) == field && !slices.Contains(named, "--"+o.name) {
				named = append(named, "--"+o.name)
			}
		}
	}
	if len(named) == 0 {
		return ""
	}
	return "\n(as flags: " + strings.Join(named, ", ") + ")"
}

// flagField is the setting a flag's usage names last, in parentheses: "(kafka.topic)".
func flagField(usage string) string {
	open := strings.LastIndexByte(usage, '(')
	if open < 0 || !strings.HasSuffix(usage, ")") {
		return ""
	}
	return usage[open+1 : len(usage)-1]
}

// unknownEnv lists the SPANFLOW_* variables of the environment that stand for no flag of
// fs, and that neither the configuration's headers read (${env:NAME}) nor the pod sets.
func unknownEnv(fs *flag.FlagSet, cfg config.Config) []string {
	known := map[string]bool{ingester.PodNameEnv: true}
	fs.VisitAll(func(f *flag.Flag) { known[envPrefix+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))] = true })
	var headers strings.Builder
	for _, v := range cfg.Storage.OTLP.Headers {
		headers.WriteString(v)
	}
	var unknown []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) && !known[name] && !strings.HasPrefix(name, envPrefix+"TEST_") &&
			!strings.Contains(headers.String(), "${env:"+name+"}") {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	return unknown
}

// applyEnv sets each flag not given on the command line from its SPANFLOW_* variable.
func applyEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q is not a value --%s takes: %w", name, v, f.Name, serr)
			}
		}
	})
	return err
}
