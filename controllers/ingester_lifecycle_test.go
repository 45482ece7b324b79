package controllers

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

func condition(g Gomega, ing *spanflowv1alpha1.Ingester, t string) *metav1.Condition {
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(ing), ing)).To(Succeed())
	c := meta.FindStatusCondition(ing.Status.Conditions, t)
	g.Expect(c).NotTo(BeNil(), "condition %s", t)
	return c
}

// TestSecretsAndKafkaCredentials runs an Ingester against a broker that requires TLS with
// a private CA and SCRAM-SHA-256. Without its Secrets it is Degraded with a message naming
// them and runs nothing; it recovers by itself when they appear, and the operator's own
// look at Kafka, with those credentials, finds the topic. Rotating the password rolls the
// pods; a wrong password shows as KafkaUnreachable; the password itself appears nowhere.
func TestSecretsAndKafkaCredentials(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	broker, sec := kafkatest.StartSecure(t, "secure-spans", 2)
	ing := minimalIngester(ns, "sasl")
	ing.Spec.Kafka.Brokers = []string{broker.Addr}
	ing.Spec.Kafka.Topic = "secure-spans"
	ing.Spec.Kafka.TLS = &spanflowv1alpha1.KafkaTLS{Enabled: true, CA: &spanflowv1alpha1.SecretKeyRef{Name: "kafka-ca", Key: "ca.crt"}}
	ing.Spec.Kafka.SASL = &spanflowv1alpha1.KafkaSASL{Mechanism: "SCRAM-SHA-256", CredentialsSecretName: "kafka-user"}
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())

	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonSecretMissing))
		// One line (kubectl get events shows the first), each Secret by the field naming it.
		g.Expect(c.Message).To(And(ContainSubstring(`spec.kafka.tls.ca: Secret "kafka-ca" does not exist; `),
			ContainSubstring(`spec.kafka.sasl.credentialsSecretName: Secret "kafka-user" does not exist`), Not(ContainSubstring("\n"))))
		g.Expect(ing.Status.Message).To(ContainSubstring("kafka-user"))
	}, eventually, poll).Should(Succeed())
	var dep appsv1.Deployment
	err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "sasl-ingester"}, &dep)
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "a Deployment was created without its Secrets")
	g.Eventually(func(g Gomega) {
		var events corev1.EventList
		g.Expect(k8sClient.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
		var reasons []string
		for _, e := range events.Items {
			reasons = append(reasons, e.Reason)
		}
		g.Expect(reasons).To(ContainElement(spanflowv1alpha1.ReasonSecretMissing))
	}, eventually, poll).Should(Succeed())

	caPEM, err := os.ReadFile(sec.CAFile)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-ca"},
		Data: map[string][]byte{"ca.crt": caPEM}})).To(Succeed())
	// A Secret without the password key is still not enough.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-user"},
		Data: map[string][]byte{"username": []byte(sec.Username)}}
	g.Expect(k8sClient.Create(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionDegraded).Message).To(ContainSubstring(`has no key "password"`))
	}, eventually, poll).Should(Succeed())

	secret.Data["password"] = []byte(sec.Password)
	g.Expect(k8sClient.Update(ctx, secret)).To(Succeed())
	var hash string
	g.Eventually(func(g Gomega) {
		dep := getDeployment(g, ns, "sasl-ingester")
		hash = dep.Spec.Template.Annotations[podTemplateHashAnnotation]
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse), c.Message)
		g.Expect(ing.Status.Partitions).To(Equal(int32(2)))
	}, eventually, poll).Should(Succeed())

	// Resyncs read the Secrets' contents again only when they changed.
	reads := managerSecretReadsIn(ns)
	g.Consistently(func() int64 { return managerSecretReadsIn(ns) - reads }, "5s", "500ms").Should(BeZero(),
		"the manager read unchanged Secrets again during resyncs")

	// Rotating the password rolls the pods. This one is wrong: the operator says so.
	const wrong = "not-the-password"
	secret.Data["password"] = []byte(wrong)
	g.Expect(k8sClient.Update(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, ns, "sasl-ingester").Spec.Template.Annotations[podTemplateHashAnnotation]).NotTo(Equal(hash))
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonKafkaUnreachable))
		g.Expect(c.Message).NotTo(ContainSubstring(wrong))
	}, eventually, poll).Should(Succeed())
	g.Expect(managerSecretReadsIn(ns)-reads).To(BeNumerically(">=", 1), "the rotated Secret was not read")
	var cm corev1.ConfigMap
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "sasl-ingester"}, &cm)).To(Succeed())
	g.Expect(cm.Data[configFileName]).NotTo(Or(ContainSubstring(wrong), ContainSubstring(sec.Password)))
	g.Expect(cm.Data[configFileName]).To(ContainSubstring("passwordFile: /etc/spanflow/secrets/kafka-sasl/password"))
}

// TestKafkaProblemsDegrade: an unreachable broker and a missing topic each make the
// Ingester Degraded with their own reason.
func TestKafkaProblemsDegrade(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	unreachable := minimalIngester(ns, "unreachable")
	unreachable.Spec.Kafka.Brokers = []string{"127.0.0.1:1"}
	noTopic := minimalIngester(ns, "no-topic")
	noTopic.Spec.Kafka.Topic = "no-such-topic"
	g.Expect(k8sClient.Create(ctx, unreachable)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, noTopic)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, unreachable, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonKafkaUnreachable))
		g.Expect(c.Message).To(ContainSubstring("127.0.0.1:1"))
		c = condition(g, noTopic, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonTopicNotFound))
		g.Expect(c.Message).To(ContainSubstring("no-such-topic"))
	}, eventually, poll).Should(Succeed())
	// The operator still runs them: the pods may see a network the operator does not.
	g.Eventually(func(g Gomega) { getDeployment(g, ns, "unreachable-ingester") }, eventually, poll).Should(Succeed())

	// A topic renamed to one that does not exist: the old topic's partitions and lag go,
	// they describe nothing now.
	renamed := minimalIngester(ns, "renamed")
	g.Expect(k8sClient.Create(ctx, renamed)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(renamed), renamed)).To(Succeed())
		g.Expect(renamed.Status.Partitions).To(BeNumerically(">", 0))
		g.Expect(renamed.Status.Lag).NotTo(BeNil())
	}, eventually, poll).Should(Succeed())
	g.Expect(updateSpec(renamed, func(i *spanflowv1alpha1.Ingester) { i.Spec.Kafka.Topic = "no-such-topic-either" })).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, renamed, spanflowv1alpha1.ConditionDegraded).Reason).To(Equal(spanflowv1alpha1.ReasonTopicNotFound))
		g.Expect(renamed.Status.Partitions).To(BeZero())
		g.Expect(renamed.Status.Lag).To(BeNil())
	}, eventually, poll).Should(Succeed())
}

// TestOwnedObjects: the ServiceAccount and Service exist; the PodDisruptionBudget exists
// only with more than one replica.
func TestOwnedObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	ing := minimalIngester(ns, "owned")
	ing.Spec.Replicas = ptr.To[int32](2)
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	key := types.NamespacedName{Namespace: ns, Name: "owned-ingester"}
	g.Eventually(func(g Gomega) {
		var sa corev1.ServiceAccount
		g.Expect(k8sClient.Get(ctx, key, &sa)).To(Succeed())
		g.Expect(*sa.AutomountServiceAccountToken).To(BeFalse())
		var svc corev1.Service
		g.Expect(k8sClient.Get(ctx, key, &svc)).To(Succeed())
		g.Expect(svc.Spec.Ports[0].Port).To(Equal(int32(adminPort)))
		var pdb policyv1.PodDisruptionBudget
		g.Expect(k8sClient.Get(ctx, key, &pdb)).To(Succeed())
		g.Expect(pdb.OwnerReferences).To(HaveLen(1))
	}, eventually, poll).Should(Succeed())

	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Replicas = ptr.To[int32](1) })).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, key, &policyv1.PodDisruptionBudget{}))
	}, eventually, poll).Should(BeTrue(), "the PodDisruptionBudget outlived the second replica")
}

// TestPausedChangesNothing: with spec.paused, spec edits do not reach the Deployment
// until paused is false again.
func TestPausedChangesNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	ing := minimalIngester(ns, "paused")
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	g.Eventually(func(g Gomega) { getDeployment(g, ns, "paused-ingester") }, eventually, poll).Should(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionReady).ObservedGeneration).To(Equal(ing.Generation))
	}, eventually, poll).Should(Succeed())
	applied := ing.Generation

	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) {
		i.Spec.Paused = true
		i.Spec.Replicas = ptr.To[int32](5)
	})).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionProgressing)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonPaused))
		g.Expect(ing.Status.State).To(Equal(spanflowv1alpha1.ReasonPaused))
	}, eventually, poll).Should(Succeed())
	// The paused generation is not observed: `kubectl wait --for=condition=Ready` (which
	// compares the condition's observedGeneration) does not pass on a spec that never ran.
	g.Expect(ing.Generation).To(BeNumerically(">", applied))
	g.Expect(ing.Status.ObservedGeneration).To(Equal(applied))
	g.Expect(condition(g, ing, spanflowv1alpha1.ConditionReady).ObservedGeneration).To(Equal(applied))
	g.Consistently(func(g Gomega) {
		g.Expect(getDeployment(g, ns, "paused-ingester").Spec.Replicas).To(Equal(ptr.To[int32](1)))
	}, "1s", poll).Should(Succeed())

	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Paused = false })).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, ns, "paused-ingester").Spec.Replicas).To(Equal(ptr.To[int32](5)))
	}, eventually, poll).Should(Succeed())
}

// TestStuckRolloutDegrades: a Deployment past its progress deadline makes the Ingester
// Degraded with the Deployment controller's message.
func TestStuckRolloutDegrades(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	ing := minimalIngester(ns, "stuck")
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	var dep *appsv1.Deployment
	g.Eventually(func(g Gomega) { dep = getDeployment(g, ns, "stuck-ingester") }, eventually, poll).Should(Succeed())
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, UpdatedReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
			Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "stuck-ingester-1" has timed out progressing.`,
			LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}}}
	g.Expect(k8sClient.Status().Update(ctx, dep)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonRolloutStuck))
		g.Expect(c.Message).To(ContainSubstring("timed out progressing"))
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionReady).Reason).To(Equal(spanflowv1alpha1.ReasonRolloutStuck))
	}, eventually, poll).Should(Succeed())
}

// TestResyncWritesNothing: resyncs of an unchanged Ingester send the API server no writes
// (the manager's requests are counted by namespace), so hundreds of Ingesters cost it only
// the watches and reads from the cache.
func TestResyncWritesNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	ing := minimalIngester(ns, "quiet")
	ing.Spec.Replicas = ptr.To[int32](2)
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	key := types.NamespacedName{Namespace: ns, Name: "quiet-ingester"}
	objects := []client.Object{&appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{}, &corev1.ServiceAccount{}, &policyv1.PodDisruptionBudget{}}
	versions := func(g Gomega) []string {
		var rvs []string
		for _, obj := range objects {
			g.Expect(k8sClient.Get(ctx, key, obj)).To(Succeed())
			rvs = append(rvs, obj.GetResourceVersion())
		}
		return rvs
	}
	var settled []string
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionReady).Reason).To(Equal(spanflowv1alpha1.ReasonRollingOut))
		g.Expect(ing.Status.Lag).NotTo(BeNil(), "the lag observer has not reported yet")
		settled = versions(g)
	}, eventually, poll).Should(Succeed())
	// The suite resyncs every 2 s: this spans a few resyncs.
	writes := managerWritesIn(ns)
	g.Consistently(func(g Gomega) { g.Expect(versions(g)).To(Equal(settled)) }, "5s", "500ms").Should(Succeed())
	g.Expect(managerWritesIn(ns)-writes).To(BeZero(), "the manager wrote during resyncs of an unchanged Ingester")
}

// counterSum adds up the samples of a controller-runtime counter whose label has one of
// the given values.
func counterSum(t testing.TB, name, label string, values ...string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && slices.Contains(values, l.GetValue()) {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// TestLagIsObserved: records produced to the Ingester's topic and not committed by its
// group show as lag in the status (and the Lag column); when the group commits them, the
// lag falls to zero. Another Ingester on the same topic and group shares the poller.
func TestLagIsObserved(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	const topic = "lagging"
	broker := kafkatest.Start(t, topic, 3)
	ing := minimalIngester(ns, "lagging")
	ing.Spec.Kafka.Brokers = []string{broker.Addr}
	ing.Spec.Kafka.Topic = topic
	ing.Spec.Kafka.ConsumerGroup = "lag-group"
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Status.Partitions).To(Equal(int32(3)))
		g.Expect(ing.Status.Lag).NotTo(BeNil())
		g.Expect(ing.Status.Lag.Records).To(BeZero())
	}, eventually, poll).Should(Succeed())

	broker.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 120, 1)...)
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Status.Lag.Records).To(Equal(int64(120)))
		g.Expect(ing.Status.Lag.Stale).To(BeFalse())
	}, eventually, poll).Should(Succeed())
	out, err := kubectl(t, "get", "ingester", "lagging", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred())
	lines := strings.Split(out, "\n")
	column := strings.Index(lines[0], "LAG")
	g.Expect(strings.Fields(lines[1][column:])[0]).To(Equal("120"), "the Lag column:\n%s", out)

	// The group catches up.
	end := broker.EndOffsets(t, topic, 3)
	g.Expect(broker.Commit("lag-group", topic, end)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Status.Lag.Records).To(BeZero())
	}, eventually, poll).Should(Succeed())

	// The broker goes away: the last known lag stays, marked stale.
	broker.Stop()
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionDegraded).Reason).To(Equal(spanflowv1alpha1.ReasonKafkaUnreachable))
		g.Expect(ing.Status.Lag.Stale).To(BeTrue())
		g.Expect(ing.Status.Partitions).To(Equal(int32(3)))
	}, eventually, poll).Should(Succeed())
}

// TestOTLPHeaderFromSecret: a header whose value lives in a Secret reaches the pods as an
// environment variable from that Secret; the ConfigMap names only the variable.
func TestOTLPHeaderFromSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	const token = "tok-3f9a-secret"
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tempo-token"},
		Data: map[string][]byte{"token": []byte(token)}})).To(Succeed())
	ing := minimalIngester(ns, "to-tempo")
	ing.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP, OTLP: &spanflowv1alpha1.OTLPStorage{
		Endpoint: "tempo.tempo:4317", Insecure: true,
		Headers: []spanflowv1alpha1.OTLPHeader{{Name: "authorization", ValueFrom: &spanflowv1alpha1.SecretKeyRef{Name: "tempo-token", Key: "token"}}},
	}}
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	g.Eventually(func(g Gomega) {
		dep := getDeployment(g, ns, "to-tempo-ingester")
		env := dep.Spec.Template.Spec.Containers[0].Env
		g.Expect(env).To(ContainElement(And(HaveField("Name", "SPANFLOW_OTLP_HEADER_0"),
			HaveField("ValueFrom.SecretKeyRef.Name", "tempo-token"), HaveField("Value", ""))))
	}, eventually, poll).Should(Succeed())
	var cm corev1.ConfigMap
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "to-tempo-ingester"}, &cm)).To(Succeed())
	g.Expect(cm.Data[configFileName]).To(ContainSubstring("authorization: ${env:SPANFLOW_OTLP_HEADER_0}"))
	g.Expect(cm.Data[configFileName]).NotTo(ContainSubstring(token))
}

// TestUnusableCredentialsHoldTheSpecBack: Secrets that exist but hold what cannot be used
// — a CA bundle without a certificate, empty SASL credentials — hold the spec back, naming
// the fields and Secrets (never their contents), rather than start pods that cannot
// connect with only "unreachable" to show for it (found by hand).
func TestUnusableCredentialsHoldTheSpecBack(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-ca"}, Data: map[string][]byte{"ca.crt": []byte("not a PEM bundle")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-user"}, Data: map[string][]byte{saslUsernameKey: {}, saslPasswordKey: []byte("s3cret-value")}},
	} {
		g.Expect(k8sClient.Create(ctx, s)).To(Succeed())
	}
	ing := minimalIngester(ns, "unusable")
	ing.Spec.Kafka.TLS = &spanflowv1alpha1.KafkaTLS{Enabled: true, CA: &spanflowv1alpha1.SecretKeyRef{Name: "bad-ca", Key: "ca.crt"}}
	ing.Spec.Kafka.SASL = &spanflowv1alpha1.KafkaSASL{Mechanism: "PLAIN", CredentialsSecretName: "no-user"}
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonSecretMissing))
		g.Expect(c.Message).To(And(
			ContainSubstring(`spec.kafka.tls.ca: Secret "bad-ca": tls: the CA bundle holds no PEM certificate`),
			ContainSubstring(`spec.kafka.sasl.credentialsSecretName: Secret "no-user": sasl: username and password are required`),
			Not(ContainSubstring("s3cret-value")), Not(ContainSubstring("not a PEM bundle"))))
	}, eventually, poll).Should(Succeed())
	err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "unusable-ingester"}, &appsv1.Deployment{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "pods were started with credentials that cannot work")
}
