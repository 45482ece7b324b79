package controllers

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/ingester/config"
)

func TestIngesterConfig(t *testing.T) {
	base := func() *spanflowv1alpha1.Ingester {
		return &spanflowv1alpha1.Ingester{
			ObjectMeta: metav1.ObjectMeta{Namespace: "obs", Name: "traces"},
			Spec: spanflowv1alpha1.IngesterSpec{
				Kafka: spanflowv1alpha1.KafkaSpec{Brokers: []string{"k:9092"}, Topic: "spans"},
			},
		}
	}
	cases := []struct {
		name   string
		mutate func(*spanflowv1alpha1.Ingester)
		check  func(t *testing.T, c config.Config)
	}{
		{"defaults", func(*spanflowv1alpha1.Ingester) {}, func(t *testing.T, c config.Config) {
			if c.Kafka.ConsumerGroup != "obs/traces" || c.Encoding != config.EncodingOTLPProto ||
				c.Storage.Type != config.StorageBlackhole || c.Parallelism != 1000 || c.Kafka.InitialOffset != config.OffsetEarliest {
				t.Errorf("defaults not applied: %+v", c)
			}
		}},
		{"explicit group", func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.ConsumerGroup = "g1" }, func(t *testing.T, c config.Config) {
			if c.Kafka.ConsumerGroup != "g1" {
				t.Errorf("group %q", c.Kafka.ConsumerGroup)
			}
		}},
		{"spec values", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Encoding = spanflowv1alpha1.EncodingOTLPJSON
			i.Spec.Parallelism = ptr.To[int32](32)
			i.Spec.Kafka.InitialOffset = spanflowv1alpha1.InitialOffsetLatest
		}, func(t *testing.T, c config.Config) {
			if c.Encoding != config.EncodingOTLPJSON || c.Parallelism != 32 || c.Kafka.InitialOffset != config.OffsetLatest {
				t.Errorf("spec not carried: %+v", c)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ing := base()
			tc.mutate(ing)
			cfg := ingesterConfig(ing)
			if err := cfg.Validate(); err != nil {
				t.Fatalf("the operator renders a config the ingester refuses: %v", err)
			}
			tc.check(t, cfg)
		})
	}
}

func TestDesiredDeployment(t *testing.T) {
	ing := &spanflowv1alpha1.Ingester{
		ObjectMeta: metav1.ObjectMeta{Namespace: "obs", Name: "traces", UID: "uid-1"},
		Spec: spanflowv1alpha1.IngesterSpec{
			Kafka:    spanflowv1alpha1.KafkaSpec{Brokers: []string{"k:9092"}, Topic: "spans"},
			Replicas: ptr.To[int32](3),
		},
	}
	cm, err := desiredConfigMap(ing)
	if err != nil {
		t.Fatal(err)
	}
	dep := desiredDeployment(ing, "img:1", cm)

	if *dep.Name != "traces-ingester" || *dep.Namespace != "obs" || *dep.Spec.Replicas != 3 {
		t.Errorf("identity or replicas wrong: %s/%s ×%d", *dep.Namespace, *dep.Name, *dep.Spec.Replicas)
	}
	owner := dep.OwnerReferences[0]
	if *owner.UID != "uid-1" || !*owner.Controller || *owner.Kind != "Ingester" {
		t.Errorf("owner reference wrong: %+v", owner)
	}
	for k, v := range dep.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("the selector %s=%s does not select the pod template", k, v)
		}
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if *c.Image != "img:1" || strings.Join(c.Args, " ") != "ingest --config=/etc/spanflow/ingester.yaml" {
		t.Errorf("container runs %s %v", *c.Image, c.Args)
	}
	if !*pod.SecurityContext.RunAsNonRoot || *c.SecurityContext.AllowPrivilegeEscalation || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("pod is not restricted")
	}
	if *pod.TerminationGracePeriodSeconds <= int64(config.Default().DrainTimeout.D().Seconds()) {
		t.Errorf("grace period %ds leaves no room for the drain", *pod.TerminationGracePeriodSeconds)
	}

	// The config hash follows the config and nothing else.
	ing.Spec.Parallelism = ptr.To[int32](9)
	cm2, _ := desiredConfigMap(ing)
	if configHash(cm) == configHash(cm2) {
		t.Errorf("a config change does not change the pod template")
	}
	cm3, _ := desiredConfigMap(ing)
	if configHash(cm2) != configHash(cm3) {
		t.Errorf("the config hash is not stable")
	}
}
