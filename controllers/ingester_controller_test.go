package controllers

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/ingester/config"
)

const (
	eventually = 20 * time.Second
	poll       = 100 * time.Millisecond
)

// newNamespace creates a namespace of its own for one test.
func newNamespace(t *testing.T) string { return newNamespaceB(t) }

func newNamespaceB(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

// updateSpec changes an Ingester's spec as a user would: on the latest version, again if the
// operator's status write got in between.
func updateSpec(ing *spanflowv1alpha1.Ingester, mutate func(*spanflowv1alpha1.Ingester)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(ing), ing); err != nil {
			return err
		}
		mutate(ing)
		return k8sClient.Update(context.Background(), ing)
	})
}

func minimalIngester(ns, name string) *spanflowv1alpha1.Ingester {
	return &spanflowv1alpha1.Ingester{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: spanflowv1alpha1.IngesterSpec{
			Kafka:   spanflowv1alpha1.KafkaSpec{Brokers: []string{testBroker}, Topic: testTopic},
			Storage: spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageBlackhole},
		},
	}
}

func getDeployment(g Gomega, ns, name string) *appsv1.Deployment {
	var dep appsv1.Deployment
	g.Expect(k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &dep)).To(Succeed())
	return &dep
}

func TestIngesterRunsAsDeployment(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	ing := minimalIngester(ns, "traces")
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())

	// The API server applied the schema defaults.
	g.Expect(ing.Spec.Encoding).To(Equal(spanflowv1alpha1.EncodingOTLPProto))
	g.Expect(ing.Spec.Kafka.InitialOffset).To(Equal(spanflowv1alpha1.InitialOffsetEarliest))
	g.Expect(ing.Spec.Replicas).To(Equal(ptr.To[int32](1)))
	g.Expect(ing.Spec.Parallelism).To(Equal(ptr.To[int32](8)))

	var dep *appsv1.Deployment
	g.Eventually(func(g Gomega) { dep = getDeployment(g, ns, "traces-ingester") }, eventually, poll).Should(Succeed())

	g.Expect(dep.OwnerReferences).To(ConsistOf(And(
		HaveField("Kind", "Ingester"), HaveField("Name", "traces"), HaveField("UID", ing.UID),
		HaveField("Controller", ptr.To(true)))))
	g.Expect(dep.Spec.Replicas).To(Equal(ptr.To[int32](1)))
	pod := dep.Spec.Template.Spec
	g.Expect(pod.Containers).To(HaveLen(1))
	c := pod.Containers[0]
	g.Expect(c.Image).To(Equal(testImage))
	g.Expect(c.Args).To(Equal([]string{"ingest", "--config=/etc/spanflow/config/ingester.yaml"}))
	g.Expect(c.VolumeMounts).To(ContainElement(And(HaveField("Name", "config"), HaveField("MountPath", "/etc/spanflow/config"))))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
	g.Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	g.Expect(pod.Volumes).To(ContainElement(HaveField("ConfigMap.Name", "traces-ingester")))
	g.Expect(dep.Spec.Template.Annotations).To(HaveKey(podTemplateHashAnnotation))

	// The mounted file is one the ingester accepts, with the group defaulted.
	var cm corev1.ConfigMap
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "traces-ingester"}, &cm)).To(Succeed())
	cfg := loadConfig(t, cm.Data[configFileName])
	g.Expect(cfg.Validate()).To(Succeed())
	g.Expect(cfg.Kafka.Brokers).To(Equal([]string{testBroker}))
	g.Expect(cfg.Kafka.ConsumerGroup).To(Equal(ns + "/traces"))
	g.Expect(cfg.Parallelism).To(Equal(8))
	// It holds no setting but those every ingester image reads (the schema's defaults
	// the API server filled in change none of them), so that a pinned image older than
	// this operator reads it: an image refuses a field it does not know.
	var written map[string]any
	g.Expect(sigsyaml.UnmarshalStrict([]byte(cm.Data[configFileName]), &written)).To(Succeed(), cm.Data[configFileName])
	g.Expect(settingPaths(written)).To(ConsistOf(config.WrittenAlways), cm.Data[configFileName])

	// No pods exist yet (envtest has no Deployment controller): not ready, rolling out.
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Status.ObservedGeneration).To(Equal(ing.Generation))
		g.Expect(ing.Status.Selector).To(Equal("app.kubernetes.io/instance=traces,app.kubernetes.io/name=spanflow-ingester"))
		ready := meta.FindStatusCondition(ing.Status.Conditions, spanflowv1alpha1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(spanflowv1alpha1.ReasonRollingOut))
	}, eventually, poll).Should(Succeed())

	// Play the Deployment controller: the pod became ready.
	dep = getDeployment(g, ns, "traces-ingester")
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	g.Expect(k8sClient.Status().Update(ctx, dep)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Status.ReadyReplicas).To(Equal(int32(1)))
		g.Expect(meta.IsStatusConditionTrue(ing.Status.Conditions, spanflowv1alpha1.ConditionReady)).To(BeTrue())
		g.Expect(ing.Status.Parallelism).To(Equal(int32(8)))
	}, eventually, poll).Should(Succeed())

	// A parallelism change reaches the config, which the pods read again, and rolls nothing.
	oldHash := dep.Spec.Template.Annotations[podTemplateHashAnnotation]
	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Parallelism = ptr.To[int32](16) })).To(Succeed())
	g.Eventually(func(g Gomega) {
		var cm corev1.ConfigMap
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "traces-ingester"}, &cm)).To(Succeed())
		g.Expect(loadConfig(t, cm.Data[configFileName]).Parallelism).To(Equal(16))
	}, eventually, poll).Should(Succeed())
	g.Expect(getDeployment(g, ns, "traces-ingester").Spec.Template.Annotations[podTemplateHashAnnotation]).To(Equal(oldHash))

	// Any other change reaches the config and rolls the pods.
	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Processing.BatchSize = 500 })).To(Succeed())
	g.Eventually(func(g Gomega) {
		dep := getDeployment(g, ns, "traces-ingester")
		g.Expect(dep.Spec.Template.Annotations[podTemplateHashAnnotation]).NotTo(Equal(oldHash))
		var cm corev1.ConfigMap
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "traces-ingester"}, &cm)).To(Succeed())
		g.Expect(loadConfig(t, cm.Data[configFileName]).Processing.BatchSize).To(Equal(500))
	}, eventually, poll).Should(Succeed())
}

func TestIngesterCorrectsDrift(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	ing := minimalIngester(ns, "drift")
	ing.Spec.Replicas = ptr.To[int32](2)
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	var dep *appsv1.Deployment
	g.Eventually(func(g Gomega) { dep = getDeployment(g, ns, "drift-ingester") }, eventually, poll).Should(Succeed())

	// Someone scales the Deployment by hand: the operator puts spec.replicas back.
	dep.Spec.Replicas = ptr.To[int32](7)
	g.Expect(k8sClient.Update(ctx, dep)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, ns, "drift-ingester").Spec.Replicas).To(Equal(ptr.To[int32](2)))
	}, eventually, poll).Should(Succeed())

	// Someone deletes the ConfigMap: it comes back.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "drift-ingester"}}
	g.Expect(k8sClient.Delete(ctx, cm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var cm corev1.ConfigMap
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "drift-ingester"}, &cm)).To(Succeed())
		g.Expect(cm.Data).To(HaveKey(configFileName))
	}, eventually, poll).Should(Succeed())
}

func TestIngesterScaleSubresource(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	ing := minimalIngester(ns, "scaled")
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())

	scale := &autoscalingv1.Scale{}
	g.Expect(k8sClient.SubResource("scale").Get(ctx, ing, scale)).To(Succeed())
	g.Expect(scale.Spec.Replicas).To(Equal(int32(1)))
	scale.Spec.Replicas = 3
	g.Expect(k8sClient.SubResource("scale").Update(ctx, ing, client.WithSubResourceBody(scale))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, ns, "scaled-ingester").Spec.Replicas).To(Equal(ptr.To[int32](3)))
	}, eventually, poll).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.SubResource("scale").Get(ctx, ing, scale)).To(Succeed())
		g.Expect(scale.Status.Selector).To(ContainSubstring("app.kubernetes.io/instance=scaled"))
	}, eventually, poll).Should(Succeed())
}

func TestIngesterDeletedWhileReconciling(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	ing := minimalIngester(ns, "gone")
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	g.Eventually(func(g Gomega) { getDeployment(g, ns, "gone-ingester") }, eventually, poll).Should(Succeed())
	g.Expect(k8sClient.Delete(ctx, ing)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing))
	}, eventually, poll).Should(BeTrue())
	// The owned objects carry the owner reference the garbage collector acts on; envtest has
	// no garbage collector, so this is as far as a test without kube-controller-manager goes.
	dep := getDeployment(g, ns, "gone-ingester")
	g.Expect(dep.OwnerReferences).To(ContainElement(HaveField("BlockOwnerDeletion", ptr.To(true))))
}

func loadConfig(t *testing.T, data string) config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), configFileName)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("the operator's config does not load: %v\n%s", err, data)
	}
	return cfg
}

// settingPaths lists the dotted paths of a configuration file's settings: its leaves, and
// its objects written empty.
func settingPaths(tree map[string]any) []string {
	var paths []string
	for key, value := range tree {
		if sub, ok := value.(map[string]any); ok && len(sub) > 0 {
			for _, p := range settingPaths(sub) {
				paths = append(paths, key+"."+p)
			}
			continue
		}
		paths = append(paths, key)
	}
	return paths
}
