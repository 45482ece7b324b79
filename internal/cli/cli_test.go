package cli

import (
	"bytes"
	"strings"
	"testing"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpListsCommandsAndFlags(t *testing.T) {
	code, _, stderr := run("--help")
	if code != 0 {
		t.Errorf("--help exits %d", code)
	}
	for _, c := range []string{"manager", "ingest", "demo", "inspect", "version"} {
		if !strings.Contains(stderr, c) {
			t.Errorf("--help does not list %s:\n%s", c, stderr)
		}
	}
	flags := map[string][]string{
		"manager": {"-leader-elect", "-metrics-bind-address", "-health-probe-bind-address", "-ingester-image", "-zap-devel"},
		"ingest":  {"-config", "-brokers", "-topic", "-group", "-encoding", "-parallelism", "-admin-address", "-zap-log-level"},
		"demo":    {"-duration", "-rate", "-broker", "-dir"},
		"inspect": {"Usage: spanflow inspect"},
		"version": {"Usage: spanflow version"},
	}
	for cmd, want := range flags {
		code, _, stderr := run(cmd, "--help")
		if code != 0 {
			t.Errorf("%s --help exits %d", cmd, code)
		}
		for _, f := range want {
			if !strings.Contains(stderr, f) {
				t.Errorf("%s --help does not mention %s:\n%s", cmd, f, stderr)
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
	code, stdout, _ := run("inspect", t.TempDir())
	if code != 0 || !strings.Contains(stdout, "spans     0") {
		t.Errorf("inspect of an empty store: exit %d\n%s", code, stdout)
	}
}
