package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// podFiles are a pod's volumes as local directories, filled as the kubelet would
// (ConfigMap keys as files, emptyDir empty), with the pod's mount paths mapped to them.
type podFiles struct {
	c         client.Client
	ns        string
	podName   string
	labels    map[string]string // the pod's, once bound
	spec      corev1.PodSpec
	mountDirs map[string]string // mount path in the pod → local directory
	configs   map[string]string // ConfigMap name → local directory
	seen      map[string]string // ConfigMap name → resourceVersion written
}

// materialize creates the pod's volumes under dir. Only ConfigMap and emptyDir volumes
// exist in the pods the operator renders without credentials; others are an error.
func materialize(ctx context.Context, c client.Client, ns, podName string, labels map[string]string, spec corev1.PodSpec, dir string) (*podFiles, error) {
	f := &podFiles{c: c, ns: ns, podName: podName, labels: labels, spec: spec, mountDirs: map[string]string{}, configs: map[string]string{}, seen: map[string]string{}}
	mounts := map[string]string{}
	for _, vm := range spec.Containers[0].VolumeMounts {
		mounts[vm.Name] = vm.MountPath
	}
	for _, v := range spec.Volumes {
		local := filepath.Join(dir, v.Name)
		if err := os.MkdirAll(local, 0o700); err != nil {
			return nil, err
		}
		switch {
		case v.ConfigMap != nil:
			f.configs[v.ConfigMap.Name] = local
		case v.EmptyDir != nil:
		default:
			return nil, fmt.Errorf("the test kubelet cannot materialize volume %s", v.Name)
		}
		f.mountDirs[mounts[v.Name]] = local
	}
	return f, f.refresh(ctx)
}

// rewrite maps the pod's mount paths in s to the local directories.
func (f *podFiles) rewrite(s string) string {
	for from, to := range f.mountDirs {
		s = strings.ReplaceAll(s, from, to)
	}
	return s
}

// refresh writes each ConfigMap volume again when its ConfigMap changed, the way the
// kubelet refreshes mounted ConfigMaps: every file replaced by a rename, so a reader sees
// the old content or the new, never half of it. Paths inside the files are mapped too.
func (f *podFiles) refresh(ctx context.Context) error {
	for name, local := range f.configs {
		var cm corev1.ConfigMap
		if err := f.c.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: name}, &cm); err != nil {
			return err
		}
		if f.seen[name] == cm.ResourceVersion {
			continue
		}
		for key, value := range cm.Data {
			path := filepath.Join(local, key)
			if err := os.WriteFile(path+".new", []byte(f.rewrite(value)), 0o600); err != nil {
				return err
			}
			if err := os.Rename(path+".new", path); err != nil {
				return err
			}
		}
		f.seen[name] = cm.ResourceVersion
	}
	return nil
}

// command is the pod's ingester container as a local process made by run: its args with
// the mount paths mapped, its plain environment variables, and its admin address (which
// each pod would have on a network of its own) on the free port given.
func (f *podFiles) command(run Command, adminAddr string) *exec.Cmd {
	container := f.spec.Containers[0]
	var args []string
	for _, a := range container.Args {
		args = append(args, f.rewrite(a))
	}
	env := []string{"SPANFLOW_ADMIN_ADDRESS=" + adminAddr}
	for _, e := range container.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env = append(env, e.Name+"="+f.podName)
		case e.ValueFrom.FieldRef != nil && strings.HasPrefix(e.ValueFrom.FieldRef.FieldPath, "metadata.labels['"):
			key := strings.TrimSuffix(strings.TrimPrefix(e.ValueFrom.FieldRef.FieldPath, "metadata.labels['"), "']")
			env = append(env, e.Name+"="+f.labels[key]) // a label the pod lacks is empty
		}
	}
	return run(env, args)
}
