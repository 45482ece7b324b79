package controllers

import (
	"fmt"
	"slices"
	"strings"

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
