package v1alpha1

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

// RetrySpec paces retries of failed storage writes: exponential backoff with full jitter.
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || !self.min.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$') || !self.max.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$') || duration(self.min) <= duration(self.max)",message="processing.retry.min must not exceed processing.retry.max"
type RetrySpec struct {
	// min is the first backoff: a duration such as 100ms (the default).
	// +kubebuilder:default="100ms"
	// +optional
	Min *PositiveDuration `json:"min,omitempty"`
	// max caps the backoff: a duration such as 10s (the default).
	// +kubebuilder:default="10s"
	// +optional
	Max *PositiveDuration `json:"max,omitempty"`
	// attempts bounds the tries of one write before the failure policy applies: the
	// dead-letter topic, or pausing the partition until storage recovers. Tries that fail
	// slowly (each after the storage timeout) end sooner: after the third, once they
	// failed for twice the longest their backoff waits (25 s by default).
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
	// messages written to storage in one request. Deliveries of fewer than a tenth as many
	// spans (a topic of many partitions at a modest rate) written at about the same time
	// share one request of up to this many.
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	BatchSize int32 `json:"batchSize,omitempty"`
	// batchLinger is the longest the first message of a delivery waits for more, and the
	// longest a delivery of fewer than a tenth of batchSize spans waits for others to share
	// its write: a duration such as 100ms (the default).
	// +kubebuilder:default="100ms"
	// +optional
	BatchLinger *PositiveDuration `json:"batchLinger,omitempty"`
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
