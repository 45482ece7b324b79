package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spanflow/spanflow/ingester"
	"github.com/spanflow/spanflow/ingester/config"
)

// envPrefix names the environment variables that stand in for flags: --dead-letter-topic
// is SPANFLOW_DEAD_LETTER_TOPIC. A flag on the command line wins over its variable, and
// either wins over the config file.
const envPrefix = "SPANFLOW_"

func runIngest(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("ingest", "Consume spans from a Kafka topic in a consumer group and write them to trace\n"+
		"storage, committing offsets only after the spans are stored. Settings come from\n"+
		"--config (YAML); each flag below, or its SPANFLOW_* environment variable\n"+
		"(--dead-letter-topic is SPANFLOW_DEAD_LETTER_TOPIC), overrides the file.", stderr)
	configPath := fs.String("config", "", "path of the YAML configuration file (the operator mounts it from a ConfigMap)")
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap addresses (kafka.brokers)")
	topic := fs.String("topic", "", "Kafka topic to consume (kafka.topic)")
	group := fs.String("group", "", "Kafka consumer group (kafka.consumerGroup)")
	initialOffset := fs.String("initial-offset", "", "where a group with no commits starts: earliest or latest (kafka.initialOffset)")
	encoding := fs.String("encoding", "", "message format: otlp_proto, otlp_json, jaeger_proto, jaeger_json, zipkin_json, zipkin_proto or zipkin_thrift (encoding)")
	storage := fs.String("storage", "", "storage type: blackhole or file (storage.type)")
	filePath := fs.String("file-path", "", "directory of the file store (storage.file.path)")
	parallelism := fs.Int("parallelism", 0, "messages processed at once (parallelism)")
	deadLetterTopic := fs.String("dead-letter-topic", "", "topic for messages that cannot be written (processing.deadLetterTopic)")
	onDecodeError := fs.String("on-decode-error", "", "undecodable messages: fail, deadletter or skip (processing.onDecodeError)")
	adminAddress := fs.String("admin-address", "", "listen address of /metrics, /healthz and /readyz (adminAddress)")
	logOpts := logFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := applyEnv(fs); err != nil {
		return err
	}
	log := newIngestLogger(logOpts, stderr).WithName("ingest")
	tuneGC(log)

	// load reads the configuration as it is now: the file, then the flags and variables.
	// The ingester calls it again while running to follow a new parallelism.
	load := func() (config.Config, error) {
		cfg := config.Default()
		if *configPath != "" {
			var err error
			if cfg, err = config.Load(*configPath); err != nil {
				return cfg, err
			}
		}
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "brokers":
				cfg.Kafka.Brokers = strings.Split(*brokers, ",")
			case "topic":
				cfg.Kafka.Topic = *topic
			case "group":
				cfg.Kafka.ConsumerGroup = *group
			case "initial-offset":
				cfg.Kafka.InitialOffset = *initialOffset
			case "encoding":
				cfg.Encoding = *encoding
			case "storage":
				cfg.Storage.Type = *storage
			case "file-path":
				cfg.Storage.File.Path = *filePath
			case "parallelism":
				cfg.Parallelism = *parallelism
			case "dead-letter-topic":
				cfg.Processing.DeadLetterTopic = *deadLetterTopic
			case "on-decode-error":
				cfg.Processing.OnDecodeError = *onDecodeError
			case "admin-address":
				cfg.AdminAddress = *adminAddress
			}
		})
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	opts := ingester.Options{}
	if *configPath != "" {
		opts.Reload = load
	}
	return ingester.Run(ctx, cfg, opts, log)
}

// applyEnv sets each flag not given on the command line from its SPANFLOW_* variable.
func applyEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil || strings.HasPrefix(f.Name, "zap-") {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s: %w", name, serr)
			}
		}
	})
	return err
}
