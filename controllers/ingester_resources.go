package controllers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/ingester/config"
)

const (
	// configFileName is the key of the ingester config in its ConfigMap and the file name
	// it is mounted as, in configDir.
	configFileName = "ingester.yaml"
	configDir      = "/etc/spanflow/config"
	// secretsDir holds one directory per mounted Secret.
	secretsDir = "/etc/spanflow/secrets"
	adminPort  = 8080
	// podTemplateHashAnnotation on the pod template changes with the config and with the
	// referenced Secrets, so that a change of either rolls the pods.
	podTemplateHashAnnotation = "spanflow.dev/config-hash"
	// consumerGroupAnnotation on the Deployment names the consumer group its pods consume
	// as: what the operator knows of the group in use without trusting the Ingester's
	// status, which anyone with access to the status subresource can write and a restore
	// from backup drops.
	consumerGroupAnnotation = "spanflow.dev/consumer-group"
	containerName           = "ingester"
)

// Volumes the operator mounts into the ingester pods.
const (
	volumeConfig      = "config"
	volumeKafkaCA     = "kafka-ca"
	volumeKafkaClient = "kafka-client"
	volumeKafkaSASL   = "kafka-sasl"
	volumeFileStorage = "spans"
	volumeOTLPCA      = "otlp-ca"
	volumeOTLPClient  = "otlp-client"
	// podNameEnv carries the pod's name into the ingester (the downward API).
	podNameEnv = "SPANFLOW_POD_NAME"
	// rackEnv carries the pod's rack into the ingester (kafka.rack), from the spec or a
	// label of the pod.
	rackEnv = "SPANFLOW_RACK"
	// otlpHeaderEnv prefixes the environment variables that carry Secret-backed headers.
	otlpHeaderEnv      = "SPANFLOW_OTLP_HEADER_"
	saslUsernameKey    = "username"
	saslPasswordKey    = "password"
	caFileName         = "ca.crt"
	clientCertFileName = corev1.TLSCertKey
	clientKeyFileName  = corev1.TLSPrivateKeyKey
)

// ingesterObjectName is the name of the objects that run an Ingester.
func ingesterObjectName(ing *spanflowv1alpha1.Ingester) string {
	return ing.Name + ingesterObjectSuffix
}

// ingesterObjectSuffix ends the name of the objects that run an Ingester.
const ingesterObjectSuffix = "-ingester"

// ingesterOfObjectName is the name of the Ingester whose objects are named name, if it can
// be one: the inverse of ingesterObjectName.
func ingesterOfObjectName(name string) (string, bool) {
	ing, ok := strings.CutSuffix(name, ingesterObjectSuffix)
	return ing, ok && ing != ""
}

// selectorLabels select the pods of one Ingester.
func selectorLabels(ing *spanflowv1alpha1.Ingester) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     "spanflow-ingester",
		"app.kubernetes.io/instance": ing.Name,
	}
}

// objectLabels are put on every object the operator creates for an Ingester.
func objectLabels(ing *spanflowv1alpha1.Ingester) map[string]string {
	labels := selectorLabels(ing)
	labels["app.kubernetes.io/component"] = "ingester"
	labels["app.kubernetes.io/managed-by"] = "spanflow"
	return labels
}

func ownerReference(ing *spanflowv1alpha1.Ingester) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(spanflowv1alpha1.GroupVersion.String()).
		WithKind("Ingester").
		WithName(ing.Name).
		WithUID(ing.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// consumerGroup is the Kafka consumer group of an Ingester: the one its spec names, or
// "<namespace>/<name>", which is unique in the cluster and stable for the Ingester's life.
func consumerGroup(ing *spanflowv1alpha1.Ingester) string {
	if ing.Spec.Kafka.ConsumerGroup != "" {
		return ing.Spec.Kafka.ConsumerGroup
	}
	return ing.Namespace + "/" + ing.Name
}

// groupInUse is the consumer group the Ingester's pods run in: the one recorded in its
// status when it was first applied (see recordGroupInUse), or the one its spec names
// before that.
func groupInUse(ing *spanflowv1alpha1.Ingester) string {
	if ing.Status.ConsumerGroup != "" {
		return ing.Status.ConsumerGroup
	}
	return consumerGroup(ing)
}

// desiredReplicas is spec.replicas, defaulted for objects the API server has not defaulted.
func desiredReplicas(ing *spanflowv1alpha1.Ingester) int32 {
	return ptr.Deref(ing.Spec.Replicas, 1)
}

func desiredParallelism(ing *spanflowv1alpha1.Ingester) int32 {
	return ptr.Deref(ing.Spec.Parallelism, int32(config.Default().Parallelism))
}

// secretRef is a Secret the pods need and the keys they read from it.
type secretRef struct {
	name string
	keys []string
	// field is where the spec names the Secret, for the messages.
	field string
}

// referencedSecrets lists the Secrets the spec references, in a stable order.
func referencedSecrets(ing *spanflowv1alpha1.Ingester) []secretRef {
	var refs []secretRef
	if t := kafkaTLS(ing); t != nil {
		refs = append(refs, t.refs()...)
	}
	if s := ing.Spec.Kafka.SASL; s != nil {
		refs = append(refs, secretRef{name: s.CredentialsSecretName, keys: []string{saslUsernameKey, saslPasswordKey},
			field: "spec.kafka.sasl.credentialsSecretName"})
	}
	if t := otlpTLS(ing); t != nil {
		refs = append(refs, t.refs()...)
	}
	if o := otlpSpec(ing); o != nil {
		for i, h := range o.Headers {
			if h.ValueFrom != nil {
				refs = append(refs, secretRef{name: h.ValueFrom.Name, keys: []string{h.ValueFrom.Key},
					field: fmt.Sprintf("spec.storage.otlp.headers[%d].valueFrom", i)})
			}
		}
	}
	// The template's env from Secrets too: a missing one would only show as pods that do
	// not start, and a changed one reaches the pods only when they roll.
	for i, e := range ing.Spec.Template.Env {
		if from := e.ValueFrom; from != nil && from.SecretKeyRef != nil && !ptr.Deref(from.SecretKeyRef.Optional, false) {
			refs = append(refs, secretRef{name: from.SecretKeyRef.Name, keys: []string{from.SecretKeyRef.Key},
				field: fmt.Sprintf("spec.template.env[%d].valueFrom.secretKeyRef", i)})
		}
	}
	return refs
}

// otlpSpec is the OTLP storage of the spec when that is the storage in use.
func otlpSpec(ing *spanflowv1alpha1.Ingester) *spanflowv1alpha1.OTLPStorage {
	if ing.Spec.Storage.Type != spanflowv1alpha1.StorageOTLP {
		return nil
	}
	return ing.Spec.Storage.OTLP
}

// tlsSecrets is the TLS material a connection takes from Secrets — a CA bundle and a
// kubernetes.io/tls client certificate — and the volumes they are mounted from. The
// Secret references, the mounts and the file paths in the config all derive from it.
type tlsSecrets struct {
	ca                     *spanflowv1alpha1.SecretKeyRef
	clientCertSecret       string
	caVolume, clientVolume string
	field                  string // where the spec sets them: spec.kafka.tls, spec.storage.otlp.tls
}

// kafkaTLS is the Kafka connection's TLS material, nil without TLS.
func kafkaTLS(ing *spanflowv1alpha1.Ingester) *tlsSecrets {
	t := ing.Spec.Kafka.TLS
	if t == nil || !t.Enabled {
		return nil
	}
	return &tlsSecrets{ca: t.CA, clientCertSecret: t.ClientCertSecretName, caVolume: volumeKafkaCA, clientVolume: volumeKafkaClient, field: "spec.kafka.tls"}
}

// otlpTLS is the OTLP exporter's TLS material, nil without TLS or without OTLP storage.
func otlpTLS(ing *spanflowv1alpha1.Ingester) *tlsSecrets {
	o := otlpSpec(ing)
	if o == nil || o.Insecure || o.TLS == nil {
		return nil
	}
	return &tlsSecrets{ca: o.TLS.CA, clientCertSecret: o.TLS.ClientCertSecretName, caVolume: volumeOTLPCA, clientVolume: volumeOTLPClient, field: "spec.storage.otlp.tls"}
}

func (t *tlsSecrets) refs() []secretRef {
	var refs []secretRef
	if t.ca != nil {
		refs = append(refs, secretRef{name: t.ca.Name, keys: []string{t.ca.Key}, field: t.field + ".ca"})
	}
	if t.clientCertSecret != "" {
		refs = append(refs, secretRef{name: t.clientCertSecret, keys: []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey},
			field: t.field + ".clientCertSecretName"})
	}
	return refs
}

// files are the paths the config names; empty where the material is not used.
func (t *tlsSecrets) files() (ca, cert, key string) {
	if t.ca != nil {
		ca = path.Join(secretsDir, t.caVolume, caFileName)
	}
	if t.clientCertSecret != "" {
		cert = path.Join(secretsDir, t.clientVolume, clientCertFileName)
		key = path.Join(secretsDir, t.clientVolume, clientKeyFileName)
	}
	return ca, cert, key
}

// mount mounts the material's Secrets with mount.
func (t *tlsSecrets) mount(mount func(*corev1ac.VolumeApplyConfiguration, string, bool)) {
	if t.ca != nil {
		mount(secretVolume(t.caVolume, t.ca.Name, map[string]string{t.ca.Key: caFileName}), path.Join(secretsDir, t.caVolume), true)
	}
	if t.clientCertSecret != "" {
		mount(secretVolume(t.clientVolume, t.clientCertSecret, map[string]string{
			corev1.TLSCertKey: clientCertFileName, corev1.TLSPrivateKeyKey: clientKeyFileName,
		}), path.Join(secretsDir, t.clientVolume), true)
	}
}

// referencedSecretNames are the names of referencedSecrets, for the field index.
func referencedSecretNames(ing *spanflowv1alpha1.Ingester) []string {
	names := map[string]bool{}
	for _, r := range referencedSecrets(ing) {
		names[r.name] = true
	}
	return slices.Sorted(maps.Keys(names))
}

// ingesterConfig is the configuration file of the ingester pods, built from the spec over
// the ingester's own defaults. Credentials appear only as paths of mounted files.
func ingesterConfig(ing *spanflowv1alpha1.Ingester) config.Config {
	spec := ing.Spec
	cfg := config.Default()
	k := &cfg.Kafka
	k.Brokers = spec.Kafka.Brokers
	k.Topic = spec.Kafka.Topic
	k.ConsumerGroup = consumerGroup(ing)
	if spec.Kafka.InitialOffset != "" {
		k.InitialOffset = string(spec.Kafka.InitialOffset)
	}
	k.ClientID = spec.Kafka.ClientID
	if spec.Kafka.IsolationLevel == spanflowv1alpha1.IsolationReadCommitted {
		k.IsolationLevel = config.ReadCommitted // read_uncommitted is the default, left out
	}
	setDuration(&k.SessionTimeout, spec.Kafka.SessionTimeout)
	setDuration(&k.HeartbeatInterval, spec.Kafka.HeartbeatInterval)
	setDuration(&k.RebalanceTimeout, spec.Kafka.RebalanceTimeout)
	setDuration(&k.MaxWait, spec.Kafka.MaxWait)
	setDuration(&k.CommitInterval, spec.Kafka.CommitInterval)
	setDuration(&cfg.DrainTimeout, spec.Kafka.DrainTimeout)
	if spec.Kafka.MaxFetchBytes != nil {
		k.MaxBytes = int(*spec.Kafka.MaxFetchBytes)
	}
	if spec.Kafka.MinFetchBytes != nil {
		k.MinBytes = int(*spec.Kafka.MinFetchBytes)
	}
	if t := kafkaTLS(ing); t != nil {
		k.TLS = config.KafkaTLS{Enabled: true, InsecureSkipVerify: spec.Kafka.TLS.InsecureSkipVerify}
		k.TLS.CAFile, k.TLS.CertFile, k.TLS.KeyFile = t.files()
	}
	if s := spec.Kafka.SASL; s != nil {
		k.SASL = config.KafkaSASL{
			Mechanism:    string(s.Mechanism),
			UsernameFile: path.Join(secretsDir, volumeKafkaSASL, saslUsernameKey),
			PasswordFile: path.Join(secretsDir, volumeKafkaSASL, saslPasswordKey),
		}
	}
	if spec.Encoding != "" {
		cfg.Encoding = string(spec.Encoding)
	}
	if spec.Storage.Type != "" {
		cfg.Storage.Type = string(spec.Storage.Type)
	}
	if f := spec.Storage.File; f != nil {
		cfg.Storage.File.Path = f.Path
		if f.MaxFileSize != nil {
			cfg.Storage.File.MaxFileBytes = f.MaxFileSize.Value()
		}
		cfg.Storage.File.Gzip = f.Gzip
	}
	if o := otlpSpec(ing); o != nil {
		c := &cfg.Storage.OTLP
		c.Endpoint, c.Insecure = o.Endpoint, o.Insecure
		if o.Protocol != "" {
			c.Protocol = o.Protocol
		}
		if o.Compression != "" {
			c.Compression = o.Compression
		}
		if o.CompressionLevel != nil {
			c.CompressionLevel = int(*o.CompressionLevel)
		}
		setDuration(&c.Timeout, o.Timeout)
		if t := otlpTLS(ing); t != nil {
			c.InsecureSkipVerify = o.TLS.InsecureSkipVerify
			c.CAFile, c.CertFile, c.KeyFile = t.files()
		}
		for i, h := range o.Headers {
			if c.Headers == nil {
				c.Headers = map[string]string{}
			}
			if h.ValueFrom != nil {
				// The value reaches the pod as an environment variable from the Secret.
				c.Headers[h.Name] = fmt.Sprintf("${env:%s%d}", otlpHeaderEnv, i)
			} else {
				c.Headers[h.Name] = h.Value
			}
		}
	}
	p := spec.Processing
	if p.BatchSize > 0 {
		cfg.Processing.BatchSize = int(p.BatchSize)
	}
	setDuration(&cfg.Processing.BatchLinger, p.BatchLinger)
	if r := p.Retry; r != nil {
		setDuration(&cfg.Processing.Retry.Min, r.Min)
		setDuration(&cfg.Processing.Retry.Max, r.Max)
		if r.Attempts != nil {
			cfg.Processing.Retry.Attempts = int(*r.Attempts)
		}
	}
	if p.OnDecodeError != "" {
		cfg.Processing.OnDecodeError = string(p.OnDecodeError)
	}
	cfg.Processing.DeadLetterTopic = p.DeadLetterTopic
	cfg.Parallelism = int(desiredParallelism(ing))
	if q := spec.MaxInFlightBytes; q != nil {
		cfg.MaxInFlightBytes = q.Value()
	}
	cfg.AdminAddress = fmt.Sprintf(":%d", adminPort)
	return cfg
}

// setDuration sets dst from the spec when the spec has a value. A malformed value was
// reported by checkSpec before anything is rendered; here it leaves the default.
func setDuration(dst *config.Duration, src *spanflowv1alpha1.PositiveDuration) {
	*dst = config.Duration(src.Or(dst.D()))
}

// desiredConfigMap holds the ingester configuration in the form every ingester image
// reads (config.MarshalForImages: a setting newer than the first such operator is
// written only when the spec uses it), so that a pinned image older than this operator
// runs unless the spec asks what it lacks. It never holds credentials: those reach the
// pods as files from Secrets.
func desiredConfigMap(ing *spanflowv1alpha1.Ingester) (*corev1ac.ConfigMapApplyConfiguration, error) {
	data, err := ingesterConfig(ing).MarshalForImages()
	if err != nil {
		return nil, fmt.Errorf("rendering ingester config: %w", err)
	}
	return corev1ac.ConfigMap(ingesterObjectName(ing), ing.Namespace).
		WithLabels(objectLabels(ing)).
		WithOwnerReferences(ownerReference(ing)).
		WithData(map[string]string{configFileName: string(data)}), nil
}

// secretDigest identifies what the pods read of a referenced Secret: the contents of the
// keys they use, and nothing else, so that a change to the Secret's labels, annotations
// or other keys does not roll the pods.
type secretDigest struct {
	Name   string
	Digest []byte
}

// digestSecret is an HMAC of the referenced keys' contents keyed by the Secret's UID: the
// contents change it, and the digest, truncated into the pod template's hash, cannot be
// compared with digests of the same values in other Secrets or clusters.
func digestSecret(s *corev1.Secret, keys []string) secretDigest {
	mac := hmac.New(sha256.New, []byte(s.UID))
	for _, key := range slices.Sorted(slices.Values(keys)) {
		fmt.Fprintf(mac, "%d:%s%d:", len(key), key, len(s.Data[key]))
		mac.Write(s.Data[key])
	}
	return secretDigest{Name: s.Name, Digest: mac.Sum(nil)}
}

// podTemplateHash digests the config as the ConfigMap holds it and what the pods read of
// the referenced Secrets: a change to either changes the pod template and rolls the pods —
// except the parallelism, which the ingesters read again from their mounted config and
// apply while running. A setting a newer operator adds is not written at its default, so
// that upgrading the operator does not roll existing Ingesters' pods.
func podTemplateHash(ing *spanflowv1alpha1.Ingester, secrets []secretDigest) (string, error) {
	cfg := ingesterConfig(ing)
	cfg.Parallelism = 0
	data, err := cfg.MarshalForImages()
	if err != nil {
		return "", fmt.Errorf("rendering ingester config: %w", err)
	}
	h := sha256.New()
	h.Write(data)
	for _, s := range secrets {
		fmt.Fprintf(h, "\x00%s\x00", s.Name)
		h.Write(s.Digest)
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}

// desiredServiceAccount is the pods' own identity, with no API rights and no token.
func desiredServiceAccount(ing *spanflowv1alpha1.Ingester) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(ingesterObjectName(ing), ing.Namespace).
		WithLabels(objectLabels(ing)).
		WithOwnerReferences(ownerReference(ing)).
		WithAutomountServiceAccountToken(false)
}

// desiredService exposes the pods' admin port (/metrics) to Prometheus. It is headless:
// metrics are scraped from each pod, never load-balanced, and no cluster IP is used up.
func desiredService(ing *spanflowv1alpha1.Ingester) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(ingesterObjectName(ing), ing.Namespace).
		WithLabels(objectLabels(ing)).
		WithOwnerReferences(ownerReference(ing)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithClusterIP(corev1.ClusterIPNone).
			WithSelector(selectorLabels(ing)).
			WithPorts(corev1ac.ServicePort().WithName("admin").WithPort(adminPort).
				WithTargetPort(intstr.FromString("admin")).WithProtocol(corev1.ProtocolTCP)))
}

// desiredPodDisruptionBudget keeps all but one pod up through voluntary disruptions; it is
// wanted only with more than one replica (with one, it would block node drains).
func desiredPodDisruptionBudget(ing *spanflowv1alpha1.Ingester) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	if desiredReplicas(ing) <= 1 {
		return nil
	}
	return policyv1ac.PodDisruptionBudget(ingesterObjectName(ing), ing.Namespace).
		WithLabels(objectLabels(ing)).
		WithOwnerReferences(ownerReference(ing)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(ing))))
}

// desiredDeployment runs `spanflow ingest` with the config from desiredConfigMap and the
// referenced Secrets mounted as files.
func desiredDeployment(ing *spanflowv1alpha1.Ingester, defaultImage string, cm *corev1ac.ConfigMapApplyConfiguration, hash string) *appsv1ac.DeploymentApplyConfiguration {
	tmpl := ing.Spec.Template
	image := defaultImage
	if tmpl.Image != "" {
		image = tmpl.Image
	}
	container := corev1ac.Container().
		WithName(containerName).
		WithImage(image).
		WithArgs("ingest", "--config="+path.Join(configDir, configFileName)).
		WithPorts(corev1ac.ContainerPort().WithName("admin").WithContainerPort(adminPort).WithProtocol(corev1.ProtocolTCP)).
		WithLivenessProbe(httpProbe("/healthz", 10)).
		WithReadinessProbe(httpProbe("/readyz", 5)).
		// An ingester that exits on an error says why as its last log line: kept as the
		// termination message, which the Ingester's status quotes (PodsFailing).
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError).
		WithSecurityContext(containerSecurityContext(tmpl.SecurityContext))
	if tmpl.ImagePullPolicy != "" {
		container.WithImagePullPolicy(tmpl.ImagePullPolicy)
	}
	if len(tmpl.Resources.Limits) > 0 || len(tmpl.Resources.Requests) > 0 {
		container.WithResources(resourcesAC(tmpl.Resources))
	}
	ownPodName, ownRack := false, false
	for i := range tmpl.Env {
		container.WithEnv(envVarAC(tmpl.Env[i]))
		ownPodName = ownPodName || tmpl.Env[i].Name == podNameEnv
		ownRack = ownRack || tmpl.Env[i].Name == rackEnv
	}
	if rack := ing.Spec.Kafka.Rack; rack != nil && !ownRack {
		// Each pod's own rack comes from its labels as it starts; the ConfigMap is shared.
		env := corev1ac.EnvVar().WithName(rackEnv)
		if rack.PodLabel != "" {
			env.WithValueFrom(corev1ac.EnvVarSource().WithFieldRef(
				corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath(fmt.Sprintf("metadata.labels['%s']", rack.PodLabel))))
		} else {
			env.WithValue(rack.ID)
		}
		container.WithEnv(env)
	}
	if !ownPodName {
		// The pod names itself in the load reports it commits (its hostname is the
		// node's with hostNetwork). The API version is spelled out as the API server
		// defaults it, so that the applied object does not differ from the stored one.
		container.WithEnv(corev1ac.EnvVar().WithName(podNameEnv).WithValueFrom(corev1ac.EnvVarSource().WithFieldRef(
			corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath("metadata.name"))))
	}

	pod := corev1ac.PodSpec().
		WithServiceAccountName(ingesterObjectName(ing)).
		WithAutomountServiceAccountToken(false).
		// Room for the drain on SIGTERM to finish and commit before the kill.
		WithTerminationGracePeriodSeconds(terminationGracePeriodSeconds(ing)).
		WithSecurityContext(podSecurityContext(tmpl.PodSecurityContext))
	if tmpl.ServiceAccountName != "" {
		pod.WithServiceAccountName(tmpl.ServiceAccountName)
	}
	mount := func(volume *corev1ac.VolumeApplyConfiguration, mountPath string, readOnly bool) {
		pod.WithVolumes(volume)
		container.WithVolumeMounts(corev1ac.VolumeMount().WithName(*volume.Name).WithMountPath(mountPath).WithReadOnly(readOnly))
	}
	mount(corev1ac.Volume().WithName(volumeConfig).WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(*cm.Name)), configDir, true)
	if t := kafkaTLS(ing); t != nil {
		t.mount(mount)
	}
	if s := ing.Spec.Kafka.SASL; s != nil {
		mount(secretVolume(volumeKafkaSASL, s.CredentialsSecretName, map[string]string{
			saslUsernameKey: saslUsernameKey, saslPasswordKey: saslPasswordKey,
		}), path.Join(secretsDir, volumeKafkaSASL), true)
	}
	if t := otlpTLS(ing); t != nil {
		t.mount(mount)
	}
	if o := otlpSpec(ing); o != nil {
		for i, h := range o.Headers {
			if h.ValueFrom != nil {
				container.WithEnv(corev1ac.EnvVar().WithName(fmt.Sprintf("%s%d", otlpHeaderEnv, i)).
					WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
						corev1ac.SecretKeySelector().WithName(h.ValueFrom.Name).WithKey(h.ValueFrom.Key))))
			}
		}
	}
	if f := ing.Spec.Storage.File; ing.Spec.Storage.Type == spanflowv1alpha1.StorageFile && f != nil {
		volume := corev1ac.Volume().WithName(volumeFileStorage)
		if f.ClaimName != "" {
			volume.WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().WithClaimName(f.ClaimName))
		} else {
			volume.WithEmptyDir(corev1ac.EmptyDirVolumeSource())
		}
		mount(volume, f.Path, false)
	}
	pod.WithContainers(container)

	for _, s := range tmpl.ImagePullSecrets {
		pod.WithImagePullSecrets(corev1ac.LocalObjectReference().WithName(s.Name))
	}
	if len(tmpl.NodeSelector) > 0 {
		pod.WithNodeSelector(tmpl.NodeSelector)
	}
	if tmpl.Affinity != nil {
		pod.WithAffinity(affinityAC(tmpl.Affinity))
	}
	for i := range tmpl.Tolerations {
		pod.WithTolerations(tolerationAC(tmpl.Tolerations[i]))
	}
	for i := range tmpl.TopologySpreadConstraints {
		pod.WithTopologySpreadConstraints(topologySpreadAC(tmpl.TopologySpreadConstraints[i]))
	}
	if tmpl.PriorityClassName != "" {
		pod.WithPriorityClassName(tmpl.PriorityClassName)
	}

	podLabels := maps.Clone(tmpl.PodLabels)
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	maps.Copy(podLabels, objectLabels(ing))
	podAnnotations := maps.Clone(tmpl.PodAnnotations)
	if podAnnotations == nil {
		podAnnotations = map[string]string{}
	}
	podAnnotations[podTemplateHashAnnotation] = hash

	return appsv1ac.Deployment(ingesterObjectName(ing), ing.Namespace).
		WithLabels(objectLabels(ing)).
		WithAnnotations(map[string]string{consumerGroupAnnotation: consumerGroup(ing)}).
		WithOwnerReferences(ownerReference(ing)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(desiredReplicas(ing)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(ing))).
			// A consumer-group member leaving triggers a rebalance; replace pods one at a time.
			WithStrategy(appsv1ac.DeploymentStrategy().WithType("RollingUpdate").
				WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
					WithMaxUnavailable(intstr.FromInt32(0)).WithMaxSurge(intstr.FromInt32(1)))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(podLabels).
				WithAnnotations(podAnnotations).
				WithSpec(pod)))
}

// terminationGracePeriodSeconds leaves the drain on SIGTERM its whole timeout, and the
// final commit and shutdown 15 s more, before the kill.
func terminationGracePeriodSeconds(ing *spanflowv1alpha1.Ingester) int64 {
	drain := ing.Spec.Kafka.DrainTimeout.Or(config.Default().DrainTimeout.D())
	return int64((drain + 15*time.Second + time.Second - 1) / time.Second)
}

func secretVolume(name, secretName string, items map[string]string) *corev1ac.VolumeApplyConfiguration {
	src := corev1ac.SecretVolumeSource().WithSecretName(secretName).WithDefaultMode(0o440)
	for _, key := range slices.Sorted(maps.Keys(items)) {
		src.WithItems(corev1ac.KeyToPath().WithKey(key).WithPath(items[key]))
	}
	return corev1ac.Volume().WithName(name).WithSecret(src)
}

func httpProbe(path string, periodSeconds int32) *corev1ac.ProbeApplyConfiguration {
	return corev1ac.Probe().
		WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString("admin"))).
		WithPeriodSeconds(periodSeconds)
}
