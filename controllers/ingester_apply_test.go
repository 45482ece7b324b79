package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

// startedIngester creates a minimal Ingester in a namespace of its own and waits until
// its objects are applied; it returns the Ingester and the key they share.
func startedIngester(t *testing.T, g Gomega, name string) (*spanflowv1alpha1.Ingester, types.NamespacedName) {
	ing := minimalIngester(newNamespace(t), name)
	g.Expect(k8sClient.Create(context.Background(), ing)).To(Succeed())
	key := types.NamespacedName{Namespace: ing.Namespace, Name: name + "-ingester"}
	g.Eventually(func(g Gomega) {
		getDeployment(g, key.Namespace, key.Name)
		g.Expect(k8sClient.Get(context.Background(), key, &corev1.Service{})).To(Succeed())
	}, eventually, poll).Should(Succeed())
	return ing, key
}

// TestARefusedSpecChangesNothing: an edit the Deployment cannot take (a pod template
// field no schema of ours checks: a CPU limit under its request) together with a config
// change leaves the running pods' ConfigMap as it was — a pod restarting meanwhile must not
// start on half the new spec — and says why; once the template is fixed, all of it goes.
func TestARefusedSpecChangesNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := startedIngester(t, g, "half")
	ns := key.Namespace
	var before corev1.ConfigMap
	g.Expect(k8sClient.Get(ctx, key, &before)).To(Succeed())

	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) {
		i.Spec.Processing.BatchSize = 77
		i.Spec.Template.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}
	})).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonApplyFailed))
		g.Expect(c.Message).To(ContainSubstring("would be refused, so nothing was changed"))
		g.Expect(c.Message).To(ContainSubstring("must be less than or equal to cpu limit"))
	}, eventually, poll).Should(Succeed())
	var after corev1.ConfigMap
	g.Expect(k8sClient.Get(ctx, key, &after)).To(Succeed())
	g.Expect(after.Data).To(Equal(before.Data))
	// A warning says it; Ready turning False for the same reason adds no Normal event.
	g.Eventually(func(g Gomega) {
		var events corev1.EventList
		g.Expect(k8sClient.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
		var types []string
		for _, e := range events.Items {
			if e.Reason == spanflowv1alpha1.ReasonApplyFailed {
				types = append(types, e.Type)
			}
		}
		// (Two reconciles that both read the status from before the first one's write
		// may each warn: the cache is behind. What must not come is a Normal event.)
		g.Expect(types).To(And(ContainElement(corev1.EventTypeWarning), Not(ContainElement(corev1.EventTypeNormal))))
	}, eventually, poll).Should(Succeed())
	// That one fixed and another field refused: a warning of its own, naming the new one.
	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) {
		i.Spec.Template.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}
	})).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(strings.Join(warnings(g, ns, spanflowv1alpha1.ReasonApplyFailed), "\n")).To(ContainSubstring("must be less than or equal to memory limit"))
	}, eventually, poll).Should(Succeed())

	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Template.Resources = corev1.ResourceRequirements{} })).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key, &after)).To(Succeed())
		g.Expect(loadConfig(t, after.Data[configFileName]).Processing.BatchSize).To(Equal(77))
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionDegraded).Status).To(Equal(metav1.ConditionFalse))
	}, eventually, poll).Should(Succeed())
}

// TestAPolicyLiftedElsewhereIsTakenAtOnce: a Deployment an admission policy refuses
// (here a ValidatingAdmissionPolicy; a webhook or a quota alike) says so as ApplyFailed,
// with the policy's message, and in one line of the operator's log — returned to the work
// queue as a reconciler error, it was logged, with a stack trace, at every look — and is
// applied within a resync of the policy being lifted, though nothing on the Ingester
// changed.
func TestAPolicyLiftedElsewhereIsTakenAtOnce(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	name := "deployments-blocked-in-" + ns
	policy := &admissionv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}}}}}},
			Validations: []admissionv1.Validation{{Expression: fmt.Sprintf("object.metadata.namespace != %q", ns), Message: "Deployments are blocked here"}}}}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name, ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny}}}
	g.Expect(k8sClient.Create(ctx, policy)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), policy) })
	g.Expect(k8sClient.Create(ctx, binding)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), binding) })
	probe := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "probe"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}}}
	g.Eventually(func() error { return k8sClient.Create(ctx, probe.DeepCopy(), client.DryRunAll) }, eventually, poll).
		Should(MatchError(ContainSubstring("Deployments are blocked here")), "the policy never took effect")

	ing := minimalIngester(ns, "blocked")
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonApplyFailed))
		g.Expect(c.Message).To(ContainSubstring("Deployments are blocked here"))
	}, eventually, poll).Should(Succeed())
	time.Sleep(5 * time.Second) // refused all along
	if said := operatorLog.count(ns, "ERROR", "Deployments are blocked here"); said != 1 {
		t.Errorf("the refusal was logged %d times in 5 s, want once", said)
	}

	g.Expect(k8sClient.Delete(ctx, binding)).To(Succeed())
	key := types.NamespacedName{Namespace: ns, Name: "blocked-ingester"}
	g.Eventually(func() error { return k8sClient.Get(ctx, key, &appsv1.Deployment{}) }, 6*time.Second, poll).
		Should(Succeed(), "the Deployment was not applied within a resync (2 s here) and the policy's lifting")
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionDegraded).Reason).NotTo(Equal(spanflowv1alpha1.ReasonApplyFailed))
	}, eventually, poll).Should(Succeed())
}

// TestHandEditedPortsArePutBack: a port changed by hand keeps its name, which the
// operator's port would repeat, so applying over it is refused as invalid. The operator
// puts the object back whole instead of failing every reconcile from then on, and later
// spec changes still reach the Deployment.
func TestHandEditedPortsArePutBack(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := startedIngester(t, g, "ports")
	ns := key.Namespace
	var svc corev1.Service
	g.Expect(k8sClient.Get(ctx, key, &svc)).To(Succeed())

	svc.Spec.Ports[0].Port = 9999
	g.Expect(k8sClient.Update(ctx, &svc)).To(Succeed())
	// Before the edit, a rollout restart, as kubectl makes it, and a paused rollout: the
	// put-back keeps both (replacing the spec would restart the pods again, and resume).
	restarted := []byte(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-12-06T00:00:00Z"}}}}}`)
	g.Expect(k8sClient.Patch(ctx, getDeployment(g, ns, key.Name), client.RawPatch(types.StrategicMergePatchType, restarted), client.FieldOwner("kubectl-rollout"))).To(Succeed())
	g.Expect(k8sClient.Patch(ctx, getDeployment(g, ns, key.Name), client.RawPatch(types.StrategicMergePatchType, []byte(`{"spec":{"paused":true}}`)), client.FieldOwner("kubectl"))).To(Succeed())
	dep := getDeployment(g, ns, key.Name)
	dep.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort = 9090
	g.Expect(k8sClient.Update(ctx, dep)).To(Succeed())
	toleration := corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists}
	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) {
		i.Spec.Replicas = ptr.To[int32](2)
		i.Spec.Template.Tolerations = []corev1.Toleration{toleration}
	})).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key, &svc)).To(Succeed())
		g.Expect(svc.Spec.Ports).To(HaveLen(1))
		g.Expect(svc.Spec.Ports[0].Port).To(Equal(int32(adminPort)))
		dep := getDeployment(g, ns, key.Name)
		g.Expect(dep.Spec.Replicas).To(Equal(ptr.To[int32](2)))
		ports := dep.Spec.Template.Spec.Containers[0].Ports
		g.Expect(ports).To(HaveLen(1))
		g.Expect(ports[0].ContainerPort).To(Equal(int32(adminPort)))
		g.Expect(dep.Spec.Template.Annotations).To(HaveKeyWithValue("kubectl.kubernetes.io/restartedAt", "2026-12-06T00:00:00Z"))
		g.Expect(dep.Spec.Paused).To(BeTrue())
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionDegraded).Status).To(Equal(metav1.ConditionFalse))
		// What the repair set is not left owned by an update of the operator's: a field
		// the Ingester drops later must go with the next apply.
		for _, m := range dep.ManagedFields {
			g.Expect(m.Manager == string(FieldOwner) && m.Operation == metav1.ManagedFieldsOperationUpdate).To(BeFalse(), "%+v", m)
		}
	}, eventually, poll).Should(Succeed())

	// And one does: the toleration the repair put in place goes when the Ingester drops it.
	g.Expect(getDeployment(g, ns, key.Name).Spec.Template.Spec.Tolerations).To(ContainElement(toleration))
	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Template.Tolerations = nil })).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, ns, key.Name).Spec.Template.Spec.Tolerations).NotTo(ContainElement(toleration))
	}, eventually, poll).Should(Succeed())
}

// TestAUsersBudgetBesideOnePod: with one pod the operator makes no PodDisruptionBudget, so
// a user's own named like the one it would make is not in its way; once the Ingester asks
// for more pods it would be, and the operator says so rather than take it over.
func TestAUsersBudgetBesideOnePod(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	theirs := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "single-ingester"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}}}}
	g.Expect(k8sClient.Create(ctx, theirs)).To(Succeed())
	ing := minimalIngester(ns, "single")
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	g.Eventually(func(g Gomega) {
		getDeployment(g, ns, "single-ingester")
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionDegraded).Status).To(Equal(metav1.ConditionFalse))
	}, eventually, poll).Should(Succeed())

	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Replicas = ptr.To[int32](2) })).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonResourceConflict))
		g.Expect(c.Message).To(ContainSubstring(`PodDisruptionBudget "single-ingester"`))
	}, eventually, poll).Should(Succeed())
	var after policyv1.PodDisruptionBudget
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(theirs), &after)).To(Succeed())
	g.Expect(after.OwnerReferences).To(BeEmpty())
	g.Expect(after.Spec.Selector.MatchLabels).To(Equal(map[string]string{"team": "b"}))
	g.Expect(getDeployment(g, ns, "single-ingester").Spec.Replicas).To(Equal(ptr.To[int32](1)))
	err := k8sClient.Delete(ctx, theirs)
	g.Expect(client.IgnoreNotFound(err)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var pdb policyv1.PodDisruptionBudget
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(theirs), &pdb)).To(Succeed())
		g.Expect(metav1.IsControlledBy(&pdb, ing)).To(BeTrue())
	}, eventually, poll).Should(Succeed())
}

// TestEnvFromAMissingSecret: the template's env from a Secret is checked like the
// Secrets the spec names: a missing one holds the spec back with SecretMissing (not pods
// that fail to start), and its creation lets the Ingester run. Another Secret missing
// instead, under the same reason, is a warning of its own (events showed the first
// only, as if it were still unfixed).
func TestEnvFromAMissingSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	ing := minimalIngester(ns, "envsecret")
	ing.Spec.Template.Env = []corev1.EnvVar{{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "api-token"}, Key: "token"}}}}
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonSecretMissing))
		g.Expect(c.Message).To(ContainSubstring(`spec.template.env[0].valueFrom.secretKeyRef: Secret "api-token" does not exist`))
	}, eventually, poll).Should(Succeed())
	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) {
		i.Spec.Template.Env[0].ValueFrom.SecretKeyRef.Name = "other-token"
	})).To(Succeed())
	g.Eventually(func(g Gomega) {
		said := strings.Join(warnings(g, ns, spanflowv1alpha1.ReasonSecretMissing), "\n")
		g.Expect(said).To(ContainSubstring(`Secret "api-token" does not exist`))
		g.Expect(said).To(ContainSubstring(`Secret "other-token" does not exist`))
	}, eventually, poll).Should(Succeed())
	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) {
		i.Spec.Template.Env[0].ValueFrom.SecretKeyRef.Name = "api-token"
	})).To(Succeed())

	g.Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-token"},
		Data: map[string][]byte{"token": []byte("t")}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		getDeployment(g, ns, "envsecret-ingester")
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionDegraded).Status).To(Equal(metav1.ConditionFalse))
	}, eventually, poll).Should(Succeed())
}

// TestASharedConsumerGroupIsReported: two Ingesters (a copied spec) consuming with the same
// consumer group on the same brokers would split the partitions between their pods and
// size each for the other's lag. Both say so, naming the other; once one is gone, the
// other is clear again.
func TestASharedConsumerGroupIsReported(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	first, second := newNamespace(t), newNamespace(t)
	a, b := minimalIngester(first, "copy"), minimalIngester(second, "copy")
	for _, ing := range []*spanflowv1alpha1.Ingester{a, b} {
		ing.Spec.Kafka.ConsumerGroup = "jaeger-ingester"
		g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	}
	for ing, other := range map[*spanflowv1alpha1.Ingester]string{a: second + "/copy", b: first + "/copy"} {
		g.Eventually(func(g Gomega) {
			c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
			g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonConsumerGroupShared))
			g.Expect(c.Message).To(ContainSubstring(`Consumer group "jaeger-ingester" is also consumed by Ingester ` + other))
		}, eventually, poll).Should(Succeed())
	}
	// Reported, not held back: the spec runs.
	getDeployment(g, first, "copy-ingester")

	g.Expect(k8sClient.Delete(ctx, b)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, a, spanflowv1alpha1.ConditionDegraded).Reason).NotTo(Equal(spanflowv1alpha1.ReasonConsumerGroupShared))
	}, eventually, poll).Should(Succeed())
}

// TestAForgedGroupInStatusIsCorrected: the consumer group in use is what the Deployment's
// pods consume as. A status written by hand with another group (or lost in a restore) does
// not hold the Ingester at ConsumerGroupChanged: it is corrected, and spec changes still go.
func TestAForgedGroupInStatusIsCorrected(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := startedIngester(t, g, "forged")
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Status.ConsumerGroup).To(Equal(key.Namespace + "/forged"))
	}, eventually, poll).Should(Succeed())
	forged := client.MergeFrom(ing.DeepCopy())
	ing.Status.ConsumerGroup = "someone-elses"
	g.Expect(k8sClient.Status().Patch(ctx, ing, forged)).To(Succeed())

	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Processing.BatchSize = 77 })).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Status.ConsumerGroup).To(Equal(key.Namespace + "/forged"))
		g.Expect(ing.Status.ObservedGeneration).To(Equal(ing.Generation))
		var cm corev1.ConfigMap
		g.Expect(k8sClient.Get(ctx, key, &cm)).To(Succeed())
		g.Expect(loadConfig(t, cm.Data[configFileName]).Processing.BatchSize).To(Equal(77))
	}, eventually, poll).Should(Succeed())
	g.Expect(condition(g, ing, spanflowv1alpha1.ConditionDegraded).Reason).NotTo(Equal(spanflowv1alpha1.ReasonConsumerGroupChanged))
}

// TestANamespaceBeingDeletedIsNotAFailure: while its namespace is deleted, an Ingester's
// objects go before it does; the API server refuses to make them again, and that is not
// ApplyFailed (nor a warning event), only the end.
func TestANamespaceBeingDeletedIsNotAFailure(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := startedIngester(t, g, "leaving")
	g.Expect(k8sClient.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: key.Namespace}})).To(Succeed())
	// envtest runs no namespace controller: delete the Deployment as it would.
	g.Expect(k8sClient.Delete(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}})).To(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key, &appsv1.Deployment{})).To(MatchError(ContainSubstring("not found")))
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).NotTo(Equal(spanflowv1alpha1.ReasonApplyFailed), c.Message)
	}, "4s", "250ms").Should(Succeed())
}

// TestSameCluster: brokers in common make a cluster in common; a short Service name is
// the namespace's own (Strimzi's bootstrap Service in each team's namespace).
func TestSameCluster(t *testing.T) {
	at := func(ns string, brokers ...string) *spanflowv1alpha1.Ingester {
		ing := minimalIngester(ns, "x")
		ing.Spec.Kafka.Brokers = brokers
		return ing
	}
	for _, tc := range []struct {
		a, b *spanflowv1alpha1.Ingester
		same bool
	}{
		{at("team-a", "my-cluster-kafka-bootstrap:9092"), at("team-b", "my-cluster-kafka-bootstrap:9092"), false},
		{at("team-a", "my-cluster-kafka-bootstrap:9092"), at("team-a", "my-cluster-kafka-bootstrap:9092"), true},
		{at("team-a", "kafka.shared.svc:9092"), at("team-b", "b0:9092", "kafka.shared.svc:9092"), true},
		{at("team-a", "10.0.0.7:9092"), at("team-b", "10.0.0.7:9092"), true},
		{at("team-a", "kafka.shared.svc:9092"), at("team-b", "kafka.shared.svc:9093"), false},
	} {
		if got := sameCluster(tc.a, tc.b); got != tc.same {
			t.Errorf("%s %v and %s %v: same cluster %v, want %v", tc.a.Namespace, tc.a.Spec.Kafka.Brokers, tc.b.Namespace, tc.b.Spec.Kafka.Brokers, got, tc.same)
		}
	}
}

// TestPausingKeepsReady: a paused Ingester's pods are measured against what its Deployment
// runs — with autoscaling, the autoscaler's size, not the spec.replicas it ignores — so
// pausing a healthy Ingester, or changing its replicas while paused, leaves it Ready (it
// read "RollingOut: 3 of 5 pods" when paused, found by hand).
func TestPausingKeepsReady(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := startedIngester(t, g, "paused-ready")
	playDeploymentController(g, key)
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(ing.Status.Conditions, spanflowv1alpha1.ConditionReady)).To(BeTrue())
	}, eventually, poll).Should(Succeed())

	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Paused, i.Spec.Replicas = true, ptr.To[int32](5) })).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		progressing := meta.FindStatusCondition(ing.Status.Conditions, spanflowv1alpha1.ConditionProgressing)
		g.Expect(progressing).NotTo(BeNil())
		g.Expect(progressing.Reason).To(Equal(spanflowv1alpha1.ReasonPaused))
	}, eventually, poll).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		ready := meta.FindStatusCondition(ing.Status.Conditions, spanflowv1alpha1.ConditionReady)
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), ready.Message)
		g.Expect(ready.Message).To(Equal("1 of 1 ingester pods are ready"))
	}, "2s", poll).Should(Succeed())
	g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Replicas).To(Equal(ptr.To[int32](1)), "a paused Ingester changed its Deployment")
}
