package controllers

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

// desiredStatus computes the Ingester's status from what the reconcile saw: the Deployment
// as the API server returned it (nil when it could not be applied) and the apply error.
// Condition transition times are kept when nothing changed, via meta.SetStatusCondition.
func desiredStatus(ing *spanflowv1alpha1.Ingester, dep *appsv1.Deployment, applyErr error) spanflowv1alpha1.IngesterStatus {
	status := *ing.Status.DeepCopy()
	status.ObservedGeneration = ing.Generation
	status.Selector = labels.SelectorFromSet(selectorLabels(ing)).String()
	status.Parallelism = desiredParallelism(ing)
	if dep != nil {
		status.Replicas = dep.Status.Replicas
		status.ReadyReplicas = dep.Status.ReadyReplicas
	}
	meta.SetStatusCondition(&status.Conditions, readyCondition(ing, dep, applyErr))
	return status
}

// readyCondition says whether the ingester pods are all up with the current spec.
func readyCondition(ing *spanflowv1alpha1.Ingester, dep *appsv1.Deployment, applyErr error) metav1.Condition {
	cond := metav1.Condition{Type: spanflowv1alpha1.ConditionReady, ObservedGeneration: ing.Generation}
	want := desiredReplicas(ing)
	switch {
	case applyErr != nil:
		cond.Status, cond.Reason = metav1.ConditionFalse, spanflowv1alpha1.ReasonApplyFailed
		cond.Message = fmt.Sprintf("Cannot apply the ingester's objects: %v", applyErr)
	case dep == nil:
		cond.Status, cond.Reason = metav1.ConditionFalse, spanflowv1alpha1.ReasonRollingOut
		cond.Message = "Waiting for the ingester Deployment"
	case want == 0 && dep.Status.Replicas == 0:
		cond.Status, cond.Reason = metav1.ConditionTrue, spanflowv1alpha1.ReasonScaledToZero
		cond.Message = "Scaled to zero replicas: nothing is consumed until replicas are added"
	case deploymentRolledOut(dep, want):
		cond.Status, cond.Reason = metav1.ConditionTrue, spanflowv1alpha1.ReasonAvailable
		cond.Message = fmt.Sprintf("%d of %d ingester pods are ready", dep.Status.ReadyReplicas, want)
	default:
		cond.Status, cond.Reason = metav1.ConditionFalse, spanflowv1alpha1.ReasonRollingOut
		cond.Message = fmt.Sprintf("%d of %d ingester pods are ready and up to date", min(dep.Status.ReadyReplicas, dep.Status.UpdatedReplicas), want)
	}
	return cond
}

// deploymentRolledOut is true when the Deployment controller has seen the latest spec and
// every desired pod is updated and ready, with no old pods left.
func deploymentRolledOut(dep *appsv1.Deployment, want int32) bool {
	s := dep.Status
	return s.ObservedGeneration >= dep.Generation &&
		s.UpdatedReplicas == want && s.ReadyReplicas >= want && s.Replicas == want
}
