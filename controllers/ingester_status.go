package controllers

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/controllers/autoscale"
	"github.com/spanflow/spanflow/ingester/loadreport"
)

// observation is what one reconcile saw, the input of the status.
type observation struct {
	// deployment as stored after the apply, or as found when nothing was applied; nil
	// when there is none.
	deployment *appsv1.Deployment
	// applyErr is the API server's refusal of an object, if any.
	applyErr error
	// secretErr says which referenced Secret or key is missing, if any.
	secretErr error
	// problem is why the spec cannot be applied as it is, if anything.
	problem *specProblem
	// lag is what the lag observer knows of the Ingester's topic and group; its error is
	// why the operator cannot see them.
	lag autoscale.Observation
	// now is the time of the observation, for lastScaleTime.
	now metav1.Time
	// previousReplicas is the Deployment's spec.replicas before this reconcile (nil: none).
	previousReplicas *int32
	// applied is true when this reconcile applied the desired objects.
	applied bool
	// scale is the autoscaler's decision, when autoscaling sized this reconcile;
	// ignoredReplicas is spec.replicas when it differs from that decision.
	scale           *autoscale.Decision
	ignoredReplicas *int32
	// podFailure says why pods of the Deployment cannot run ("" when none is failing).
	podFailure string
	// notReady lists the pods that run but are not ready.
	notReady []notReadyPod
	// startingPods counts the pods not ready yet since they were created (a rollout's, a
	// scale-up's); the other pods not ready were ready before, or restarted.
	startingPods int
	// blockedPods are the pods whose load reports say their consumption is held
	// downstream, with why partitions are held (loadreport.Held*; none: not said).
	blockedPods map[string][]string
	// sharedGroup names the other Ingesters consuming with the same group on the same
	// Kafka cluster, if any.
	sharedGroup []string
	// scalers are the HorizontalPodAutoscalers that fight the operator over the replicas.
	scalers []scalerConflict
}

// desiredStatus computes the Ingester's status. Condition transition times are kept when
// a condition did not change (meta.SetStatusCondition).
func desiredStatus(ing *spanflowv1alpha1.Ingester, obs observation) spanflowv1alpha1.IngesterStatus {
	status := *ing.Status.DeepCopy()
	// The generation is observed once it was applied: a spec held back (paused, a Secret
	// missing, a problem in it) has not been, and kubectl wait must not pass on it.
	if obs.applied {
		status.ObservedGeneration = ing.Generation
		status.ConsumerGroup = consumerGroup(ing)
	}
	status.Selector = labels.SelectorFromSet(selectorLabels(ing)).String()
	if dep := obs.deployment; dep != nil {
		status.Replicas = dep.Status.Replicas
		status.ReadyReplicas = dep.Status.ReadyReplicas
	}
	if obs.lag.Known() {
		status.Partitions = int32(obs.lag.Partitions())
		lag := &spanflowv1alpha1.LagStatus{Records: obs.lag.Records(), Seconds: obs.lag.Seconds(),
			OpenTransactionRecords: obs.lag.OpenTransactionRecords(),
			Stale:                  obs.lag.Err() != nil, ObservedTime: &metav1.Time{Time: obs.lag.At()}}
		// Unchanged values keep their time, so an idle, caught-up Ingester is not
		// rewritten on every poll.
		if old := status.Lag; old != nil && old.Records == lag.Records && old.Seconds == lag.Seconds &&
			old.OpenTransactionRecords == lag.OpenTransactionRecords && old.Stale == lag.Stale {
			lag.ObservedTime = old.ObservedTime
		}
		status.Lag = lag
	} else if errors.Is(obs.lag.Err(), autoscale.ErrTopicNotFound) {
		// No such topic (a new name, say): the figures of the one before describe nothing.
		status.Partitions, status.Lag = 0, nil
	} else if status.Lag != nil && obs.lag.Err() != nil {
		status.Lag.Stale = true
	}
	switch {
	case obs.scale != nil:
		status.Autoscaling = &spanflowv1alpha1.AutoscalingStatus{DesiredReplicas: obs.scale.Replicas,
			DesiredParallelism: obs.scale.Parallelism, Reason: obs.scale.Reason, IgnoredReplicas: obs.ignoredReplicas,
			PodCapacity: obs.scale.PodCapacity, PartitionCeilings: obs.scale.PartitionCeilings}
	case !autoscale.Enabled(ing):
		status.Autoscaling = nil
	}
	// Replicas and parallelism change only when the desired objects are applied.
	if obs.applied {
		status.Parallelism = desiredParallelism(ing)
		scaledReplicas := obs.previousReplicas != nil && *obs.previousReplicas != desiredReplicas(ing)
		scaledParallelism := ing.Status.Parallelism != 0 && ing.Status.Parallelism != status.Parallelism
		if scaledReplicas || scaledParallelism {
			status.LastScaleTime = obs.now.DeepCopy()
		}
	}
	ready, progressing, degraded := conditions(ing, obs, status.ObservedGeneration)
	meta.SetStatusCondition(&status.Conditions, ready)
	meta.SetStatusCondition(&status.Conditions, progressing)
	meta.SetStatusCondition(&status.Conditions, degraded)
	status.Message, status.State = ready.Message, ready.Reason
	switch {
	case degraded.Status == metav1.ConditionTrue:
		status.Message, status.State = degraded.Message, degraded.Reason
	case ing.Spec.Paused:
		status.State = spanflowv1alpha1.ReasonPaused
	}
	return status
}

// conditions derives Ready, Progressing and Degraded from an observation. Ready and
// Progressing describe the pods, so they carry the generation last applied; Degraded
// describes the spec as it is now.
func conditions(ing *spanflowv1alpha1.Ingester, obs observation, appliedGeneration int64) (ready, progressing, degraded metav1.Condition) {
	cond := func(t string, s metav1.ConditionStatus, reason, msg string) metav1.Condition {
		generation := appliedGeneration
		if t == spanflowv1alpha1.ConditionDegraded {
			generation = ing.Generation
		}
		return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: generation}
	}
	want := desiredReplicas(ing)
	dep := obs.deployment
	stuck := dep != nil && progressDeadlineExceeded(dep)
	rolledOut := dep != nil && deploymentRolledOut(dep, want)
	// What becomes of the pods while the spec is held back.
	podsLeft := podsLeftNone
	if dep != nil && dep.Status.Replicas > 0 {
		podsLeft = podsLeftKept
	}
	noPods := "No ingester pods run: "
	if obs.problem != nil && obs.problem.unmanagedPods {
		podsLeft, noPods = "", "The operator runs no pods for this Ingester: "
	}
	// Why pods are not ready, when the status can say: the Deployment's counts alone would
	// read "rolling out" for as long as storage is down or a rollout is paused.
	paused := dep != nil && rolloutPaused(dep)
	stopped, held := heldPods(obs)
	unready := longNotReady(obs, slices.Concat(stopped, held))
	current := dep != nil && allPodsCurrent(dep, want)
	// Every pod runs the current spec and has been ready: the ones that are not ready now
	// lapsed (a restart, a readiness check failing), and nothing rolls out.
	lapsed := current && !rolledOut && !stuck && obs.startingPods == 0

	switch {
	case obs.applyErr != nil:
		ready = cond(spanflowv1alpha1.ConditionReady, metav1.ConditionFalse, spanflowv1alpha1.ReasonApplyFailed,
			fmt.Sprintf("Cannot apply the ingester's objects: %v", obs.applyErr))
	case dep == nil && obs.secretErr != nil:
		ready = cond(spanflowv1alpha1.ConditionReady, metav1.ConditionFalse, spanflowv1alpha1.ReasonSecretMissing,
			"No ingester pods run: "+obs.secretErr.Error())
	case dep == nil && obs.problem != nil:
		ready = cond(spanflowv1alpha1.ConditionReady, metav1.ConditionFalse, obs.problem.reason,
			noPods+obs.problem.err.Error())
	case dep == nil:
		ready = cond(spanflowv1alpha1.ConditionReady, metav1.ConditionFalse, spanflowv1alpha1.ReasonRollingOut, "Waiting for the ingester Deployment")
	case want == 0 && dep.Status.Replicas == 0 && autoscale.Enabled(ing):
		ready = cond(spanflowv1alpha1.ConditionReady, metav1.ConditionTrue, spanflowv1alpha1.ReasonScaledToZero,
			"Scaled to zero by the autoscaler: nothing is produced and nothing is left to consume; pods start when the lag exceeds spec.autoscaling.activationLagRecords")
	case want == 0 && dep.Status.Replicas == 0:
		ready = cond(spanflowv1alpha1.ConditionReady, metav1.ConditionTrue, spanflowv1alpha1.ReasonScaledToZero,
			"Scaled to zero replicas: nothing is consumed until replicas are added")
	case rolledOut:
		ready = cond(spanflowv1alpha1.ConditionReady, metav1.ConditionTrue, spanflowv1alpha1.ReasonAvailable,
			fmt.Sprintf("%d of %d ingester pods are ready", min(dep.Status.ReadyReplicas, want), want))
	default:
		reason := spanflowv1alpha1.ReasonRollingOut
		switch {
		case paused:
			reason = spanflowv1alpha1.ReasonRolloutPaused
		case len(stopped) > 0:
			reason = spanflowv1alpha1.ReasonMessageHeld
		case len(held) > 0:
			reason = spanflowv1alpha1.ReasonStorageUnavailable
		case len(unready) > 0, lapsed:
			reason = spanflowv1alpha1.ReasonPodsNotReady
		case stuck:
			reason = spanflowv1alpha1.ReasonRolloutStuck
		}
		ready = cond(spanflowv1alpha1.ConditionReady, metav1.ConditionFalse, reason,
			fmt.Sprintf("%d of %d ingester pods are ready and up to date", min(dep.Status.ReadyReplicas, dep.Status.UpdatedReplicas), want))
	}

	switch {
	case ing.Spec.Paused:
		progressing = cond(spanflowv1alpha1.ConditionProgressing, metav1.ConditionFalse, spanflowv1alpha1.ReasonPaused,
			"spec.paused is true: the operator changes nothing")
	case paused:
		progressing = cond(spanflowv1alpha1.ConditionProgressing, metav1.ConditionFalse, spanflowv1alpha1.ReasonRolloutPaused,
			fmt.Sprintf("The Deployment %s's rollout is paused: %d of %d pods run the current spec", dep.Name, dep.Status.UpdatedReplicas, want))
	case current && (len(stopped) > 0 || len(held) > 0 || len(unready) > 0 || lapsed):
		// Every pod runs the current spec: nothing is rolling out, the pods are not ready.
		progressing = cond(spanflowv1alpha1.ConditionProgressing, metav1.ConditionFalse, spanflowv1alpha1.ReasonAsExpected, "No change under way")
	case stuck:
		progressing = cond(spanflowv1alpha1.ConditionProgressing, metav1.ConditionFalse, spanflowv1alpha1.ReasonRolloutStuck, ready.Message)
	case dep != nil && !rolledOut && !(want == 0 && dep.Status.Replicas == 0):
		progressing = cond(spanflowv1alpha1.ConditionProgressing, metav1.ConditionTrue, spanflowv1alpha1.ReasonRollingOut, ready.Message)
	default:
		progressing = cond(spanflowv1alpha1.ConditionProgressing, metav1.ConditionFalse, spanflowv1alpha1.ReasonAsExpected, "No change under way")
	}

	switch {
	case obs.applyErr != nil:
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonApplyFailed, ready.Message)
	case obs.secretErr != nil:
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonSecretMissing,
			obs.secretErr.Error()+podsLeft)
	case obs.problem != nil:
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, obs.problem.reason,
			obs.problem.err.Error()+podsLeft)
	case dep != nil && podCreationFailure(dep) != "":
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonPodCreationFailed,
			"The ingester Deployment cannot create pods: "+podCreationFailure(dep))
	case dep != nil && obs.podFailure != "":
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonPodsFailing,
			fmt.Sprintf("%d of %d ingester pods are ready; %s", dep.Status.ReadyReplicas, want, obs.podFailure))
	case paused:
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonRolloutPaused,
			fmt.Sprintf("The rollout of the ingester Deployment was paused (kubectl rollout pause): %d of %d pods run the current spec, the others an earlier one, until kubectl rollout resume deployment/%s (to keep the operator from changing anything, set spec.paused on the Ingester instead)",
				dep.Status.UpdatedReplicas, want, dep.Name))
	case len(stopped) > 0:
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonMessageHeld,
			fmt.Sprintf("%d of %d ingester pods are ready; %s %s a partition at %s, which has nowhere else to go: nothing after it in that partition is read until it has (their logs name the partition, the offset and why). %s — or fix what wrote it",
				dep.Status.ReadyReplicas, want, podNames(stopped), map[bool]string{true: "holds", false: "hold"}[len(stopped) == 1], heldMessages(obs, stopped), somewhereElse(ing)))
	case len(held) > 0:
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonStorageUnavailable,
			fmt.Sprintf("%d of %d ingester pods are ready; storage (or the dead-letter topic) fails the writes of %s: they hold their partitions and try again, skipping nothing, and the lag grows until it takes them (their logs say why; spanflow_ingester_write_errors_total counts the failures)",
				dep.Status.ReadyReplicas, want, podNames(held)))
	case stuck:
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonRolloutStuck,
			"The ingester Deployment exceeded its progress deadline: "+deploymentProgressMessage(dep))
	case len(obs.sharedGroup) > 0:
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonConsumerGroupShared,
			fmt.Sprintf("Consumer group %q is also consumed by Ingester %s on the same brokers: the pods of both split the partitions, and each autoscaler sizes for the other's lag; give one of them another spec.kafka.consumerGroup (a new Ingester)",
				groupInUse(ing), strings.Join(obs.sharedGroup, ", ")))
	case len(obs.scalers) > 0:
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonScalerConflict,
			scalerConflictsMessage(ing, obs.scalers))
	case errors.Is(obs.lag.Err(), autoscale.ErrTopicNotFound):
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonTopicNotFound, obs.lag.Err().Error())
	case obs.lag.Err() != nil:
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonKafkaUnreachable, obs.lag.Err().Error())
	case len(unready) > 0:
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonPodsNotReady,
			fmt.Sprintf("%d of %d ingester pods are ready; %s ran for over %s without becoming ready: the ingester's readiness check (/readyz) fails, and its log says why (the brokers refusing the pod, not joining the consumer group, a partition held)",
				dep.Status.ReadyReplicas, want, podNames(unready), notReadyGrace))
	default:
		degraded = cond(spanflowv1alpha1.ConditionDegraded, metav1.ConditionFalse, spanflowv1alpha1.ReasonAsExpected, "Nothing needs attention")
	}
	if previous := meta.FindStatusCondition(ing.Status.Conditions, spanflowv1alpha1.ConditionDegraded); previous != nil &&
		observedByPolls(previous.Reason) && !observedByPolls(degraded.Reason) && !obs.lag.Known() && obs.lag.Err() == nil {
		// The first look at Kafka (the operator restarted, or the spec names other
		// brokers or another topic) is under way: what it last saw stands until it answers,
		// rather than "nothing needs attention" for a poll.
		degraded = *previous
		degraded.ObservedGeneration = ing.Generation
	}
	return ready, progressing, degraded
}

// observedByPolls is true of the Degraded reasons that the polls of Kafka (its offsets,
// and the pods' load reports committed there) find.
func observedByPolls(reason string) bool {
	switch reason {
	case spanflowv1alpha1.ReasonKafkaUnreachable, spanflowv1alpha1.ReasonTopicNotFound,
		spanflowv1alpha1.ReasonStorageUnavailable, spanflowv1alpha1.ReasonMessageHeld:
		return true
	}
	return false
}

// rolloutPaused is true when the Deployment's rollout is paused (kubectl rollout pause)
// with pods of an earlier template left: the new spec waits for a person. (Pausing is a
// new generation of the Deployment too: until its controller has seen it, nothing says
// whether pods wait.)
func rolloutPaused(dep *appsv1.Deployment) bool {
	s := dep.Status
	return dep.Spec.Paused && s.ObservedGeneration >= dep.Generation && s.UpdatedReplicas < s.Replicas
}

// allPodsCurrent is true when the Deployment controller has seen the latest spec and
// every pod runs it, none more than wanted: whatever is not ready is not rolling out.
func allPodsCurrent(dep *appsv1.Deployment, want int32) bool {
	s := dep.Status
	return s.ObservedGeneration >= dep.Generation && s.UpdatedReplicas == want && s.Replicas == want
}

// heldPods names the pods that are not ready while their load reports say partitions of
// theirs are held: stopped at a message that goes nowhere (it cannot be decoded, or
// storage refuses it for good), or held by storage failing their writes (also when the
// report does not say why: an earlier ingester's). A ready pod that retried a write is
// neither.
func heldPods(obs observation) (stopped, byStorage []string) {
	for _, p := range obs.notReady {
		kinds, blocked := obs.blockedPods[p.name]
		switch {
		case !blocked:
		case slices.Contains(kinds, loadreport.HeldUndecodable) || slices.Contains(kinds, loadreport.HeldRefused):
			stopped = append(stopped, p.name)
		default:
			byStorage = append(byStorage, p.name)
		}
	}
	return stopped, byStorage
}

// somewhereElse says what gives a held message somewhere to go.
func somewhereElse(ing *spanflowv1alpha1.Ingester) string {
	if ing.Spec.Processing.DeadLetterTopic != "" {
		return "Set spec.processing.onDecodeError: deadletter (or skip) for what cannot be decoded"
	}
	return "Give it somewhere: spec.processing.deadLetterTopic, or onDecodeError: skip for what cannot be decoded"
}

// heldMessages says what stopped the pods' partitions.
func heldMessages(obs observation, pods []string) string {
	var undecodable, refused bool
	for _, pod := range pods {
		undecodable = undecodable || slices.Contains(obs.blockedPods[pod], loadreport.HeldUndecodable)
		refused = refused || slices.Contains(obs.blockedPods[pod], loadreport.HeldRefused)
	}
	switch {
	case undecodable && refused:
		return "messages that cannot be decoded (spec.encoding, spec.processing.onDecodeError: fail) and that storage refuses for good"
	case undecodable:
		return "a message that cannot be decoded (spec.encoding, spec.processing.onDecodeError: fail)"
	}
	return "a message that storage refuses for good"
}

// longNotReady names the pods not ready for notReadyGrace, but for those held.
func longNotReady(obs observation, held []string) []string {
	var names []string
	for _, p := range obs.notReady {
		if obs.now.Sub(p.since) >= notReadyGrace && !slices.Contains(held, p.name) {
			names = append(names, p.name)
		}
	}
	return names
}

// podNames lists pods for a message: "pod a", "pods a, b and c", at most three named.
func podNames(names []string) string {
	switch n := len(names); {
	case n == 1:
		return "pod " + names[0]
	case n <= 3:
		return "pods " + strings.Join(names[:n-1], ", ") + " and " + names[n-1]
	default:
		return fmt.Sprintf("pods %s and %d more", strings.Join(names[:3], ", "), n-3)
	}
}

// deploymentRolledOut is true when the Deployment controller has seen the latest spec and
// every desired pod is updated and ready, with no old pods left.
func deploymentRolledOut(dep *appsv1.Deployment, want int32) bool {
	s := dep.Status
	// Pods of the current spec beyond want are being removed (a scale-down): what is
	// wanted is there, and nothing rolls out.
	return s.ObservedGeneration >= dep.Generation &&
		s.UpdatedReplicas >= want && s.ReadyReplicas >= want && s.Replicas == s.UpdatedReplicas &&
		(want > 0 || s.Replicas == 0)
}

// progressDeadlineExceeded is the Deployment controller's verdict that the rollout is stuck.
func progressDeadlineExceeded(dep *appsv1.Deployment) bool {
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return true
		}
	}
	return false
}

// podCreationFailure is the Deployment's ReplicaFailure message (the deployment
// controller copies it from the ReplicaSet that failed to create a pod: admission refused
// it, a quota is exhausted), empty when pods are being created.
func podCreationFailure(dep *appsv1.Deployment) string {
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			if c.Reason != "" {
				return c.Reason + ": " + c.Message
			}
			return c.Message
		}
	}
	return ""
}

func deploymentProgressMessage(dep *appsv1.Deployment) string {
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing {
			return c.Message
		}
	}
	return ""
}

// What a held-back spec's message says of the pods: none run, or those running keep the
// last good configuration.
const (
	podsLeftNone = "; no ingester pods run until it is fixed"
	podsLeftKept = "; the running pods keep their last good configuration"
)
