package controllers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/ingester/config"
)

func TestIngesterConfig(t *testing.T) {
	base := func() *spanflowv1alpha1.Ingester {
		return &spanflowv1alpha1.Ingester{
			ObjectMeta: metav1.ObjectMeta{Namespace: "obs", Name: "traces"},
			Spec: spanflowv1alpha1.IngesterSpec{
				Kafka:   spanflowv1alpha1.KafkaSpec{Brokers: []string{"k:9092"}, Topic: "spans"},
				Storage: spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageBlackhole},
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
				c.Storage.Type != config.StorageBlackhole || c.Parallelism != 8 || c.Kafka.InitialOffset != config.OffsetEarliest ||
				c.Kafka.IsolationLevel != "" {
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
			i.Spec.Kafka.IsolationLevel = spanflowv1alpha1.IsolationReadCommitted
			i.Spec.Kafka.ClientID = "team-a.traces"
			i.Spec.MaxInFlightBytes = ptr.To(resource.MustParse("32Mi"))
			i.Spec.Kafka.DrainTimeout = spanflowv1alpha1.NewPositiveDuration(7 * time.Second)
			i.Spec.Kafka.MinFetchBytes = ptr.To[int32](65536)
		}, func(t *testing.T, c config.Config) {
			if c.Encoding != config.EncodingOTLPJSON || c.Parallelism != 32 || c.Kafka.InitialOffset != config.OffsetLatest ||
				c.Kafka.IsolationLevel != config.ReadCommitted || c.Kafka.ClientID != "team-a.traces" ||
				c.MaxInFlightBytes != 32<<20 || c.DrainTimeout.D() != 7*time.Second || c.Kafka.MinBytes != 65536 {
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

func baseIngester() *spanflowv1alpha1.Ingester {
	return &spanflowv1alpha1.Ingester{
		ObjectMeta: metav1.ObjectMeta{Namespace: "obs", Name: "traces", UID: "uid-1"},
		Spec: spanflowv1alpha1.IngesterSpec{
			Kafka:    spanflowv1alpha1.KafkaSpec{Brokers: []string{"k:9092"}, Topic: "spans"},
			Storage:  spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageBlackhole},
			Replicas: ptr.To[int32](3),
		},
	}
}

func deploymentFor(t *testing.T, ing *spanflowv1alpha1.Ingester) *appsv1ac.DeploymentApplyConfiguration {
	t.Helper()
	cm, err := desiredConfigMap(ing)
	if err != nil {
		t.Fatal(err)
	}
	return desiredDeployment(ing, "img:1", cm, "hash1")
}

func TestDesiredDeployment(t *testing.T) {
	ing := baseIngester()
	dep := deploymentFor(t, ing)

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
	if *dep.Spec.Strategy.RollingUpdate.MaxUnavailable != intstr.FromInt32(0) {
		t.Errorf("rolling update may take pods away before their replacement is ready")
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if *c.Image != "img:1" || strings.Join(c.Args, " ") != "ingest --config=/etc/spanflow/config/ingester.yaml" {
		t.Errorf("container runs %s %v", *c.Image, c.Args)
	}
	if !*pod.SecurityContext.RunAsNonRoot || *c.SecurityContext.AllowPrivilegeEscalation || !*c.SecurityContext.ReadOnlyRootFilesystem ||
		c.SecurityContext.Capabilities.Drop[0] != "ALL" || *pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod is not restricted")
	}
	if *pod.ServiceAccountName != "traces-ingester" || *pod.AutomountServiceAccountToken {
		t.Errorf("pod runs as %s with a token: %v", *pod.ServiceAccountName, *pod.AutomountServiceAccountToken)
	}
	if want := int64(config.Default().DrainTimeout.D().Seconds()) + 15; *pod.TerminationGracePeriodSeconds != want {
		t.Errorf("grace period %ds, want the default drain and 15 s: %d", *pod.TerminationGracePeriodSeconds, want)
	}
	ing.Spec.Kafka.DrainTimeout = spanflowv1alpha1.NewPositiveDuration(50*time.Second + time.Millisecond)
	if got := *deploymentFor(t, ing).Spec.Template.Spec.TerminationGracePeriodSeconds; got != 66 {
		t.Errorf("grace period with a 50.001 s drain: %d s, want 66", got)
	}
	if dep.Spec.Template.Annotations[podTemplateHashAnnotation] != "hash1" {
		t.Errorf("pod template hash missing")
	}
	if len(pod.Volumes) != 1 || *pod.Volumes[0].Name != volumeConfig {
		t.Errorf("unexpected volumes: %d", len(pod.Volumes))
	}
}

func TestDesiredDeploymentTemplate(t *testing.T) {
	ing := baseIngester()
	ing.Spec.Template = spanflowv1alpha1.PodTemplate{
		Image:              "mirror/spanflow:2",
		ImagePullPolicy:    corev1.PullAlways,
		ImagePullSecrets:   []corev1.LocalObjectReference{{Name: "regcred"}},
		Resources:          corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}},
		NodeSelector:       map[string]string{"pool": "ingest"},
		Tolerations:        []corev1.Toleration{{Key: "dedicated", Value: "ingest", Effect: corev1.TaintEffectNoSchedule}},
		PriorityClassName:  "high",
		PodAnnotations:     map[string]string{"team": "obs", podTemplateHashAnnotation: "user"},
		PodLabels:          map[string]string{"team": "obs", "app.kubernetes.io/instance": "hijack"},
		Env:                []corev1.EnvVar{{Name: "GOMEMLIMIT", Value: "900MiB"}},
		ServiceAccountName: "custom",
		Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 10, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname"}}}}},
		TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway}},
		SecurityContext:           &corev1.SecurityContext{RunAsUser: ptr.To[int64](1000)},
	}
	dep := deploymentFor(t, ing)
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	switch {
	case *c.Image != "mirror/spanflow:2" || *c.ImagePullPolicy != corev1.PullAlways:
		t.Errorf("image %s %s", *c.Image, *c.ImagePullPolicy)
	case *pod.ImagePullSecrets[0].Name != "regcred" || pod.NodeSelector["pool"] != "ingest" || *pod.PriorityClassName != "high":
		t.Error("pull secrets, node selector or priority class lost")
	case (*c.Resources.Limits)[corev1.ResourceMemory] != resource.MustParse("1Gi"):
		t.Error("resources lost")
	case *pod.Tolerations[0].Key != "dedicated" || *pod.TopologySpreadConstraints[0].MaxSkew != 1:
		t.Error("tolerations or spread lost")
	case *pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].Weight != 10:
		t.Error("affinity lost")
	case *c.Env[0].Name != "GOMEMLIMIT" || *pod.ServiceAccountName != "custom" || *c.SecurityContext.RunAsUser != 1000:
		t.Error("env, service account or security context override lost")
	case dep.Spec.Template.Labels["team"] != "obs" || dep.Spec.Template.Labels["app.kubernetes.io/instance"] != "traces":
		t.Errorf("pod labels %v: user labels must not override the selector", dep.Spec.Template.Labels)
	case dep.Spec.Template.Annotations["team"] != "obs" || dep.Spec.Template.Annotations[podTemplateHashAnnotation] != "hash1":
		t.Errorf("pod annotations %v", dep.Spec.Template.Annotations)
	}
	// Setting one field of a security context keeps the other restricted defaults.
	if sc := c.SecurityContext; !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || sc.Capabilities.Drop[0] != "ALL" ||
		!*sc.RunAsNonRoot || *sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("the container's restricted defaults were dropped for one field: %+v", sc)
	}
	ing.Spec.Template.PodSecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To[int64](2000)}
	if psc := deploymentFor(t, ing).Spec.Template.Spec.SecurityContext; *psc.FSGroup != 2000 || *psc.RunAsUser != 65532 ||
		!*psc.RunAsNonRoot || *psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("the pod's restricted defaults were dropped for one field: %+v", psc)
	}
}

func TestSecretsAndFileStorageAreMounted(t *testing.T) {
	ing := baseIngester()
	ing.Spec.Kafka.TLS = &spanflowv1alpha1.KafkaTLS{Enabled: true, CA: &spanflowv1alpha1.SecretKeyRef{Name: "kafka-ca", Key: "ca.pem"},
		ClientCertSecretName: "kafka-client"}
	ing.Spec.Kafka.SASL = &spanflowv1alpha1.KafkaSASL{Mechanism: "SCRAM-SHA-512", CredentialsSecretName: "kafka-user"}
	ing.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageFile,
		File: &spanflowv1alpha1.FileStorage{Path: "/data/spans", ClaimName: "spans-pvc"}}

	if got := referencedSecretNames(ing); strings.Join(got, ",") != "kafka-ca,kafka-client,kafka-user" {
		t.Errorf("referenced secrets %v", got)
	}
	cfg := ingesterConfig(ing)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the operator renders a config the ingester refuses: %v", err)
	}
	mounts := map[string]string{}
	dep := deploymentFor(t, ing)
	for _, m := range dep.Spec.Template.Spec.Containers[0].VolumeMounts {
		mounts[*m.Name] = *m.MountPath
	}
	volumes := map[string]corev1ac.VolumeApplyConfiguration{}
	for _, v := range dep.Spec.Template.Spec.Volumes {
		volumes[*v.Name] = v
	}
	// Every file the config names lies in a mounted volume, under the key it comes from.
	for file, volume := range map[string]string{
		cfg.Kafka.TLS.CAFile: volumeKafkaCA, cfg.Kafka.TLS.CertFile: volumeKafkaClient, cfg.Kafka.TLS.KeyFile: volumeKafkaClient,
		cfg.Kafka.SASL.UsernameFile: volumeKafkaSASL, cfg.Kafka.SASL.PasswordFile: volumeKafkaSASL,
	} {
		if !strings.HasPrefix(file, mounts[volume]+"/") {
			t.Errorf("%s is not in volume %s mounted at %s", file, volume, mounts[volume])
		}
	}
	if ca := volumes[volumeKafkaCA].Secret; *ca.SecretName != "kafka-ca" || *ca.Items[0].Key != "ca.pem" || *ca.Items[0].Path != "ca.crt" {
		t.Errorf("CA volume maps %s/%s to %s", *ca.SecretName, *ca.Items[0].Key, *ca.Items[0].Path)
	}
	if mounts[volumeFileStorage] != "/data/spans" || *volumes[volumeFileStorage].PersistentVolumeClaim.ClaimName != "spans-pvc" {
		t.Errorf("file storage is not on the claim at its path")
	}
	// No credential is in the config file: only paths.
	data, _ := cfg.Marshal()
	if strings.Contains(string(data), "password:") && !strings.Contains(string(data), "passwordFile") {
		t.Errorf("config holds a credential:\n%s", data)
	}
}

func TestPodTemplateHash(t *testing.T) {
	ing := baseIngester()
	hashOf := func(ing *spanflowv1alpha1.Ingester, secrets []secretDigest) string {
		h, err := podTemplateHash(ing, secrets)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	secret := func(mutate func(*corev1.Secret)) []secretDigest {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", UID: "u1", ResourceVersion: "1"},
			Data: map[string][]byte{"username": []byte("spanflow"), "password": []byte("hunter2"), "unused": []byte("x")}}
		mutate(s)
		return []secretDigest{digestSecret(s, []string{"username", "password"})}
	}
	base := secret(func(*corev1.Secret) {})
	hash := hashOf(ing, base)
	if hashOf(ing, secret(func(*corev1.Secret) {})) != hash {
		t.Error("the hash is not stable")
	}
	for name, mutate := range map[string]func(*corev1.Secret){
		"a label added":         func(s *corev1.Secret) { s.Labels = map[string]string{"team": "obs"}; s.ResourceVersion = "2" },
		"an unused key changed": func(s *corev1.Secret) { s.Data["unused"] = []byte("y"); s.ResourceVersion = "3" },
	} {
		if hashOf(ing, secret(mutate)) != hash {
			t.Errorf("%s rolls the pods, though nothing they read changed", name)
		}
	}
	for name, mutate := range map[string]func(*corev1.Secret){
		"the password rotated":       func(s *corev1.Secret) { s.Data["password"] = []byte("hunter3") },
		"the Secret recreated":       func(s *corev1.Secret) { s.UID = "u2" },
		"a value moved between keys": func(s *corev1.Secret) { s.Data["username"], s.Data["password"] = []byte("spanflowh"), []byte("unter2") },
	} {
		if hashOf(ing, secret(mutate)) == hash {
			t.Errorf("%s does not roll the pods", name)
		}
	}
	// The parallelism is applied live by the pods: changing it rolls nothing. Any other
	// setting needs a restart.
	ing.Spec.Parallelism = ptr.To[int32](9)
	if hashOf(ing, base) != hash {
		t.Error("a parallelism change rolls the pods")
	}
	ing.Spec.Processing.BatchSize = 50
	if hashOf(ing, base) == hash {
		t.Error("a config change does not change the pod template")
	}
}

func TestOtherObjects(t *testing.T) {
	ing := baseIngester()
	sa := desiredServiceAccount(ing)
	if *sa.Name != "traces-ingester" || *sa.AutomountServiceAccountToken {
		t.Error("service account mounts a token")
	}
	svc := desiredService(ing)
	if *svc.Spec.Ports[0].Port != adminPort || svc.Spec.Selector["app.kubernetes.io/instance"] != "traces" || *svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Error("service does not expose the admin port of the pods")
	}
	if pdb := desiredPodDisruptionBudget(ing); pdb == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Error("no PodDisruptionBudget for 3 replicas")
	}
	ing.Spec.Replicas = ptr.To[int32](1)
	if desiredPodDisruptionBudget(ing) != nil {
		t.Error("a PodDisruptionBudget for one replica would block node drains")
	}
}

func TestOTLPStorage(t *testing.T) {
	ing := baseIngester()
	ing.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{
		Endpoint: "tempo:4317", Compression: "zstd", CompressionLevel: ptr.To[int32](6),
		TLS: &spanflowv1alpha1.OTLPTLS{CA: &spanflowv1alpha1.SecretKeyRef{Name: "tempo-ca", Key: "ca.crt"}},
		Headers: []spanflowv1alpha1.OTLPHeader{
			{Name: "x-scope-orgid", Value: "shop"},
			{Name: "authorization", ValueFrom: &spanflowv1alpha1.SecretKeyRef{Name: "tempo-token", Key: "token"}},
		},
	}}
	cfg := ingesterConfig(ing)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the operator renders a config the ingester refuses: %v", err)
	}
	o := cfg.Storage.OTLP
	if o.Endpoint != "tempo:4317" || o.Protocol != "grpc" || o.Compression != "zstd" || o.CompressionLevel != 6 || o.Headers["x-scope-orgid"] != "shop" ||
		o.Headers["authorization"] != "${env:SPANFLOW_OTLP_HEADER_1}" || !strings.HasPrefix(o.CAFile, secretsDir) {
		t.Errorf("otlp config %+v", o)
	}
	if got := strings.Join(referencedSecretNames(ing), ","); got != "tempo-ca,tempo-token" {
		t.Errorf("referenced secrets %s", got)
	}
	dep := deploymentFor(t, ing)
	c := dep.Spec.Template.Spec.Containers[0]
	found := false
	for _, e := range c.Env {
		if *e.Name == "SPANFLOW_OTLP_HEADER_1" && *e.ValueFrom.SecretKeyRef.Name == "tempo-token" && *e.ValueFrom.SecretKeyRef.Key == "token" && e.Value == nil {
			found = true
		}
	}
	if !found {
		t.Error("the Secret-backed header does not reach the container as env from the Secret")
	}
	mounted := false
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if *v.Name == volumeOTLPCA && *v.Secret.SecretName == "tempo-ca" {
			mounted = true
		}
	}
	if !mounted {
		t.Error("the backend's CA is not mounted")
	}
}

// TestDefaultIsolationIsLeftOutOfTheConfig: read_uncommitted, the default, is not written
// into the pods' configuration, so that an ingester image older than the field (a
// pinned spec.template.image) still reads it; read_committed is written, and such an
// image refuses it by name rather than reading what it must not.
func TestDefaultIsolationIsLeftOutOfTheConfig(t *testing.T) {
	ing := &spanflowv1alpha1.Ingester{
		ObjectMeta: metav1.ObjectMeta{Name: "traces", Namespace: "obs"},
		Spec: spanflowv1alpha1.IngesterSpec{Kafka: spanflowv1alpha1.KafkaSpec{Brokers: []string{"k:9092"}, Topic: "spans",
			IsolationLevel: spanflowv1alpha1.IsolationReadUncommitted}},
	}
	for level, want := range map[spanflowv1alpha1.IsolationLevel]bool{spanflowv1alpha1.IsolationReadUncommitted: false, "": false, spanflowv1alpha1.IsolationReadCommitted: true} {
		ing.Spec.Kafka.IsolationLevel = level
		data, err := ingesterConfig(ing).MarshalForImages()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(data), "isolationLevel"); got != want {
			t.Errorf("%q: isolationLevel written %t, want %t:\n%s", level, got, want, data)
		}
		// The pods read it back as it was meant.
		path := filepath.Join(t.TempDir(), "ingester.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		loaded, err := config.Load(path)
		if err != nil {
			t.Fatalf("%q: the pods refuse the configuration: %v", level, err)
		}
		if got := loaded.Kafka.IsolationLevel == config.ReadCommitted; got != want {
			t.Errorf("%q: the pods read committed records: %t", level, got)
		}
	}
}

// TestLagPollsNameThemselvesAsThePods: the operator's polls of an Ingester's lag carry
// its kafka.clientID, as its pods' requests do.
func TestLagPollsNameThemselvesAsThePods(t *testing.T) {
	ing := &spanflowv1alpha1.Ingester{Spec: spanflowv1alpha1.IngesterSpec{Kafka: spanflowv1alpha1.KafkaSpec{
		Brokers: []string{"k:9092"}, Topic: "spans", ClientID: "team-a.traces"}}}
	if got := kafkaTargetOf(ing, nil).ClientID; got != "team-a.traces" {
		t.Errorf("the lag polls carry client id %q", got)
	}
}

// TestThePodsLearnTheirRack: spec.kafka.rack reaches each pod as SPANFLOW_RACK — the same
// id for every pod, or the pod's own label through the downward API (the ConfigMap is
// the same for every pod) — and nothing is set without it.
func TestThePodsLearnTheirRack(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rack      *spanflowv1alpha1.KafkaRack
		value     string
		fieldPath string
	}{
		{"none", nil, "", ""},
		{"one for every pod", &spanflowv1alpha1.KafkaRack{ID: "use1-az1"}, "use1-az1", ""},
		{"each pod's label", &spanflowv1alpha1.KafkaRack{PodLabel: "topology.kubernetes.io/zone"}, "", "metadata.labels['topology.kubernetes.io/zone']"},
	} {
		ing := &spanflowv1alpha1.Ingester{
			ObjectMeta: metav1.ObjectMeta{Name: "traces", Namespace: "obs"},
			Spec:       spanflowv1alpha1.IngesterSpec{Kafka: spanflowv1alpha1.KafkaSpec{Brokers: []string{"k:9092"}, Topic: "spans", Rack: tc.rack}},
		}
		var value, fieldPath string
		set := 0
		for _, e := range deploymentFor(t, ing).Spec.Template.Spec.Containers[0].Env {
			if *e.Name != rackEnv {
				continue
			}
			set++
			value = ptr.Deref(e.Value, "")
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				fieldPath = *e.ValueFrom.FieldRef.FieldPath
			}
		}
		if want := map[bool]int{true: 1}[tc.rack != nil]; set != want || value != tc.value || fieldPath != tc.fieldPath {
			t.Errorf("%s: %s set %d times, value %q, from %q; want %q from %q", tc.name, rackEnv, set, value, fieldPath, tc.value, tc.fieldPath)
		}
		if data, err := ingesterConfig(ing).MarshalForImages(); err != nil || strings.Contains(string(data), "rack") {
			t.Errorf("%s: the shared configuration names a rack (%v):\n%s", tc.name, err, data)
		}
	}
}

// TestRefusedAsItIs: the refusals that trying again soon does not change (the spec, a
// policy, a webhook, a quota, the operator's role) are told from a conflict or an API
// server that did not answer, which the work queue retries with its backoff; the others
// are tried again at each resync and logged once (as reconciler errors, with a stack
// trace, they were logged at every look).
func TestRefusedAsItIs(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "x", nil), true},
		{fmt.Errorf("the Deployment x would be refused, so nothing was changed: %w", apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "x", nil)), true},
		{apierrors.NewForbidden(gr, "x", errors.New("admission webhook \"policy.example\" denied the request")), true},
		{apierrors.NewForbidden(gr, "x", errors.New("exceeded quota: pods")), true},
		{apierrors.NewBadRequest("bad"), true},
		{apierrors.NewRequestEntityTooLargeError("too large"), true},
		{apierrors.NewConflict(gr, "x", errors.New("the object has been modified")), false},
		{apierrors.NewServerTimeout(gr, "apply", 1), false},
		{apierrors.NewTooManyRequests("slow down", 1), false},
		{apierrors.NewInternalError(errors.New("etcd")), false},
		{errors.New("connection refused"), false},
	} {
		if got := refusedAsItIs(tc.err); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.err, got, tc.want)
		}
	}
}
