package testenv

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// PlayDeploymentController marks every Deployment of namespace ns rolled out — all its
// replicas updated, ready and available — as the Deployment controller, which envtest
// lacks, would once the pods run. It returns when ctx ends.
func PlayDeploymentController(ctx context.Context, c client.Client, ns string) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		var deps appsv1.DeploymentList
		if err := c.List(ctx, &deps, client.InNamespace(ns)); err != nil {
			continue
		}
		for i := range deps.Items {
			d := &deps.Items[i]
			n := ptr.Deref(d.Spec.Replicas, 1)
			if d.Status.ObservedGeneration == d.Generation && d.Status.ReadyReplicas == n {
				continue
			}
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
			_ = c.Status().Update(ctx, d)
		}
	}
}

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
