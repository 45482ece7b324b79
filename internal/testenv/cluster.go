package testenv

import (
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// FreeAddr returns a loopback address with a port nobody listens on right now, for a
// process to listen on later. The port is below the kernel's ephemeral range: one from
// within it (what listening on port 0 gives) can be taken, before the process binds it,
// by any connection a test makes meanwhile — an operator failed to start on one that way.
func FreeAddr(t testing.TB) string {
	t.Helper()
	lowest := ephemeralPortsFrom()
	for range 200 {
		port := freePortsFrom + rand.IntN(lowest-freePortsFrom)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken: another
		}
		addr := l.Addr().String()
		_ = l.Close()
		return addr
	}
	t.Fatalf("no free port between %d and %d", freePortsFrom, lowest)
	return ""
}

// freePortsFrom is the lowest port FreeAddr gives: above the well-known and most
// registered services.
const freePortsFrom = 20000

// ephemeralPortsFrom is the first port of the kernel's ephemeral range (32768 where it
// cannot be read), over freePortsFrom.
func ephemeralPortsFrom() int {
	lowest := 32768
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if fields := strings.Fields(string(data)); len(fields) == 2 {
			if n, err := strconv.Atoi(fields[0]); err == nil {
				lowest = n
			}
		}
	}
	return max(lowest, freePortsFrom+1000)
}

// Kubeconfig adds user to the control plane and returns the path of a kubeconfig file
// that authenticates as it, for a process (the manager) run by the test.
func Kubeconfig(t testing.TB, env *envtest.Environment, user envtest.User) string {
	t.Helper()
	u, err := env.AddUser(user, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// StartControllerManager runs kube-controller-manager (built by hack/build-tools.sh beside
// kube-apiserver) against env with the controllers that own what the operator creates:
// Deployments, ReplicaSets, garbage collection, namespaces, PodDisruptionBudgets,
// ServiceAccounts and EndpointSlices. Pods still need a scheduler and a kubelet
// (testproc.Kubelet plays both). Extra arguments are added to its command line (a
// further --controllers adds to the list). It stops when the test ends.
func StartControllerManager(t testing.TB, env *envtest.Environment, extraArgs ...string) {
	t.Helper()
	assets, err := AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := Kubeconfig(t, env, envtest.User{Name: "kube-controller-manager", Groups: []string{"system:masters"}})
	logPath := filepath.Join(t.TempDir(), "kube-controller-manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--kubeconfig=" + kubeconfig,
		"--controllers=deployment-controller,replicaset-controller,garbage-collector-controller,namespace-controller," +
			"disruption-controller,serviceaccount-controller,endpointslice-controller",
		"--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false",
		// React within a second: the tests wait for rollouts. Its client's default limit
		// (20 requests a second) would make BenchmarkManyIngesters measure it, not the
		// operator: 500 Deployments' ReplicaSets, pods and statuses took two minutes.
		"--concurrent-deployment-syncs=5", "--kube-api-qps=300", "--kube-api-burst=600", "--v=1"}
	cmd := exec.Command(filepath.Join(assets, "kube-controller-manager"), append(args, extraArgs...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting kube-controller-manager: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			if data, err := os.ReadFile(logPath); err == nil {
				t.Logf("kube-controller-manager log (last 4 KiB):\n%s", data[max(0, len(data)-4096):])
			}
		}
	})
}
