package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
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

// FileStorage writes OTLP JSON lines to rotating files.
// +kubebuilder:validation:XValidation:rule="!has(self.maxFileSize) || quantity(string(self.maxFileSize)).compareTo(quantity('1Mi')) >= 0",message="storage.file.maxFileSize must be at least 1Mi"
type FileStorage struct {
	// path is the directory of the files in the ingester pod, an absolute path other
	// than / and outside /etc/spanflow (where the operator mounts the configuration); a
	// volume is mounted there.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/[^/]`
	// +kubebuilder:validation:XValidation:rule="self != '/etc/spanflow' && !self.startsWith('/etc/spanflow/')",message="storage.file.path must be outside /etc/spanflow, where the operator mounts the configuration and Secrets"
	// +required
	Path string `json:"path"`
	// maxFileSize rotates to a new file once the current one reaches it: a quantity of
	// bytes such as 64Mi (the default), at least 1Mi.
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
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
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
	// value of the header, for values that are not secret. ${env:NAME} in it is replaced
	// with the pod's environment variable NAME (template.env), as in the OpenTelemetry
	// Collector's configuration; $$ stands for $.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Value string `json:"value,omitempty"`
	// valueFrom takes the value from a Secret; it reaches the pods as an environment
	// variable from the Secret, never through the ConfigMap.
	// +optional
	ValueFrom *SecretKeyRef `json:"valueFrom,omitempty"`
}

// OTLPTLS configures TLS to the OTLP backend.
// +kubebuilder:validation:XValidation:rule="!(has(self.ca) && has(self.insecureSkipVerify) && self.insecureSkipVerify)",message="storage.otlp.tls.insecureSkipVerify accepts any certificate, so storage.otlp.tls.ca would be ignored: set one or the other"
type OTLPTLS struct {
	// ca is the PEM bundle of the CAs that sign the backend's certificate. Unset: the
	// image's system roots.
	// +optional
	CA *SecretKeyRef `json:"ca,omitempty"`
	// clientCertSecretName names a kubernetes.io/tls Secret for mutual TLS.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	ClientCertSecretName string `json:"clientCertSecretName,omitempty"`
	// insecureSkipVerify accepts any backend certificate. For trials only.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// OTLPStorage sends spans to an OTLP backend.
// +kubebuilder:validation:XValidation:rule="!(has(self.insecure) && self.insecure && has(self.tls))",message="storage.otlp.insecure excludes storage.otlp.tls"
// +kubebuilder:validation:XValidation:rule="!has(self.compressionLevel) || (has(self.compression) && self.compression == 'zstd' ? self.compressionLevel >= 1 : ((!has(self.compression) || self.compression == 'gzip') && self.compressionLevel != 0 && self.compressionLevel <= 9))",message="storage.otlp.compressionLevel: gzip takes 1 (fastest) to 9 (smallest) or -1, zstd 1 to 22, snappy and none no level"
type OTLPStorage struct {
	// endpoint is host:port for grpc (http://host:port with insecure, https://host:port
	// without, are taken too, as the Collector takes them), or an http:// or https:// URL
	// for http (/v1/traces is added when the URL has no path).
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
	// compression of the exports: gzip, zstd (less CPU than gzip for a similar size),
	// snappy (least CPU, larger), or none. The OpenTelemetry Collector's receivers (Jaeger
	// v2, Tempo) accept all of them over gRPC and HTTP.
	// +kubebuilder:validation:Enum=gzip;zstd;snappy;none
	// +kubebuilder:default=gzip
	// +optional
	Compression string `json:"compression,omitempty"`
	// compressionLevel trades CPU for bytes sent, with the numbers of the OpenTelemetry
	// Collector's compression_params.level: for gzip 1 (fastest) to 9 (smallest), or -1
	// for gzip's default; for zstd, zstd's levels 1 (fastest) to 22 (3 is its default).
	// Unset: the compression's default. On realistic spans gzip at 2 compresses with about
	// half the CPU of its default, into requests 7% larger (at 1: the same CPU, 10%
	// larger). snappy and none have no levels.
	// +kubebuilder:validation:Minimum=-1
	// +kubebuilder:validation:Maximum=22
	// +optional
	CompressionLevel *int32 `json:"compressionLevel,omitempty"`
	// timeout bounds one export: a duration such as 10s (the default).
	// +kubebuilder:default="10s"
	// +optional
	Timeout *PositiveDuration `json:"timeout,omitempty"`
}

// StorageSpec says where the spans go.
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'file' || has(self.file)",message="storage.file is required when storage.type is file"
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'otlp' || has(self.otlp)",message="storage.otlp is required when storage.type is otlp"
type StorageSpec struct {
	// type is the kind of trace storage: "otlp" sends to an OTLP backend (Jaeger, Tempo,
	// an OpenTelemetry Collector), "file" writes OTLP JSON lines to files, "blackhole"
	// counts the spans and drops them, committing their offsets. Required: dropping the
	// spans is asked for, never fallen into.
	// +required
	Type StorageType `json:"type,omitempty"`
	// file configures the file store.
	// +optional
	File *FileStorage `json:"file,omitempty"`
	// otlp configures the OTLP exporter.
	// +optional
	OTLP *OTLPStorage `json:"otlp,omitempty"`
}
