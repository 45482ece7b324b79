package controllers

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/internal/testenv"
)

// TestSchemaDefaultsAreTheIngesters: the defaults the CRD states (kubebuilder markers) and
// the ingester's config.Default() are one set of values — the API server's defaults are
// what the operator renders, so a marker that drifted from the ingester's default would
// change every Ingester behind its users' backs.
func TestSchemaDefaultsAreTheIngesters(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", "spanflow.dev_ingesters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := sigsyaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	schemaDefault := func(path ...string) string {
		s := spec
		for _, p := range path {
			var ok bool
			if s, ok = s.Properties[p]; !ok {
				t.Fatalf("the CRD has no spec.%v", path)
			}
		}
		if s.Default == nil {
			t.Fatalf("spec.%v has no default in the CRD", path)
		}
		dec := json.NewDecoder(bytes.NewReader(s.Default.Raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(v)
	}
	d := config.Default()
	for path, want := range map[string]any{
		"kafka.initialOffset":       d.Kafka.InitialOffset,
		"kafka.isolationLevel":      cmp.Or(d.Kafka.IsolationLevel, config.ReadUncommitted), // empty: read_uncommitted
		"kafka.sessionTimeout":      d.Kafka.SessionTimeout.D(),
		"kafka.heartbeatInterval":   d.Kafka.HeartbeatInterval.D(),
		"kafka.rebalanceTimeout":    d.Kafka.RebalanceTimeout.D(),
		"kafka.drainTimeout":        d.DrainTimeout.D(),
		"kafka.maxWait":             d.Kafka.MaxWait.D(),
		"kafka.commitInterval":      d.Kafka.CommitInterval.D(),
		"kafka.maxFetchBytes":       d.Kafka.MaxBytes,
		"kafka.minFetchBytes":       d.Kafka.MinBytes,
		"encoding":                  d.Encoding,
		"storage.otlp.protocol":     d.Storage.OTLP.Protocol,
		"storage.otlp.compression":  d.Storage.OTLP.Compression,
		"storage.otlp.timeout":      d.Storage.OTLP.Timeout.D(),
		"storage.file.maxFileSize":  resource.NewQuantity(d.Storage.File.MaxFileBytes, resource.BinarySI),
		"processing.batchSize":      d.Processing.BatchSize,
		"processing.batchLinger":    d.Processing.BatchLinger.D(),
		"processing.retry.min":      d.Processing.Retry.Min.D(),
		"processing.retry.max":      d.Processing.Retry.Max.D(),
		"processing.retry.attempts": d.Processing.Retry.Attempts,
		"processing.onDecodeError":  d.Processing.OnDecodeError,
		"parallelism":               d.Parallelism,
		"maxInFlightBytes":          resource.NewQuantity(d.MaxInFlightBytes, resource.BinarySI),
	} {
		if got := schemaDefault(strings.Split(path, ".")...); got != fmt.Sprint(want) {
			t.Errorf("spec.%s defaults to %s in the CRD, %v in the ingester", path, got, want)
		}
	}
}
