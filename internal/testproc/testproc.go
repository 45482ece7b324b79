// Package testproc lets a test binary play the spanflow binary or a kfake broker as a
// child process, so that tests run real processes — killed, restarted, authenticated —
// without building anything first.
package testproc

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spanflow/spanflow/internal/cli"
	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/testenv"
)

// roleEnv tells a re-executed test binary which program to be.
const roleEnv = "SPANFLOW_TEST_ROLE"

// Roles a test binary can play.
const (
	Spanflow = "spanflow"
	Kfake    = "kfake"
)

// Dispatch runs the program this process was started to be, and exits; in the test
// process itself it returns at once. Call it first in TestMain.
func Dispatch() {
	switch os.Getenv(roleEnv) {
	case Spanflow:
		os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
	case Kfake:
		os.Exit(kafkatest.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
}

// Start runs the test binary as role with args and the extra environment, its output going
// to out (os.Stderr when nil). The process gets SIGTERM and is waited for when the test
// ends, unless the test waited for it already.
func Start(t testing.TB, role string, out io.Writer, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := command(role, env, args)
	if out == nil {
		out = os.Stderr
	}
	cmd.Stdout, cmd.Stderr = out, out
	start(t, cmd)
	return cmd
}

// StartKfake runs a kfake broker process (hack/kfake's flags) and returns its address
// once it reports ready.
func StartKfake(t testing.TB, args ...string) string {
	t.Helper()
	cmd := command(Kfake, nil, args)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, cmd)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("kfake did not start: %q %v", line, err)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "ready "))
}

// StartKubelet runs testenv's kubelet for namespace ns with the pods' ingester containers
// as spanflow processes of the test binary.
func StartKubelet(t testing.TB, c client.Client, ns string) *testenv.Kubelet {
	return testenv.StartKubelet(t, c, ns, func(env, args []string) *exec.Cmd { return command(Spanflow, env, args) })
}

func command(role string, env, args []string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	return cmd
}

func start(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	})
}
