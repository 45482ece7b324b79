package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

// Autoscaler keeps the autoscaling policy's memory of each Ingester between reconciles,
// and the operator's Prometheus view of sizes and lag. The memory is lost when the
// operator restarts: the policy then starts again from the size the Deployment has and
// does not scale down before it has watched a whole stabilization window.
type Autoscaler struct {
	mu     sync.Mutex
	states map[types.NamespacedName]scaleState

	desiredReplicas, replicas, parallelism, lagRecords, lagSeconds *prometheus.GaugeVec
	lagStale, targetLagSeconds, condition                          *prometheus.GaugeVec
	changes                                                        *prometheus.CounterVec
}

// NewAutoscaler returns an Autoscaler whose metrics are registered with reg.
func NewAutoscaler(reg prometheus.Registerer) *Autoscaler {
	labels := []string{"namespace", "ingester"}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "spanflow", Subsystem: "ingester", Name: name, Help: help}, labels)
	}
	a := &Autoscaler{
		states:           map[types.NamespacedName]scaleState{},
		desiredReplicas:  gauge("desired_replicas", "Ingester pods the operator wants (the autoscaler's decision, or spec.replicas)."),
		replicas:         gauge("replicas", "Ingester pods that exist."),
		parallelism:      gauge("parallelism", "Per-pod parallelism the ingester pods are configured with."),
		lagRecords:       gauge("lag_records", "Records produced and not yet committed by the Ingester's consumer group."),
		lagSeconds:       gauge("lag_seconds", "Age of the oldest record not yet committed by the Ingester's consumer group."),
		lagStale:         gauge("lag_stale", "1 when the operator's latest look at the Ingester's Kafka topic and group failed (the lag figures are the last known ones), else 0."),
		targetLagSeconds: gauge("target_lag_seconds", "spec.autoscaling.targetLagSeconds of the Ingester, when it sets one: the age of the oldest unconsumed record it should stay under."),
		condition: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "spanflow", Subsystem: "ingester", Name: "condition",
			Help: "1 when the Ingester's condition (Ready, Progressing, Degraded) is True, 0 when False; reason is the condition's reason."},
			append(labels, "type", "reason")),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "spanflow", Subsystem: "ingester", Name: "autoscaler_changes_total",
			Help: "Sizes (replicas × parallelism) the autoscaler changed to."}, labels),
	}
	reg.MustRegister(a.desiredReplicas, a.replicas, a.parallelism, a.lagRecords, a.lagSeconds, a.lagStale, a.targetLagSeconds, a.condition, a.changes)
	return a
}

// decide runs the policy for an Ingester with autoscaling enabled. It returns the size to
// apply, whether it differs from the current one, and the pods' measured capacity for the
// status. A policy with no memory of the Ingester (the operator restarted) starts from the
// capacity the status kept.
func (a *Autoscaler) decide(ing *spanflowv1alpha1.Ingester, dep *appsv1.Deployment, lag lagObservation, now time.Time) (scaleDecision, bool, *spanflowv1alpha1.PodCapacity) {
	key := types.NamespacedName{Namespace: ing.Namespace, Name: ing.Name}
	b := boundsOf(ing)
	in := scaleInput{now: now, lag: lag.snapshot, known: lag.have, stale: lag.err != nil, settled: settled(dep)}
	in.replicas, in.parallelism = currentSize(ing, dep, b)
	a.mu.Lock()
	st, ok := a.states[key]
	if !ok && ing.Status.Autoscaling != nil {
		st.capacity = capacityFromStatus(ing.Status.Autoscaling.PodCapacity)
	}
	d, st := decideScale(b, st, in)
	a.states[key] = st
	a.mu.Unlock()
	changed := d.replicas != in.replicas || d.parallelism != in.parallelism
	// The series exists from the first decision, at 0, so that increase() sees the first change.
	changes := a.changes.WithLabelValues(ing.Namespace, ing.Name)
	if changed {
		changes.Inc()
	}
	return d, changed, st.capacity.status()
}

// record publishes what the operator knows of an Ingester after a reconcile.
func (a *Autoscaler) record(ing *spanflowv1alpha1.Ingester, status spanflowv1alpha1.IngesterStatus) {
	l := []string{ing.Namespace, ing.Name}
	a.desiredReplicas.WithLabelValues(l...).Set(float64(desiredReplicas(ing)))
	a.replicas.WithLabelValues(l...).Set(float64(status.Replicas))
	a.parallelism.WithLabelValues(l...).Set(float64(status.Parallelism))
	if status.Lag != nil {
		a.lagRecords.WithLabelValues(l...).Set(float64(status.Lag.Records))
		a.lagSeconds.WithLabelValues(l...).Set(float64(status.Lag.Seconds))
		a.lagStale.WithLabelValues(l...).Set(boolValue(status.Lag.Stale))
	}
	if as := ing.Spec.Autoscaling; as != nil && as.TargetLagSeconds != nil {
		a.targetLagSeconds.WithLabelValues(l...).Set(float64(*as.TargetLagSeconds))
	} else {
		a.targetLagSeconds.DeleteLabelValues(l...)
	}
	for _, c := range status.Conditions {
		// One series per condition type: a new reason replaces the old series.
		a.condition.DeletePartialMatch(prometheus.Labels{"namespace": ing.Namespace, "ingester": ing.Name, "type": c.Type})
		a.condition.WithLabelValues(ing.Namespace, ing.Name, c.Type, c.Reason).Set(boolValue(c.Status == metav1.ConditionTrue))
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// forget drops an Ingester's memory and metrics: it was deleted, or its autoscaling turned
// off (then only the memory goes).
func (a *Autoscaler) forget(key types.NamespacedName, deleted bool) {
	a.mu.Lock()
	delete(a.states, key)
	a.mu.Unlock()
	if deleted {
		l := prometheus.Labels{"namespace": key.Namespace, "ingester": key.Name}
		for _, v := range []*prometheus.GaugeVec{a.desiredReplicas, a.replicas, a.parallelism, a.lagRecords, a.lagSeconds, a.lagStale, a.targetLagSeconds} {
			v.Delete(l)
		}
		a.condition.DeletePartialMatch(l)
		a.changes.Delete(l)
	}
}

// autoscaling is true when the operator, not spec.replicas, sizes the Ingester.
func autoscaling(ing *spanflowv1alpha1.Ingester) bool {
	return ing.Spec.Autoscaling != nil && ing.Spec.Autoscaling.Enabled
}

// currentSize is the size the pods were last given: the Deployment's replicas and the
// parallelism in the status (what the ConfigMap holds), or, before there is a Deployment,
// the spec's values within the autoscaling bounds.
func currentSize(ing *spanflowv1alpha1.Ingester, dep *appsv1.Deployment, b scaleBounds) (replicas, parallelism int32) {
	replicas = max(desiredReplicas(ing), b.minReplicas)
	if b.maxReplicas > 0 {
		replicas = min(replicas, b.maxReplicas)
	}
	if dep != nil && dep.Spec.Replicas != nil {
		replicas = *dep.Spec.Replicas
	}
	parallelism = ing.Status.Parallelism
	if parallelism == 0 {
		parallelism = desiredParallelism(ing)
	}
	return replicas, min(max(parallelism, b.minParallelism), b.maxParallelism)
}

// settled is true when every pod of the Deployment runs its current template and is ready.
func settled(dep *appsv1.Deployment) bool {
	return dep == nil || deploymentRolledOut(dep, ptr.Deref(dep.Spec.Replicas, 1))
}

// sized is the Ingester with replicas and parallelism replaced by the autoscaler's
// decision, for the builders of the desired objects and the status.
func sized(ing *spanflowv1alpha1.Ingester, d scaleDecision) *spanflowv1alpha1.Ingester {
	out := ing.DeepCopy()
	out.Spec.Replicas, out.Spec.Parallelism = ptr.To(d.replicas), ptr.To(d.parallelism)
	return out
}
