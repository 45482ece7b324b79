package cli

import (
	"context"
	"flag"
	"io"
	"strings"

	"github.com/spanflow/spanflow/ingester"
	"github.com/spanflow/spanflow/ingester/config"
)

func runIngest(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("ingest", "Consume spans from a Kafka topic in a consumer group and write them to trace\nstorage. Settings come from --config (YAML); the flags below override it.", stderr)
	configPath := fs.String("config", "", "path of the YAML configuration file (the operator mounts it from a ConfigMap)")
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap addresses (kafka.brokers)")
	topic := fs.String("topic", "", "Kafka topic to consume (kafka.topic)")
	group := fs.String("group", "", "Kafka consumer group (kafka.consumerGroup)")
	encoding := fs.String("encoding", "", "message format: otlp_proto or otlp_json (encoding)")
	storage := fs.String("storage", "", "storage type: blackhole (storage.type)")
	parallelism := fs.Int("parallelism", 0, "messages processed at once (parallelism)")
	adminAddress := fs.String("admin-address", "", "listen address of /metrics, /healthz and /readyz (adminAddress)")
	logOpts := logFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	log := newLogger(logOpts, stderr).WithName("ingest")

	cfg := config.Default()
	if *configPath != "" {
		var err error
		if cfg, err = config.Load(*configPath); err != nil {
			return err
		}
	}
	// Only flags given on the command line override the file.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "brokers":
			cfg.Kafka.Brokers = strings.Split(*brokers, ",")
		case "topic":
			cfg.Kafka.Topic = *topic
		case "group":
			cfg.Kafka.ConsumerGroup = *group
		case "encoding":
			cfg.Encoding = *encoding
		case "storage":
			cfg.Storage.Type = *storage
		case "parallelism":
			cfg.Parallelism = *parallelism
		case "admin-address":
			cfg.AdminAddress = *adminAddress
		}
	})
	return ingester.Run(ctx, cfg, nil, log)
}
