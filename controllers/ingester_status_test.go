package controllers

import (
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

func TestReadyCondition(t *testing.T) {
	deployment := func(generation int64, s appsv1.DeploymentStatus) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: generation}, Status: s}
	}
	cases := []struct {
		name       string
		replicas   int32
		dep        *appsv1.Deployment
		applyErr   error
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{"apply failed", 2, nil, errors.New("forbidden"), metav1.ConditionFalse, spanflowv1alpha1.ReasonApplyFailed},
		{"no deployment yet", 2, nil, nil, metav1.ConditionFalse, spanflowv1alpha1.ReasonRollingOut},
		{"no pods yet", 2, deployment(1, appsv1.DeploymentStatus{}), nil, metav1.ConditionFalse, spanflowv1alpha1.ReasonRollingOut},
		{"all ready", 2, deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2}), nil, metav1.ConditionTrue, spanflowv1alpha1.ReasonAvailable},
		{"ready but spec not yet seen", 2, deployment(4, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2}), nil, metav1.ConditionFalse, spanflowv1alpha1.ReasonRollingOut},
		{"old pod still running", 2, deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 3, UpdatedReplicas: 2, ReadyReplicas: 3}), nil, metav1.ConditionFalse, spanflowv1alpha1.ReasonRollingOut},
		{"one not ready", 2, deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1}), nil, metav1.ConditionFalse, spanflowv1alpha1.ReasonRollingOut},
		{"scaled to zero", 0, deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3}), nil, metav1.ConditionTrue, spanflowv1alpha1.ReasonScaledToZero},
		{"scaling to zero", 0, deployment(3, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 1}), nil, metav1.ConditionFalse, spanflowv1alpha1.ReasonRollingOut},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ing := &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Generation: 7}, Spec: spanflowv1alpha1.IngesterSpec{Replicas: ptr.To(tc.replicas)}}
			got := readyCondition(ing, tc.dep, tc.applyErr)
			if got.Status != tc.wantStatus || got.Reason != tc.wantReason {
				t.Errorf("got %s/%s (%s), want %s/%s", got.Status, got.Reason, got.Message, tc.wantStatus, tc.wantReason)
			}
			if got.ObservedGeneration != 7 || got.Type != spanflowv1alpha1.ConditionReady || got.Message == "" {
				t.Errorf("condition incomplete: %+v", got)
			}
		})
	}
}

func TestDesiredStatusKeepsTransitionTime(t *testing.T) {
	ing := &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Name: "x", Generation: 2}}
	dep := &appsv1.Deployment{Status: appsv1.DeploymentStatus{Replicas: 1}}
	first := desiredStatus(ing, dep, nil)
	ing.Status = first
	second := desiredStatus(ing, dep, nil)
	if !second.Conditions[0].LastTransitionTime.Equal(&first.Conditions[0].LastTransitionTime) {
		t.Errorf("an unchanged condition moved its transition time")
	}
	if second.Replicas != 1 || second.ObservedGeneration != 2 || second.Selector == "" {
		t.Errorf("status incomplete: %+v", second)
	}
}
