package autoscale

import (
	"time"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

// ScaleAdvisor runs the autoscaling policy on a topic outside Kubernetes (spanflow demo):
// what the operator would set for a consumer group of a given size, and why.
type ScaleAdvisor struct {
	lag    *LagObserver
	target Target
	bounds scaleBounds
	state  scaleState
}

// Advice is the policy's verdict.
type Advice struct {
	Replicas, Parallelism int32
	Reason                string
}

// NewScaleAdvisor returns an advisor for a plaintext cluster's topic and group, with the
// settings of an Ingester's spec.autoscaling and spec.parallelism.
func NewScaleAdvisor(lag *LagObserver, brokers []string, topic, group string, spec spanflowv1alpha1.AutoscalingSpec, parallelism int32) *ScaleAdvisor {
	return &ScaleAdvisor{lag: lag, bounds: boundsOf(&spec, parallelism),
		target: Target{Brokers: brokers, Topic: topic, Group: group, FromEarliest: true}}
}

// Advise decides for a group of replicas pods at parallelism, all running and ready.
func (a *ScaleAdvisor) Advise(now time.Time, replicas, parallelism int32) Advice {
	obs := a.lag.Observe(a.target)
	d, st := decideScale(a.bounds, a.state, scaleInput{now: now, lag: obs.snapshot, known: obs.have, stale: obs.err != nil,
		replicas: replicas, parallelism: parallelism, settled: true})
	a.state = st
	return Advice{Replicas: d.replicas, Parallelism: d.parallelism, Reason: d.reason}
}
