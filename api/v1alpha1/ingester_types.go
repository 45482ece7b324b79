package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Encoding names the format of the messages on the Kafka topic.
// +kubebuilder:validation:Enum=otlp_proto;otlp_json;jaeger_proto;jaeger_json;zipkin_json;zipkin_proto;zipkin_thrift
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
	// EncodingJaegerJSON is one Jaeger model.Span in protobuf-JSON per message.
	EncodingJaegerJSON Encoding = "jaeger_json"
	// EncodingZipkinJSON is a Zipkin v2 JSON array of spans.
	EncodingZipkinJSON Encoding = "zipkin_json"
	// EncodingZipkinProto is a Zipkin v2 protobuf ListOfSpans.
	EncodingZipkinProto Encoding = "zipkin_proto"
	// EncodingZipkinThrift is a Zipkin v1 Thrift list of spans.
	EncodingZipkinThrift Encoding = "zipkin_thrift"
)

// StorageType names the kind of trace storage the ingester writes to.
// +kubebuilder:validation:Enum=blackhole;file;otlp
type StorageType string

const (
	// StorageBlackhole counts spans and drops them; for trials and benchmarks.
	StorageBlackhole StorageType = "blackhole"
	// StorageFile writes OTLP JSON lines to rotating files on a volume.
	StorageFile StorageType = "file"
	// StorageOTLP sends the spans to an OTLP backend (Jaeger v2, Tempo, a Collector).
	StorageOTLP StorageType = "otlp"
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

// SASLMechanism names a SASL authentication mechanism.
// +kubebuilder:validation:Enum=PLAIN;SCRAM-SHA-256;SCRAM-SHA-512
type SASLMechanism string

// OnDecodeError says what happens to a message that cannot be decoded.
// +kubebuilder:validation:Enum=fail;deadletter;skip
type OnDecodeError string

const (
	// OnDecodeErrorFail pauses the partition until the message can be handled: nothing is
	// skipped unless told to.
	OnDecodeErrorFail OnDecodeError = "fail"
	// OnDecodeErrorDeadletter produces the message to processing.deadLetterTopic.
	OnDecodeErrorDeadletter OnDecodeError = "deadletter"
	// OnDecodeErrorSkip counts and logs the message and moves on.
	OnDecodeErrorSkip OnDecodeError = "skip"
)

// SecretKeyRef names one key of a Secret in the Ingester's namespace.
type SecretKeyRef struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// key in the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Key string `json:"key"`
}

// KafkaTLS configures TLS to the brokers.
type KafkaTLS struct {
	// enabled turns TLS on.
	// +kubebuilder:default=true
	// +optional
	Enabled bool `json:"enabled"`
	// ca is the PEM bundle of the CAs that sign the brokers' certificates. Unset: the
	// image's system roots.
	// +optional
	CA *SecretKeyRef `json:"ca,omitempty"`
	// clientCertSecretName names a kubernetes.io/tls Secret (keys tls.crt and tls.key)
	// holding the client certificate for mutual TLS.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ClientCertSecretName string `json:"clientCertSecretName,omitempty"`
	// insecureSkipVerify accepts any broker certificate. For trials only.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// KafkaSASL configures SASL authentication to the brokers.
type KafkaSASL struct {
	// mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	// +required
	Mechanism SASLMechanism `json:"mechanism"`
	// credentialsSecretName names a Secret with the keys username and password.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	CredentialsSecretName string `json:"credentialsSecretName"`
}

// KafkaSpec says where the spans come from.
// +kubebuilder:validation:XValidation:rule="!has(self.heartbeatInterval) || !has(self.sessionTimeout) || duration(self.heartbeatInterval) < duration(self.sessionTimeout)",message="kafka.heartbeatInterval must be shorter than kafka.sessionTimeout"
type KafkaSpec struct {
	// brokers are the bootstrap addresses of the Kafka cluster, as host:port.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[^:]+:[0-9]{1,5}$`
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
	// It cannot change once set: a new group would re-read or skip the topic.
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

	// tls encrypts the connections to the brokers.
	// +optional
	TLS *KafkaTLS `json:"tls,omitempty"`

	// sasl authenticates to the brokers.
	// +optional
	SASL *KafkaSASL `json:"sasl,omitempty"`

	// sessionTimeout is how long the group coordinator waits for a heartbeat before it
	// gives a pod's partitions to the others.
	// +kubebuilder:default="30s"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	SessionTimeout *metav1.Duration `json:"sessionTimeout,omitempty"`

	// heartbeatInterval is how often pods tell the coordinator they are alive.
	// +kubebuilder:default="3s"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	HeartbeatInterval *metav1.Duration `json:"heartbeatInterval,omitempty"`

	// rebalanceTimeout is how long the coordinator waits for all members to rejoin in a
	// rebalance.
	// +kubebuilder:default="30s"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	RebalanceTimeout *metav1.Duration `json:"rebalanceTimeout,omitempty"`

	// maxWait is how long a fetch waits for data before returning what it has.
	// +kubebuilder:default="500ms"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	MaxWait *metav1.Duration `json:"maxWait,omitempty"`

	// maxFetchBytes bounds the bytes one fetch returns per partition.
	// +kubebuilder:default=10485760
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=1073741824
	// +optional
	MaxFetchBytes *int32 `json:"maxFetchBytes,omitempty"`

	// commitInterval is the longest a finished offset waits to be committed to the group
	// (offsets are committed as soon as deliveries finish; this paces retries of a failed
	// commit).
	// +kubebuilder:default="1s"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	CommitInterval *metav1.Duration `json:"commitInterval,omitempty"`
}

// FileStorage writes OTLP JSON lines to rotating files.
type FileStorage struct {
	// path is the directory of the files in the ingester pod; a volume is mounted there.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	// +required
	Path string `json:"path"`
	// maxFileSize rotates to a new file once the current one reaches it.
	// +kubebuilder:default="64Mi"
	// +optional
	MaxFileSize *resource.Quantity `json:"maxFileSize,omitempty"`
	// gzip compresses the files (.jsonl.gz); each batch is flushed as a complete block
	// before it counts as written.
	// +optional
	Gzip bool `json:"gzip,omitempty"`
	// claimName names a PersistentVolumeClaim to keep the files on. Unset: an emptyDir,
	// which lives only as long as the pod.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ClaimName string `json:"claimName,omitempty"`
}

// OTLPHeader is a header sent with every export: a value, or a key of a Secret.
// +kubebuilder:validation:XValidation:rule="has(self.value) != has(self.valueFrom)",message="a header has either value or valueFrom"
type OTLPHeader struct {
	// name of the header, e.g. authorization or x-scope-orgid.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +required
	Name string `json:"name"`
	// value of the header, for values that are not secret.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Value string `json:"value,omitempty"`
	// valueFrom takes the value from a Secret; it reaches the pods as an environment
	// variable from the Secret, never through the ConfigMap.
	// +optional
	ValueFrom *SecretKeyRef `json:"valueFrom,omitempty"`
}

// OTLPTLS configures TLS to the OTLP backend.
type OTLPTLS struct {
	// ca is the PEM bundle of the CAs that sign the backend's certificate. Unset: the
	// image's system roots.
	// +optional
	CA *SecretKeyRef `json:"ca,omitempty"`
	// clientCertSecretName names a kubernetes.io/tls Secret for mutual TLS.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ClientCertSecretName string `json:"clientCertSecretName,omitempty"`
	// insecureSkipVerify accepts any backend certificate. For trials only.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// OTLPStorage sends spans to an OTLP backend.
// +kubebuilder:validation:XValidation:rule="!(has(self.insecure) && self.insecure && has(self.tls))",message="storage.otlp.insecure excludes storage.otlp.tls"
type OTLPStorage struct {
	// endpoint is host:port for grpc, or a URL for http (/v1/traces is added when the URL
	// has no path).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +required
	Endpoint string `json:"endpoint"`
	// protocol is grpc or http (protobuf).
	// +kubebuilder:validation:Enum=grpc;http
	// +kubebuilder:default=grpc
	// +optional
	Protocol string `json:"protocol,omitempty"`
	// insecure sends in plaintext, without TLS.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
	// tls configures TLS when insecure is false.
	// +optional
	TLS *OTLPTLS `json:"tls,omitempty"`
	// headers are sent with every export, e.g. an API key from a Secret.
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=name
	// +optional
	Headers []OTLPHeader `json:"headers,omitempty"`
	// compression of the exports.
	// +kubebuilder:validation:Enum=gzip;none
	// +kubebuilder:default=gzip
	// +optional
	Compression string `json:"compression,omitempty"`
	// timeout bounds one export.
	// +kubebuilder:default="10s"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// StorageSpec says where the spans go.
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'file' || has(self.file)",message="storage.file is required when storage.type is file"
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'otlp' || has(self.otlp)",message="storage.otlp is required when storage.type is otlp"
type StorageSpec struct {
	// type is the kind of trace storage: "otlp" sends to an OTLP backend, "file" writes
	// OTLP JSON lines to files, "blackhole" counts and drops spans.
	// +kubebuilder:default=blackhole
	// +optional
	Type StorageType `json:"type,omitempty"`
	// file configures the file store.
	// +optional
	File *FileStorage `json:"file,omitempty"`
	// otlp configures the OTLP exporter.
	// +optional
	OTLP *OTLPStorage `json:"otlp,omitempty"`
}

// RetrySpec paces retries of failed storage writes: exponential backoff with full jitter.
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || duration(self.min) <= duration(self.max)",message="processing.retry.min must not exceed processing.retry.max"
type RetrySpec struct {
	// min is the first backoff.
	// +kubebuilder:default="100ms"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	Min *metav1.Duration `json:"min,omitempty"`
	// max caps the backoff.
	// +kubebuilder:default="10s"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	Max *metav1.Duration `json:"max,omitempty"`
	// attempts bounds the tries of one write before the failure policy applies: the
	// dead-letter topic, or pausing the partition until storage recovers.
	// +kubebuilder:default=8
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Attempts *int32 `json:"attempts,omitempty"`
}

// ProcessingSpec tunes how messages become storage writes and what happens on failure.
// +kubebuilder:validation:XValidation:rule="!has(self.onDecodeError) || self.onDecodeError != 'deadletter' || has(self.deadLetterTopic)",message="processing.onDecodeError deadletter needs processing.deadLetterTopic"
type ProcessingSpec struct {
	// batchSize is about how many spans a delivery holds: a run of one partition's
	// messages written to storage in one request.
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	BatchSize int32 `json:"batchSize,omitempty"`
	// batchLinger is the longest the first message of a delivery waits for more.
	// +kubebuilder:default="100ms"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	BatchLinger *metav1.Duration `json:"batchLinger,omitempty"`
	// retry paces the retries of failed writes.
	// +kubebuilder:default={}
	// +optional
	Retry *RetrySpec `json:"retry,omitempty"`
	// onDecodeError is what happens to an undecodable message: fail pauses the partition
	// (nothing is skipped unless told), deadletter produces it to deadLetterTopic, skip
	// counts, logs and drops it.
	// +kubebuilder:default=fail
	// +optional
	OnDecodeError OnDecodeError `json:"onDecodeError,omitempty"`
	// deadLetterTopic receives, unchanged and with headers naming their origin and error,
	// messages that could not be written after the retries. Unset: such a partition
	// pauses until storage recovers.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	// +optional
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`
}

// PodTemplate customizes the ingester pods.
type PodTemplate struct {
	// image of the ingester container. Defaults to the operator's own image.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Image string `json:"image,omitempty"`
	// imagePullPolicy of the ingester container.
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// imagePullSecrets for a private registry.
	// +listType=atomic
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// resources of the ingester container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// nodeSelector constrains the nodes the pods run on.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// affinity of the pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// tolerations of the pods.
	// +listType=atomic
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// topologySpreadConstraints spread the pods across zones or nodes.
	// +listType=atomic
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
	// priorityClassName of the pods.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
	// podAnnotations are added to the pods (the operator's own annotations win).
	// +optional
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`
	// podLabels are added to the pods (the selector labels win).
	// +optional
	PodLabels map[string]string `json:"podLabels,omitempty"`
	// env adds environment variables to the ingester container, for example GOMEMLIMIT.
	// Names starting with SPANFLOW_ are refused: they would override the configuration the
	// operator renders (topic, group, parallelism) behind its back.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self.all(e, !e.name.startsWith('SPANFLOW_'))",message="template.env must not set SPANFLOW_* variables: they override the configuration the operator renders; set the Ingester's fields instead"
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`
	// serviceAccountName runs the pods as an existing ServiceAccount instead of the one the
	// operator creates (which has no API rights).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// podSecurityContext replaces the pods' restricted default.
	// +optional
	PodSecurityContext *corev1.PodSecurityContext `json:"podSecurityContext,omitempty"`
	// securityContext replaces the ingester container's restricted default.
	// +optional
	SecurityContext *corev1.SecurityContext `json:"securityContext,omitempty"`
}

// ScalingRules pace the autoscaler in one direction (up or down).
type ScalingRules struct {
	// stabilizationWindow: the autoscaler acts on the most conservative recommendation of
	// this window (the lowest when scaling up, the highest when scaling down), so a short
	// dip or burst in the lag does not move the pods.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	StabilizationWindow *metav1.Duration `json:"stabilizationWindow,omitempty"`
	// maxReplicaStep bounds the replicas added (scaleUp) or removed (scaleDown) per period.
	// 0 means no bound: the autoscaler goes to the size it computed in one step.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1024
	// +optional
	MaxReplicaStep *int32 `json:"maxReplicaStep,omitempty"`
	// period is the interval maxReplicaStep applies to.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	Period *metav1.Duration `json:"period,omitempty"`
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
	// pods start again.
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
	// only replicas scale. A parallelism change restarts the pods, so it is rate-limited
	// by cooldown.
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
	// +optional
	ScaleDown *ScalingRules `json:"scaleDown,omitempty"`
	// cooldown is the least time between two changes, so that the effect of one (pods
	// starting, the group rebalancing) is measured before the next is decided. Adding
	// pods at the same parallelism when behind does not wait for it.
	// +kubebuilder:default="60s"
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	Cooldown *metav1.Duration `json:"cooldown,omitempty"`
}

// IngesterSpec is the desired state of an Ingester.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.kafka.consumerGroup) || has(self.kafka.consumerGroup)",message="spec.kafka.consumerGroup cannot be removed once set"
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
	// +kubebuilder:default={}
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`

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
	// +kubebuilder:default=8
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Parallelism *int32 `json:"parallelism,omitempty"`

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
	// ReasonSecretMissing: a Secret or a key the spec references does not exist.
	ReasonSecretMissing = "SecretMissing"
	// ReasonRolloutStuck: the Deployment exceeded its progress deadline (pods crash, do not
	// become ready, or cannot be scheduled).
	ReasonRolloutStuck = "RolloutStuck"
	// ReasonKafkaUnreachable: the operator cannot reach the brokers with the Ingester's
	// settings and credentials (the pods most likely cannot either).
	ReasonKafkaUnreachable = "KafkaUnreachable"
	// ReasonTopicNotFound: the brokers answer but have no such topic.
	ReasonTopicNotFound = "TopicNotFound"
	// ReasonAutoscaled (event): the autoscaler changed replicas or parallelism.
	ReasonAutoscaled = "Autoscaled"
	// ReasonReplicasIgnored (event): spec.replicas changed while autoscaling owns the replicas.
	ReasonReplicasIgnored = "ReplicasIgnored"
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
	// stale is true when the latest look at Kafka failed: records and seconds are the last
	// known values, and nothing is decided on them.
	// +optional
	Stale bool `json:"stale,omitempty"`
	// observedTime is when Kafka first showed these values (unchanged values keep it).
	// +optional
	ObservedTime *metav1.Time `json:"observedTime,omitempty"`
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
	Replicas int32 `json:"replicas,omitempty"`

	// readyReplicas is the number of ingester pods that are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

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

	// message summarizes the state for people: what is wrong, or that all is well.
	// +optional
	Message string `json:"message,omitempty"`
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
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.lag.records`
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
