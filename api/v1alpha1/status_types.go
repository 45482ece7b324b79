package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Condition types of an Ingester.
const (
	// ConditionReady is True when every desired ingester pod runs the current spec and is ready.
	ConditionReady = "Ready"
	// ConditionProgressing is True while pods are being created, updated or removed.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when the Ingester cannot reach or keep its desired state
	// without help: a missing Secret, a stuck rollout, a write the API server refused.
	ConditionDegraded = "Degraded"
)

// Condition reasons of an Ingester.
const (
	// ReasonAvailable: every desired ingester pod is ready (Ready).
	ReasonAvailable = "Available"
	// ReasonRollingOut: the Deployment is creating, updating or removing pods.
	ReasonRollingOut = "RollingOut"
	// ReasonScaledToZero: spec.replicas is 0, so nothing runs and nothing is consumed.
	ReasonScaledToZero = "ScaledToZero"
	// ReasonPaused: spec.paused is true; the operator changes nothing.
	ReasonPaused = "Paused"
	// ReasonApplyFailed: the API server refused the objects that run the ingester.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonSecretMissing: a Secret or a key the spec references does not exist, or holds
	// what cannot be used (a CA bundle without a certificate, empty SASL credentials).
	ReasonSecretMissing = "SecretMissing"
	// ReasonRolloutStuck: the Deployment exceeded its progress deadline (pods crash, do not
	// become ready, or cannot be scheduled).
	ReasonRolloutStuck = "RolloutStuck"
	// ReasonKafkaUnreachable: the operator cannot reach the brokers with the Ingester's
	// settings and credentials (the pods most likely cannot either).
	ReasonKafkaUnreachable = "KafkaUnreachable"
	// ReasonTopicNotFound: the brokers answer but have no such topic.
	ReasonTopicNotFound = "TopicNotFound"
	// ReasonResourceConflict: an object the Ingester needs (its ConfigMap, Deployment, …)
	// exists but is not controlled by this Ingester; the operator leaves it alone.
	ReasonResourceConflict = "ResourceConflict"
	// ReasonInvalidSpec: a value the API server accepted cannot run (the ingester's own
	// validation refuses it, or it was stored before the schema refused it).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonNotAllowed: the pod template asks for what the operator was not started to
	// allow (privileged or root pods, added capabilities, another ServiceAccount).
	ReasonNotAllowed = "NotAllowed"
	// ReasonConsumerGroupChanged: the spec names a consumer group other than the one in
	// use; the group cannot change.
	ReasonConsumerGroupChanged = "ConsumerGroupChanged"
	// ReasonConsumerGroupShared: another Ingester consumes with the same consumer group
	// on the same Kafka cluster: their pods split the partitions between them, and each
	// one's autoscaler sizes for the other's lag too. Reported; the spec is applied.
	ReasonConsumerGroupShared = "ConsumerGroupShared"
	// ReasonScalerConflict: a HorizontalPodAutoscaler (or a KEDA ScaledObject, through the
	// HPA it makes) fights the operator over the replicas: it aims at the ingester
	// Deployment, whose replicas the operator puts back, or at the Ingester while
	// spec.autoscaling is enabled, so that it changes nothing. The message names each one
	// and what to do. Reported; the spec is applied.
	ReasonScalerConflict = "ScalerConflict"
	// ReasonPodCreationFailed: the Deployment cannot create pods (admission refused them,
	// a quota is exhausted, …); the message is the Deployment's.
	ReasonPodCreationFailed = "PodCreationFailed"
	// ReasonPodsFailing: ingester pods exist but cannot run: they crash (the message gives
	// the ingester's last words), are killed for exceeding their memory limit, their image
	// cannot be pulled, or no node can take them.
	ReasonPodsFailing = "PodsFailing"
	// ReasonStorageUnavailable: storage (or the dead-letter topic) fails the writes of
	// ingester pods, which hold their partitions, retry, and are not ready meanwhile; the
	// lag grows, nothing is skipped. Reported from the pods' load reports.
	ReasonStorageUnavailable = "StorageUnavailable"
	// ReasonMessageHeld: ingester pods hold a partition at a message that has nowhere to
	// go — it cannot be decoded and spec.processing.onDecodeError is fail, or storage
	// refuses it for good and there is no dead-letter topic: nothing after it in that
	// partition is read, and the pods are not ready. Reported from their load reports.
	ReasonMessageHeld = "MessageHeld"
	// ReasonPodsNotReady: ingester pods run but have not been ready for two minutes, for a
	// reason only their logs give (the brokers refusing them, the consumer group).
	ReasonPodsNotReady = "PodsNotReady"
	// ReasonRolloutPaused: someone paused the Deployment's rollout (kubectl rollout pause)
	// while pods of an earlier spec run; it waits for kubectl rollout resume.
	ReasonRolloutPaused = "RolloutPaused"
	// ReasonAutoscaled (event): the autoscaler changed replicas or parallelism.
	ReasonAutoscaled = "Autoscaled"
	// ReasonReplicasIgnored (event): spec.replicas changed while autoscaling owns the replicas.
	ReasonReplicasIgnored = "ReplicasIgnored"
	// ReasonDeploymentScaledBack (event): someone else scaled the ingester Deployment itself
	// (kubectl scale deployment, an HPA or KEDA aimed at it); the operator put its replicas
	// back. Scale the Ingester instead: its scale subresource. An HPA that does so is also
	// reported in Degraded (ScalerConflict).
	ReasonDeploymentScaledBack = "DeploymentScaledBack"
	// ReasonAsExpected: nothing is wrong (Degraded False) or nothing is changing
	// (Progressing False).
	ReasonAsExpected = "AsExpected"
)

// LagStatus is how far the consumer group is behind the topic.
type LagStatus struct {
	// records is the number of records produced but not yet committed, over all partitions.
	Records int64 `json:"records"`
	// seconds is how old the oldest uncommitted record is, estimated from how fast the
	// log end grew past the committed offsets.
	Seconds int64 `json:"seconds"`
	// openTransactionRecords, with kafka.isolationLevel read_committed, is how many
	// records wait behind transactions still open: the pods may not read them until the
	// transactions end (their producers' transaction.timeout.ms at most), so they are not
	// in records. Spans that come late with no lag shown are here.
	// +optional
	OpenTransactionRecords int64 `json:"openTransactionRecords,omitempty"`
	// stale is true when the latest look at Kafka failed: records and seconds are the last
	// known values, and nothing is decided on them.
	// +optional
	Stale bool `json:"stale,omitempty"`
	// observedTime is when Kafka first showed these values (unchanged values keep it).
	// +optional
	ObservedTime *metav1.Time `json:"observedTime,omitempty"`
}

// IngesterStatus is the observed state of an Ingester.
type IngesterStatus struct {
	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (consuming with every desired pod), Progressing (pods changing),
	// Degraded (needs attention; the message says why).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// replicas is the number of ingester pods that exist.
	// +optional
	Replicas int32 `json:"replicas"`

	// readyReplicas is the number of ingester pods that are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`

	// parallelism is the per-pod parallelism the pods are configured with.
	// +optional
	Parallelism int32 `json:"parallelism,omitempty"`

	// selector is the label selector of the ingester pods, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`

	// partitions is the number of partitions of the topic.
	// +optional
	Partitions int32 `json:"partitions,omitempty"`

	// lag is how far the consumer group is behind the topic.
	// +optional
	Lag *LagStatus `json:"lag,omitempty"`

	// autoscaling is what the autoscaler decided last, when spec.autoscaling is enabled.
	// +optional
	Autoscaling *AutoscalingStatus `json:"autoscaling,omitempty"`

	// lastScaleTime is when replicas or parallelism last changed.
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`

	// consumerGroup is the Kafka consumer group the pods run in, recorded when the
	// Ingester was first applied; it never changes afterwards.
	// +optional
	ConsumerGroup string `json:"consumerGroup,omitempty"`

	// state is one word for kubectl get: the reason of what needs attention first
	// (Degraded, then Paused), otherwise the Ready reason.
	// +optional
	State string `json:"state,omitempty"`

	// message summarizes the state for people: what is wrong, or that all is well.
	// +optional
	Message string `json:"message,omitempty"`
}

// Ingester runs Kafka-to-trace-storage ingestion: pods in one consumer group that read
// spans from a topic and write them to trace storage, committing offsets only after
// the write succeeded.
