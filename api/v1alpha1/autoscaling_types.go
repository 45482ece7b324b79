package v1alpha1

// ScalingRules pace the autoscaler in one direction (up or down).
type ScalingRules struct {
	// stabilizationWindow: the autoscaler acts on the most conservative recommendation of
	// this window (the lowest when scaling up, the highest when scaling down), so a short
	// dip or burst in the lag does not move the pods. A duration such as 120s; defaults:
	// none up, 120s down.
	// +optional
	StabilizationWindow *Duration `json:"stabilizationWindow,omitempty"`
	// maxReplicaStep bounds the replicas added (scaleUp) or removed (scaleDown) per period.
	// 0 means no bound: the autoscaler goes to the size it computed in one step.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1024
	// +optional
	MaxReplicaStep *int32 `json:"maxReplicaStep,omitempty"`
	// period is the interval maxReplicaStep applies to: a duration such as 15s (the
	// default).
	// +optional
	Period *PositiveDuration `json:"period,omitempty"`
}

// AutoscalingSpec lets the operator size the ingester from the consumer group's lag, with
// two levers: replicas (pods in the consumer group, never more than the topic's
// partitions) and parallelism (deliveries each pod writes at once).
// +kubebuilder:validation:XValidation:rule="!has(self.enabled) || !self.enabled || has(self.targetLagRecords) || has(self.targetLagSeconds)",message="autoscaling needs targetLagRecords or targetLagSeconds"
// +kubebuilder:validation:XValidation:rule="!has(self.maxReplicas) || (has(self.minReplicas) ? self.minReplicas : 1) <= self.maxReplicas",message="autoscaling.minReplicas must not exceed autoscaling.maxReplicas"
// +kubebuilder:validation:XValidation:rule="!has(self.minParallelism) || !has(self.maxParallelism) || self.minParallelism <= self.maxParallelism",message="autoscaling.minParallelism must not exceed autoscaling.maxParallelism"
// +kubebuilder:validation:XValidation:rule="!has(self.activationLagRecords) || (has(self.minReplicas) && self.minReplicas == 0)",message="autoscaling.activationLagRecords applies only with minReplicas 0"
type AutoscalingSpec struct {
	// enabled hands replicas and parallelism to the autoscaler: spec.replicas and
	// spec.parallelism are then ignored (kubectl scale has no effect), and
	// status.autoscaling says what it decided and why.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// minReplicas is the fewest pods. 0 scales to zero while nothing is produced and
	// nothing is left to consume; the pods come back when the lag exceeds
	// activationLagRecords.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1024
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// maxReplicas is the most pods. Defaults to the topic's partition count, which also
	// caps any larger value: a pod beyond it would have no partition to consume.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	// +optional
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`
	// activationLagRecords: with minReplicas 0 and no pods, the lag (records) above which
	// pods start again (default 0: any record). Fewer records wait, however old: the
	// seconds target does not wake the pods.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ActivationLagRecords *int64 `json:"activationLagRecords,omitempty"`
	// minParallelism is the lowest per-pod parallelism the autoscaler sets. Defaults to
	// spec.parallelism (or maxParallelism when that is lower).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MinParallelism *int32 `json:"minParallelism,omitempty"`
	// maxParallelism is the highest per-pod parallelism the autoscaler sets. Defaults to
	// spec.parallelism (or minParallelism when that is higher); with neither bound set,
	// only replicas scale. The pods apply a parallelism change without restarting (they
	// read their mounted configuration again); changes are still paced by cooldown.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxParallelism *int32 `json:"maxParallelism,omitempty"`
	// targetLagRecords is the lag, in records per consuming pod, the autoscaler keeps
	// the group under.
	// +kubebuilder:validation:Minimum=1
	// +optional
	TargetLagRecords *int64 `json:"targetLagRecords,omitempty"`
	// targetLagSeconds is the age of the oldest unconsumed record the autoscaler keeps
	// the group under. It is also the time the autoscaler sizes for to drain a backlog.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	// +optional
	TargetLagSeconds *int32 `json:"targetLagSeconds,omitempty"`
	// scaleUp paces growth. Defaults: no stabilization window, no step bound.
	// +optional
	ScaleUp *ScalingRules `json:"scaleUp,omitempty"`
	// scaleDown paces shrinking. Defaults: a 120s stabilization window, no step bound.
	// When pods removed are needed back within three windows (bursts farther apart than
	// the window), the window is four times as long until the next scale-down or for 30
	// minutes; a window of 0s is never stretched.
	// +optional
	ScaleDown *ScalingRules `json:"scaleDown,omitempty"`
	// cooldown is the least time between two changes, so that the effect of one (pods
	// starting, the group rebalancing) is measured before the next is decided. Adding
	// pods at the same parallelism when behind does not wait for it. A duration such as
	// 60s (the default).
	// +kubebuilder:default="60s"
	// +optional
	Cooldown *Duration `json:"cooldown,omitempty"`
}

// AutoscalingStatus is the autoscaler's latest decision.
type AutoscalingStatus struct {
	// desiredReplicas is the number of pods the autoscaler set.
	DesiredReplicas int32 `json:"desiredReplicas"`
	// desiredParallelism is the per-pod parallelism the autoscaler set.
	DesiredParallelism int32 `json:"desiredParallelism"`
	// reason explains the decision in words: the figures it was made on, or why the
	// autoscaler holds.
	// +optional
	Reason string `json:"reason,omitempty"`
	// ignoredReplicas is spec.replicas when it differs from what the autoscaler set (for
	// example after kubectl scale): while autoscaling is enabled it has no effect.
	// +optional
	IgnoredReplicas *int32 `json:"ignoredReplicas,omitempty"`
	// podCapacity is what the autoscaler measured a pod to consume; kept here so that an
	// operator restart or failover does not have to measure it again.
	// +optional
	PodCapacity *PodCapacity `json:"podCapacity,omitempty"`
	// partitionCeilings are the partitions the autoscaler found slower to consume than
	// their pods: each, alone on a pod with room to spare, fell behind at the rate given.
	// While one is consumed at that rate, sizing counts it as producing that much, and its
	// lag, which no number of pods drains sooner, is not held against the targets. Kept
	// here so that an operator restart does not have to find them again.
	// +optional
	// +listType=map
	// +listMapKey=partition
	// +kubebuilder:validation:MaxItems=10000
	PartitionCeilings []PartitionCeiling `json:"partitionCeilings,omitempty"`
}

// PartitionCeiling is the most a partition was consumed at while the pod holding it
// alone had room to spare.
type PartitionCeiling struct {
	// partition is the partition's ID.
	// +kubebuilder:validation:Minimum=0
	Partition int32 `json:"partition"`
	// recordsPerSecond is the rate the partition was consumed at.
	// +kubebuilder:validation:Minimum=1
	RecordsPerSecond int64 `json:"recordsPerSecond"`
}

// PodCapacity is what an ingester pod was measured to consume while it always had work.
type PodCapacity struct {
	// parallelism is the parallelism of the latest measurement.
	Parallelism int32 `json:"parallelism"`
	// recordsPerSecond is what a pod consumes at that parallelism below any ceiling: pods
	// consume in proportion to their parallelism until they run out of CPU.
	RecordsPerSecond int64 `json:"recordsPerSecond"`
	// highestParallelism is the highest parallelism measured; the autoscaler trusts its
	// model only up to 1.5 times that.
	// +optional
	HighestParallelism int32 `json:"highestParallelism,omitempty"`
	// ceilingRecordsPerSecond, when set, is the most a pod consumes whatever its
	// parallelism: it runs out of CPU there.
	// +optional
	CeilingRecordsPerSecond int64 `json:"ceilingRecordsPerSecond,omitempty"`
	// ceilingParallelism is the parallelism from which the ceiling applies.
	// +optional
	CeilingParallelism int32 `json:"ceilingParallelism,omitempty"`
}
