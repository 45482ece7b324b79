package controllers

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestPodFailures(t *testing.T) {
	waiting := func(reason, message string) corev1.ContainerState {
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
	}
	pod := func(name string, mutate func(*corev1.Pod)) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "ingester"}}
		mutate(&p)
		return p
	}
	crashing := func(reason string, code int32, message string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			cs := &p.Status.ContainerStatuses[0]
			cs.State = waiting("CrashLoopBackOff", "back-off 40s restarting failed container=ingester")
			cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code, Message: message}}
			cs.RestartCount = 3
		}
	}
	for _, tc := range []struct {
		name string
		pods []corev1.Pod
		want []string // substrings; none: ""
	}{
		{"starting", []corev1.Pod{pod("a", func(p *corev1.Pod) { p.Status.ContainerStatuses[0].State = waiting("ContainerCreating", "") })}, nil},
		{"running", []corev1.Pod{pod("a", func(p *corev1.Pod) {
			p.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
		})}, nil},
		{"crash loop: the ingester's last line", []corev1.Pod{pod("a", crashing("Error", 1,
			`{"level":"info","msg":"Starting"}`+"\nspanflow ingest: kafka: SASL authentication failed: invalid credentials\n"))},
			[]string{"pod a: container ingester: CrashLoopBackOff, exited with 1 (3 restarts): spanflow ingest: kafka: SASL authentication failed"}},
		{"out of memory", []corev1.Pod{pod("a", crashing("OOMKilled", 137, "whatever was logged"))},
			[]string{"OOMKilled", "limits.memory", "(3 restarts)"}},
		{"image", []corev1.Pod{pod("a", func(p *corev1.Pod) {
			p.Status.ContainerStatuses[0].State = waiting("ImagePullBackOff", `Back-off pulling image "ghcr.io/spanflow/spanflow:nope"`)
		})}, []string{`ImagePullBackOff: Back-off pulling image "ghcr.io/spanflow/spanflow:nope"`}},
		{"unschedulable", []corev1.Pod{pod("a", func(p *corev1.Pod) {
			p.Status.ContainerStatuses = nil
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
				Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available: 3 Insufficient memory."}}
		})}, []string{"pod a: cannot be scheduled: 0/3 nodes are available: 3 Insufficient memory."}},
		{"several: the first by name, and a count", []corev1.Pod{
			pod("c", crashing("Error", 2, "spanflow ingest: c's")),
			pod("b", crashing("Error", 2, "spanflow ingest: b's")),
			pod("d", func(*corev1.Pod) {}),
		}, []string{"pod b:", "b's", "(and 1 more pods failing)"}},
		{"a pod going away is not failing", []corev1.Pod{pod("a", func(p *corev1.Pod) {
			crashing("Error", 1, "x")(p)
			p.DeletionTimestamp = &metav1.Time{}
		})}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := podFailures(tc.pods)
			if len(tc.want) == 0 && got != "" {
				t.Fatalf("got %q, want none", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("got %q, want it to say %q", got, w)
				}
			}
		})
	}
}

func TestNotReadyPods(t *testing.T) {
	at := func(s int) metav1.Time { return metav1.NewTime(time.Unix(1000+int64(s), 0)) }
	pod := func(name string, started int, ready *corev1.PodCondition, mutate func(*corev1.Pod)) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}
		p.Status.Phase = corev1.PodRunning
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "ingester",
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(started)}}}}
		if ready != nil {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: at(-100)}, *ready}
		}
		if mutate != nil {
			mutate(&p)
		}
		return p
	}
	readyAt := func(status corev1.ConditionStatus, s int) *corev1.PodCondition {
		return &corev1.PodCondition{Type: corev1.PodReady, Status: status, LastTransitionTime: at(s)}
	}
	got := notReadyPods([]corev1.Pod{
		pod("ready", 0, readyAt(corev1.ConditionTrue, 5), nil),
		pod("never-ready", 10, readyAt(corev1.ConditionFalse, 2), nil), // since its container started
		pod("was-ready", 0, readyAt(corev1.ConditionFalse, 300), nil),  // since it stopped being ready
		pod("no-conditions-yet", 20, nil, nil),
		pod("pending", 0, readyAt(corev1.ConditionFalse, 0), func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }),
		pod("waiting", 0, readyAt(corev1.ConditionFalse, 0), func(p *corev1.Pod) {
			p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
		}),
		pod("going", 0, readyAt(corev1.ConditionFalse, 0), func(p *corev1.Pod) { p.DeletionTimestamp = ptr.To(at(400)) }),
	})
	want := []notReadyPod{{"never-ready", at(10).Time}, {"no-conditions-yet", at(20).Time}, {"was-ready", at(300).Time}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestStartingPods: pods not ready yet since they were created are a rollout's or a
// scale-up's; a pod that was ready, or restarted, lapsed.
func TestStartingPods(t *testing.T) {
	at := func(s int) metav1.Time { return metav1.NewTime(time.Unix(1000+int64(s), 0)) }
	pod := func(started int, restarts int32, ready corev1.ConditionStatus, readySince int, running bool) corev1.Pod {
		cs := corev1.ContainerStatus{Name: "ingester", RestartCount: restarts}
		if running {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: at(started)}
		} else {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}
		}
		p := corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{cs}}}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready, LastTransitionTime: at(readySince)}}
		return p
	}
	for _, tc := range []struct {
		name string
		pod  corev1.Pod
		want int
	}{
		{"ready", pod(0, 0, corev1.ConditionTrue, 5, true), 0},
		{"never ready since it started", pod(10, 0, corev1.ConditionFalse, 2, true), 1},
		{"ready once, then not", pod(0, 0, corev1.ConditionFalse, 300, true), 0},
		{"restarted, running again", pod(400, 1, corev1.ConditionFalse, 390, true), 0},
		{"crash-looping", pod(0, 3, corev1.ConditionFalse, 390, false), 0},
		{"waiting for its first start", pod(0, 0, corev1.ConditionFalse, 0, false), 1},
		{"pending, no status yet", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}, 1},
	} {
		if got := startingPods([]corev1.Pod{tc.pod}); got != tc.want {
			t.Errorf("%s: %d starting, want %d", tc.name, got, tc.want)
		}
	}
}
