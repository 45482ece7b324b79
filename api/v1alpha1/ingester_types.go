package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IngesterSpec is the desired state of an Ingester.
// +kubebuilder:validation:XValidation:rule="!has(self.processing) || !has(self.processing.deadLetterTopic) || self.processing.deadLetterTopic != self.kafka.topic",message="spec.processing.deadLetterTopic must differ from spec.kafka.topic, or dead letters would be consumed again"
type IngesterSpec struct {
	// kafka says which cluster, topic and consumer group the spans are read from.
	// +required
	Kafka KafkaSpec `json:"kafka"`

	// encoding is the format of the messages on the topic; one topic has one encoding.
	// +kubebuilder:default=otlp_proto
	// +optional
	Encoding Encoding `json:"encoding,omitempty"`

	// storage says where the decoded spans are written.
	// +required
	Storage StorageSpec `json:"storage"`

	// processing tunes batching, retries and the failure policy.
	// +kubebuilder:default={}
	// +optional
	Processing ProcessingSpec `json:"processing,omitempty"`

	// replicas is the number of ingester pods, each a member of the consumer group.
	// Pods beyond the topic's partition count sit idle.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1024
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// parallelism is the number of deliveries each pod processes at once: its storage
	// writes in flight. A delivery is a run of one partition's messages of about
	// processing.batchSize spans, decoded and written in one request; raise parallelism for
	// a backend with high latency, not for more CPU (a pod decodes on all its cores anyway).
	// Running pods apply a change without restarting, within about a minute.
	// +kubebuilder:default=8
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Parallelism *int32 `json:"parallelism,omitempty"`

	// maxInFlightBytes bounds the message bytes of the deliveries a pod holds in flight at
	// once, whatever the parallelism, and the fetched responses its partitions hold
	// (shared among them: see kafka.maxFetchBytes): what sizes a pod's memory for
	// messages. A quantity of bytes such as 64Mi (the default), at least 1Mi.
	// +kubebuilder:default="64Mi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('1Mi')) >= 0",message="spec.maxInFlightBytes must be at least 1Mi"
	// +optional
	MaxInFlightBytes *resource.Quantity `json:"maxInFlightBytes,omitempty"`

	// autoscaling lets the operator set replicas and parallelism from the consumer lag.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// paused stops the operator from changing the ingester's objects: edits to the spec
	// wait until paused is false. The pods keep running as they are.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// template customizes the ingester pods.
	// +optional
	Template PodTemplate `json:"template,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=sfi,categories=spanflow
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.replicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Parallelism",type=integer,JSONPath=`.status.parallelism`
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.lag.records`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 54",message="metadata.name must be at most 54 characters: it names the ingester's Deployment and pod labels",fieldPath=".metadata"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label (lowercase letters, digits and '-', starting with a letter; no dots): it names the ingester's Service",fieldPath=".metadata"
// The group may be written out (or left out again) when it is the default one: the
// namespace is out of CEL's reach, so the operator holds back a spec whose group is not
// the one in use (ConsumerGroupChanged).
// +kubebuilder:validation:XValidation:rule="has(oldSelf.spec.kafka.consumerGroup) == has(self.spec.kafka.consumerGroup) || (has(self.spec.kafka.consumerGroup) ? self.spec.kafka.consumerGroup : oldSelf.spec.kafka.consumerGroup).endsWith('/' + self.metadata.name)",message="spec.kafka.consumerGroup cannot be added or removed once the Ingester exists, unless it is the default <namespace>/<name>: the pods would move to another group and re-read or skip the topic (status.consumerGroup is the group in use)",fieldPath=".spec.kafka.consumerGroup"
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
