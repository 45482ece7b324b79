package v1alpha1

// InitialOffset says where a consumer group with no committed offset starts reading.
// +kubebuilder:validation:Enum=earliest;latest
type InitialOffset string

const (
	// InitialOffsetEarliest starts at the oldest retained record, so nothing is missed.
	InitialOffsetEarliest InitialOffset = "earliest"
	// InitialOffsetLatest starts at the end of the topic and ignores the backlog.
	InitialOffsetLatest InitialOffset = "latest"
)

// IsolationLevel says which records of transactional producers are read.
// +kubebuilder:validation:Enum=read_uncommitted;read_committed
type IsolationLevel string

const (
	// IsolationReadUncommitted reads every record, those of transactions aborted or still
	// open too: Kafka's default.
	IsolationReadUncommitted IsolationLevel = "read_uncommitted"
	// IsolationReadCommitted reads only what transactional producers committed, up to the
	// oldest transaction still open.
	IsolationReadCommitted IsolationLevel = "read_committed"
)

// SASLMechanism names a SASL authentication mechanism.
// +kubebuilder:validation:Enum=PLAIN;SCRAM-SHA-256;SCRAM-SHA-512
type SASLMechanism string

// SecretKeyRef names one key of a Secret in the Ingester's namespace.
type SecretKeyRef struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Name string `json:"name"`
	// key in the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Key string `json:"key"`
}

// KafkaTLS configures TLS to the brokers.
// +kubebuilder:validation:XValidation:rule="self.enabled || (!has(self.ca) && !has(self.clientCertSecretName) && !(has(self.insecureSkipVerify) && self.insecureSkipVerify))",message="kafka.tls.enabled is false: remove ca, clientCertSecretName and insecureSkipVerify, or enable TLS"
// +kubebuilder:validation:XValidation:rule="!(has(self.ca) && has(self.insecureSkipVerify) && self.insecureSkipVerify)",message="kafka.tls.insecureSkipVerify accepts any certificate, so kafka.tls.ca would be ignored: set one or the other"
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
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
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
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	CredentialsSecretName string `json:"credentialsSecretName"`
}

// KafkaSpec says where the spans come from.
// The duration rules compare only well-formed durations: a malformed one is reported by
// its own field's pattern, not as a broken comparison.
// +kubebuilder:validation:XValidation:rule="!has(self.heartbeatInterval) || !has(self.sessionTimeout) || !self.heartbeatInterval.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$') || !self.sessionTimeout.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$') || duration(self.sessionTimeout) == duration('0s') || duration(self.heartbeatInterval) < duration(self.sessionTimeout)",message="kafka.heartbeatInterval must be shorter than kafka.sessionTimeout"
// +kubebuilder:validation:XValidation:rule="!has(self.drainTimeout) || !has(self.rebalanceTimeout) || !self.drainTimeout.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$') || !self.rebalanceTimeout.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$') || duration(self.drainTimeout) < duration(self.rebalanceTimeout)",message="kafka.drainTimeout must be shorter than kafka.rebalanceTimeout: a pod still draining when the rebalance times out is evicted from the group and its commit refused"
// +kubebuilder:validation:XValidation:rule="!has(self.minFetchBytes) || !has(self.maxFetchBytes) || self.minFetchBytes <= self.maxFetchBytes",message="kafka.minFetchBytes must be at most kafka.maxFetchBytes: a fetch would always wait out maxWait"
type KafkaSpec struct {
	// brokers are the bootstrap addresses of the Kafka cluster, as host:port
	// (an IPv6 address in brackets: [fd00::10]:9092).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^([^:\[\]\s]+|\[[0-9a-fA-F:.]+\]):[0-9]{1,5}$`
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
	// It cannot change, nor be added or removed, once the Ingester exists: a new group
	// would re-read or skip the topic. The default group may be written out, or left out
	// again. status.consumerGroup is the group in use.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^\S(.*\S)?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="consumerGroup is immutable: a new group would re-read or skip the topic"
	// +optional
	ConsumerGroup string `json:"consumerGroup,omitempty"`

	// clientID is the client.id the pods' requests to the brokers carry ("spanflow" by
	// default): brokers key quotas, request logs and the consumer group's member list by
	// it. Letters, digits, '.', '_' and '-'.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	// +optional
	ClientID string `json:"clientID,omitempty"`

	// initialOffset is where a consumer group with no committed offset starts:
	// "earliest" reads the whole retained topic, "latest" only what arrives from now on.
	// +kubebuilder:default=earliest
	// +optional
	InitialOffset InitialOffset `json:"initialOffset,omitempty"`

	// isolationLevel says which records of transactional producers are read:
	// "read_uncommitted" (the default, as Kafka's) reads every record, those of aborted
	// transactions too; "read_committed" reads only what was committed, and reads no
	// further than the oldest transaction still open, until it ends (Kafka ends it after
	// the producer's transaction.timeout.ms). Producers that write no transactions, as the
	// OpenTelemetry Collector and Jaeger do, read the same either way.
	// +kubebuilder:default=read_uncommitted
	// +optional
	IsolationLevel IsolationLevel `json:"isolationLevel,omitempty"`

	// rack says where each pod runs, as the brokers' broker.rack name it, so that the pods
	// read each partition from a replica in their own zone: cloud providers charge for the
	// bytes that cross zones. It needs brokers that select replicas by rack (Kafka 2.4 and
	// later, with replica.selector.class
	// org.apache.kafka.common.replica.RackAwareReplicaSelector); without, or for a pod
	// whose rack holds no replica, the leaders serve as before.
	// +optional
	Rack *KafkaRack `json:"rack,omitempty"`

	// tls encrypts the connections to the brokers.
	// +optional
	TLS *KafkaTLS `json:"tls,omitempty"`

	// sasl authenticates to the brokers.
	// +optional
	SASL *KafkaSASL `json:"sasl,omitempty"`

	// sessionTimeout is how long the group coordinator waits for a heartbeat before it
	// gives a pod's partitions to the others. A duration such as 30s (the default).
	// +kubebuilder:default="30s"
	// +optional
	SessionTimeout *PositiveDuration `json:"sessionTimeout,omitempty"`

	// heartbeatInterval is how often pods tell the coordinator they are alive. A duration
	// such as 3s (the default); shorter than sessionTimeout.
	// +kubebuilder:default="3s"
	// +optional
	HeartbeatInterval *PositiveDuration `json:"heartbeatInterval,omitempty"`

	// rebalanceTimeout is how long the coordinator waits for all members to rejoin in a
	// rebalance. A duration such as 30s (the default); longer than drainTimeout.
	// +kubebuilder:default="30s"
	// +optional
	RebalanceTimeout *PositiveDuration `json:"rebalanceTimeout,omitempty"`

	// drainTimeout bounds how long a pod finishes the deliveries in flight when its
	// partitions are taken away (a rebalance) or it is told to stop; what is unfinished
	// then is read again by the partition's next owner. The pods' termination grace
	// period is derived from it. A duration such as 20s (the default); shorter than
	// rebalanceTimeout.
	// +kubebuilder:default="20s"
	// +optional
	DrainTimeout *PositiveDuration `json:"drainTimeout,omitempty"`

	// maxWait is how long a fetch waits for data before returning what it has. A duration
	// such as 500ms (the default).
	// +kubebuilder:default="500ms"
	// +optional
	MaxWait *PositiveDuration `json:"maxWait,omitempty"`

	// minFetchBytes is how many bytes a fetch waits for, up to maxWait, before the broker
	// answers: 1 (the default, as Kafka's own consumer) answers as soon as anything is
	// there. Each partition is fetched apart, so a topic of many partitions at a modest
	// rate each is fetched as often as its partitions get a message; 65536 makes each
	// fetch wait for more, at the price of up to maxWait more latency (measured on 96
	// partitions at 5,000 spans a second: 40% less CPU a span).
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1073741824
	// +optional
	MinFetchBytes *int32 `json:"minFetchBytes,omitempty"`

	// maxFetchBytes bounds the bytes one fetch returns per partition (1 MiB by default,
	// as Kafka's own consumer; a record batch larger than it still comes whole). A
	// partition holds its last fetch and at most one more that its deliveries in flight
	// read from; a pod's partitions share maxInFlightBytes for them, so that a pod of
	// many partitions asks each for less (maxInFlightBytes ÷ (2 × partitions), at least
	// 128 KiB). A pod's memory is about 2.5 × maxInFlightBytes plus what its partitions
	// hold (see the README).
	// +kubebuilder:default=1048576
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=1073741824
	// +optional
	MaxFetchBytes *int32 `json:"maxFetchBytes,omitempty"`

	// commitInterval is the longest a finished offset waits to be committed to the group
	// (offsets are committed as soon as deliveries finish; this paces retries of a failed
	// commit). A duration such as 1s (the default).
	// +kubebuilder:default="1s"
	// +optional
	CommitInterval *PositiveDuration `json:"commitInterval,omitempty"`
}

// KafkaRack is where the pods run, as the brokers' racks are named: one rack for every
// pod, or each pod's own from one of its labels. Exactly one of id and podLabel.
// +kubebuilder:validation:XValidation:rule="has(self.id) != has(self.podLabel)",message="set exactly one of id and podLabel"
type KafkaRack struct {
	// id is the rack of every pod: for pods that all run in one zone (placed there with
	// template.nodeSelector or template.affinity).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +optional
	ID string `json:"id,omitempty"`

	// podLabel is the pod label that holds each pod's rack, read as the pod starts:
	// usually topology.kubernetes.io/zone, which Kubernetes 1.35 and later copy onto each
	// pod from its node when it is scheduled (the PodTopologyLabelsAdmission feature).
	// The label's values must be the brokers' broker.rack names (on Amazon MSK those are
	// zone ids such as use1-az1, not zone names). A pod without the label reads from
	// the leaders.
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:XValidation:rule="self.substring(self.lastIndexOf('/') + 1).size() <= 63 && self.lastIndexOf('/') <= 253",message="a label key is a name of at most 63 characters, after a prefix of at most 253 and '/'"
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	// +optional
	PodLabel string `json:"podLabel,omitempty"`
}
