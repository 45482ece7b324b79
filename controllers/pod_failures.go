package controllers

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Why ingester pods do not run. A Deployment says only how many pods are ready; a wrong
// image, a memory limit too small for the spec's batches or an ingester that exits on
// what it finds (a broker refusing its credentials) show on the pods, and the Ingester's
// status should say so rather than "rolling out" for ten minutes and then "stuck".

// waitingFailures are the waiting reasons of a container that will not start by itself.
var waitingFailures = []string{"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
	"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}

// podFailures describes the pods that cannot run, the first of them by name in full:
// "" when none is failing (pods starting, or ready).
func podFailures(pods []corev1.Pod) string {
	var causes []string
	for _, pod := range slices.SortedFunc(slices.Values(pods), func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) }) {
		if pod.DeletionTimestamp != nil {
			continue
		}
		if cause := podFailure(&pod); cause != "" {
			causes = append(causes, fmt.Sprintf("pod %s: %s", pod.Name, cause))
		}
	}
	switch len(causes) {
	case 0:
		return ""
	case 1:
		return causes[0]
	}
	return fmt.Sprintf("%s (and %d more pods failing)", causes[0], len(causes)-1)
}

// podFailure is why one pod cannot run, or "".
func podFailure(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return "cannot be scheduled: " + c.Message
		}
	}
	statuses := append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...)
	for _, cs := range statuses {
		w := cs.State.Waiting
		if w == nil || !slices.Contains(waitingFailures, w.Reason) {
			continue
		}
		cause := fmt.Sprintf("container %s: %s", cs.Name, w.Reason)
		if last := cs.LastTerminationState.Terminated; last != nil && w.Reason == "CrashLoopBackOff" {
			// The back-off's own message says nothing; the last exit says why.
			return cause + ", " + exitText(last, cs.RestartCount)
		}
		if w.Message != "" {
			cause += ": " + w.Message
		}
		return cause
	}
	return ""
}

// exitText describes a container's exit: OOMKilled, or its code and the last line it
// wrote (the ingester's error: its pods keep the log's tail as the termination message).
func exitText(t *corev1.ContainerStateTerminated, restarts int32) string {
	text := fmt.Sprintf("exited with %d", t.ExitCode)
	if t.Reason == "OOMKilled" {
		text = "killed for exceeding its memory limit (OOMKilled): raise spec.template.resources.limits.memory, or lower spec.maxInFlightBytes"
	}
	text += fmt.Sprintf(" (%d restarts)", restarts)
	if line := lastLine(t.Message); line != "" && t.Reason != "OOMKilled" {
		text += ": " + line
	}
	return text
}

// lastLine is the last non-empty line of s, at most 400 bytes of it.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	if len(line) > 400 {
		line = line[:400] + "…"
	}
	return line
}

// notReadyGrace is how long a running ingester pod may stay not ready before the status
// says so, when it cannot say why: joining the group and a rebalance take seconds, Kafka
// or storage refusing the pod does not pass.
const notReadyGrace = 2 * time.Minute

// notReadyPod is a pod whose containers all run but which is not ready, since when: it
// last was ready, or its containers started.
type notReadyPod struct {
	name  string
	since time.Time
}

// notReadyPods lists, in order of their names, the pods that run but are not ready.
func notReadyPods(pods []corev1.Pod) []notReadyPod {
	var out []notReadyPod
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning || len(pod.Status.ContainerStatuses) == 0 {
			continue
		}
		running := true
		var since time.Time
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.State.Running == nil {
				running = false
				break
			}
			since = later(since, cs.State.Running.StartedAt.Time)
		}
		ready := false
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady {
				ready = c.Status == corev1.ConditionTrue
				since = later(since, c.LastTransitionTime.Time)
			}
		}
		if running && !ready {
			out = append(out, notReadyPod{name: pod.Name, since: since})
		}
	}
	slices.SortFunc(out, func(a, b notReadyPod) int { return strings.Compare(a.name, b.name) })
	return out
}

// startingPods counts the pods that have not been ready yet since they were created: a
// rollout's or a scale-up's. A pod that was ready before, or whose containers restarted,
// is not starting: it lapsed, and nothing rolls out.
func startingPods(pods []corev1.Pod) int {
	n := 0
	for _, pod := range pods {
		if pod.DeletionTimestamp == nil && !wasReady(pod) {
			n++
		}
	}
	return n
}

// wasReady is true of a pod that is ready, was ready since its containers started (its
// Ready condition turned False after that), or whose containers restarted.
func wasReady(pod corev1.Pod) bool {
	var started time.Time
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.RestartCount > 0 {
			return true
		}
		if cs.State.Running == nil {
			return false
		}
		started = later(started, cs.State.Running.StartedAt.Time)
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue || (!started.IsZero() && c.LastTransitionTime.Time.After(started))
		}
	}
	return false
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
