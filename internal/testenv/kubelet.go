package testenv

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// NodeName is the node the test kubelet binds every pod to.
const NodeName = "spanflow-test-node"

// Kubelet plays the two parts of a cluster that kube-controller-manager leaves to others:
// the scheduler (it binds each pod of its namespace to one node) and the kubelet (it runs
// the pod's ingester container as a local process from the pod's spec, reports the pod's
// status — running, ready while /readyz says so, restarts — to the API server, refreshes
// mounted ConfigMaps as the kubelet does, and on deletion stops the process with SIGTERM
// and removes the pod). The real Deployment and ReplicaSet controllers see what it reports.
type Kubelet struct {
	t   testing.TB
	c   client.Client
	ns  string
	dir string // the pods' volumes, one folder per pod
	// run makes the process of a pod's container; nil reports every pod running and
	// ready at once without running anything (for benchmarks of the operator alone).
	run Command

	stop func()

	mu   sync.Mutex
	pods map[types.UID]*podProcess
}

// podProcess is one pod as the kubelet runs it.
type podProcess struct {
	name     string
	admin    string
	files    *podFiles
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd returned
	ready    bool
	restarts int32
	stopping bool
}

// Command makes the process for a container's environment and args.
type Command func(env, args []string) *exec.Cmd

// StartKubelet runs the kubelet for the pods of namespace ns until the test ends, making
// their processes with run; with run nil it reports the pods running and ready without
// running anything.
func StartKubelet(t testing.TB, c client.Client, ns string, run Command) *Kubelet {
	k := &Kubelet{t: t, c: c, ns: ns, dir: t.TempDir(), run: run, pods: map[types.UID]*podProcess{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			k.sync(ctx)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	k.stop = sync.OnceFunc(func() {
		cancel()
		<-done
		k.mu.Lock()
		defer k.mu.Unlock()
		for _, p := range k.pods {
			p.stop()
		}
		for _, p := range k.pods {
			p.wait()
		}
	})
	t.Cleanup(k.Stop)
	return k
}

// Stop stops every pod's process with SIGTERM, waits for them, and stops reporting: the
// node is gone, while the API server still shows its pods as they were last reported.
func (k *Kubelet) Stop() { k.stop() }

// AdminAddr is the admin address (/metrics, /readyz) of the running pod called name.
func (k *Kubelet) AdminAddr(name string) (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.pods {
		if p.name == name && p.cmd != nil {
			return p.admin, true
		}
	}
	return "", false
}

// Started counts the processes the kubelet has started for pod name, restarts included.
func (k *Kubelet) Started(name string) int32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.pods {
		if p.name == name {
			return p.restarts + 1
		}
	}
	return 0
}

// sync looks at every pod of the namespace once.
func (k *Kubelet) sync(ctx context.Context) {
	var pods corev1.PodList
	if err := k.c.List(ctx, &pods, client.InNamespace(k.ns)); err != nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	present := map[types.UID]bool{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		present[pod.UID] = true
		k.syncPod(ctx, pod)
	}
	for uid, p := range k.pods {
		if !present[uid] {
			p.stop()
			p.wait()
			delete(k.pods, uid)
		}
	}
}

func (k *Kubelet) syncPod(ctx context.Context, pod *corev1.Pod) {
	p := k.pods[pod.UID]
	if pod.DeletionTimestamp != nil {
		// Stop the container with SIGTERM, then remove the pod, as the kubelet does once
		// the containers exited (within the grace period; the ingester drains first).
		if p != nil && !p.exitedNow() {
			p.stop()
			return
		}
		_ = k.c.Delete(ctx, pod, client.GracePeriodSeconds(0))
		return
	}
	if p == nil {
		if pod.Spec.NodeName == "" {
			binding := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
				Target: corev1.ObjectReference{Kind: "Node", Name: NodeName}}
			if err := k.c.SubResource("binding").Create(ctx, pod, binding); err != nil {
				return
			}
			// The binding may have labeled the pod (its node's zone and region, which the
			// downward API passes on): the containers start with the pod as it is now.
			if err := k.c.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
				return
			}
		}
		p = &podProcess{name: pod.Name}
		if k.run != nil {
			files, err := materialize(ctx, k.c, pod.Namespace, pod.Name, pod.Labels, pod.Spec, filepath.Join(k.dir, string(pod.UID)))
			if err != nil {
				// As the kubelet does with a volume it cannot mount (its ConfigMap is gone,
				// or not there yet): the pod waits, and the next sync tries again.
				return
			}
			p.files = files
			p.start(k.t, k.run)
		}
		k.pods[pod.UID] = p
	}
	if k.run != nil {
		_ = p.files.refresh(ctx)
		if p.exitedNow() {
			// restartPolicy Always.
			p.restarts++
			p.start(k.t, k.run)
		}
		p.ready = readyz(p.admin)
	} else {
		p.ready = true
	}
	k.report(ctx, pod, p)
}

// report writes the pod's status when it differs from what the API server has.
func (k *Kubelet) report(ctx context.Context, pod *corev1.Pod, p *podProcess) {
	readyStatus := corev1.ConditionFalse
	if p.ready {
		readyStatus = corev1.ConditionTrue
	}
	if pod.Status.Phase == corev1.PodRunning && len(pod.Status.ContainerStatuses) == 1 &&
		pod.Status.ContainerStatuses[0].Ready == p.ready && pod.Status.ContainerStatuses[0].RestartCount == p.restarts {
		return
	}
	now := metav1.Now()
	started := now
	if pod.Status.StartTime != nil {
		started = *pod.Status.StartTime
	}
	condition := func(t corev1.PodConditionType, s corev1.ConditionStatus) corev1.PodCondition {
		for _, c := range pod.Status.Conditions {
			if c.Type == t && c.Status == s {
				return c
			}
		}
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: now}
	}
	container := pod.Spec.Containers[0]
	pod.Status = corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    "127.0.0.1",
		PodIP:     "127.0.0.1",
		StartTime: &started,
		Conditions: []corev1.PodCondition{
			condition(corev1.PodScheduled, corev1.ConditionTrue),
			condition(corev1.PodInitialized, corev1.ConditionTrue),
			condition(corev1.ContainersReady, readyStatus),
			condition(corev1.PodReady, readyStatus),
		},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: container.Name, Image: container.Image, ImageID: container.Image, Ready: p.ready,
			Started: ptrTo(true), RestartCount: p.restarts,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		}},
	}
	if err := k.c.Status().Update(ctx, pod); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		k.t.Logf("test kubelet: reporting pod %s: %v", pod.Name, err)
	}
}

func ptrTo[T any](v T) *T { return &v }

// readyz reports whether the ingester at addr answers /readyz with 200.
func readyz(addr string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (p *podProcess) start(t testing.TB, run Command) {
	p.admin = FreeAddr(t)
	p.cmd = p.files.command(run, p.admin)
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	p.exited = make(chan struct{})
	p.stopping = false
	if err := p.cmd.Start(); err != nil {
		t.Errorf("starting pod %s: %v", p.name, err)
		close(p.exited)
		return
	}
	cmd, exited := p.cmd, p.exited
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
}

func (p *podProcess) exitedNow() bool {
	if p.exited == nil {
		return true
	}
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM once.
func (p *podProcess) stop() {
	if p.cmd == nil || p.stopping || p.exitedNow() {
		return
	}
	p.stopping = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
}

// wait waits for the process to exit, killing it after a minute.
func (p *podProcess) wait() {
	if p.exited == nil {
		return
	}
	select {
	case <-p.exited:
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}
