// Package controllers holds the spanflow operator's reconcilers: each Ingester is turned
// into the ConfigMap and Deployment that run `spanflow ingest`, and its status reports how
// that went.
package controllers

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

// FieldOwner is the server-side apply field manager of everything the operator writes.
const FieldOwner = client.FieldOwner("spanflow")

// IngesterReconciler reconciles Ingester resources into the objects that run them.
type IngesterReconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	// IngesterImage is the image of the ingester pods: by default the operator's own.
	IngesterImage string
}

// +kubebuilder:rbac:groups=spanflow.dev,resources=ingesters,verbs=get;list;watch
// +kubebuilder:rbac:groups=spanflow.dev,resources=ingesters/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile applies the desired ConfigMap and Deployment of one Ingester and records
// the outcome in its status.
func (r *IngesterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var ing spanflowv1alpha1.Ingester
	if err := r.Client.Get(ctx, req.NamespacedName, &ing); err != nil {
		// Deleted: owner references let the garbage collector remove what it owned.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	dep, applyErr := r.apply(ctx, &ing)
	status := desiredStatus(&ing, dep, applyErr)
	if err := r.writeStatus(ctx, &ing, status); err != nil {
		return ctrl.Result{}, err
	}
	if applyErr != nil {
		// Returned so the work queue retries with backoff; the status already says why.
		return ctrl.Result{}, applyErr
	}
	logger.V(1).Info("Reconciled", "replicas", status.Replicas, "ready", status.ReadyReplicas)
	return ctrl.Result{}, nil
}

// apply server-side applies the desired objects and returns the Deployment as stored.
func (r *IngesterReconciler) apply(ctx context.Context, ing *spanflowv1alpha1.Ingester) (*appsv1.Deployment, error) {
	cm, err := desiredConfigMap(ing)
	if err != nil {
		return nil, err
	}
	if err := r.Client.Apply(ctx, cm, FieldOwner, client.ForceOwnership); err != nil {
		return nil, fmt.Errorf("applying ConfigMap %s: %w", *cm.Name, err)
	}
	depAC := desiredDeployment(ing, r.IngesterImage, cm)
	if err := r.Client.Apply(ctx, depAC, FieldOwner, client.ForceOwnership); err != nil {
		return nil, fmt.Errorf("applying Deployment %s: %w", *depAC.Name, err)
	}
	// Apply filled depAC from the response; convert it to the typed object for status.
	raw, err := json.Marshal(depAC)
	if err != nil {
		return nil, err
	}
	var dep appsv1.Deployment
	if err := json.Unmarshal(raw, &dep); err != nil {
		return nil, err
	}
	return &dep, nil
}

// writeStatus writes the status in one request when it differs from the stored one, and
// emits an event when the Ready condition changes.
func (r *IngesterReconciler) writeStatus(ctx context.Context, ing *spanflowv1alpha1.Ingester, status spanflowv1alpha1.IngesterStatus) error {
	if equality.Semantic.DeepEqual(ing.Status, status) {
		return nil
	}
	before := meta.FindStatusCondition(ing.Status.Conditions, spanflowv1alpha1.ConditionReady)
	patchBase := client.MergeFrom(ing.DeepCopy())
	ing.Status = status
	if err := r.Client.Status().Patch(ctx, ing, patchBase); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("writing status: %w", err)
	}
	after := meta.FindStatusCondition(status.Conditions, spanflowv1alpha1.ConditionReady)
	if after != nil && (before == nil || before.Status != after.Status || before.Reason != after.Reason) {
		eventType := corev1.EventTypeNormal
		if after.Reason == spanflowv1alpha1.ReasonApplyFailed {
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(ing, nil, eventType, after.Reason, "Reconcile", "%s", after.Message)
	}
	return nil
}

// SetupWithManager registers the reconciler; changes to the owned objects requeue their
// Ingester, so drift is corrected and Deployment progress reaches the status.
func (r *IngesterReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&spanflowv1alpha1.Ingester{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.ConfigMap{}).
		Named("ingester").
		Complete(r)
}
