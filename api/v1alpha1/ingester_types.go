package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Encoding names the format of the messages on the Kafka topic.
// +kubebuilder:validation:Enum=otlp_proto;otlp_json;jaeger_proto
type Encoding string

const (
	// EncodingOTLPProto is an OTLP ExportTraceServiceRequest in protobuf, as the
	// OpenTelemetry Collector's Kafka exporter writes by default.
	EncodingOTLPProto Encoding = "otlp_proto"
	// EncodingOTLPJSON is an OTLP ExportTraceServiceRequest in OTLP/JSON.
	EncodingOTLPJSON Encoding = "otlp_json"
	// EncodingJaegerProto is one Jaeger model.Span in protobuf per message, as the Jaeger
	// collector's Kafka writer produces.
	EncodingJaegerProto Encoding = "jaeger_proto"
)

// StorageType names the kind of trace storage the ingester writes to.
// +kubebuilder:validation:Enum=blackhole
type StorageType string

const (
	// StorageBlackhole counts spans and drops them; for trials and benchmarks.
	StorageBlackhole StorageType = "blackhole"
)

// InitialOffset says where a consumer group with no committed offset starts reading.
// +kubebuilder:validation:Enum=earliest;latest
type InitialOffset string

const (
	// InitialOffsetEarliest starts at the oldest retained record, so nothing is missed.
	InitialOffsetEarliest InitialOffset = "earliest"
	// InitialOffsetLatest starts at the end of the topic and ignores the backlog.
	InitialOffsetLatest InitialOffset = "latest"
)

// KafkaSpec says where the spans come from.
type KafkaSpec struct {
	// brokers are the bootstrap addresses of the Kafka cluster, as host:port.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=atomic
	// +required
	Brokers []string `json:"brokers"`

	// topic is the Kafka topic the spans are read from.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	// +required
	Topic string `json:"topic"`

	// consumerGroup is the Kafka consumer group the ingester pods join; its committed
	// offsets are the ingester's progress. Defaults to "<namespace>/<name>" of this Ingester.
	// Changing it starts over from initialOffset, so it cannot be changed once set.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="consumerGroup is immutable: a new group would re-read or skip the topic"
	// +optional
	ConsumerGroup string `json:"consumerGroup,omitempty"`

	// initialOffset is where a consumer group with no committed offset starts:
	// "earliest" reads the whole retained topic, "latest" only what arrives from now on.
	// +kubebuilder:default=earliest
	// +optional
	InitialOffset InitialOffset `json:"initialOffset,omitempty"`
}

// StorageSpec says where the spans go.
type StorageSpec struct {
	// type is the kind of trace storage: "blackhole" counts and drops spans.
	// +kubebuilder:default=blackhole
	// +optional
	Type StorageType `json:"type,omitempty"`
}

// IngesterSpec is the desired state of an Ingester.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.kafka.consumerGroup) || has(self.kafka.consumerGroup)",message="spec.kafka.consumerGroup cannot be removed once set"
type IngesterSpec struct {
	// kafka says which cluster, topic and consumer group the spans are read from.
	// +required
	Kafka KafkaSpec `json:"kafka"`

	// encoding is the format of the messages on the topic; one topic has one encoding.
	// +kubebuilder:default=otlp_proto
	// +optional
	Encoding Encoding `json:"encoding,omitempty"`

	// storage says where the decoded spans are written.
	// +kubebuilder:default={}
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`

	// replicas is the number of ingester pods, each a member of the consumer group.
	// Pods beyond the topic's partition count sit idle.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1024
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// parallelism is the number of messages each pod processes at once. Messages wait for
	// their batch's storage write together, so it also bounds the messages per write.
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	Parallelism *int32 `json:"parallelism,omitempty"`
}

// Condition types of an Ingester.
const (
	// ConditionReady is True when the ingester Deployment is available with its desired replicas.
	ConditionReady = "Ready"
)

// Condition reasons of an Ingester.
const (
	// ReasonAvailable: every desired ingester pod is ready.
	ReasonAvailable = "Available"
	// ReasonRollingOut: the Deployment is creating or updating pods.
	ReasonRollingOut = "RollingOut"
	// ReasonScaledToZero: spec.replicas is 0, so nothing runs and nothing is consumed.
	ReasonScaledToZero = "ScaledToZero"
	// ReasonApplyFailed: the operator could not write the objects that run the ingester.
	ReasonApplyFailed = "ApplyFailed"
)

// IngesterStatus is the observed state of an Ingester.
type IngesterStatus struct {
	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the Ingester's state: Ready says whether it is consuming.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// replicas is the number of ingester pods that exist.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// readyReplicas is the number of ingester pods that are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// parallelism is the per-pod parallelism the running pods were given.
	// +optional
	Parallelism int32 `json:"parallelism,omitempty"`

	// selector is the label selector of the ingester pods, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`
}

// Ingester runs Kafka-to-trace-storage ingestion: pods in one consumer group that read
// spans from a topic and write them to trace storage, committing offsets only after
// the write succeeded.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=sfi,categories=spanflow
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.replicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Parallelism",type=integer,JSONPath=`.status.parallelism`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 54",message="metadata.name must be at most 54 characters: it names the ingester's Deployment and pod labels"
type Ingester struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the Ingester.
	// +required
	Spec IngesterSpec `json:"spec"`

	// status is the state the operator observed.
	// +optional
	Status IngesterStatus `json:"status,omitempty"`
}

// IngesterList is a list of Ingesters.
// +kubebuilder:object:root=true
type IngesterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Ingester `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Ingester{}, &IngesterList{})
}
