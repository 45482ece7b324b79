package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/ingester/config"
)

const (
	// configFileName is the key of the ingester config in its ConfigMap and the file name
	// it is mounted as.
	configFileName = "ingester.yaml"
	configDir      = "/etc/spanflow"
	adminPort      = 8080
	// configHashAnnotation on the pod template changes with the config, so that a config
	// change rolls the pods.
	configHashAnnotation = "spanflow.dev/config-hash"
)

// ingesterObjectName is the name of the objects that run an Ingester.
func ingesterObjectName(ing *spanflowv1alpha1.Ingester) string {
	return ing.Name + "-ingester"
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

// desiredReplicas is spec.replicas, defaulted for objects the API server has not defaulted.
func desiredReplicas(ing *spanflowv1alpha1.Ingester) int32 {
	return ptr.Deref(ing.Spec.Replicas, 1)
}

func desiredParallelism(ing *spanflowv1alpha1.Ingester) int32 {
	return ptr.Deref(ing.Spec.Parallelism, int32(config.Default().Parallelism))
}

// ingesterConfig is the configuration file of the ingester pods, built from the spec over
// the ingester's own defaults.
func ingesterConfig(ing *spanflowv1alpha1.Ingester) config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = ing.Spec.Kafka.Brokers
	cfg.Kafka.Topic = ing.Spec.Kafka.Topic
	cfg.Kafka.ConsumerGroup = consumerGroup(ing)
	if ing.Spec.Kafka.InitialOffset != "" {
		cfg.Kafka.InitialOffset = string(ing.Spec.Kafka.InitialOffset)
	}
	if ing.Spec.Encoding != "" {
		cfg.Encoding = string(ing.Spec.Encoding)
	}
	if ing.Spec.Storage.Type != "" {
		cfg.Storage.Type = string(ing.Spec.Storage.Type)
	}
	cfg.Parallelism = int(desiredParallelism(ing))
	cfg.AdminAddress = fmt.Sprintf(":%d", adminPort)
	return cfg
}

// desiredConfigMap holds the ingester configuration. It never holds credentials: those
// reach the pods from Secrets.
func desiredConfigMap(ing *spanflowv1alpha1.Ingester) (*corev1ac.ConfigMapApplyConfiguration, error) {
	data, err := ingesterConfig(ing).Marshal()
	if err != nil {
		return nil, fmt.Errorf("rendering ingester config: %w", err)
	}
	return corev1ac.ConfigMap(ingesterObjectName(ing), ing.Namespace).
		WithLabels(objectLabels(ing)).
		WithOwnerReferences(ownerReference(ing)).
		WithData(map[string]string{configFileName: string(data)}), nil
}

// configHash is a short digest of the ConfigMap's data, stable across map order.
func configHash(cm *corev1ac.ConfigMapApplyConfiguration) string {
	sum := sha256.Sum256([]byte(cm.Data[configFileName]))
	return hex.EncodeToString(sum[:8])
}

// desiredDeployment runs `spanflow ingest` with the config from desiredConfigMap.
func desiredDeployment(ing *spanflowv1alpha1.Ingester, image string, cm *corev1ac.ConfigMapApplyConfiguration) *appsv1ac.DeploymentApplyConfiguration {
	drain := time.Duration(config.Default().DrainTimeout)
	container := corev1ac.Container().
		WithName("ingester").
		WithImage(image).
		WithArgs("ingest", "--config="+configDir+"/"+configFileName).
		WithPorts(corev1ac.ContainerPort().WithName("admin").WithContainerPort(adminPort).WithProtocol(corev1.ProtocolTCP)).
		WithVolumeMounts(corev1ac.VolumeMount().WithName("config").WithMountPath(configDir).WithReadOnly(true)).
		WithLivenessProbe(httpProbe("/healthz", 10)).
		WithReadinessProbe(httpProbe("/readyz", 5)).
		WithSecurityContext(corev1ac.SecurityContext().
			WithAllowPrivilegeEscalation(false).
			WithReadOnlyRootFilesystem(true).
			WithRunAsNonRoot(true).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault)))

	pod := corev1ac.PodSpec().
		WithContainers(container).
		WithVolumes(corev1ac.Volume().WithName("config").
			WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(*cm.Name))).
		// Room for the drain on SIGTERM to finish and commit before the kill.
		WithTerminationGracePeriodSeconds(int64(drain/time.Second) + 15).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(65532).
			WithRunAsGroup(65532).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault)))

	return appsv1ac.Deployment(ingesterObjectName(ing), ing.Namespace).
		WithLabels(objectLabels(ing)).
		WithOwnerReferences(ownerReference(ing)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(desiredReplicas(ing)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(ing))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(objectLabels(ing)).
				WithAnnotations(map[string]string{configHashAnnotation: configHash(cm)}).
				WithSpec(pod)))
}

func httpProbe(path string, periodSeconds int32) *corev1ac.ProbeApplyConfiguration {
	return corev1ac.Probe().
		WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString("admin"))).
		WithPeriodSeconds(periodSeconds)
}
