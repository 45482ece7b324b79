package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

// TestInvalidIngestersAreRefused checks that the API server, through the CRD's OpenAPI
// schema and CEL rules, refuses bad Ingesters with a message naming the field.
func TestInvalidIngestersAreRefused(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name   string
		mutate func(*spanflowv1alpha1.Ingester)
		want   string
	}{
		{"no brokers", func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.Brokers = nil }, "spec.kafka.brokers"},
		{"empty broker", func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.Brokers = []string{""} }, "spec.kafka.brokers[0]"},
		{"no topic", func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.Topic = "" }, "spec.kafka.topic"},
		{"bad topic", func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.Topic = "spans/otlp" }, "spec.kafka.topic"},
		{"bad encoding", func(i *spanflowv1alpha1.Ingester) { i.Spec.Encoding = "avro" }, "spec.encoding"},
		{"bad storage", func(i *spanflowv1alpha1.Ingester) { i.Spec.Storage.Type = "mysql" }, "spec.storage.type"},
		{"no storage", func(i *spanflowv1alpha1.Ingester) { i.Spec.Storage = spanflowv1alpha1.StorageSpec{} }, "spec.storage.type: Required value"},
		{"bad initial offset", func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.InitialOffset = "middle" }, "spec.kafka.initialOffset"},
		{"bad client id", func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.ClientID = "team a" }, "spec.kafka.clientID"},
		{"bad isolation level", func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.IsolationLevel = "read_committed " }, "spec.kafka.isolationLevel"},
		{"rack of neither kind", func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.Rack = &spanflowv1alpha1.KafkaRack{} }, "set exactly one of id and podLabel"},
		{"rack of both kinds", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.Rack = &spanflowv1alpha1.KafkaRack{ID: "use1-az1", PodLabel: "topology.kubernetes.io/zone"}
		}, "set exactly one of id and podLabel"},
		{"rack from no label", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.Rack = &spanflowv1alpha1.KafkaRack{PodLabel: "topology.kubernetes.io/zone name"}
		}, "spec.kafka.rack.podLabel"},
		{"rack from a label of too long a name", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.Rack = &spanflowv1alpha1.KafkaRack{PodLabel: "example.com/" + strings.Repeat("z", 64)}
		}, "a label key is a name of at most 63 characters"},
		{"negative replicas", func(i *spanflowv1alpha1.Ingester) { i.Spec.Replicas = ptr.To[int32](-1) }, "spec.replicas"},
		{"env overriding the rendered config", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Template.Env = []corev1.EnvVar{{Name: "GOMEMLIMIT", Value: "1GiB"}, {Name: "SPANFLOW_PARALLELISM", Value: "1"}}
		}, "must not set SPANFLOW_* variables"},
		{"an env name twice", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Template.Env = []corev1.EnvVar{{Name: "GOMEMLIMIT", Value: "1GiB"}, {Name: "GOMEMLIMIT", Value: "2GiB"}}
		}, "spec.template.env[1]"},
		{"zero parallelism", func(i *spanflowv1alpha1.Ingester) { i.Spec.Parallelism = ptr.To[int32](0) }, "spec.parallelism"},
		{"huge parallelism", func(i *spanflowv1alpha1.Ingester) { i.Spec.Parallelism = ptr.To[int32](20000) }, "spec.parallelism"},
		{"name too long", func(i *spanflowv1alpha1.Ingester) { i.Name = strings.Repeat("a", 55) }, "metadata: Invalid value: metadata.name must be at most 54 characters"},
		{"name with a dot", func(i *spanflowv1alpha1.Ingester) { i.Name = "my.traces" }, "metadata.name must be a DNS label"},
		{"name starting with a digit", func(i *spanflowv1alpha1.Ingester) { i.Name = "1traces" }, "metadata.name must be a DNS label"},
		{"broker without port", func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.Brokers = []string{"kafka"} }, "spec.kafka.brokers[0]"},
		{"sasl without secret", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.SASL = &spanflowv1alpha1.KafkaSASL{Mechanism: "PLAIN"}
		}, "spec.kafka.sasl.credentialsSecretName"},
		{"bad sasl mechanism", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.SASL = &spanflowv1alpha1.KafkaSASL{Mechanism: "GSSAPI", CredentialsSecretName: "s"}
		}, "spec.kafka.sasl.mechanism"},
		{"heartbeat not below session timeout", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.SessionTimeout = spanflowv1alpha1.NewPositiveDuration(10 * time.Second)
			i.Spec.Kafka.HeartbeatInterval = spanflowv1alpha1.NewPositiveDuration(10 * time.Second)
		}, "heartbeatInterval must be shorter than kafka.sessionTimeout"},
		{"file storage without file", func(i *spanflowv1alpha1.Ingester) { i.Spec.Storage.Type = spanflowv1alpha1.StorageFile }, "storage.file is required"},
		{"file path not absolute", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageFile, File: &spanflowv1alpha1.FileStorage{Path: "data"}}
		}, "spec.storage.file.path"},
		{"deadletter without topic", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Processing.OnDecodeError = spanflowv1alpha1.OnDecodeErrorDeadletter
		}, "deadletter needs processing.deadLetterTopic"},
		{"dead-letter topic is the topic", func(i *spanflowv1alpha1.Ingester) { i.Spec.Processing.DeadLetterTopic = i.Spec.Kafka.Topic }, "deadLetterTopic must differ"},
		{"retry min above max", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Processing.Retry = &spanflowv1alpha1.RetrySpec{Min: spanflowv1alpha1.NewPositiveDuration(time.Minute), Max: spanflowv1alpha1.NewPositiveDuration(time.Second)}
		}, "processing.retry.min must not exceed"},
		{"zero retry attempts", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Processing.Retry = &spanflowv1alpha1.RetrySpec{Attempts: ptr.To[int32](0)}
		}, "spec.processing.retry.attempts"},
		{"bad onDecodeError", func(i *spanflowv1alpha1.Ingester) { i.Spec.Processing.OnDecodeError = "ignore" }, "spec.processing.onDecodeError"},
		{"bad image pull policy", func(i *spanflowv1alpha1.Ingester) { i.Spec.Template.ImagePullPolicy = "Sometimes" }, "spec.template.imagePullPolicy"},
		{"tiny fetch size", func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.MaxFetchBytes = ptr.To[int32](10) }, "spec.kafka.maxFetchBytes"},
		{"fetches waiting for more than they may bring", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.MinFetchBytes, i.Spec.Kafka.MaxFetchBytes = ptr.To[int32](2<<20), ptr.To[int32](1<<20)
		}, "kafka.minFetchBytes must be at most kafka.maxFetchBytes"},
		{"otlp storage without otlp", func(i *spanflowv1alpha1.Ingester) { i.Spec.Storage.Type = spanflowv1alpha1.StorageOTLP }, "storage.otlp is required"},
		{"otlp header with value and valueFrom", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317",
				Headers: []spanflowv1alpha1.OTLPHeader{{Name: "a", Value: "v", ValueFrom: &spanflowv1alpha1.SecretKeyRef{Name: "s", Key: "k"}}}}}
		}, "either value or valueFrom"},
		{"otlp insecure with tls", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317",
				Insecure: true, TLS: &spanflowv1alpha1.OTLPTLS{InsecureSkipVerify: true}}}
		}, "insecure excludes"},
		{"otlp bad protocol", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317", Protocol: "thrift"}}
		}, "spec.storage.otlp.protocol"},
		{"gzip level out of range", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317", CompressionLevel: ptr.To[int32](12)}}
		}, "gzip takes 1 (fastest) to 9"},
		{"gzip level zero", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317", Compression: "gzip", CompressionLevel: ptr.To[int32](0)}}
		}, "gzip takes 1 (fastest) to 9"},
		{"zstd level -1", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317", Compression: "zstd", CompressionLevel: ptr.To[int32](-1)}}
		}, "zstd 1 to 22"},
		{"zstd level above 22", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317", Compression: "zstd", CompressionLevel: ptr.To[int32](23)}}
		}, "spec.storage.otlp.compressionLevel"},
		{"snappy with a level", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317", Compression: "snappy", CompressionLevel: ptr.To[int32](1)}}
		}, "snappy and none no level"},
		{"autoscaling without a target", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Autoscaling = &spanflowv1alpha1.AutoscalingSpec{Enabled: true}
		}, "autoscaling needs targetLagRecords or targetLagSeconds"},
		{"autoscaling min replicas above max", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Autoscaling = autoscaled(func(a *spanflowv1alpha1.AutoscalingSpec) {
				a.MinReplicas, a.MaxReplicas = ptr.To[int32](5), ptr.To[int32](2)
			})
		}, "minReplicas must not exceed autoscaling.maxReplicas"},
		{"autoscaling default min replicas above max", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Autoscaling = autoscaled(func(a *spanflowv1alpha1.AutoscalingSpec) { a.MaxReplicas = ptr.To[int32](0) })
		}, "spec.autoscaling.maxReplicas"},
		{"autoscaling min parallelism above max", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Autoscaling = autoscaled(func(a *spanflowv1alpha1.AutoscalingSpec) {
				a.MinParallelism, a.MaxParallelism = ptr.To[int32](500), ptr.To[int32](100)
			})
		}, "minParallelism must not exceed autoscaling.maxParallelism"},
		{"autoscaling activation lag without scale to zero", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Autoscaling = autoscaled(func(a *spanflowv1alpha1.AutoscalingSpec) { a.ActivationLagRecords = ptr.To[int64](100) })
		}, "activationLagRecords applies only with minReplicas 0"},
		{"autoscaling zero lag target", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Autoscaling = autoscaled(func(a *spanflowv1alpha1.AutoscalingSpec) { a.TargetLagRecords = ptr.To[int64](0) })
		}, "spec.autoscaling.targetLagRecords"},
		{"file size negative", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = fileStorage(func(f *spanflowv1alpha1.FileStorage) { f.MaxFileSize = ptr.To(resource.MustParse("-64Mi")) })
		}, "storage.file.maxFileSize must be at least 1Mi"},
		{"file size tiny", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = fileStorage(func(f *spanflowv1alpha1.FileStorage) { f.MaxFileSize = ptr.To(resource.MustParse("100")) })
		}, "storage.file.maxFileSize must be at least 1Mi"},
		{"file path is the root", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = fileStorage(func(f *spanflowv1alpha1.FileStorage) { f.Path = "/" })
		}, "spec.storage.file.path"},
		{"file path over the config", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = fileStorage(func(f *spanflowv1alpha1.FileStorage) { f.Path = "/etc/spanflow/config" })
		}, "storage.file.path must be outside /etc/spanflow"},
		{"claim name not a DNS name", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = fileStorage(func(f *spanflowv1alpha1.FileStorage) { f.ClaimName = "Spans_Volume" })
		}, "spec.storage.file.claimName"},
		{"blank consumer group", func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.ConsumerGroup = "  " }, "spec.kafka.consumerGroup"},
		{"secret name not a DNS name", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.SASL = &spanflowv1alpha1.KafkaSASL{Mechanism: "PLAIN", CredentialsSecretName: "Kafka Creds"}
		}, "spec.kafka.sasl.credentialsSecretName"},
		{"service account not a DNS name", func(i *spanflowv1alpha1.Ingester) { i.Spec.Template.ServiceAccountName = "../admin" }, "spec.template.serviceAccountName"},
		{"tls disabled with a CA", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.TLS = &spanflowv1alpha1.KafkaTLS{Enabled: false, CA: &spanflowv1alpha1.SecretKeyRef{Name: "ca", Key: "ca.crt"}}
		}, "kafka.tls.enabled is false"},
		{"tls disabled with a client certificate", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.TLS = &spanflowv1alpha1.KafkaTLS{Enabled: false, ClientCertSecretName: "client"}
		}, "kafka.tls.enabled is false"},
		{"kafka insecureSkipVerify with a CA", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.TLS = &spanflowv1alpha1.KafkaTLS{Enabled: true, InsecureSkipVerify: true, CA: &spanflowv1alpha1.SecretKeyRef{Name: "ca", Key: "ca.crt"}}
		}, "kafka.tls.insecureSkipVerify accepts any certificate"},
		{"otlp insecureSkipVerify with a CA", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317",
				TLS: &spanflowv1alpha1.OTLPTLS{InsecureSkipVerify: true, CA: &spanflowv1alpha1.SecretKeyRef{Name: "ca", Key: "ca.crt"}}}}
		}, "storage.otlp.tls.insecureSkipVerify accepts any certificate"},
		{"tiny in-flight bytes", func(i *spanflowv1alpha1.Ingester) { i.Spec.MaxInFlightBytes = ptr.To(resource.MustParse("64Ki")) },
			"spec.maxInFlightBytes must be at least 1Mi"},
		{"drain not below the rebalance timeout", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.DrainTimeout = spanflowv1alpha1.NewPositiveDuration(30 * time.Second)
		}, "kafka.drainTimeout must be shorter than kafka.rebalanceTimeout"},
		{"autoscaling negative step", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Autoscaling = autoscaled(func(a *spanflowv1alpha1.AutoscalingSpec) {
				a.ScaleUp = &spanflowv1alpha1.ScalingRules{MaxReplicaStep: ptr.To[int32](-1)}
			})
		}, "spec.autoscaling.scaleUp.maxReplicaStep"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ing := minimalIngester(ns, "invalid")
			tc.mutate(ing)
			err := k8sClient.Create(context.Background(), ing)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
}

func TestConsumerGroupIsImmutable(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	ing := minimalIngester(ns, "grouped")
	ing.Spec.Kafka.ConsumerGroup = "spans"
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())

	err := updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.ConsumerGroup = "other" })
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("consumerGroup is immutable"))

	err = updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.ConsumerGroup = "" })
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.kafka.consumerGroup: Invalid value"))
	g.Expect(err.Error()).To(ContainSubstring("cannot be added or removed"))

	// An Ingester that runs in the default group cannot be moved to another by naming one.
	defaulted := minimalIngester(ns, "defaulted")
	g.Expect(k8sClient.Create(ctx, defaulted)).To(Succeed())
	err = updateSpec(defaulted, func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.ConsumerGroup = "spans" })
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("cannot be added or removed"))
	// The group in use is recorded once applied.
	g.Eventually(func(g Gomega) string {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(defaulted), defaulted)).To(Succeed())
		return defaulted.Status.ConsumerGroup
	}, eventually, poll).Should(Equal(ns + "/defaulted"))

	// Writing out the default group, and leaving it out again, changes nothing and is
	// taken (a GitOps repository that states every setting).
	g.Expect(updateSpec(defaulted, func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.ConsumerGroup = ns + "/defaulted" })).To(Succeed())
	g.Expect(updateSpec(defaulted, func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.ConsumerGroup = "" })).To(Succeed())
	// Another namespace's default shape passes CEL, which cannot see the namespace; the
	// operator holds it back.
	g.Expect(updateSpec(defaulted, func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.ConsumerGroup = "elsewhere/defaulted" })).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, defaulted, spanflowv1alpha1.ConditionDegraded).Reason).To(Equal(spanflowv1alpha1.ReasonConsumerGroupChanged))
		g.Expect(defaulted.Status.ConsumerGroup).To(Equal(ns + "/defaulted"))
	}, eventually, poll).Should(Succeed())
}

// fileStorage is a valid file storage changed by mutate.
func fileStorage(mutate func(*spanflowv1alpha1.FileStorage)) spanflowv1alpha1.StorageSpec {
	f := &spanflowv1alpha1.FileStorage{Path: "/var/lib/spans"}
	mutate(f)
	return spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageFile, File: f}
}

// autoscaled is a valid autoscaling spec changed by mutate.
func autoscaled(mutate func(*spanflowv1alpha1.AutoscalingSpec)) *spanflowv1alpha1.AutoscalingSpec {
	a := &spanflowv1alpha1.AutoscalingSpec{Enabled: true, TargetLagRecords: ptr.To[int64](1000)}
	mutate(a)
	return a
}

// TestValidAutoscalingIsAccepted: the rules refuse only what they should.
func TestValidAutoscalingIsAccepted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for i, a := range []*spanflowv1alpha1.AutoscalingSpec{
		autoscaled(func(*spanflowv1alpha1.AutoscalingSpec) {}),
		autoscaled(func(a *spanflowv1alpha1.AutoscalingSpec) {
			a.TargetLagRecords, a.TargetLagSeconds = nil, ptr.To[int32](30)
			a.MinReplicas, a.ActivationLagRecords, a.MaxReplicas = ptr.To[int32](0), ptr.To[int64](10), ptr.To[int32](6)
		}),
		{Enabled: false}, // off needs no target
	} {
		ing := minimalIngester(ns, fmt.Sprintf("valid-%d", i))
		ing.Spec.Autoscaling = a
		g.Expect(k8sClient.Create(context.Background(), ing)).To(Succeed())
	}
}

// TestValidSpecsAreAccepted: the rules added against mistakes refuse only mistakes.
func TestValidSpecsAreAccepted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for name, mutate := range map[string]func(*spanflowv1alpha1.Ingester){
		"ipv6-brokers": func(i *spanflowv1alpha1.Ingester) {
			// Loopback only: the operator polls these brokers for real.
			i.Spec.Kafka.Brokers = []string{"[::1]:1", testBroker}
		},
		"file-storage": func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = fileStorage(func(f *spanflowv1alpha1.FileStorage) {
				f.MaxFileSize, f.ClaimName = ptr.To(resource.MustParse("1Gi")), "spans-0"
			})
		},
		"tls": func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.TLS = &spanflowv1alpha1.KafkaTLS{Enabled: true, CA: &spanflowv1alpha1.SecretKeyRef{Name: "kafka-ca", Key: "ca.crt"}, ClientCertSecretName: "client.tls"}
			i.Spec.Kafka.ConsumerGroup = "team a/spans"
		},
		"tls-off": func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.TLS = &spanflowv1alpha1.KafkaTLS{Enabled: false} },
		"read-committed": func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.IsolationLevel = spanflowv1alpha1.IsolationReadCommitted
		},
		"gzip-fastest": func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317", CompressionLevel: ptr.To[int32](1)}}
		},
		"gzip-default-level": func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317", Compression: "gzip", CompressionLevel: ptr.To[int32](-1)}}
		},
		"zstd-level": func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317", Compression: "zstd", CompressionLevel: ptr.To[int32](19)}}
		},
		"long-drain": func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Kafka.DrainTimeout = spanflowv1alpha1.NewPositiveDuration(50 * time.Second)
			i.Spec.Kafka.RebalanceTimeout = spanflowv1alpha1.NewPositiveDuration(time.Minute)
		},
	} {
		ing := minimalIngester(ns, name)
		mutate(ing)
		g.Expect(k8sClient.Create(context.Background(), ing)).To(Succeed(), name)
	}
}

// TestMalformedDurationsAreRefused: a duration the operator could not decode would stop
// its informer for every Ingester; the API server refuses it, naming the field. The
// Ingesters are written as a user writes YAML, not through the Go types (which can only
// hold valid durations).
func TestMalformedDurationsAreRefused(t *testing.T) {
	ns := newNamespace(t)
	create := func(name, spec string) error {
		obj := &unstructured.Unstructured{}
		doc := fmt.Sprintf(`{"apiVersion":"spanflow.dev/v1alpha1","kind":"Ingester","metadata":{"name":%q,"namespace":%q},
			"spec":{"kafka":{"brokers":[%q],"topic":%q}, "storage":{"type":"blackhole"}, %s}}`, name, ns, testBroker, testTopic, spec)
		if err := obj.UnmarshalJSON([]byte(doc)); err != nil {
			t.Fatal(err)
		}
		return k8sClient.Create(context.Background(), obj)
	}
	for i, tc := range []struct{ spec, field string }{
		{`"processing":{"batchLinger":"banana"}`, "spec.processing.batchLinger"},
		{`"processing":{"retry":{"min":"100"}}`, "spec.processing.retry.min"},
		{`"autoscaling":{"enabled":true,"targetLagRecords":10,"cooldown":"1 minute"}`, "spec.autoscaling.cooldown"},
		{`"autoscaling":{"enabled":true,"targetLagRecords":10,"scaleDown":{"stabilizationWindow":"-5m"}}`, "spec.autoscaling.scaleDown.stabilizationWindow"},
		{`"processing":{"batchSize":10}, "replicas":1, "paused":false, "parallelism":2, "encoding":"otlp_proto", "storage":{"type":"otlp","otlp":{"endpoint":"x:4317","timeout":"10 s"}}`, "spec.storage.otlp.timeout"},
		{`"kafka":{"brokers":["k:9092"],"topic":"t","commitInterval":"-1s"}`, "spec.kafka.commitInterval"},
		{`"kafka":{"brokers":["k:9092"],"topic":"t","maxWait":"500"}`, "spec.kafka.maxWait"},
		{`"processing":{"batchLinger":"0s"}`, `spec.processing.batchLinger: Invalid value: "0s": must be longer than 0`},
		{`"processing":{"batchLinger":5}`, "spec.processing.batchLinger"},
	} {
		err := create(fmt.Sprintf("bad-duration-%d", i), tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want a refusal naming %s", tc.spec, err, tc.field)
		}
	}
	// A malformed timeout is reported as itself, not as a broken comparison with another.
	err := create("bad-session", `"kafka":{"brokers":["k:9092"],"topic":"t","sessionTimeout":"banana"}`)
	if err == nil || !strings.Contains(err.Error(), "spec.kafka.sessionTimeout") || strings.Contains(err.Error(), "heartbeatInterval") {
		t.Errorf("sessionTimeout banana: %v, want a refusal naming spec.kafka.sessionTimeout alone", err)
	}
	err = create("zero-session", `"kafka":{"brokers":["k:9092"],"topic":"t","sessionTimeout":"0"}`)
	if err == nil || !strings.Contains(err.Error(), "spec.kafka.sessionTimeout") || strings.Contains(err.Error(), "heartbeatInterval") {
		t.Errorf("sessionTimeout 0: %v, want a refusal naming spec.kafka.sessionTimeout alone", err)
	}
	if err := create("good-durations", `"processing":{"batchLinger":"1m30.5s","retry":{"min":"1us","max":"2h"}},"autoscaling":{"cooldown":"0"}`); err != nil {
		t.Errorf("valid durations refused: %v", err)
	}
}

// TestPartitionCeilingsInTheStatus: the API server keeps the autoscaler's partition
// ceilings in the status, one a partition, and refuses what cannot be one. Dry runs: the
// reconciler writes the status of its own.
func TestPartitionCeilingsInTheStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing := minimalIngester(newNamespace(t), "ceilings")
	ing.Spec.Autoscaling = autoscaled(func(*spanflowv1alpha1.AutoscalingSpec) {})
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	dryRun := func(ceilings ...spanflowv1alpha1.PartitionCeiling) error {
		var err error
		g.Eventually(func() bool {
			cur := &spanflowv1alpha1.Ingester{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), cur)).To(Succeed())
			cur.Status.Autoscaling = &spanflowv1alpha1.AutoscalingStatus{DesiredReplicas: 1, DesiredParallelism: 8, PartitionCeilings: ceilings}
			err = k8sClient.Status().Update(ctx, cur, client.DryRunAll)
			return !apierrors.IsConflict(err)
		}).Should(BeTrue())
		return err
	}
	g.Expect(dryRun(spanflowv1alpha1.PartitionCeiling{Partition: 0, RecordsPerSecond: 1500},
		spanflowv1alpha1.PartitionCeiling{Partition: 7, RecordsPerSecond: 300})).To(Succeed())
	for name, bad := range map[string][]spanflowv1alpha1.PartitionCeiling{
		"a partition twice":    {{Partition: 3, RecordsPerSecond: 10}, {Partition: 3, RecordsPerSecond: 20}},
		"a negative partition": {{Partition: -1, RecordsPerSecond: 10}},
		"no rate":              {{Partition: 1, RecordsPerSecond: 0}},
	} {
		g.Expect(dryRun(bad...)).To(HaveOccurred(), name)
	}
}
