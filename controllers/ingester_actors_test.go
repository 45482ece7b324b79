package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

// The tests of this file play the other actors of a real cluster that touch an Ingester's
// objects: kubectl scale, an HPA or KEDA through the scale subresource, kubectl rollout
// restart, hand edits, GitOps tools applying the Ingester again and again.

// ownedObjects are the kinds the operator applies for an Ingester with more than one pod.
func ownedObjects() []client.Object {
	return []client.Object{&appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{}, &corev1.ServiceAccount{}, &policyv1.PodDisruptionBudget{}}
}

// resourceVersions are the resourceVersions of objects named key, in order.
func resourceVersions(g Gomega, key types.NamespacedName, objects ...client.Object) []string {
	var rvs []string
	for _, obj := range objects {
		g.Expect(k8sClient.Get(context.Background(), key, obj)).To(Succeed())
		rvs = append(rvs, fmt.Sprintf("%T %s", obj, obj.GetResourceVersion()))
	}
	return rvs
}

// quiet checks, over a few of the suite's 2 s resyncs, that neither the objects nor the
// Ingester (spec or status) change any more: whatever happened before settled, with no
// reconcile loop.
func quiet(g Gomega, ing *spanflowv1alpha1.Ingester, key types.NamespacedName, objects ...client.Object) {
	versions := func(g Gomega) []string {
		var cur spanflowv1alpha1.Ingester
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(ing), &cur)).To(Succeed())
		return append(resourceVersions(g, key, objects...), "Ingester "+cur.ResourceVersion)
	}
	// Settled: nothing moved for a second.
	var settled []string
	g.Eventually(func(g Gomega) {
		now := versions(g)
		same := slices.Equal(now, settled)
		settled = now
		g.Expect(same).To(BeTrue())
	}, eventually, "1s").Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(versions(g)).To(Equal(settled))
	}, "6s", "500ms").Should(Succeed())
}

// playDeploymentController reports the Deployment's pods as all there and ready.
func playDeploymentController(g Gomega, key types.NamespacedName) {
	dep := getDeployment(g, key.Namespace, key.Name)
	n := ptr.Deref(dep.Spec.Replicas, 1)
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
	g.Expect(k8sClient.Status().Update(context.Background(), dep)).To(Succeed())
}

// TestScaleSubresourceDrivesReplicas: with the built-in autoscaler off, kubectl scale, an
// HPA and KEDA (which scales through an HPA, and to zero itself) all write spec.replicas
// through the scale subresource, as they do a Deployment's; the Deployment follows, the
// scale's status reports what runs and the selector, and the operator never writes the
// spec back (which would fight them).
func TestScaleSubresourceDrivesReplicas(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := startedIngester(t, g, "hpa")

	_, err := kubectl(t, "scale", "ingester/hpa", "--replicas=3", "-n", key.Namespace)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Replicas).To(Equal(ptr.To[int32](3)))
		g.Expect(k8sClient.Get(ctx, key, &policyv1.PodDisruptionBudget{})).To(Succeed())
	}, eventually, poll).Should(Succeed())

	// The HPA: reads the scale, writes spec.replicas on it.
	hpaScale := func(n int32) {
		var scale autoscalingv1.Scale
		g.Expect(k8sClient.SubResource("scale").Get(ctx, ing, &scale)).To(Succeed())
		scale.Spec.Replicas = n
		g.Expect(k8sClient.SubResource("scale").Update(ctx, ing, client.WithSubResourceBody(&scale),
			client.FieldOwner("horizontal-pod-autoscaler"))).To(Succeed())
	}
	hpaScale(5)
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Replicas).To(Equal(ptr.To[int32](5)))
	}, eventually, poll).Should(Succeed())
	playDeploymentController(g, key)
	g.Eventually(func(g Gomega) {
		var scale autoscalingv1.Scale
		g.Expect(k8sClient.SubResource("scale").Get(ctx, ing, &scale)).To(Succeed())
		g.Expect(scale.Spec.Replicas).To(Equal(int32(5)))
		g.Expect(scale.Status.Replicas).To(Equal(int32(5)))
		g.Expect(scale.Status.Selector).To(Equal("app.kubernetes.io/instance=hpa,app.kubernetes.io/name=spanflow-ingester"))
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionReady).Reason).To(Equal(spanflowv1alpha1.ReasonAvailable))
		g.Expect(ing.Status.Autoscaling).To(BeNil())
	}, eventually, poll).Should(Succeed())
	quiet(g, ing, key, ownedObjects()...)
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
	g.Expect(ing.Spec.Replicas).To(Equal(ptr.To[int32](5)))

	// KEDA at no activity: zero, and a budget for no pods would only block drains.
	hpaScale(0)
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Replicas).To(Equal(ptr.To[int32](0)))
		g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, key, &policyv1.PodDisruptionBudget{}))).To(BeTrue())
	}, eventually, poll).Should(Succeed())
	playDeploymentController(g, key)
	g.Eventually(func(g Gomega) {
		g.Expect(condition(g, ing, spanflowv1alpha1.ConditionReady).Reason).To(Equal(spanflowv1alpha1.ReasonScaledToZero))
	}, eventually, poll).Should(Succeed())
	// The operator's own changes of the Deployment's replicas are not someone else's.
	g.Expect(warnings(g, key.Namespace, spanflowv1alpha1.ReasonDeploymentScaledBack)).To(BeEmpty())
}

// autoscaledIngester starts an Ingester with the built-in autoscaler on and waits for its
// first decision.
func autoscaledIngester(t *testing.T, g Gomega, name string) (*spanflowv1alpha1.Ingester, types.NamespacedName) {
	ing := minimalIngester(newNamespace(t), name)
	ing.Spec.Autoscaling = &spanflowv1alpha1.AutoscalingSpec{Enabled: true, MaxReplicas: ptr.To[int32](3), TargetLagRecords: ptr.To[int64](1000)}
	g.Expect(k8sClient.Create(context.Background(), ing)).To(Succeed())
	key := types.NamespacedName{Namespace: ing.Namespace, Name: name + "-ingester"}
	g.Eventually(func(g Gomega) {
		getDeployment(g, key.Namespace, key.Name)
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Status.Autoscaling).NotTo(BeNil())
		g.Expect(ing.Status.Lag).NotTo(BeNil())
	}, eventually, poll).Should(Succeed())
	return ing, key
}

// TestScalingAnAutoscaledIngester: with the built-in autoscaler on, kubectl scale and an
// HPA (or KEDA) write spec.replicas, which the operator ignores: the Deployment keeps the
// autoscaler's size, the status names the ignored value and a warning event says who owns
// the replicas. The operator does not write spec.replicas back, so the two do not fight
// over the Ingester (each write of theirs is only a new ignored value).
func TestScalingAnAutoscaledIngester(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := autoscaledIngester(t, g, "both")
	decided := ing.Status.Autoscaling.DesiredReplicas
	g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Replicas).To(Equal(ptr.To(decided)))
	other := decided%3 + 1 // another size within the bounds

	_, err := kubectl(t, "scale", "ingester/both", fmt.Sprintf("--replicas=%d", other), "-n", key.Namespace)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Status.Autoscaling.IgnoredReplicas).To(Equal(ptr.To(other)))
		g.Expect(ing.Status.ObservedGeneration).To(Equal(ing.Generation))
		g.Expect(warnings(g, key.Namespace, spanflowv1alpha1.ReasonReplicasIgnored)).To(ContainElement(ContainSubstring("spec.autoscaling is enabled")))
	}, eventually, poll).Should(Succeed())
	g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Replicas).To(Equal(ptr.To(decided)))
	quiet(g, ing, key, &appsv1.Deployment{}, &corev1.ConfigMap{})
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
	g.Expect(ing.Spec.Replicas).To(Equal(ptr.To(other)), "the operator wrote spec.replicas")
	g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Replicas).To(Equal(ptr.To(decided)))
}

// TestRolloutRestartStands: kubectl rollout restart stamps the pod template with an
// annotation of its own. The operator neither removes it nor writes the Deployment again
// (it owns only its own fields), and a later spec change keeps it.
func TestRolloutRestartStands(t *testing.T) {
	g := NewWithT(t)
	ing, key := startedIngester(t, g, "restarted")
	quiet(g, ing, key, &appsv1.Deployment{}, &corev1.ConfigMap{})

	_, err := kubectl(t, "rollout", "restart", "deployment/"+key.Name, "-n", key.Namespace)
	g.Expect(err).NotTo(HaveOccurred())
	restartedAt := getDeployment(g, key.Namespace, key.Name).Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"]
	g.Expect(restartedAt).NotTo(BeEmpty())
	quiet(g, ing, key, &appsv1.Deployment{}, &corev1.ConfigMap{})
	g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Template.Annotations).To(HaveKeyWithValue("kubectl.kubernetes.io/restartedAt", restartedAt))

	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Processing.BatchSize = 300 })).To(Succeed())
	g.Eventually(func(g Gomega) {
		var cm corev1.ConfigMap
		g.Expect(k8sClient.Get(context.Background(), key, &cm)).To(Succeed())
		g.Expect(loadConfig(t, cm.Data[configFileName]).Processing.BatchSize).To(Equal(300))
	}, eventually, poll).Should(Succeed())
	quiet(g, ing, key, &appsv1.Deployment{}, &corev1.ConfigMap{})
	g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Template.Annotations).To(HaveKeyWithValue("kubectl.kubernetes.io/restartedAt", restartedAt))
}

// TestHandEditsArePutBackOnce: kubectl edit of the ConfigMap and of the Deployment's
// fields the operator sets are put back, once — no reconcile loop follows; what the
// operator does not set (container resources a VPA or a person adds, an extra
// annotation) stays, and is not fought over either.
func TestHandEditsArePutBackOnce(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := startedIngester(t, g, "edited")
	quiet(g, ing, key, &appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{}, &corev1.ServiceAccount{})
	var cm corev1.ConfigMap
	g.Expect(k8sClient.Get(ctx, key, &cm)).To(Succeed())
	rendered := cm.Data[configFileName]

	// kubectl edit: an update under a manager of its own.
	cm.Data[configFileName] = "kafka: {}\n"
	g.Expect(k8sClient.Update(ctx, &cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
	dep := getDeployment(g, key.Namespace, key.Name)
	dep.Spec.Template.Spec.Containers[0].Image = "someone/else:latest"
	dep.Spec.Template.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("300Mi")}}
	dep.Annotations["team"] = "b"
	g.Expect(k8sClient.Update(ctx, dep, client.FieldOwner("kubectl-edit"))).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key, &cm)).To(Succeed())
		g.Expect(cm.Data[configFileName]).To(Equal(rendered))
		g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Template.Spec.Containers[0].Image).To(Equal(testImage))
	}, eventually, poll).Should(Succeed())
	quiet(g, ing, key, &appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{}, &corev1.ServiceAccount{})
	dep = getDeployment(g, key.Namespace, key.Name)
	g.Expect(dep.Spec.Template.Spec.Containers[0].Resources.Requests).To(HaveKey(corev1.ResourceCPU))
	g.Expect(dep.Annotations).To(HaveKeyWithValue("team", "b"))
}

// TestClientSideApplyIsPutBack: kubectl apply (client-side) of a changed copy of the
// Deployment is put back like an edit, once.
func TestClientSideApplyIsPutBack(t *testing.T) {
	g := NewWithT(t)
	ing, key := startedIngester(t, g, "csa")
	quiet(g, ing, key, &appsv1.Deployment{})
	out, err := kubectl(t, "get", "deployment", key.Name, "-n", key.Namespace, "-o", "yaml")
	g.Expect(err).NotTo(HaveOccurred())
	path := filepath.Join(t.TempDir(), "dep.yaml")
	g.Expect(strings.Count(out, "image: "+testImage)).To(Equal(1))
	g.Expect(os.WriteFile(path, []byte(strings.Replace(out, "image: "+testImage, "image: someone/else:1", 1)), 0o600)).To(Succeed())
	_, err = kubectl(t, "apply", "-f", path)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Template.Spec.Containers[0].Image).To(Equal(testImage))
	}, eventually, poll).Should(Succeed())
	quiet(g, ing, key, &appsv1.Deployment{})
}

// TestDeletedObjectsComeBack: each object the operator makes, deleted by hand, is made
// again at once (the watch of owned objects, not the resync).
func TestDeletedObjectsComeBack(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing := minimalIngester(newNamespace(t), "deleted")
	ing.Spec.Replicas = ptr.To[int32](2)
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	key := types.NamespacedName{Namespace: ing.Namespace, Name: "deleted-ingester"}
	quiet(g, ing, key, ownedObjects()...)
	for _, obj := range ownedObjects() {
		g.Expect(k8sClient.Get(ctx, key, obj)).To(Succeed())
		uid := obj.GetUID()
		g.Expect(k8sClient.Delete(ctx, obj)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key, obj)).To(Succeed())
			g.Expect(obj.GetUID()).NotTo(Equal(uid))
			g.Expect(metav1.IsControlledBy(obj, ing)).To(BeTrue())
		}, "1500ms", poll).Should(Succeed(), "%T", obj)
	}
	quiet(g, ing, key, ownedObjects()...)
	g.Expect(condition(g, ing, spanflowv1alpha1.ConditionDegraded).Status).To(Equal(metav1.ConditionFalse))
}

// TestDeploymentScaledByHandWhileAutoscaled: with the built-in autoscaler on, the
// Deployment's replicas are the autoscaler's, as they are spec.replicas' with it off.
// kubectl scale deployment (or an HPA or KEDA aimed at the Deployment instead of the
// Ingester) is put back to the autoscaler's size — not taken as the size to start from,
// which kept 7 pods on 3 partitions with maxReplicas 3 and a status saying 7 was wanted.
func TestDeploymentScaledByHandWhileAutoscaled(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := autoscaledIngester(t, g, "handscaled")
	decided := ing.Status.Autoscaling.DesiredReplicas
	g.Expect(decided).To(BeNumerically("<=", 3))

	_, err := kubectl(t, "scale", "deployment/"+key.Name, "--replicas=7", "-n", key.Namespace)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Replicas).To(Equal(ptr.To(decided)))
	}, eventually, poll).Should(Succeed())
	quiet(g, ing, key, &appsv1.Deployment{}, &corev1.ConfigMap{})
	g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Replicas).To(Equal(ptr.To(decided)))
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
	g.Expect(ing.Status.Autoscaling.DesiredReplicas).To(Equal(decided), ing.Status.Autoscaling.Reason)
	g.Expect(warnings(g, key.Namespace, spanflowv1alpha1.ReasonDeploymentScaledBack)).To(ContainElement(And(
		ContainSubstring(fmt.Sprintf("scaled to 7 by someone else and is put back to %d", decided)),
		ContainSubstring("the built-in autoscaler sizes it"))))
}

// TestDeploymentScaledByHandIsSaid: with the autoscaler off, the Deployment's replicas are
// spec.replicas. kubectl scale deployment (or an HPA or KEDA aimed at the Deployment) is
// put back, and a warning says so and what to scale instead — without it the pods come and
// go with nothing saying why.
func TestDeploymentScaledByHandIsSaid(t *testing.T) {
	g := NewWithT(t)
	_, key := startedIngester(t, g, "scaledback")
	_, err := kubectl(t, "scale", "deployment/"+key.Name, "--replicas=4", "-n", key.Namespace)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Replicas).To(Equal(ptr.To[int32](1)))
		g.Expect(warnings(g, key.Namespace, spanflowv1alpha1.ReasonDeploymentScaledBack)).To(ContainElement(
			ContainSubstring("The Deployment scaledback-ingester was scaled to 4 by someone else and is put back to 1: its replicas are the Ingester's. Scale the Ingester (kubectl scale ingester/scaledback")))
	}, eventually, poll).Should(Succeed())
}

// TestAnHPAAtTheDeploymentIsReported: an HPA aimed at the Deployment, not the Ingester,
// fights the operator for good (each of its scales is put back, pods come and go, the
// consumer group rebalances), which events alone leave out of kubectl get. The Ingester is
// Degraded, naming the HPA and the scaleTargetRef to give it, with one warning; the HPA
// gone, it is clear again.
func TestAnHPAAtTheDeploymentIsReported(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := startedIngester(t, g, "fought")
	hpa := hpaAt(key.Namespace, "cpu", "apps/v1", "Deployment", key.Name)
	g.Expect(k8sClient.Create(ctx, &hpa)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonScalerConflict))
		g.Expect(c.Message).To(ContainSubstring("HorizontalPodAutoscaler " + key.Namespace + "/cpu scales the Deployment fought-ingester"))
		g.Expect(c.Message).To(ContainSubstring("aim it at the Ingester (scaleTargetRef: {apiVersion: spanflow.dev/v1alpha1, kind: Ingester, name: fought})"))
		g.Expect(ing.Status.State).To(Equal(spanflowv1alpha1.ReasonScalerConflict))
	}, eventually, poll).Should(Succeed())
	// Reported, not held back: the spec goes on being applied.
	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Replicas = ptr.To[int32](2) })).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Replicas).To(Equal(ptr.To[int32](2)))
	}, eventually, poll).Should(Succeed())

	// The HPA's turn: the scale put back says who did it.
	_, err := kubectl(t, "scale", "deployment/"+key.Name, "--replicas=4", "-n", key.Namespace)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, key.Namespace, key.Name).Spec.Replicas).To(Equal(ptr.To[int32](2)))
		g.Expect(warnings(g, key.Namespace, spanflowv1alpha1.ReasonDeploymentScaledBack)).To(ContainElement(
			ContainSubstring("HorizontalPodAutoscaler " + key.Namespace + "/cpu aims at the Deployment: see the Ingester's Degraded condition (ScalerConflict)")))
	}, eventually, poll).Should(Succeed())
	// Said once, not at every resync.
	quiet(g, ing, key, &appsv1.Deployment{})
	g.Expect(warnings(g, key.Namespace, spanflowv1alpha1.ReasonScalerConflict)).To(HaveLen(1))

	g.Expect(k8sClient.Delete(ctx, &hpa)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonAsExpected))
	}, eventually, poll).Should(Succeed())
}

// TestAnHPAAtAnAutoscaledIngesterIsReported: an HPA (here KEDA's) aimed at the Ingester
// drives spec.replicas, which the built-in autoscaler ignores: with spec.autoscaling on it
// believes it scales and does nothing, and the Ingester is Degraded, naming it. With
// spec.autoscaling off the HPA is the Ingester's autoscaler, as it should be.
func TestAnHPAAtAnAutoscaledIngesterIsReported(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := autoscaledIngester(t, g, "doubly")
	hpa := madeByKEDA(hpaAt(key.Namespace, "keda-hpa-lag", "spanflow.dev/v1alpha1", "Ingester", "doubly"), "lag")
	hpa.OwnerReferences = nil // no ScaledObject exists here for the garbage collector to find
	g.Expect(k8sClient.Create(ctx, &hpa)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonScalerConflict))
		g.Expect(c.Message).To(ContainSubstring(`KEDA ScaledObject "lag" (through HorizontalPodAutoscaler ` + key.Namespace + `/keda-hpa-lag) scales the Ingester, but spec.autoscaling is enabled`))
		g.Expect(c.Message).To(ContainSubstring("delete the ScaledObject, or turn spec.autoscaling off"))
	}, eventually, poll).Should(Succeed())

	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Autoscaling.Enabled = false })).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, ing, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonAsExpected))
	}, eventually, poll).Should(Succeed())
}

// warnings are the messages of the warning events of ns with reason.
func warnings(g Gomega, ns, reason string) []string {
	var events corev1.EventList
	g.Expect(k8sClient.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	var messages []string
	for _, e := range events.Items {
		if e.Reason == reason && e.Type == corev1.EventTypeWarning {
			messages = append(messages, e.Message)
		}
	}
	return messages
}

// TestGitOpsApplyIsQuiet: a GitOps tool (Argo CD, Flux) applies the Ingester again and
// again with server-side apply under its own field manager, with or without the fields
// the API server defaults. Nothing the operator does makes the applied object differ: the
// generation does not move, the owned objects and the status are not rewritten. A scale
// subresource write (an HPA) is not undone by an apply that leaves replicas out.
func TestGitOpsApplyIsQuiet(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	manifests := map[string]string{
		"bare": fmt.Sprintf(`apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: bare, namespace: %s}
spec:
  storage: {type: blackhole}
  kafka: {brokers: [%q], topic: %s}
`, ns, testBroker, testTopic),
		"defaulted": fmt.Sprintf(`apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: defaulted, namespace: %s}
spec:
  kafka: {brokers: [%q], topic: %s, initialOffset: earliest}
  encoding: otlp_proto
  storage: {type: blackhole}
  replicas: 2
  parallelism: 8
status:
  replicas: 9
`, ns, testBroker, testTopic),
	}
	apply := func(name string) {
		path := filepath.Join(t.TempDir(), name+".yaml")
		g.Expect(os.WriteFile(path, []byte(manifests[name]), 0o600)).To(Succeed())
		_, err := kubectl(t, "apply", "--server-side", "--field-manager=argocd", "-f", path)
		g.Expect(err).NotTo(HaveOccurred())
	}
	for _, name := range []string{"bare", "defaulted"} {
		apply(name)
		ing := &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		key := types.NamespacedName{Namespace: ns, Name: name + "-ingester"}
		g.Eventually(func(g Gomega) { getDeployment(g, ns, key.Name) }, eventually, poll).Should(Succeed())
		quiet(g, ing, key, &appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{})
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		generation, rv := ing.Generation, ing.ResourceVersion
		before := resourceVersions(g, key, &appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{})
		for range 3 {
			apply(name)
		}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Generation).To(Equal(generation))
		g.Expect(ing.ResourceVersion).To(Equal(rv), "an apply of the same manifest wrote the Ingester")
		quiet(g, ing, key, &appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{})
		g.Expect(resourceVersions(g, key, &appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{})).To(Equal(before))
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Status.Replicas).To(BeZero(), "the manifest's status reached the Ingester")
	}

	// The HPA's replicas stand when the manifest leaves them out.
	_, err := kubectl(t, "scale", "ingester/bare", "--replicas=3", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred())
	apply("bare")
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, ns, "bare-ingester").Spec.Replicas).To(Equal(ptr.To[int32](3)))
	}, eventually, poll).Should(Succeed())
	quiet(g, &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bare"}},
		types.NamespacedName{Namespace: ns, Name: "bare-ingester"}, &appsv1.Deployment{})
}

// TestARestoredIngesterNamesWhatItsPredecessorLeft: an Ingester restored from a backup
// (a new UID) beside the objects its predecessor left, still owned by the old UID (envtest
// has no garbage collector; a cluster's would delete them soon after, and the operator
// then makes them anew). The operator takes nothing over and says what is in the way,
// whose it was and what to do — not to rename the Ingester, which would consume the
// topic again in a new group while the old pods go on.
func TestARestoredIngesterNamesWhatItsPredecessorLeft(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := startedIngester(t, g, "restored")
	old := getDeployment(g, key.Namespace, key.Name)
	g.Expect(k8sClient.Delete(ctx, ing)).To(Succeed())
	g.Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)) }, eventually, poll).Should(BeTrue())
	// Someone's own object of the name, too: that one is not the predecessor's.
	svc := &corev1.Service{}
	g.Expect(k8sClient.Get(ctx, key, svc)).To(Succeed())
	g.Expect(k8sClient.Delete(ctx, svc)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}})).To(Succeed())

	again := minimalIngester(key.Namespace, "restored")
	g.Expect(k8sClient.Create(ctx, again)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := condition(g, again, spanflowv1alpha1.ConditionDegraded)
		g.Expect(c.Reason).To(Equal(spanflowv1alpha1.ReasonResourceConflict))
		g.Expect(c.Message).To(ContainSubstring(`ServiceAccount "restored-ingester", ConfigMap "restored-ingester", Deployment "restored-ingester" made for an Ingester named "restored" but not controlled by this one (left by an earlier one`))
		g.Expect(c.Message).To(ContainSubstring("kubectl delete -n %s serviceaccount/restored-ingester configmap/restored-ingester deployment/restored-ingester)", key.Namespace))
		g.Expect(c.Message).To(ContainSubstring(`not controlled by this Ingester, so the operator leaves them alone: Service "restored-ingester"; rename or delete them`))
		g.Expect(c.Message).NotTo(ContainSubstring("no ingester pods run"))
		ready := condition(g, again, spanflowv1alpha1.ConditionReady)
		g.Expect(ready.Message).NotTo(ContainSubstring("No ingester pods run"))
	}, eventually, poll).Should(Succeed())
	dep := getDeployment(g, key.Namespace, key.Name)
	g.Expect(dep.OwnerReferences).To(Equal(old.OwnerReferences))
	g.Expect(dep.Generation).To(Equal(old.Generation))
}

// TestResyncOfAFullTemplateWritesNothing: an Ingester whose pod template uses every field
// costs its resyncs (an operator restart's first reconcile too) no writes, as a minimal
// one does (TestResyncWritesNothing): what the API server stores of the template — an env
// var's fieldRef without apiVersion is stored with "v1", and is an atomic struct the apply
// owns whole — equals what the operator applies, so the Deployment is not applied again
// (and dry-run first) at every resync.
func TestResyncOfAFullTemplateWritesNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	ing := minimalIngester(ns, "full")
	ing.Spec.Replicas = ptr.To[int32](2)
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/instance": "full"}}
	ing.Spec.Template = spanflowv1alpha1.PodTemplate{
		ImagePullPolicy:  corev1.PullAlways,
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "registry"}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0.5"), corev1.ResourceMemory: resource.MustParse("1Gi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1000m"), corev1.ResourceMemory: resource.MustParse("2147483648")}},
		NodeSelector: map[string]string{"disk": "ssd", "arch": "amd64"},
		Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 50, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname", LabelSelector: selector}}}}},
		Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "spans", Effect: corev1.TaintEffectNoSchedule},
			{Key: "spot", Operator: corev1.TolerationOpExists}},
		TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone",
			WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: selector}},
		PodAnnotations: map[string]string{"b": "2", "a": "1"},
		PodLabels:      map[string]string{"team": "x"},
		Env: []corev1.EnvVar{{Name: "GOGC", Value: "200"},
			{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "CPUS", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}}},
		PodSecurityContext: &corev1.PodSecurityContext{FSGroup: ptr.To[int64](2000)},
		SecurityContext:    &corev1.SecurityContext{RunAsUser: ptr.To[int64](1000)},
	}
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	key := types.NamespacedName{Namespace: ns, Name: "full-ingester"}
	g.Eventually(func(g Gomega) {
		getDeployment(g, ns, key.Name)
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Status.Lag).NotTo(BeNil(), "the lag observer has not reported yet")
	}, eventually, poll).Should(Succeed())
	quiet(g, ing, key, ownedObjects()...)
	writes := managerWritesIn(ns)
	quiet(g, ing, key, ownedObjects()...)
	g.Expect(managerWritesIn(ns)-writes).To(BeZero(), "the manager wrote during resyncs of an unchanged Ingester")
}

// TestAnAdmissionPolicyIsNotFought: a mutating admission policy (or a webhook: Kyverno,
// Gatekeeper) that rewrites the Deployment on its way in — the image to a registry
// mirror, a label added — leaves fields the operator owns differing from what it
// applies, for good. The operator neither fights it nor applies the Deployment again
// (with its dry run) at every resync: an object still at the version its last apply
// left is as that apply made it.
func TestAnAdmissionPolicyIsNotFought(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	policy := fmt.Sprintf(`apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: mirror-%[1]s}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
  failurePolicy: Fail
  reinvocationPolicy: Never
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >
        Object{spec: Object.spec{template: Object.spec.template{
          metadata: Object.spec.template.metadata{labels: {"policy.example/checked": "true"}},
          spec: Object.spec.template.spec{containers: [Object.spec.template.spec.containers{name: "ingester", image: "mirror.example/spanflow:test"}]}}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: mirror-%[1]s}
spec:
  policyName: mirror-%[1]s
  matchResources:
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %[1]s}}
`, ns)
	path := filepath.Join(t.TempDir(), "policy.yaml")
	g.Expect(os.WriteFile(path, []byte(policy), 0o600)).To(Succeed())
	_, err := kubectl(t, "apply", "-f", path)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _, _ = kubectl(t, "delete", "-f", path) })
	// The policy acts once the API server has loaded it.
	g.Eventually(func(g Gomega) {
		probe := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "ingester", Image: "x"}}}}}}
		g.Expect(k8sClient.Create(ctx, probe, client.DryRunAll)).To(Succeed())
		g.Expect(probe.Spec.Template.Spec.Containers[0].Image).To(Equal("mirror.example/spanflow:test"))
	}, eventually, poll).Should(Succeed())

	ing := minimalIngester(ns, "mirrored")
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	key := types.NamespacedName{Namespace: ns, Name: "mirrored-ingester"}
	g.Eventually(func(g Gomega) {
		dep := getDeployment(g, ns, key.Name)
		g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal("mirror.example/spanflow:test"))
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Status.Lag).NotTo(BeNil(), "the lag observer has not reported yet")
	}, eventually, poll).Should(Succeed())
	quiet(g, ing, key, ownedObjects()[:4]...)
	writes := managerWritesIn(ns)
	quiet(g, ing, key, ownedObjects()[:4]...)
	g.Expect(managerWritesIn(ns)-writes).To(BeZero(), "the manager wrote during resyncs of an unchanged Ingester")

	// A spec change still goes through the policy; a hand edit is still put back.
	g.Expect(updateSpec(ing, func(i *spanflowv1alpha1.Ingester) { i.Spec.Replicas = ptr.To[int32](2) })).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, ns, key.Name).Spec.Replicas).To(Equal(ptr.To[int32](2)))
	}, eventually, poll).Should(Succeed())
	dep := getDeployment(g, ns, key.Name)
	dep.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	g.Expect(k8sClient.Update(ctx, dep, client.FieldOwner("kubectl-edit"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, ns, key.Name).Spec.Template.Spec.TerminationGracePeriodSeconds).NotTo(Equal(ptr.To[int64](1)))
	}, eventually, poll).Should(Succeed())
	quiet(g, ing, key, ownedObjects()...)
	g.Expect(getDeployment(g, ns, key.Name).Spec.Template.Spec.Containers[0].Image).To(Equal("mirror.example/spanflow:test"))
}

// TestAnOrphaningDeletionIsNotUndone: kubectl delete --cascade=orphan sets the Ingester's
// deletionTimestamp, and the garbage collector frees its objects of their owner reference
// at once. A reconcile that still reads the Ingester from before (the cache is behind,
// while the objects' updates are already in it) saw objects differing from its own — no
// owner reference — and applied them, giving them back to the Ingester about to go; the
// collector then deleted them as dangling, the Deployment and its pods with them (seen in
// TestARecreatedIngesterAndWhatItsPredecessorLeft about once in seven). The Ingester is
// read again from the API server before anything is written.
func TestAnOrphaningDeletionIsNotUndone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ing, key := startedIngester(t, g, "orphaned")
	quiet(g, ing, key, &appsv1.Deployment{})
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
	before := ing.DeepCopy() // what a cache behind the deletion still holds

	// The deletion and, as the garbage collector would (envtest runs none), the owner
	// reference removed from the Deployment.
	g.Expect(k8sClient.Delete(ctx, ing, client.PropagationPolicy(metav1.DeletePropagationOrphan))).To(Succeed())
	t.Cleanup(func() {
		_ = k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)
		ing.Finalizers = nil
		_ = k8sClient.Update(ctx, ing)
	})
	dep := getDeployment(g, key.Namespace, key.Name)
	dep.OwnerReferences = nil
	g.Expect(k8sClient.Update(ctx, dep, client.FieldOwner("kube-controller-manager"))).To(Succeed())

	r := &IngesterReconciler{Client: k8sClient, APIReader: k8sClient, IngesterImage: testImage}
	_, err := r.apply(ctx, before, nil)
	g.Expect(getDeployment(g, key.Namespace, key.Name).OwnerReferences).To(BeEmpty(), "the Deployment was given back to the Ingester being deleted")
	g.Expect(err).To(MatchError(errBeingDeleted))
}
