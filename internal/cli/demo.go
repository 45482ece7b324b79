package cli

import (
	"context"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/internal/demo"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "Run the whole pipeline on this machine: an embedded Kafka-protocol broker, a\n"+
		"generator of multi-service traces, the ingester writing to the file store, and the\n"+
		"operator's lag observer. Ends after --duration or on Ctrl-C, drains, and checks\n"+
		"that every span produced was stored (exit code 1 if not).", stderr)
	opts := demo.Options{Out: stdout}
	fs.StringVar(&opts.Dir, "dir", "spanflow-demo", "directory for the stored spans")
	fs.DurationVar(&opts.Duration, "duration", 30_000_000_000, "how long to produce")
	fs.IntVar(&opts.Rate, "rate", 3000, "spans per second (three times as many in the middle third)")
	fs.IntVar(&opts.Partitions, "partitions", 6, "partitions of the embedded broker's topic")
	fs.StringVar(&opts.Broker, "broker", "", "host:port of an existing Kafka to use instead of the embedded broker (topic jaeger-spans)")
	fs.StringVar(&opts.Encoding, "encoding", config.EncodingJaegerProto, "what the generator writes and the ingester reads: "+strings.Join(demo.Encodings, ", "))
	fs.StringVar(&opts.Storage, "storage", "file", "where the spans go: file (in --dir) or otlp (to --endpoint)")
	opts.OTLP = config.Default().Storage.OTLP
	fs.StringVar(&opts.OTLP.Endpoint, "endpoint", "127.0.0.1:4317", "OTLP endpoint with --storage otlp: host:port for grpc, a URL for http")
	fs.StringVar(&opts.OTLP.Protocol, "protocol", "grpc", "OTLP protocol with --storage otlp: grpc or http")
	fs.BoolVar(&opts.OTLP.Insecure, "insecure", true, "plaintext OTLP (no TLS)")
	logOpts := logFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case opts.Duration <= 0:
		return usageError(fs, "--duration must be positive, not %s", opts.Duration)
	case opts.Rate <= 0:
		return usageError(fs, "--rate must be positive, not %d", opts.Rate)
	case opts.Partitions <= 0:
		return usageError(fs, "--partitions must be positive, not %d", opts.Partitions)
	}
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		opts.Interactive = true
	}
	log := newIngestLogger(logOpts, stderr).WithName("demo").V(1) // the ingester's info logs only with --zap-log-level=debug
	_, err := demo.Run(ctx, opts, log)
	return err
}
