package testproc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spanflow/spanflow/internal/testenv"
)

// RunPod executes the ingester container of a pod spec as a local process: every volume
// becomes a temporary directory filled as the kubelet would (ConfigMap keys as files,
// emptyDir empty), mount paths in the args and in the mounted config are mapped to those
// directories, and the admin address, which each pod would have on its own network, is
// given a free port through its documented environment override.
func RunPod(t testing.TB, c client.Client, ns string, pod corev1.PodSpec) (adminAddr, storeDir string, cmd *exec.Cmd) {
	t.Helper()
	container := pod.Containers[0]
	mounts := map[string]string{}
	for _, vm := range container.VolumeMounts {
		mounts[vm.Name] = vm.MountPath
	}
	replacements := map[string]string{}
	for _, v := range pod.Volumes {
		dir := t.TempDir()
		switch {
		case v.ConfigMap != nil:
			var cm corev1.ConfigMap
			if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: v.ConfigMap.Name}, &cm); err != nil {
				t.Fatal(err)
			}
			for key, value := range cm.Data {
				if err := os.WriteFile(filepath.Join(dir, key), []byte(value), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		case v.EmptyDir != nil:
			storeDir = dir
		default:
			t.Fatalf("the runner cannot materialize volume %s", v.Name)
		}
		replacements[mounts[v.Name]] = dir
	}
	rewrite := func(s string) string {
		for from, to := range replacements {
			s = strings.ReplaceAll(s, from, to)
		}
		return s
	}
	// The mounted config names paths inside the pod: map them too.
	for _, v := range pod.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		dir := replacements[mounts[v.Name]]
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			path := filepath.Join(dir, e.Name())
			data, _ := os.ReadFile(path)
			if err := os.WriteFile(path, []byte(rewrite(string(data))), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	var args []string
	for _, a := range container.Args {
		args = append(args, rewrite(a))
	}
	env := []string{"SPANFLOW_ADMIN_ADDRESS=" + testenv.FreeAddr(t)}
	for _, e := range container.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	adminAddr = strings.TrimPrefix(env[0], "SPANFLOW_ADMIN_ADDRESS=")
	cmd = Start(t, Spanflow, nil, env, args...)
	return adminAddr, storeDir, cmd
}
