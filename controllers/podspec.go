package controllers

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// applyConfigOf converts a typed API object into its apply configuration. The two share
// their JSON form, so a round trip through JSON is exact; it cannot fail for these types.
func applyConfigOf[AC any](typed any) *AC {
	data, err := json.Marshal(typed)
	if err != nil {
		panic(fmt.Sprintf("marshalling %T: %v", typed, err))
	}
	var ac AC
	if err := json.Unmarshal(data, &ac); err != nil {
		panic(fmt.Sprintf("converting %T to %T: %v", typed, ac, err))
	}
	return &ac
}

func resourcesAC(r corev1.ResourceRequirements) *corev1ac.ResourceRequirementsApplyConfiguration {
	return applyConfigOf[corev1ac.ResourceRequirementsApplyConfiguration](r)
}

func envVarAC(e corev1.EnvVar) *corev1ac.EnvVarApplyConfiguration {
	return applyConfigOf[corev1ac.EnvVarApplyConfiguration](e)
}

func affinityAC(a *corev1.Affinity) *corev1ac.AffinityApplyConfiguration {
	return applyConfigOf[corev1ac.AffinityApplyConfiguration](a)
}

func tolerationAC(t corev1.Toleration) *corev1ac.TolerationApplyConfiguration {
	return applyConfigOf[corev1ac.TolerationApplyConfiguration](t)
}

func topologySpreadAC(t corev1.TopologySpreadConstraint) *corev1ac.TopologySpreadConstraintApplyConfiguration {
	return applyConfigOf[corev1ac.TopologySpreadConstraintApplyConfiguration](t)
}

// podSecurityContext is the override, or the restricted Pod Security default: non-root
// user 65532 and the runtime's seccomp profile.
func podSecurityContext(override *corev1.PodSecurityContext) *corev1ac.PodSecurityContextApplyConfiguration {
	if override != nil {
		return applyConfigOf[corev1ac.PodSecurityContextApplyConfiguration](override)
	}
	return corev1ac.PodSecurityContext().
		WithRunAsNonRoot(true).
		WithRunAsUser(65532).
		WithRunAsGroup(65532).
		WithFSGroup(65532).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

// containerSecurityContext is the override, or the restricted default: no privilege
// escalation, read-only root filesystem, every capability dropped.
func containerSecurityContext(override *corev1.SecurityContext) *corev1ac.SecurityContextApplyConfiguration {
	if override != nil {
		return applyConfigOf[corev1ac.SecurityContextApplyConfiguration](override)
	}
	return corev1ac.SecurityContext().
		WithAllowPrivilegeEscalation(false).
		WithReadOnlyRootFilesystem(true).
		WithRunAsNonRoot(true).
		WithPrivileged(false).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}
