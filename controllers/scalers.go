package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/controllers/autoscale"
)

// kedaHPAPrefix begins the name of the HorizontalPodAutoscaler a KEDA ScaledObject makes,
// unless the ScaledObject names it otherwise.
const kedaHPAPrefix = "keda-hpa-"

// scalerConflict is a HorizontalPodAutoscaler that scales an Ingester's pods past the
// operator: aimed at its Deployment, whose replicas the operator puts back, or at the
// Ingester while the built-in autoscaler owns the replicas, so that it changes nothing.
type scalerConflict struct {
	// hpa is the HorizontalPodAutoscaler's namespace/name.
	hpa string
	// scaledObject is the name of the KEDA ScaledObject that made it, "" when none is known.
	scaledObject string
	// atDeployment is true when it aims at the Ingester's Deployment, false when at the
	// Ingester itself.
	atDeployment bool
}

// scalerConflicts are the HorizontalPodAutoscalers of hpas that fight the operator over
// the Ingester's replicas, sorted by name. One aimed at the Deployment always does; one
// aimed at the Ingester only while spec.autoscaling is enabled. An HPA scales a target of
// its own namespace only, so those of other namespaces never count.
func scalerConflicts(ing *spanflowv1alpha1.Ingester, hpas []autoscalingv2.HorizontalPodAutoscaler) []scalerConflict {
	var conflicts []scalerConflict
	for i := range hpas {
		hpa := &hpas[i]
		if hpa.Namespace != ing.Namespace || hpa.DeletionTimestamp != nil {
			continue
		}
		ref := hpa.Spec.ScaleTargetRef
		atDeployment := isDeploymentRef(ref) && ref.Name == ingesterObjectName(ing)
		atIngester := isIngesterRef(ref) && ref.Name == ing.Name && autoscale.Enabled(ing)
		if atDeployment || atIngester {
			conflicts = append(conflicts, scalerConflict{hpa: hpa.Namespace + "/" + hpa.Name, scaledObject: kedaScaledObject(hpa), atDeployment: atDeployment})
		}
	}
	slices.SortFunc(conflicts, func(a, b scalerConflict) int { return strings.Compare(a.hpa, b.hpa) })
	return conflicts
}

// isDeploymentRef is true when an HPA's target is a Deployment, in any API group that
// served them.
func isDeploymentRef(ref autoscalingv2.CrossVersionObjectReference) bool {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && ref.Kind == "Deployment" && (gv.Group == "apps" || gv.Group == "extensions")
}

// isIngesterRef is true when an HPA's target is an Ingester, in any version.
func isIngesterRef(ref autoscalingv2.CrossVersionObjectReference) bool {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && ref.Kind == "Ingester" && gv.Group == spanflowv1alpha1.GroupVersion.Group
}

// kedaScaledObject is the name of the KEDA ScaledObject that made hpa, "" when it does not
// look made by one: KEDA makes the ScaledObject the HPA's controller, labels it (the
// label names changed over KEDA's versions) and names it keda-hpa-<ScaledObject> unless
// told otherwise.
func kedaScaledObject(hpa *autoscalingv2.HorizontalPodAutoscaler) string {
	if ref := metav1.GetControllerOf(hpa); ref != nil && ref.Kind == "ScaledObject" {
		if gv, err := schema.ParseGroupVersion(ref.APIVersion); err == nil && gv.Group == "keda.sh" {
			return ref.Name
		}
	}
	if name := hpa.Labels["scaledobject.keda.sh/name"]; name != "" {
		return name
	}
	if name := hpa.Labels["app.kubernetes.io/part-of"]; name != "" && hpa.Labels["app.kubernetes.io/managed-by"] == "keda-operator" {
		return name
	}
	if name, ok := strings.CutPrefix(hpa.Name, kedaHPAPrefix); ok && name != "" {
		return name
	}
	return ""
}

// message says what the conflict does and what to do about it.
func (c scalerConflict) message(ing *spanflowv1alpha1.Ingester) string {
	who, fix := "HorizontalPodAutoscaler "+c.hpa, "it"
	if c.scaledObject != "" {
		who = fmt.Sprintf("KEDA ScaledObject %q (through HorizontalPodAutoscaler %s)", c.scaledObject, c.hpa)
		fix = "the ScaledObject" // KEDA would put an edited HPA back
	}
	aimed := fmt.Sprintf("scaleTargetRef: {apiVersion: %s, kind: Ingester, name: %s}", spanflowv1alpha1.GroupVersion, ing.Name)
	switch {
	case c.atDeployment && autoscale.Enabled(ing):
		return fmt.Sprintf("%s scales the Deployment %s, whose replicas are the built-in autoscaler's (spec.autoscaling): the operator puts them back, and the two fight, pods started and stopped and the consumer group rebalancing each time; delete %s, or aim %s at the Ingester (%s) and turn spec.autoscaling off",
			who, ingesterObjectName(ing), fix, fix, aimed)
	case c.atDeployment:
		return fmt.Sprintf("%s scales the Deployment %s, whose replicas are the Ingester's: the operator puts them back, and the two fight, pods started and stopped and the consumer group rebalancing each time; aim %s at the Ingester (%s), or delete %s and use spec.autoscaling",
			who, ingesterObjectName(ing), fix, aimed, fix)
	default:
		return fmt.Sprintf("%s scales the Ingester, but spec.autoscaling is enabled: the built-in autoscaler sizes it and ignores spec.replicas, so the HPA changes nothing; delete %s, or turn spec.autoscaling off",
			who, fix)
	}
}

// scalerConflictsMessage is the Degraded message of the conflicts.
func scalerConflictsMessage(ing *spanflowv1alpha1.Ingester, conflicts []scalerConflict) string {
	messages := make([]string, len(conflicts))
	for i, c := range conflicts {
		messages[i] = c.message(ing)
	}
	if ing.Spec.Paused {
		// The fight starts again with the operator: spec.paused holds it back meanwhile.
		messages = append(messages, "(While spec.paused is true the operator puts nothing back: the fight resumes when it is unpaused)")
	}
	return strings.Join(messages, ". ")
}

// scalersOf are the HorizontalPodAutoscalers of the Ingester's namespace that fight the
// operator over its replicas; none when the operator may not read them.
func (r *IngesterReconciler) scalersOf(ctx context.Context, ing *spanflowv1alpha1.Ingester) ([]scalerConflict, error) {
	if !r.scalersVisible {
		return nil, nil
	}
	var hpas autoscalingv2.HorizontalPodAutoscalerList
	if err := r.Client.List(ctx, &hpas, client.InNamespace(ing.Namespace)); err != nil {
		return nil, fmt.Errorf("listing HorizontalPodAutoscalers: %w", err)
	}
	return scalerConflicts(ing, hpas.Items), nil
}

// mayWatchScalers is true when the operator may list and watch HorizontalPodAutoscalers
// in every namespace it watches (none: the whole cluster). An operator installed by an
// older chart, or under a role cut down by hand, may not; it then goes without looking
// for them, rather than wait for ever on a cache the API server refuses to fill — or, with
// the list allowed and the watch refused, log "Failed to watch" at every retry while the
// cache learns of changes only when it lists again. A cluster that serves no
// autoscaling/v2 has none to find. The watch right is asked of the API server's
// access review; where the operator may not ask (no such grant is usual), the list's
// answer stands.
func mayWatchScalers(ctx context.Context, reader client.Reader, reviews client.Client, namespaces []string) (bool, error) {
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		err := reader.List(ctx, &autoscalingv2.HorizontalPodAutoscalerList{}, client.InNamespace(ns), client.Limit(1))
		switch {
		case apierrors.IsForbidden(err) || apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("listing HorizontalPodAutoscalers: %w", err)
		}
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: "watch", Group: autoscalingv2.GroupName, Resource: "horizontalpodautoscalers"}}}
		err = reviews.Create(ctx, review)
		switch {
		case apierrors.IsForbidden(err) || apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
		case err != nil:
			return false, fmt.Errorf("asking whether HorizontalPodAutoscalers may be watched: %w", err)
		case !review.Status.Allowed:
			return false, nil
		}
	}
	return true, nil
}

// ingestersScaledBy maps an HPA to the Ingester it aims at, itself or its Deployment
// (whether or not such an Ingester exists: a reconcile of none costs nothing).
func ingestersScaledBy(_ context.Context, obj client.Object) []reconcile.Request {
	hpa, ok := obj.(*autoscalingv2.HorizontalPodAutoscaler)
	if !ok {
		return nil
	}
	ref := hpa.Spec.ScaleTargetRef
	name := ""
	switch {
	case isIngesterRef(ref):
		name = ref.Name
	case isDeploymentRef(ref):
		if ing, ok := ingesterOfObjectName(ref.Name); ok {
			name = ing
		}
	}
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: hpa.Namespace, Name: name}}}
}

// scalerChanged lets through the HPA updates that can change what scalerConflicts finds:
// its target, or what says KEDA made it. The HPA controller writes the status at each
// turn, which changes nothing here.
var scalerChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	old, okOld := e.ObjectOld.(*autoscalingv2.HorizontalPodAutoscaler)
	cur, okNew := e.ObjectNew.(*autoscalingv2.HorizontalPodAutoscaler)
	if !okOld || !okNew {
		return true
	}
	return old.Spec.ScaleTargetRef != cur.Spec.ScaleTargetRef || (old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) ||
		!equality.Semantic.DeepEqual(old.Labels, cur.Labels) || !equality.Semantic.DeepEqual(old.OwnerReferences, cur.OwnerReferences)
}}
