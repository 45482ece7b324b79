// Package cli parses the spanflow command line and runs the chosen subcommand.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"manager", "run the Kubernetes operator that reconciles Ingester resources", runManager},
		{"ingest", "consume spans from Kafka and write them to trace storage", runIngest},
		{"demo", "run the whole pipeline on this machine with an embedded broker", runDemo},
		{"inspect", "summarize what a file store holds", runInspect},
		{"version", "print the version", runVersion},
	}
}

// Main runs the subcommand named by args[0] and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout) // the answer asked for: on stdout, for | less and > file
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		out := stderr
		if asksForHelp(args[1:]) {
			out = stdout // the flags' help is the answer asked for
		}
		err := c.run(ctx, args[1:], stdout, out)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(stderr, "spanflow %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "spanflow: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// asksForHelp is true when the flags, up to a "--", ask for help as the flag package
// reads it: -h or -help, with one dash or two, with or without a value ("--help=true").
func asksForHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(a, "=")
		switch name {
		case "-h", "-help", "--h", "--help":
			return true
		}
	}
	return false
}

// errUsage reports bad flags; the flag package has already printed why.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: spanflow COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'spanflow COMMAND --help' for the flags of a command.")
}

// newFlagSet returns a flag set whose --help prints the command's purpose and flags.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("spanflow "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		flags := 0
		fs.VisitAll(func(*flag.Flag) { flags++ })
		if flags == 0 {
			fmt.Fprintf(stderr, "Usage: spanflow %s\n\n%s\n", name, synopsis)
			return
		}
		fmt.Fprintf(stderr, "Usage: spanflow %s [flags]\n\n%s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args and maps flag errors to errUsage (or flag.ErrHelp for --help).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return errUsage
	}
	return nil
}

// usageError prints why the flags cannot run, as the flag package does for its own
// errors, and returns errUsage (exit code 2).
func usageError(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), format+"\n", args...)
	return errUsage
}

// logFlags binds the --zap-* logging flags (--zap-devel, --zap-log-level, --zap-encoder, …).
func logFlags(fs *flag.FlagSet) *zap.Options {
	opts := &zap.Options{}
	opts.BindFlags(fs)
	return opts
}

// newLogger builds the logger the flags describe. Stack traces only for panics unless
// --zap-stacktrace-level asks for them: an error line (a paused partition, a missing topic)
// is for a person to read, and a trace of the logging call tells them nothing.
// controller-runtime samples it (of each message, the first 100 lines a second, then one
// in 100): right for the operator's reconcile loops, wrong for the ingester (see
// newIngestLogger).
func newLogger(opts *zap.Options, stderr io.Writer) logr.Logger {
	return zapr.NewLogger(newRawLogger(opts, stderr))
}

// newIngestLogger is newLogger without sampling, for `spanflow ingest` and the demo's
// ingester: every line about a partition pausing or resuming must come out, and the
// events that can repeat fast (dead letters, skips, fetch errors) are summarized per
// interval by package eventlog instead of being dropped.
func newIngestLogger(opts *zap.Options, stderr io.Writer) logr.Logger {
	var unsampled zapcore.Core
	keep := zap.RawZapOpts(uberzap.WrapCore(func(core zapcore.Core) zapcore.Core { unsampled = core; return core }))
	raw := newRawLogger(opts, stderr, keep)
	// controller-runtime wraps the core in its sampler after the options given to it: the
	// core kept above is the one the sampler wraps (the development mode has no sampler).
	return zapr.NewLogger(raw.WithOptions(uberzap.WrapCore(func(zapcore.Core) zapcore.Core { return unsampled })))
}

func newRawLogger(opts *zap.Options, stderr io.Writer, more ...zap.Opts) *uberzap.Logger {
	if opts.StacktraceLevel == nil {
		opts.StacktraceLevel = zapcore.PanicLevel
	}
	return zap.NewRaw(append([]zap.Opts{zap.UseFlagOptions(opts), zap.WriteTo(stderr)}, more...)...)
}
