package controllers

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"
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

// envVarAC is an env var of the template as the API server stores it: a fieldRef without
// apiVersion gets "v1". The fieldRef is an atomic struct, owned whole by the apply, so a
// value the API server filled in would make the stored Deployment differ from the applied
// one at every look, and the operator apply it again at every resync.
func envVarAC(e corev1.EnvVar) *corev1ac.EnvVarApplyConfiguration {
	if from := e.ValueFrom; from != nil && from.FieldRef != nil && from.FieldRef.APIVersion == "" {
		e.ValueFrom = from.DeepCopy()
		e.ValueFrom.FieldRef.APIVersion = "v1"
	}
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

// podSecurityContext is the restricted Pod Security default — non-root user 65532 and
// the runtime's seccomp profile — with the fields the override sets replacing those fields.
func podSecurityContext(override *corev1.PodSecurityContext) *corev1ac.PodSecurityContextApplyConfiguration {
	restricted := &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To[int64](65532),
		RunAsGroup:     ptr.To[int64](65532),
		FSGroup:        ptr.To[int64](65532),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	return applyConfigOf[corev1ac.PodSecurityContextApplyConfiguration](mergedFields(restricted, override))
}

// containerSecurityContext is the restricted default — no privilege escalation, read-only
// root filesystem, every capability dropped — with the fields the override sets replacing
// those fields.
func containerSecurityContext(override *corev1.SecurityContext) *corev1ac.SecurityContextApplyConfiguration {
	restricted := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Privileged:               ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	return applyConfigOf[corev1ac.SecurityContextApplyConfiguration](mergedFields(restricted, override))
}

// mergedFields is base with every top-level field that override sets replacing base's,
// as JSON objects: setting one field of a security context keeps the other defaults.
func mergedFields(base, override any) map[string]json.RawMessage {
	fields := map[string]json.RawMessage{}
	for _, v := range []any{base, override} {
		data, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Sprintf("marshalling %T: %v", v, err))
		}
		if string(data) == "null" {
			continue // no override (null would reset the map)
		}
		if err := json.Unmarshal(data, &fields); err != nil {
			panic(fmt.Sprintf("reading %T as an object: %v", v, err))
		}
	}
	return fields
}
