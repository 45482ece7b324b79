package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

// TestNeverTakesOverObjects: an unrelated object named like one the Ingester needs is
// left alone — not overwritten, not owned (so deleting the Ingester cannot delete it) —
// and the Ingester says which object is in the way until it is gone.
func TestNeverTakesOverObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	victim := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "victim-ingester"},
		Data: map[string]string{"app.properties": "owner=team-b"}}
	g.Expect(k8sClient.Create(ctx, victim)).To(Succeed())

	ing := minimalIngester(ns, "victim")
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonResourceConflict))
		g.Expect(c.Message).To(ContainSubstring(`ConfigMap "victim-ingester"`))
		g.Expect(ing.Status.State).To(Equal(spanflowv1alpha1.ReasonResourceConflict))
	}, eventually, poll).Should(Succeed())

	var after corev1.ConfigMap
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(victim), &after)).To(Succeed())
	g.Expect(after.Data).To(Equal(victim.Data))
	g.Expect(after.OwnerReferences).To(BeEmpty())
	g.Expect(after.ManagedFields).NotTo(ContainElement(HaveField("Manager", string(FieldOwner))))
	// Nothing else was applied either: half an ingester is no ingester.
	err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "victim-ingester"}, &appsv1.Deployment{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "a Deployment was created beside the conflict: %v", err)

	// Once the user moved their object away, the Ingester runs (the resync looks again).
	g.Expect(k8sClient.Delete(ctx, victim)).To(Succeed())
	g.Eventually(func(g Gomega) { getDeployment(g, ns, "victim-ingester") }, eventually, poll).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionDegraded).Status).To(Equal(metav1.ConditionFalse))
	}, eventually, poll).Should(Succeed())
}

// TestPodTemplatesWithinPolicy: what a user may not do directly — privileged or root
// pods, another ServiceAccount — an Ingester does not do for them: refused on its status,
// with no Deployment created.
func TestPodTemplatesWithinPolicy(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	for name, tc := range map[string]struct {
		template spanflowv1alpha1.PodTemplate
		field    string
	}{
		"privileged": {spanflowv1alpha1.PodTemplate{SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}},
			"spec.template.securityContext.privileged"},
		"root": {spanflowv1alpha1.PodTemplate{PodSecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](0)}},
			"spec.template.podSecurityContext.runAsUser"},
		"capabilities": {spanflowv1alpha1.PodTemplate{SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}}},
			"spec.template.securityContext.capabilities.add"},
		"service-account": {spanflowv1alpha1.PodTemplate{ServiceAccountName: "default"}, "spec.template.serviceAccountName"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ing := minimalIngester(ns, name)
			ing.Spec.Template = tc.template
			g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
			g.Eventually(func(g Gomega) {
				c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
				g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonNotAllowed))
				g.Expect(c.Message).To(ContainSubstring(tc.field))
				g.Expect(condition(g, ing, spanflowv1alpha1.ConditionReady).Reason).To(Equal(spanflowv1alpha1.ReasonNotAllowed))
			}, eventually, poll).Should(Succeed())
			err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name + "-ingester"}, &appsv1.Deployment{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "a Deployment was created: %v", err)
		})
	}
}

// TestPodCreationFailureIsReported: when the Deployment cannot create pods (here Pod
// Security admission refusing them, as the deployment controller reports it), the
// Ingester says so at once, not after the progress deadline.
func TestPodCreationFailureIsReported(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	ing := minimalIngester(ns, "refused")
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	var dep *appsv1.Deployment
	g.Eventually(func(g Gomega) { dep = getDeployment(g, ns, "refused-ingester") }, eventually, poll).Should(Succeed())

	dep.Status = refused()
	dep.Status.ObservedGeneration = dep.Generation
	g.Expect(k8sClient.Status().Update(ctx, dep)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonPodCreationFailed))
		g.Expect(c.Message).To(ContainSubstring(`violates PodSecurity "restricted:latest"`))
		g.Expect(ing.Status.State).To(Equal(spanflowv1alpha1.ReasonPodCreationFailed))
	}, "5s", poll).Should(Succeed())
}

// TestFailingPodsAreReported: pods that exist but cannot run (here a crash loop, the
// ingester's last log line kept as its termination message) make the Ingester Degraded
// with the ingester's own words, at once rather than after the progress deadline; once the
// pods run, it is clear again.
func TestFailingPodsAreReported(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := startedIngester(t, g, "crashing")
	dep := getDeployment(g, key.Namespace, key.Name)
	g.Expect(dep.Spec.Template.Spec.Containers[0].TerminationMessagePolicy).To(Equal(corev1.TerminationMessageFallbackToLogsOnError))

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name + "-7d9f-x2x", Labels: dep.Spec.Template.Labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: containerName, Image: "spanflow"}}}}
	g.Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, RestartCount: 4,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 1m20s"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error",
			Message: "spanflow ingest: kafka: SASL authentication failed: invalid credentials\n"}}}}
	g.Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, UpdatedReplicas: 1, UnavailableReplicas: 1}
	g.Expect(k8sClient.Status().Update(ctx, dep)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonPodsFailing))
		g.Expect(c.Message).To(ContainSubstring("0 of 1 ingester pods are ready; pod crashing-ingester-7d9f-x2x: container ingester: CrashLoopBackOff, exited with 1 (4 restarts): spanflow ingest: kafka: SASL authentication failed"))
		g.Expect(ing.Status.State).To(Equal(spanflowv1alpha1.ReasonPodsFailing))
	}, eventually, poll).Should(Succeed())

	pod.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	pod.Status.ContainerStatuses[0].Ready = true
	g.Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
	dep = getDeployment(g, key.Namespace, key.Name)
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	g.Expect(k8sClient.Status().Update(ctx, dep)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionDegraded).Status).To(Equal(metav1.ConditionFalse))
	}, eventually, poll).Should(Succeed())
}

// TestStoredMistakesStopNothing: an Ingester stored with a malformed duration (written
// before the schema refused it: here the schema is loosened to let it in, as an older CRD
// would) neither stops the operator from reconciling every other Ingester nor goes
// unreported: it is Degraded, naming the field.
func TestStoredMistakesStopNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)

	restore := loosenBatchLinger(t)
	bad := &unstructured.Unstructured{}
	doc := fmt.Sprintf(`{"apiVersion":"spanflow.dev/v1alpha1","kind":"Ingester","metadata":{"name":"banana","namespace":%q},
		"spec":{"kafka":{"brokers":[%q],"topic":%q},"storage":{"type":"blackhole"},"processing":{"batchLinger":"banana"}}}`, ns, testBroker, testTopic)
	g.Expect(bad.UnmarshalJSON([]byte(doc))).To(Succeed())
	// The API server takes a moment to serve the loosened schema.
	g.Eventually(func() error { return k8sClient.Create(ctx, bad.DeepCopy()) }, eventually, poll).Should(Succeed())
	restore()

	good := minimalIngester(ns, "good")
	g.Expect(k8sClient.Create(ctx, good)).To(Succeed())
	g.Eventually(func(g Gomega) { getDeployment(g, ns, "good-ingester") }, eventually, poll).Should(Succeed())

	banana := &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "banana"}}
	g.Eventually(func(g Gomega) {
		c := condition(g, banana, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonInvalidSpec))
		g.Expect(c.Message).To(ContainSubstring(`spec.processing.batchLinger: "banana" is not a duration`))
	}, eventually, poll).Should(Succeed())
	err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "banana-ingester"}, &appsv1.Deployment{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "a Deployment was created from a malformed spec: %v", err)
}

// loosenBatchLinger removes the validation of spec.processing.batchLinger from the
// Ingester CRD, as a CRD from before that validation had it, and returns the function
// that puts the CRD back (also run at the end of the test).
func loosenBatchLinger(t *testing.T) (restore func()) {
	t.Helper()
	ctx := context.Background()
	key := types.NamespacedName{Name: "ingesters.spanflow.dev"}
	crd := func() *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
		return u
	}
	original := crd()
	if err := k8sClient.Get(ctx, key, original); err != nil {
		t.Fatal(err)
	}
	// The schema of each version, as stored (without the object's identity).
	versions, _, _ := unstructured.NestedSlice(original.Object, "spec", "versions")
	saved, _ := json.Marshal(versions)
	update := func(mutate func(*unstructured.Unstructured)) {
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			u := crd()
			if err := k8sClient.Get(ctx, key, u); err != nil {
				return err
			}
			mutate(u)
			return k8sClient.Update(ctx, u)
		}); err != nil {
			t.Fatalf("updating the CRD: %v", err)
		}
	}
	update(func(u *unstructured.Unstructured) {
		versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
		for _, v := range versions {
			linger, ok, _ := unstructured.NestedMap(v.(map[string]any), "schema", "openAPIV3Schema", "properties", "spec", "properties", "processing", "properties", "batchLinger")
			if !ok {
				t.Fatal("the CRD has no spec.processing.batchLinger")
			}
			delete(linger, "pattern")
			delete(linger, "x-kubernetes-validations")
			_ = unstructured.SetNestedMap(v.(map[string]any), linger, "schema", "openAPIV3Schema", "properties", "spec", "properties", "processing", "properties", "batchLinger")
		}
		_ = unstructured.SetNestedSlice(u.Object, versions, "spec", "versions")
	})
	done := false
	restore = func() {
		if done {
			return
		}
		done = true
		update(func(u *unstructured.Unstructured) {
			var versions []any
			_ = json.Unmarshal(saved, &versions)
			_ = unstructured.SetNestedSlice(u.Object, versions, "spec", "versions")
		})
		// Wait until the strict schema is served again, so that later tests see it.
		deadline := time.Now().Add(eventually)
		for {
			probe := minimalIngester("default", "probe-strict-schema")
			probe.Spec.Processing.BatchLinger = ptr.To(spanflowv1alpha1.PositiveDuration("banana"))
			err := k8sClient.Create(ctx, probe, client.DryRunAll)
			if err != nil && strings.Contains(err.Error(), "batchLinger") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the CRD's schema was not restored: %v", err)
			}
			time.Sleep(poll)
		}
	}
	t.Cleanup(restore)
	return restore
}

// TestCheckSpec: what the API server would refuse today but an object stored earlier may
// hold, the operator's policy, and the consumer group in use — each named by its field.
func TestCheckSpec(t *testing.T) {
	base := func() *spanflowv1alpha1.Ingester {
		ing := minimalIngester("ns", "traces")
		ing.Status.ConsumerGroup = "ns/traces"
		return ing
	}
	cases := []struct {
		name   string
		mutate func(*spanflowv1alpha1.Ingester)
		policy PodPolicy
		reason string
		want   []string
	}{
		{"valid", func(*spanflowv1alpha1.Ingester) {}, PodPolicy{}, "", nil},
		{"malformed durations", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Processing.BatchLinger = ptr.To(spanflowv1alpha1.PositiveDuration("banana"))
			i.Spec.Kafka.MaxWait = ptr.To(spanflowv1alpha1.PositiveDuration("500"))
			i.Spec.Autoscaling = &spanflowv1alpha1.AutoscalingSpec{Cooldown: ptr.To(spanflowv1alpha1.Duration("1 minute")),
				ScaleDown: &spanflowv1alpha1.ScalingRules{StabilizationWindow: ptr.To(spanflowv1alpha1.Duration("-5m"))}}
			i.Spec.Kafka.CommitInterval = ptr.To(spanflowv1alpha1.PositiveDuration("0s"))
		}, PodPolicy{}, spanflowv1alpha1.ReasonInvalidSpec, []string{
			`spec.processing.batchLinger: "banana" is not a duration`, `spec.kafka.maxWait: "500" is not a duration`,
			`spec.autoscaling.cooldown: "1 minute"`, `spec.autoscaling.scaleDown.stabilizationWindow: "-5m"`,
			`spec.kafka.commitInterval: "0s" is not longer than 0`,
		}},
		{"what only the ingester's validation knows", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageFile,
				File: &spanflowv1alpha1.FileStorage{Path: "/spans", MaxFileSize: ptr.To(resource.MustParse("-64Mi"))}}
			i.Spec.Kafka.DrainTimeout = spanflowv1alpha1.NewPositiveDuration(time.Minute)
		}, PodPolicy{}, spanflowv1alpha1.ReasonInvalidSpec, []string{
			"spec.storage.file.maxFileSize: must be positive", "spec.kafka.drainTimeout: must be shorter than kafka.rebalanceTimeout",
		}},
		{"header values that read no variable of the pods", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317",
				Headers: []spanflowv1alpha1.OTLPHeader{{Name: "authorization", Value: "Bearer ${env:TOKEN}"}, {Name: "x-a", Value: "${env:TENANT"},
					{Name: "x-b", Value: "${env:REGION}-$$5"}}}}
			i.Spec.Template.Env = []corev1.EnvVar{{Name: "REGION", Value: "eu"}}
		}, PodPolicy{}, spanflowv1alpha1.ReasonInvalidSpec, []string{
			"spec.storage.otlp.headers[0].value: environment variable TOKEN is not set: ${env:NAME} must name a variable of spec.template.env",
			"spec.storage.otlp.headers[1].value: ${env: without its closing }",
		}},
		{"header values that read the pods' variables", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: "t:4317",
				Headers: []spanflowv1alpha1.OTLPHeader{{Name: "authorization", Value: "Bearer ${env:TOKEN}"}, {Name: "x-b", Value: "$$5"}}}}
			i.Spec.Template.Env = []corev1.EnvVar{{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "tok"}, Key: "t"}}}}
		}, PodPolicy{}, "", nil},
		{"group changed", func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.ConsumerGroup = "other" }, PodPolicy{},
			spanflowv1alpha1.ReasonConsumerGroupChanged, []string{`names "other" but the pods consume as "ns/traces"`}},
		{"group defaulted before it was recorded", func(i *spanflowv1alpha1.Ingester) { i.Status.ConsumerGroup = "" }, PodPolicy{}, "", nil},
		{"privileged and root", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Template.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true), AllowPrivilegeEscalation: ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}
			i.Spec.Template.PodSecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(false), Sysctls: []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}},
				SELinuxOptions: &corev1.SELinuxOptions{Type: "spc_t"}}
		}, PodPolicy{AllowServiceAccount: true}, spanflowv1alpha1.ReasonNotAllowed, []string{
			"securityContext.privileged", "securityContext.allowPrivilegeEscalation", "securityContext.seccompProfile",
			"podSecurityContext.runAsNonRoot", "podSecurityContext.sysctls", "podSecurityContext.seLinuxOptions", "--allow-privileged-pods",
		}},
		{"privileged, allowed", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Template.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true), RunAsUser: ptr.To[int64](0)}
		}, PodPolicy{AllowPrivileged: true}, "", nil},
		{"restricted fields set", func(i *spanflowv1alpha1.Ingester) {
			i.Spec.Template.SecurityContext = &corev1.SecurityContext{RunAsUser: ptr.To[int64](1000), ReadOnlyRootFilesystem: ptr.To(false)}
			i.Spec.Template.PodSecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To[int64](2000), SELinuxOptions: &corev1.SELinuxOptions{Level: "s0:c1,c2"}}
		}, PodPolicy{}, "", nil},
		{"another service account", func(i *spanflowv1alpha1.Ingester) { i.Spec.Template.ServiceAccountName = "admin" }, PodPolicy{AllowPrivileged: true},
			spanflowv1alpha1.ReasonNotAllowed, []string{"spec.template.serviceAccountName", "--allow-service-account"}},
		{"another service account, allowed", func(i *spanflowv1alpha1.Ingester) { i.Spec.Template.ServiceAccountName = "admin" }, PodPolicy{AllowServiceAccount: true}, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ing := base()
			tc.mutate(ing)
			p := checkSpec(ing, tc.policy)
			if tc.reason == "" {
				if p != nil {
					t.Fatalf("refused: %s: %v", p.reason, p.err)
				}
				return
			}
			if p == nil {
				t.Fatalf("accepted, want %s", tc.reason)
			}
			if p.reason != tc.reason {
				t.Errorf("reason %s, want %s (%v)", p.reason, tc.reason, p.err)
			}
			for _, w := range tc.want {
				if !strings.Contains(p.err.Error(), w) {
					t.Errorf("%q does not say %q", p.err, w)
				}
			}
		})
	}
}
