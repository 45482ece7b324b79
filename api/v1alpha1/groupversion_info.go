// Package v1alpha1 contains the API of spanflow: the Ingester resource, which runs
// Kafka-to-trace-storage ingestion as a managed, autoscaled workload.
// +kubebuilder:object:generate=true
// +groupName=spanflow.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of the spanflow resources.
	GroupVersion = schema.GroupVersion{Group: "spanflow.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the spanflow types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the spanflow types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
