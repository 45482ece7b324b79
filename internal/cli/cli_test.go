package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/otlptest"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpListsCommandsAndFlags(t *testing.T) {
	code, stdout, _ := run("--help")
	if code != 0 {
		t.Errorf("--help exits %d", code)
	}
	for _, c := range []string{"manager", "ingest", "demo", "inspect", "version"} {
		if !strings.Contains(stdout, c) {
			t.Errorf("--help does not list %s:\n%s", c, stdout)
		}
	}
	flags := map[string][]string{
		"manager": {"-leader-elect", "-metrics-bind-address", "-health-probe-bind-address", "-ingester-image", "-zap-devel"},
		"ingest":  {"-config", "-brokers", "-topic", "-group", "-encoding", "-parallelism", "-otlp-endpoint", "-admin-address", "-zap-log-level"},
		"demo":    {"-duration", "-rate", "-broker", "-dir"},
		"inspect": {"Usage: spanflow inspect"},
		"version": {"Usage: spanflow version"},
	}
	for cmd, want := range flags {
		code, stdout, _ := run(cmd, "--help")
		if code != 0 {
			t.Errorf("%s --help exits %d", cmd, code)
		}
		for _, f := range want {
			if !strings.Contains(stdout, f) {
				t.Errorf("%s --help does not mention %s:\n%s", cmd, f, stdout)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	if code, _, stderr := run("frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %s", code, stderr)
	}
	if code, _, _ := run(); code != 2 {
		t.Errorf("no command: exit %d", code)
	}
	if code, _, _ := run("ingest", "--no-such-flag"); code != 2 {
		t.Errorf("bad flag: exit %d", code)
	}
	if code, _, stderr := run("demo", "--duration=-1s"); code != 2 || !strings.Contains(stderr, "--duration must be positive") {
		t.Errorf("negative demo duration: exit %d, %s", code, stderr)
	}
	// Zero would stop the lag from ever being read again.
	if code, _, stderr := run("manager", "--kafka-poll-interval=0s"); code == 0 || !strings.Contains(stderr, "--kafka-poll-interval must be positive") {
		t.Errorf("zero poll interval: exit %d, %s", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := run("version")
	if code != 0 || !strings.HasPrefix(stdout, "spanflow ") {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
}

func TestIngestRefusesInvalidConfigNamingFields(t *testing.T) {
	code, _, stderr := run("ingest", "--topic=spans", "--parallelism=0")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, field := range []string{"kafka.brokers", "kafka.consumerGroup", "parallelism"} {
		if !strings.Contains(stderr, field) {
			t.Errorf("the error does not name %s:\n%s", field, stderr)
		}
	}
}

func TestInspect(t *testing.T) {
	if code, _, _ := run("inspect"); code != 2 {
		t.Errorf("inspect without a directory: exit %d", code)
	}
	dir := t.TempDir()
	code, stdout, _ := run("inspect", dir)
	if code != 0 || !strings.Contains(stdout, "spans     0") {
		t.Errorf("inspect of an empty store: exit %d\n%s", code, stdout)
	}
	// A file is not a store: not summarized as the directory it sits in.
	file := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run("inspect", file); code == 0 || !strings.Contains(stderr, "is a file") {
		t.Errorf("inspect of a file: exit %d, %s", code, stderr)
	}
	if !strings.Contains(stdout, "no span files here") {
		t.Errorf("inspect of a directory without span files does not say so:\n%s", stdout)
	}

	// A crash mid-write leaves a torn last line: skipped, and said.
	td := ptrace.NewTraces()
	span := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetTraceID([16]byte{1})
	span.SetSpanID([8]byte{2})
	line, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	whole := append(append([]byte{}, line...), '\n')
	if err := os.WriteFile(filepath.Join(store, "spans-1.jsonl"), whole, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, "spans-2.jsonl"), append(whole, line[:len(line)/2]...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = run("inspect", store)
	if code != 0 || !strings.Contains(stdout, "spans     2 (distinct 1)") || !strings.Contains(stdout, "files     2") ||
		!strings.Contains(stdout, "torn      1 file(s)") || !strings.Contains(stdout, "spans-2.jsonl") || strings.Contains(stdout, "spans-1.jsonl") {
		t.Errorf("inspect of a store with a torn line: exit %d\n%s", code, stdout)
	}
}

// TestIngestLoggerKeepsEveryLine: with the ingest command's logging flags at their
// defaults, a burst of 500 identical info lines (a partition pausing again and again)
// all come out — none is lost to sampling — and an error line carries no stack trace.
func TestIngestLoggerKeepsEveryLine(t *testing.T) {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	opts := logFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	log := newIngestLogger(opts, &out).WithName("ingest")
	for i := range 500 {
		log.Info("Partition paused: it is fetched again once storage takes what it holds", "partition", i%4)
	}
	log.Error(errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), "Cannot take part in the consumer group; trying again")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	paused := 0
	for _, line := range lines {
		if strings.Contains(line, "Partition paused") {
			paused++
		}
	}
	if paused != 500 {
		t.Errorf("%d of 500 identical info lines came out", paused)
	}
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatalf("the error line is not JSON: %v\n%s", err, lines[len(lines)-1])
	}
	if last["level"] != "error" || !strings.Contains(fmt.Sprint(last["error"]), "127.0.0.1:1") {
		t.Errorf("error line %v", last)
	}
	if trace, ok := last["stacktrace"]; ok {
		t.Errorf("the error line carries a stack trace:\n%v", trace)
	}
}

// TestIngestFlagsOverrideTheFile: each flag of ingest that stands for a configuration
// field sets that field, and only it, over the file's value, and so does its SPANFLOW_*
// variable; the command line wins over the variable.
func TestIngestFlagsOverrideTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingester.yaml")
	file := config.Default()
	file.Kafka.Topic, file.Parallelism = "from-file", 2
	data, err := file.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, o := range ingestOverrides {
		t.Run(o.name, func(t *testing.T) {
			value := map[flagKind]string{stringFlag: "x", intFlag: "3", boolFlag: "true"}[o.kind]
			fs, _ := ingestFlags(io.Discard)
			if err := parse(fs, []string{"--" + o.name + "=" + value}); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadIngestConfig(path, fs)
			if err != nil {
				t.Fatal(err)
			}
			field, ok := overriddenField[o.name]
			if !ok {
				t.Fatalf("the test does not know the field of --%s", o.name)
			}
			if got := fmt.Sprint(field(cfg)); got != value {
				t.Errorf("--%s=%s: its field holds %s", o.name, value, got)
			}
			// Nothing else changed.
			want := file
			o.set(&want, map[flagKind]any{stringFlag: value, intFlag: 3, boolFlag: true}[o.kind])
			if !reflect.DeepEqual(cfg, want) {
				t.Errorf("--%s=%s changed more than its field", o.name, value)
			}
			// Set again by the flag's variable alone, the configuration is the same.
			t.Setenv(envPrefix+strings.ToUpper(strings.ReplaceAll(o.name, "-", "_")), value)
			fs, _ = ingestFlags(io.Discard)
			if err := parse(fs, nil); err != nil {
				t.Fatal(err)
			}
			if err := applyEnv(fs); err != nil {
				t.Fatal(err)
			}
			fromEnv, err := loadIngestConfig(path, fs)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromEnv, cfg) {
				t.Errorf("SPANFLOW_ variable of --%s: %+v, the flag: %+v", o.name, fromEnv, cfg)
			}
		})
	}

	t.Setenv("SPANFLOW_TOPIC", "from-env")
	fs, _ := ingestFlags(io.Discard)
	if err := parse(fs, []string{"--topic=from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if cfg, err := loadIngestConfig(path, fs); err != nil || cfg.Kafka.Topic != "from-flag" || cfg.Parallelism != 2 {
		t.Errorf("flag, variable and file: topic %q, parallelism %d, %v", cfg.Kafka.Topic, cfg.Parallelism, err)
	}
}

// TestIngestToOTLPFromFlagsAlone: with no configuration file, the flags send a topic's
// spans to an OTLP receiver in plaintext (what a user trying spanflow against a local
// Jaeger v2 types), every span arriving.
func TestIngestToOTLPFromFlagsAlone(t *testing.T) {
	broker := kafkatest.Start(t, "spans", 2)
	const messages, spansPer = 40, 3
	broker.Produce(t, "spans", kafkatest.OTLPProtoMessages(t, 0, messages, spansPer)...)
	sink := otlptest.Start(t)
	t.Setenv("SPANFLOW_OTLP_COMPRESSION", "zstd")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runIngest(ctx, []string{"--brokers=" + broker.Addr, "--topic=spans", "--group=flags",
			"--encoding=otlp_proto", "--initial-offset=earliest", "--storage=otlp",
			"--otlp-endpoint=" + sink.Addr, "--otlp-insecure", "--admin-address=127.0.0.1:0",
			"--zap-log-level=error"}, io.Discard, io.Discard)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for sink.Spans() < messages*spansPer && time.Now().Before(deadline) {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("ingest ended: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ingest: %v", err)
	}
	if got := sink.Spans(); got != messages*spansPer {
		t.Errorf("the receiver has %d distinct spans of %d", got, messages*spansPer)
	}
}

// TestIngestVariableOfTheWrongKind: a SPANFLOW_ variable whose value its flag does not take
// stops ingest with an error naming the variable, its value and the flag.
func TestIngestVariableOfTheWrongKind(t *testing.T) {
	t.Setenv("SPANFLOW_PARALLELISM", "many")
	code, _, stderr := run("ingest")
	if code == 0 {
		t.Fatal("ingest ran with SPANFLOW_PARALLELISM=many")
	}
	for _, want := range []string{"SPANFLOW_PARALLELISM", `"many"`, "--parallelism"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the error does not name %s:\n%s", want, stderr)
		}
	}
}

// TestEveryFlagReadsItsVariable: the logging flags read their SPANFLOW_* variables too,
// as the help says of every flag (SPANFLOW_ZAP_LOG_LEVEL was ignored); variables that
// name no flag are listed — a misspelt SPANFLOW_KAFKA_BROKERS passed silently — but not
// those the pod sets or the headers read.
func TestEveryFlagReadsItsVariable(t *testing.T) {
	t.Setenv("SPANFLOW_ZAP_LOG_LEVEL", "debug")
	t.Setenv("SPANFLOW_KAFKA_BROKERS", "k:9092")
	t.Setenv("SPANFLOW_CONSUMER_GROUP", "g")
	t.Setenv("SPANFLOW_POD_NAME", "pod-1")
	t.Setenv("SPANFLOW_OTLP_HEADER_0", "Bearer secret")
	t.Setenv("SPANFLOW_RACK", "zone-b")
	fs, _ := ingestFlags(io.Discard)
	logOpts := logFlags(fs)
	if err := parse(fs, nil); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if f := fs.Lookup("zap-log-level"); f == nil || f.Value.String() != "debug" || logOpts.Level == nil {
		t.Errorf("SPANFLOW_ZAP_LOG_LEVEL=debug left --zap-log-level at %v", f.Value)
	}
	cfg := config.Default()
	cfg.Storage.OTLP.Headers = map[string]string{"authorization": "${env:SPANFLOW_OTLP_HEADER_0}"}
	if got := fmt.Sprint(unknownEnv(fs, cfg)); got != "[SPANFLOW_CONSUMER_GROUP SPANFLOW_KAFKA_BROKERS]" {
		t.Errorf("variables that name no flag: %s", got)
	}
}

// TestHelpIsWrittenToStdout: help asked for is the command's answer — on stdout, exit 0,
// so that `spanflow ingest --help | less` shows it — with each setting's default (the
// file's: the flags have none of their own), and no empty Flags heading.
func TestHelpIsWrittenToStdout(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"ingest", "--help"}, {"ingest", "-h"}, {"ingest", "--help=true"}, {"demo", "-help=1"}, {"inspect", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := Main(args, &stdout, &stderr); code != 0 || stderr.Len() > 0 || !strings.Contains(stdout.String(), "Usage: spanflow") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout.String(), stderr.String())
		}
	}
	var stdout bytes.Buffer
	Main([]string{"ingest", "--help"}, &stdout, io.Discard)
	for _, want := range []string{"(kafka.initialOffset) (default earliest)", "(parallelism) (default 8)", "(encoding) (default otlp_proto)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("ingest --help lacks %q:\n%s", want, stdout.String())
		}
	}
	stdout.Reset()
	Main([]string{"inspect", "--help"}, &stdout, io.Discard)
	if strings.Contains(stdout.String(), "Flags:") {
		t.Errorf("inspect --help shows a Flags heading over no flags:\n%s", stdout.String())
	}
	// Without a command the usage is a mistake's answer: stderr, exit 2.
	var out, errOut bytes.Buffer
	if code := Main(nil, &out, &errOut); code != 2 || out.Len() > 0 || errOut.Len() == 0 {
		t.Errorf("no command: exit %d, stdout %q", code, out.String())
	}
}

// TestValidationNamesTheFlags: for those who set them with flags, the settings an invalid
// configuration names are named as flags too ("kafka.consumerGroup: required" is --group);
// every flag's usage names its setting.
func TestValidationNamesTheFlags(t *testing.T) {
	for _, o := range ingestOverrides {
		if f := flagField(o.usage); f == "" || strings.Contains(f, " ") {
			t.Errorf("--%s: its usage names no setting last, in parentheses: %q", o.name, o.usage)
		}
	}
	code, _, stderr := run("ingest", "--brokers=127.0.0.1:1,kafka", "--topic=spans", "--storage=otlp",
		"--otlp-endpoint=http://127.0.0.1:4317", "--otlp-protocol=grpc")
	if code != 1 {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{"kafka.consumerGroup: required", "kafka.brokers[1]", "storage.otlp.endpoint", "(as flags: --brokers, --group, --otlp-endpoint)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the error lacks %q:\n%s", want, stderr)
		}
	}
}
