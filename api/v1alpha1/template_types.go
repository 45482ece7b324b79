package v1alpha1

import corev1 "k8s.io/api/core/v1"

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
	// operator renders (topic, group, parallelism) behind its back. Each name at most once.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self.all(e, !e.name.startsWith('SPANFLOW_'))",message="template.env must not set SPANFLOW_* variables: they override the configuration the operator renders; set the Ingester's fields instead"
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`
	// serviceAccountName runs the pods as an existing ServiceAccount instead of the one the
	// operator creates (which has no API rights). Refused unless the operator was started
	// with --allow-service-account (chart value ingesterPods.allowServiceAccount): it
	// would hand that account's rights to whoever may create Ingesters.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// podSecurityContext is merged over the pods' restricted default (non-root user
	// 65532, RuntimeDefault seccomp): a field set here replaces that field only. Running
	// as root is refused unless the operator was started with --allow-privileged-pods.
	// +optional
	PodSecurityContext *corev1.PodSecurityContext `json:"podSecurityContext,omitempty"`
	// securityContext is merged over the ingester container's restricted default (no
	// privilege escalation, read-only root filesystem, every capability dropped, non-root,
	// RuntimeDefault seccomp): a field set here replaces that field only. Privileged
	// containers, privilege escalation, added capabilities, root and an unconfined
	// seccomp profile are refused unless the operator was started with
	// --allow-privileged-pods (chart value ingesterPods.allowPrivileged).
	// +optional
	SecurityContext *corev1.SecurityContext `json:"securityContext,omitempty"`
}
