package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// FreeAddr returns a loopback address with a port nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
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
// (testproc.Kubelet plays both). It stops when the test ends.
func StartControllerManager(t testing.TB, env *envtest.Environment) {
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
	cmd := exec.Command(filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		"--controllers=deployment-controller,replicaset-controller,garbage-collector-controller,namespace-controller,"+
			"disruption-controller,serviceaccount-controller,endpointslice-controller",
		"--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false",
		// React within a second: the tests wait for rollouts. Its client's default limit
		// (20 requests a second) would make BenchmarkManyIngesters measure it, not the
		// operator: 500 Deployments' ReplicaSets, pods and statuses took two minutes.
		"--concurrent-deployment-syncs=5", "--kube-api-qps=300", "--kube-api-burst=600", "--v=1")
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
