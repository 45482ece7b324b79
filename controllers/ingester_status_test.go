package controllers

import (
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
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

func TestConditions(t *testing.T) {
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
		{"scaled to zero", 0, false, observation{deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3})},
			want{"True/ScaledToZero", "False/AsExpected", "False/AsExpected"}},
		{"scaling to zero", 0, false, observation{deployment: deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 1})},
			want{"False/RollingOut", "True/RollingOut", "False/AsExpected"}},
		{"paused", 2, true, observation{deployment: deployment(3, rolledOut(2))},
			want{"True/Available", "False/Paused", "False/AsExpected"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ing := &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Generation: 7},
				Spec: spanflowv1alpha1.IngesterSpec{Replicas: ptr.To(tc.replicas), Paused: tc.paused}}
			ready, progressing, degraded := conditions(ing, tc.obs)
			got := want{
				string(ready.Status) + "/" + ready.Reason,
				string(progressing.Status) + "/" + progressing.Reason,
				string(degraded.Status) + "/" + degraded.Reason,
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			for _, c := range []metav1.Condition{ready, progressing, degraded} {
				if c.ObservedGeneration != 7 || c.Message == "" {
					t.Errorf("condition incomplete: %+v", c)
				}
			}
		})
	}
}

func TestDesiredStatus(t *testing.T) {
	ing := &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Name: "x", Generation: 2}}
	obs := observation{deployment: deployment(3, appsv1.DeploymentStatus{Replicas: 1})}
	first := desiredStatus(ing, obs)
	ing.Status = first
	second := desiredStatus(ing, obs)
	for i := range first.Conditions {
		if !second.Conditions[i].LastTransitionTime.Equal(&first.Conditions[i].LastTransitionTime) {
			t.Errorf("an unchanged condition moved its transition time")
		}
	}
	if second.Replicas != 1 || second.ObservedGeneration != 2 || second.Selector == "" || second.Message == "" {
		t.Errorf("status incomplete: %+v", second)
	}

	// The message says what is wrong when something is.
	degraded := desiredStatus(ing, observation{secretErr: errors.New(`Secret "sasl" does not exist`)})
	if degraded.Message == "" || degraded.Message == second.Message {
		t.Errorf("message %q does not report the missing Secret", degraded.Message)
	}
}
