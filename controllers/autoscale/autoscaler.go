// Package autoscale sizes Ingesters: a lag observer polls each topic and consumer group
// (the committed offsets, and the load reports the pods commit with them), and a pure
// policy turns what it saw into replicas and parallelism, with a reason. The reconciler
// hands it an Input and applies the Decision.
package autoscale

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// Input is what the reconciler observed of an Ingester for a decision.
type Input struct {
	Now time.Time
	// Lag is what the lag observer knows of the Ingester's topic and group.
	Lag Observation
	// Deployed is the size last given to the Deployment's spec.replicas (nil before there
	// is a Deployment);
	// Parallelism the parallelism the pods were last given (0: none yet).
	Deployed    *int32
	Parallelism int32
	// SpecReplicas and SpecParallelism are the spec's values, defaulted.
	SpecReplicas, SpecParallelism int32
	// Settled is true when every pod runs the Deployment's current template and is ready.
	Settled bool
}

// Decision is a size and why.
type Decision struct {
	Replicas, Parallelism int32
	Reason                string
	// Changed is true when the size differs from the current one.
	Changed bool
	// PodCapacity is what the pods were measured to consume, for the status (nil: nothing
	// measured yet).
	PodCapacity *spanflowv1alpha1.PodCapacity
	// PartitionCeilings are the partitions found at a ceiling, for the status.
	PartitionCeilings []spanflowv1alpha1.PartitionCeiling
}

// Decide runs the policy for an Ingester with autoscaling enabled. A policy with no
// memory of the Ingester (the operator restarted) starts from the capacity and the
// partition ceilings the status kept.
func (a *Autoscaler) Decide(ing *spanflowv1alpha1.Ingester, in Input) Decision {
	key := types.NamespacedName{Namespace: ing.Namespace, Name: ing.Name}
	b := boundsOf(ing.Spec.Autoscaling, in.SpecParallelism)
	si := scaleInput{now: in.Now, lag: in.Lag.snapshot, known: in.Lag.have, stale: in.Lag.err != nil, settled: in.Settled}
	si.replicas, si.parallelism = currentSize(in, b)
	a.mu.Lock()
	st, ok := a.states[key]
	if !ok && ing.Status.Autoscaling != nil {
		st.capacity = capacityFromStatus(ing.Status.Autoscaling.PodCapacity)
		st.keptCeilings = slices.Clone(ing.Status.Autoscaling.PartitionCeilings)
	}
	d, st := decideScale(b, st, si)
	a.states[key] = st
	a.mu.Unlock()
	changed := d.replicas != si.replicas || d.parallelism != si.parallelism
	// The series exists from the first decision, at 0, so that increase() sees the first change.
	changes := a.changes.WithLabelValues(ing.Namespace, ing.Name)
	if changed {
		changes.Inc()
	}
	return Decision{Replicas: d.replicas, Parallelism: d.parallelism, Reason: d.reason, Changed: changed, PodCapacity: st.capacity.status(),
		PartitionCeilings: ceilingsStatus(st.ceilings)}
}

// Record publishes what the operator knows of an Ingester after a reconcile: ing is the
// Ingester as sized (its spec.replicas the replicas wanted).
func (a *Autoscaler) Record(ing *spanflowv1alpha1.Ingester, status spanflowv1alpha1.IngesterStatus) {
	l := []string{ing.Namespace, ing.Name}
	a.desiredReplicas.WithLabelValues(l...).Set(float64(ptr.Deref(ing.Spec.Replicas, 1)))
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

// Forget drops an Ingester's memory and metrics: it was deleted, or its autoscaling turned
// off (then only the memory goes).
func (a *Autoscaler) Forget(key types.NamespacedName, deleted bool) {
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

// Enabled is true when the operator, not spec.replicas, sizes the Ingester.
func Enabled(ing *spanflowv1alpha1.Ingester) bool {
	return ing.Spec.Autoscaling != nil && ing.Spec.Autoscaling.Enabled
}

// currentSize is the size the pods were last given: the Deployment's replicas and the
// parallelism in the status (what the ConfigMap holds), or, before there is a Deployment,
// the spec's values within the autoscaling bounds.
func currentSize(in Input, b scaleBounds) (replicas, parallelism int32) {
	replicas = max(in.SpecReplicas, b.minReplicas)
	if b.maxReplicas > 0 {
		replicas = min(replicas, b.maxReplicas)
	}
	if in.Deployed != nil {
		replicas = *in.Deployed
	}
	parallelism = in.Parallelism
	if parallelism == 0 {
		parallelism = in.SpecParallelism
	}
	return replicas, min(max(parallelism, b.minParallelism), b.maxParallelism)
}
