package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/controllers/autoscale"
	"github.com/spanflow/spanflow/ingester/loadreport"
)

func deployment(generation int64, s appsv1.DeploymentStatus) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: generation}, Status: s}
}

func rolledOut(n int32) appsv1.DeploymentStatus {
	return appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
}

func stuck() appsv1.DeploymentStatus {
	s := appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2}
	s.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "x" has timed out progressing.`}}
	return s
}

// refused is a Deployment whose ReplicaSet cannot create pods, as the deployment controller
// reports it.
func refused() appsv1.DeploymentStatus {
	s := appsv1.DeploymentStatus{ObservedGeneration: 3}
	s.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate",
		Message: `pods "traces-ingester-5d8f-x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true`}}
	return s
}

// pausedDeployment is a Deployment of generation 3 whose rollout someone paused.
func pausedDeployment(s appsv1.DeploymentStatus) *appsv1.Deployment {
	d := deployment(3, s)
	d.Name, d.Spec.Paused = "traces-ingester", true
	return d
}

func TestConditions(t *testing.T) {
	now := metav1.NewTime(time.Unix(1_000_000, 0))
	type want struct{ ready, progressing, degraded string } // "True/Reason"
	cases := []struct {
		name     string
		replicas int32
		paused   bool
		obs      observation
		want     want
	}{
		{"apply failed", 2, false, observation{applyErr: errors.New("forbidden")},
			want{"False/ApplyFailed", "False/AsExpected", "True/ApplyFailed"}},
		{"secret missing, nothing runs", 2, false, observation{secretErr: errors.New(`Secret "sasl" does not exist`)},
			want{"False/SecretMissing", "False/AsExpected", "True/SecretMissing"}},
		{"secret missing, old pods run", 2, false, observation{secretErr: errors.New("x"), deployment: deployment(3, rolledOut(2))},
			want{"True/Available", "False/AsExpected", "True/SecretMissing"}},
		{"no deployment yet", 2, false, observation{}, want{"False/RollingOut", "False/AsExpected", "False/AsExpected"}},
		{"no pods yet", 2, false, observation{deployment: deployment(1, appsv1.DeploymentStatus{})},
			want{"False/RollingOut", "True/RollingOut", "False/AsExpected"}},
		{"all ready", 2, false, observation{deployment: deployment(3, rolledOut(2))},
			want{"True/Available", "False/AsExpected", "False/AsExpected"}},
		{"ready but new spec not yet seen", 2, false, observation{deployment: deployment(4, rolledOut(2))},
			want{"False/RollingOut", "True/RollingOut", "False/AsExpected"}},
		{"old pod still running", 2, false, observation{deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 3, UpdatedReplicas: 2, ReadyReplicas: 3})},
			want{"False/RollingOut", "True/RollingOut", "False/AsExpected"}},
		{"rollout stuck", 2, false, observation{deployment: deployment(3, stuck())},
			want{"False/RolloutStuck", "False/RolloutStuck", "True/RolloutStuck"}},
		{"scaling down: pods of the current spec beyond the replicas go", 2, false, observation{deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3})},
			want{"True/Available", "False/AsExpected", "False/AsExpected"}},
		{"scaling to zero, the pods of the current spec still there", 0, false, observation{deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1})},
			want{"False/RollingOut", "True/RollingOut", "False/AsExpected"}},
		{"scaled to zero", 0, false, observation{deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3})},
			want{"True/ScaledToZero", "False/AsExpected", "False/AsExpected"}},
		{"scaling to zero", 0, false, observation{deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 1})},
			want{"False/RollingOut", "True/RollingOut", "False/AsExpected"}},
		{"paused", 2, true, observation{deployment: deployment(3, rolledOut(2))},
			want{"True/Available", "False/Paused", "False/AsExpected"}},
		{"spec invalid, nothing runs", 2, false, observation{problem: &specProblem{reason: spanflowv1alpha1.ReasonInvalidSpec, err: errors.New("spec.storage.file.maxFileSize: must be positive")}},
			want{"False/InvalidSpec", "False/AsExpected", "True/InvalidSpec"}},
		{"object in the way, old pods run", 2, false, observation{problem: &specProblem{reason: spanflowv1alpha1.ReasonResourceConflict, err: errors.New("ConfigMap")}, deployment: deployment(3, rolledOut(2))},
			want{"True/Available", "False/AsExpected", "True/ResourceConflict"}},
		{"pods refused by admission", 2, false, observation{deployment: deployment(3, refused())},
			want{"False/RollingOut", "True/RollingOut", "True/PodCreationFailed"}},
		{"storage down: the pods of the current spec are held", 2, false, observation{now: now,
			deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2}),
			notReady:   []notReadyPod{{"traces-ingester-a", now.Add(-20 * time.Second)}, {"traces-ingester-b", now.Add(-20 * time.Second)}}, blockedPods: map[string][]string{"traces-ingester-a": {loadreport.HeldStorage}, "traces-ingester-b": nil}},
			want{"False/StorageUnavailable", "False/AsExpected", "True/StorageUnavailable"}},
		{"storage down during a rollout", 2, false, observation{now: now,
			deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 3, UpdatedReplicas: 1, ReadyReplicas: 2}),
			notReady:   []notReadyPod{{"new", now.Add(-20 * time.Second)}}, blockedPods: map[string][]string{"new": {loadreport.HeldStorage}}},
			want{"False/StorageUnavailable", "True/RollingOut", "True/StorageUnavailable"}},
		{"a ready pod that retried a write is not held", 2, false, observation{now: now, deployment: deployment(3, rolledOut(2)), blockedPods: map[string][]string{"a": nil}},
			want{"True/Available", "False/AsExpected", "False/AsExpected"}},
		{"a pod held while another starts", 3, false, observation{now: now,
			deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 2}),
			notReady:   []notReadyPod{{"new", now.Add(-5 * time.Second)}}, startingPods: 1, blockedPods: map[string][]string{"old": nil}},
			want{"False/RollingOut", "True/RollingOut", "False/AsExpected"}},
		{"a partition stopped at an undecodable message", 2, false, observation{now: now,
			deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1}),
			notReady:   []notReadyPod{{"traces-ingester-a", now.Add(-5 * time.Minute)}}, blockedPods: map[string][]string{"traces-ingester-a": {loadreport.HeldStorage, loadreport.HeldUndecodable}}},
			want{"False/MessageHeld", "False/AsExpected", "True/MessageHeld"}},
		{"not ready for minutes, no known cause", 2, false, observation{now: now,
			deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1}),
			notReady:   []notReadyPod{{"traces-ingester-a", now.Add(-3 * time.Minute)}}},
			want{"False/PodsNotReady", "False/AsExpected", "True/PodsNotReady"}},
		{"not ready for seconds: starting", 2, false, observation{now: now,
			deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1}),
			notReady:   []notReadyPod{{"traces-ingester-a", now.Add(-30 * time.Second)}}, startingPods: 1},
			want{"False/RollingOut", "True/RollingOut", "False/AsExpected"}},
		// A pod of the current spec that was ready, and restarted or failed its readiness
		// check for seconds, is not a rollout; a new pod beside it is (a scale-up).
		{"a pod restarted: nothing rolls out", 2, false, observation{now: now,
			deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1}),
			notReady:   []notReadyPod{{"traces-ingester-a", now.Add(-10 * time.Second)}}},
			want{"False/PodsNotReady", "False/AsExpected", "False/AsExpected"}},
		{"a pod crash-looping, not running: nothing rolls out", 2, false, observation{now: now, podFailure: "pod a: CrashLoopBackOff",
			deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1})},
			want{"False/PodsNotReady", "False/AsExpected", "True/PodsFailing"}},
		{"a pod restarted while another starts", 3, false, observation{now: now,
			deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 1}),
			notReady:   []notReadyPod{{"old", now.Add(-10 * time.Second)}, {"new", now.Add(-5 * time.Second)}}, startingPods: 1},
			want{"False/RollingOut", "True/RollingOut", "False/AsExpected"}},
		{"rollout paused with old pods", 2, false, observation{deployment: pausedDeployment(appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 0, ReadyReplicas: 2})},
			want{"False/RolloutPaused", "False/RolloutPaused", "True/RolloutPaused"}},
		{"rollout just paused: not yet seen by the Deployment controller", 2, false, observation{deployment: pausedDeployment(appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2})},
			want{"False/RollingOut", "True/RollingOut", "False/AsExpected"}},
		{"rollout paused, nothing waiting", 2, false, observation{deployment: pausedDeployment(rolledOut(2))},
			want{"True/Available", "False/AsExpected", "False/AsExpected"}},
		{"an HPA fights the operator", 2, false, observation{deployment: deployment(3, rolledOut(2)), scalers: []scalerConflict{{hpa: "ns/cpu", atDeployment: true}}},
			want{"True/Available", "False/AsExpected", "True/ScalerConflict"}},
		{"an HPA fights, and the spec is held back", 2, false, observation{deployment: deployment(3, rolledOut(2)), scalers: []scalerConflict{{hpa: "ns/cpu", atDeployment: true}},
			problem: &specProblem{reason: spanflowv1alpha1.ReasonInvalidSpec, err: errors.New("x")}},
			want{"True/Available", "False/AsExpected", "True/InvalidSpec"}},
		{"an HPA fights, and pods cannot be created", 2, false, observation{deployment: deployment(3, refused()), scalers: []scalerConflict{{hpa: "ns/cpu", atDeployment: true}}},
			want{"False/RollingOut", "True/RollingOut", "True/PodCreationFailed"}},
		{"an HPA fights, and the group is shared", 2, false, observation{deployment: deployment(3, rolledOut(2)), scalers: []scalerConflict{{hpa: "ns/cpu", atDeployment: true}}, sharedGroup: []string{"b/x"}},
			want{"True/Available", "False/AsExpected", "True/ConsumerGroupShared"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ing := &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Generation: 7},
				Spec: spanflowv1alpha1.IngesterSpec{Replicas: ptr.To(tc.replicas), Paused: tc.paused}}
			ready, progressing, degraded := conditions(ing, tc.obs, 5)
			got := want{
				string(ready.Status) + "/" + ready.Reason,
				string(progressing.Status) + "/" + progressing.Reason,
				string(degraded.Status) + "/" + degraded.Reason,
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			// Ready and Progressing describe the pods, which run the generation applied
			// last; Degraded describes the spec as it is.
			for c, generation := range map[*metav1.Condition]int64{&ready: 5, &progressing: 5, &degraded: 7} {
				if c.ObservedGeneration != generation || c.Message == "" {
					t.Errorf("condition incomplete or of generation %d, want %d: %+v", c.ObservedGeneration, generation, c)
				}
			}
			if tc.want.degraded == "True/PodCreationFailed" && !strings.Contains(degraded.Message, "violates PodSecurity") {
				t.Errorf("the Deployment's reason is not passed on: %q", degraded.Message)
			}
			for _, p := range tc.obs.notReady {
				if strings.HasSuffix(tc.want.degraded, "/StorageUnavailable") || strings.HasSuffix(tc.want.degraded, "/PodsNotReady") || strings.HasSuffix(tc.want.degraded, "/MessageHeld") {
					if !strings.Contains(degraded.Message, p.name) {
						t.Errorf("the message does not name pod %s: %q", p.name, degraded.Message)
					}
				}
			}
			if tc.want.degraded == "True/MessageHeld" && !strings.Contains(degraded.Message, "cannot be decoded") {
				t.Errorf("the message does not say why the partition stopped: %q", degraded.Message)
			}
			if tc.want.degraded == "True/RolloutPaused" && !strings.Contains(degraded.Message, "kubectl rollout resume deployment/traces-ingester") {
				t.Errorf("the message does not say how to resume: %q", degraded.Message)
			}
			if d := tc.obs.deployment; d != nil && d.Status.Replicas > 0 && strings.Contains(degraded.Message, "no ingester pods run") ||
				(d == nil && strings.Contains(degraded.Message, "keep their last good configuration")) {
				t.Errorf("the message says the wrong thing of the pods: %q", degraded.Message)
			}
		})
	}
}

// TestAFirstLookAtKafkaKeepsWhatTheLastSaw: while the first poll of a target is under way
// (the operator restarted, or the spec names other brokers), Degraded keeps what the polls
// last found rather than say "nothing needs attention" for a poll; once it answers, or
// for what the polls do not find, it says what is.
func TestAFirstLookAtKafkaKeepsWhatTheLastSaw(t *testing.T) {
	// An answered poll, from the suite's broker.
	observer := autoscale.NewLagObserver(50*time.Millisecond, 3)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _ = observer.Start(ctx) }()
	target := autoscale.Target{Brokers: []string{testBroker}, Topic: testTopic, Group: "first-look"}
	var answered autoscale.Observation
	for deadline := time.Now().Add(10 * time.Second); !answered.Known(); time.Sleep(20 * time.Millisecond) {
		if answered = observer.Observe(target); time.Now().After(deadline) {
			t.Fatalf("no poll answered: %v", answered.Err())
		}
	}
	unreachable := metav1.Condition{Type: spanflowv1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: spanflowv1alpha1.ReasonKafkaUnreachable,
		Message: "cannot reach the Kafka brokers", LastTransitionTime: metav1.NewTime(time.Unix(1_000, 0))}
	for _, tc := range []struct {
		name     string
		previous metav1.Condition
		obs      observation
		want     string
	}{
		{"the first poll under way", unreachable, observation{deployment: deployment(3, rolledOut(2))}, "True/KafkaUnreachable"},
		{"the poll answered: reachable", unreachable, observation{deployment: deployment(3, rolledOut(2)), lag: answered}, "False/AsExpected"},
		{"not a poll's finding", metav1.Condition{Type: spanflowv1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: spanflowv1alpha1.ReasonRolloutStuck},
			observation{deployment: deployment(3, rolledOut(2))}, "False/AsExpected"},
	} {
		ing := &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Generation: 7},
			Spec: spanflowv1alpha1.IngesterSpec{Replicas: ptr.To[int32](2)}}
		ing.Status.Conditions = []metav1.Condition{tc.previous}
		_, _, degraded := conditions(ing, tc.obs, 5)
		if got := string(degraded.Status) + "/" + degraded.Reason; got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
		if tc.want == "True/KafkaUnreachable" && (degraded.ObservedGeneration != 7 || !degraded.LastTransitionTime.Equal(&unreachable.LastTransitionTime)) {
			t.Errorf("%s: kept as %+v", tc.name, degraded)
		}
	}
}

func TestDesiredStatus(t *testing.T) {
	ing := &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns", Generation: 2}}
	obs := observation{deployment: deployment(3, appsv1.DeploymentStatus{Replicas: 1}), applied: true}
	first := desiredStatus(ing, obs)
	ing.Status = first
	second := desiredStatus(ing, obs)
	for i := range first.Conditions {
		if !second.Conditions[i].LastTransitionTime.Equal(&first.Conditions[i].LastTransitionTime) {
			t.Errorf("an unchanged condition moved its transition time")
		}
	}
	if second.Replicas != 1 || second.ObservedGeneration != 2 || second.Selector == "" || second.Message == "" ||
		second.ConsumerGroup != "ns/x" || second.State != spanflowv1alpha1.ReasonRollingOut {
		t.Errorf("status incomplete: %+v", second)
	}

	// A generation not applied (paused, a Secret missing, a problem in the spec) is not
	// observed: kubectl wait --for=condition=Ready must not pass on a spec that never ran.
	ing.Generation = 3
	ing.Spec.Paused = true
	held := desiredStatus(ing, observation{deployment: obs.deployment})
	if held.ObservedGeneration != 2 || meta.FindStatusCondition(held.Conditions, spanflowv1alpha1.ConditionReady).ObservedGeneration != 2 {
		t.Errorf("a generation that was not applied is observed: %+v", held)
	}
	if held.State != spanflowv1alpha1.ReasonPaused {
		t.Errorf("state of a paused Ingester: %q", held.State)
	}
	// What needs attention comes first in the state.
	held = desiredStatus(ing, observation{deployment: obs.deployment, secretErr: errors.New(`Secret "sasl" does not exist`)})
	if held.State != spanflowv1alpha1.ReasonSecretMissing {
		t.Errorf("state of a paused Ingester with a missing Secret: %q", held.State)
	}
	// Zero replicas are printed as 0, not left blank.
	if data, _ := json.Marshal(spanflowv1alpha1.IngesterStatus{}); !strings.Contains(string(data), `"replicas":0`) || !strings.Contains(string(data), `"readyReplicas":0`) {
		t.Errorf("zero replicas are omitted: %s", data)
	}

	// The message says what is wrong when something is.
	degraded := desiredStatus(ing, observation{secretErr: errors.New(`Secret "sasl" does not exist`)})
	if degraded.Message == "" || degraded.Message == second.Message {
		t.Errorf("message %q does not report the missing Secret", degraded.Message)
	}
}

func TestPodNames(t *testing.T) {
	for names, want := range map[string]string{
		"a":       "pod a",
		"a b":     "pods a and b",
		"a b c":   "pods a, b and c",
		"a b c d": "pods a, b, c and 1 more",
	} {
		if got := podNames(strings.Fields(names)); got != want {
			t.Errorf("%s: got %q, want %q", names, got, want)
		}
	}
}

// TestNewSpecProblem: a spec problem that says something else under the same reason is
// news; what it says of the pods (none run, or the running ones keep their last good
// configuration), which changes as pods come and go, is not; nor are reasons whose
// messages carry moving figures, nor ApplyFailed unless the objects were refused as they
// are.
func TestNewSpecProblem(t *testing.T) {
	degraded := func(reason, message string) *metav1.Condition {
		return &metav1.Condition{Type: spanflowv1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: reason, Message: message}
	}
	missing := func(secret, pods string) *metav1.Condition {
		return degraded(spanflowv1alpha1.ReasonSecretMissing, `spec.kafka.tls.ca: Secret "`+secret+`" does not exist`+pods)
	}
	for _, tc := range []struct {
		name         string
		old, now     *metav1.Condition
		applyRefused bool
		want         bool
	}{
		{"another Secret", missing("a", podsLeftNone), missing("b", podsLeftNone), false, true},
		{"the same, pods gone", missing("a", podsLeftKept), missing("a", podsLeftNone), false, false},
		{"the same, pods come", missing("a", podsLeftNone), missing("a", podsLeftKept), false, false},
		{"another, pods gone", missing("a", podsLeftKept), missing("b", podsLeftNone), false, true},
		{"pods failing, another log line", degraded(spanflowv1alpha1.ReasonPodsFailing, "x"), degraded(spanflowv1alpha1.ReasonPodsFailing, "y"), false, false},
		{"another field refused", degraded(spanflowv1alpha1.ReasonApplyFailed, "x"), degraded(spanflowv1alpha1.ReasonApplyFailed, "y"), true, true},
		{"apply failing otherwise", degraded(spanflowv1alpha1.ReasonApplyFailed, "x"), degraded(spanflowv1alpha1.ReasonApplyFailed, "y"), false, false},
	} {
		if got := newSpecProblem(spanflowv1alpha1.ConditionDegraded, tc.old, tc.now, tc.applyRefused); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
