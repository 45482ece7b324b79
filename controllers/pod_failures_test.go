package controllers

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
