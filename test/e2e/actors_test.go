package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/internal/cli"
	"github.com/spanflow/spanflow/internal/testenv"
	"github.com/spanflow/spanflow/internal/testproc"
)

// kubectl runs kubectl against env and fails the test on an error.
func kubectl(t *testing.T, env *envtest.Environment, args ...string) string {
	t.Helper()
	out, stderr, err := env.ControlPlane.KubeCtl().Run(args...)
	data, _ := io.ReadAll(out)
	if err != nil {
		errData, _ := io.ReadAll(stderr)
		t.Fatalf("kubectl %s: %v %s %s", strings.Join(args, " "), err, data, errData)
	}
	return string(data)
}

// ingesterCondition is a condition of Ingester default/name, nil when it has none (or no
// Ingester).
func ingesterCondition(c client.Client, name, conditionType string) *metav1.Condition {
	var ing spanflowv1alpha1.Ingester
	if c.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: name}, &ing) != nil {
		return nil
	}
	return meta.FindStatusCondition(ing.Status.Conditions, conditionType)
}

// TestARecreatedIngesterAndWhatItsPredecessorLeft: an Ingester deleted with
// --cascade=orphan (a backup and restore, a move between tools) leaves its Deployment, its
// pods and the other objects behind, which the garbage collector frees of their owner
// reference — and only that: the operator, reading the Ingester from before its
// deletion, used to give them back to it now and then, and the collector then deleted
// them, pods and all (TestAnOrphaningDeletionIsNotUndone). Created again, the Ingester
// does not take them over — the operator never adopts what it does not control, and
// cannot tell its own leftovers from someone's objects with the same name — and says so:
// they were made for an Ingester of its name, their pods still consume unmanaged, and
// deleting them (not renaming the Ingester, which would consume the topic a second time
// in a new group) lets it make them again.
func TestARecreatedIngesterAndWhatItsPredecessorLeft(t *testing.T) {
	c, env, _, _ := startOperator(t)
	const manifest = `apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: kept, namespace: default}
spec:
  storage: {type: blackhole}
  kafka: {brokers: ["127.0.0.1:1"], topic: spans}
  replicas: 2
`
	kubectlApply(t, env, manifest)
	key := types.NamespacedName{Namespace: "default", Name: "kept-ingester"}
	var dep appsv1.Deployment
	eventually(t, 60*time.Second, "the Deployment's two pods", func() bool {
		return c.Get(context.Background(), key, &dep) == nil && len(ingesterPods(t, c)) == 2
	})
	pods := ingesterPods(t, c)

	kubectl(t, env, "delete", "ingester", "kept", "--cascade=orphan")
	kinds := []client.Object{&appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{}, &corev1.ServiceAccount{}, &policyv1.PodDisruptionBudget{}}
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		err := c.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: "kept"}, &spanflowv1alpha1.Ingester{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Ingester is still there: %v", err)
		for _, obj := range kinds {
			g.Expect(c.Get(context.Background(), key, obj)).To(Succeed(), "%T", obj)
			g.Expect(obj.GetOwnerReferences()).To(BeEmpty(), "%T", obj)
		}
	}, "60s", "100ms").Should(Succeed(), "the Ingester gone and its objects freed of their owner")

	kubectlApply(t, env, manifest)
	var degraded *metav1.Condition
	eventually(t, 60*time.Second, "the new Ingester to report what is in its way", func() bool {
		degraded = ingesterCondition(c, "kept", spanflowv1alpha1.ConditionDegraded)
		return degraded != nil && degraded.Reason == spanflowv1alpha1.ReasonResourceConflict
	})
	t.Logf("Degraded: %s", degraded.Message)
	for _, want := range []string{`made for an Ingester named "kept" but not controlled by this one (left by an earlier one`, "--cascade=orphan", "go on consuming, unmanaged",
		"kubectl delete -n default serviceaccount/kept-ingester configmap/kept-ingester service/kept-ingester deployment/kept-ingester poddisruptionbudget/kept-ingester)"} {
		if !strings.Contains(degraded.Message, want) {
			t.Errorf("Degraded's message does not say %q: %s", want, degraded.Message)
		}
	}
	if strings.Contains(degraded.Message, "another name") {
		t.Errorf("Degraded's message suggests another name, which would consume the topic again in a new group: %s", degraded.Message)
	}
	ready := ingesterCondition(c, "kept", spanflowv1alpha1.ConditionReady)
	if strings.Contains(ready.Message, "No ingester pods run") {
		t.Errorf("Ready says no pods run while the old Deployment's do: %s", ready.Message)
	}
	// Not taken over, not changed: the pods are the old ones.
	var after appsv1.Deployment
	if err := c.Get(context.Background(), key, &after); err != nil {
		t.Fatal(err)
	}
	if after.UID != dep.UID || after.Generation != dep.Generation || len(after.OwnerReferences) > 0 {
		t.Errorf("the old Deployment was changed: generation %d → %d, owners %v", dep.Generation, after.Generation, after.OwnerReferences)
	}
	if got := ingesterPods(t, c); strings.Join(got, ",") != strings.Join(pods, ",") {
		t.Errorf("pods %v became %v", pods, got)
	}

	// What the message says to do.
	_, command, _ := strings.Cut(degraded.Message, "kubectl ")
	command, _, _ = strings.Cut(command, ")")
	kubectl(t, env, strings.Fields(command)...)
	eventually(t, 60*time.Second, "the Ingester's own Deployment", func() bool {
		var d appsv1.Deployment
		return c.Get(context.Background(), key, &d) == nil && d.UID != dep.UID && len(d.OwnerReferences) == 1
	})
	eventually(t, 30*time.Second, "Degraded to clear", func() bool {
		d := ingesterCondition(c, "kept", spanflowv1alpha1.ConditionDegraded)
		return d != nil && d.Reason != spanflowv1alpha1.ReasonResourceConflict
	})
}

// reconciles is the operator's count of Ingester reconciles that did not fail.
func reconciles(metricsAddr string) int {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	total := 0.0
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, `controller_runtime_reconcile_total{controller="ingester",result="`); ok && !strings.HasPrefix(rest, "error") {
			_, v, _ := strings.Cut(rest, " ")
			n, _ := strconv.ParseFloat(v, 64)
			total += n
		}
	}
	return int(total)
}

// startCluster starts a control plane with the CRDs and kube-controller-manager (with
// extra arguments); it returns a client, kubectl, and a function that starts the operator
// as a process with extra manager flags, returning it and its /metrics address.
func startCluster(t *testing.T, controllerManagerArgs ...string) (client.Client, *envtest.Environment, func(managerArgs ...string) (*exec.Cmd, string)) {
	t.Helper()
	env, cfg, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	testenv.StartControllerManager(t, env, controllerManagerArgs...)
	c, err := client.New(cfg, client.Options{Scheme: cli.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := testenv.Kubeconfig(t, env, envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}})
	return c, env, func(managerArgs ...string) (*exec.Cmd, string) {
		metrics := testenv.FreeAddr(t)
		args := append([]string{"manager", "--ingester-image=spanflow:e2e", "--metrics-bind-address=" + metrics, "--health-probe-bind-address=0"}, managerArgs...)
		return testproc.Start(t, testproc.Spanflow, nil, []string{"KUBECONFIG=" + kubeconfigPath}, args...), metrics
	}
}

// TestOperatorRestartRollsNothing: a new operator process (an upgrade, a node drain, a
// crash) renders every Ingester's objects as its predecessor did — the same pod template,
// the same hash of the configuration and Secrets, the autoscaler starting from the size
// it left — so no Deployment changes and no pod is replaced, for Ingesters at rest and one
// in the middle of a rollout.
func TestOperatorRestartRollsNothing(t *testing.T) {
	g := NewWithT(t)
	c, env, start := startCluster(t)
	operator, _ := start("--kafka-poll-interval=1s")
	broker := testproc.StartKfake(t, "-topic="+topic, fmt.Sprintf("-partitions=%d", partitions))

	kubectl(t, env, "create", "secret", "generic", "kafka-user", "--from-literal=username=u", "--from-literal=password=p")
	kubectl(t, env, "create", "secret", "generic", "tempo-token", "--from-literal=token=t")
	const n = 6
	kubectlApply(t, env, fmt.Sprintf(`apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: plain, namespace: default}
spec:
  storage: {type: blackhole}
  kafka: {brokers: [%[1]q], topic: %[2]s}
---
apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: sasl, namespace: default}
spec:
  storage: {type: blackhole}
  kafka:
    brokers: [%[1]q]
    topic: %[2]s
    sasl: {mechanism: SCRAM-SHA-512, credentialsSecretName: kafka-user}
  replicas: 2
---
apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: otlp, namespace: default}
spec:
  kafka: {brokers: [%[1]q], topic: %[2]s}
  storage:
    type: otlp
    otlp:
      endpoint: tempo:4317
      headers:
      - {name: x-scope-orgid, value: shop}
      - {name: authorization, valueFrom: {name: tempo-token, key: token}}
      - {name: a-first, value: "1"}
---
apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: template, namespace: default}
spec:
  storage: {type: blackhole}
  kafka: {brokers: [%[1]q], topic: %[2]s}
  template:
    resources:
      requests: {cpu: "0.5", memory: 1Gi}
      limits: {cpu: 1000m, memory: "2147483648"}
    env: [{name: GOGC, value: "200"}]
    podAnnotations: {b: "2", a: "1"}
    nodeSelector: {disk: ssd, zone: a}
    tolerations: [{key: dedicated, operator: Exists}]
---
apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: auto, namespace: default}
spec:
  storage: {type: blackhole}
  kafka: {brokers: [%[1]q], topic: %[2]s}
  autoscaling: {enabled: true, minReplicas: 2, maxReplicas: 4, targetLagRecords: 1000}
---
apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: rolling, namespace: default}
spec:
  storage: {type: blackhole}
  kafka: {brokers: [%[1]q], topic: %[2]s}
  replicas: 2
`, broker, topic))
	// No kubelet: the pods stay pending, every Deployment mid-rollout, and "rolling" in a
	// second one.
	g.Eventually(func(g Gomega) {
		var list spanflowv1alpha1.IngesterList
		g.Expect(c.List(context.Background(), &list, client.InNamespace("default"))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(n))
		for _, ing := range list.Items {
			g.Expect(ing.Status.ObservedGeneration).To(Equal(ing.Generation), ing.Name)
			if ing.Name == "auto" { // the autoscaler has figures to decide on
				g.Expect(ing.Status.Lag).NotTo(BeNil(), ing.Name)
			}
		}
	}, "60s", "200ms").Should(Succeed())
	g.Expect(updateIngester(c, types.NamespacedName{Namespace: "default", Name: "rolling"}, func(i *spanflowv1alpha1.Ingester) {
		i.Spec.Processing.BatchSize = 700
	})).To(Succeed())
	g.Eventually(func(g Gomega) {
		var list appsv1.ReplicaSetList
		g.Expect(c.List(context.Background(), &list, client.InNamespace("default"), client.MatchingLabels{"app.kubernetes.io/instance": "rolling"})).To(Succeed())
		g.Expect(list.Items).To(HaveLen(2))
	}, "60s", "200ms").Should(Succeed())

	type seen struct {
		generation int64
		template   string
		replicas   int32
	}
	snapshot := func(g Gomega) (map[string]seen, int) {
		var deps appsv1.DeploymentList
		g.Expect(c.List(context.Background(), &deps, client.InNamespace("default"))).To(Succeed())
		out := map[string]seen{}
		for _, d := range deps.Items {
			template, err := json.Marshal(d.Spec.Template)
			g.Expect(err).NotTo(HaveOccurred())
			out[d.Name] = seen{d.Generation, string(template), *d.Spec.Replicas}
		}
		var sets appsv1.ReplicaSetList
		g.Expect(c.List(context.Background(), &sets, client.InNamespace("default"))).To(Succeed())
		return out, len(sets.Items)
	}
	var before map[string]seen
	var sets int
	g.Eventually(func(g Gomega) {
		before, sets = snapshot(g)
		g.Expect(before).To(HaveLen(n))
		time.Sleep(3 * time.Second) // a few polls of Kafka and resyncs: nothing moves
		after, afterSets := snapshot(g)
		g.Expect(after).To(Equal(before))
		g.Expect(afterSets).To(Equal(sets))
	}, "60s", "1s").Should(Succeed())

	_ = operator.Process.Signal(syscall.SIGTERM)
	_ = operator.Wait()
	_, metrics := start("--kafka-poll-interval=1s")
	g.Eventually(func() int { return reconciles(metrics) }, "60s", "200ms").Should(BeNumerically(">=", 2*n),
		"the new operator has not reconciled every Ingester")
	g.Consistently(func(g Gomega) {
		after, afterSets := snapshot(g)
		g.Expect(after).To(Equal(before))
		g.Expect(afterSets).To(Equal(sets))
	}, "8s", "500ms").Should(Succeed())
}

// TestAnHPAScalesAnIngester: the real HorizontalPodAutoscaler controller drives an
// Ingester through its scale subresource as it drives a Deployment (here by its
// minReplicas: no metrics API runs), and the Deployment follows. With the built-in
// autoscaler on, the HPA's write is ignored and said to be, and the two do not fight:
// the Deployment keeps the autoscaler's size while the HPA goes on syncing; the Ingester
// is Degraded (ScalerConflict), naming the HPA that does nothing. Aimed at the Deployment
// instead, the HPA and the operator fight over its replicas, and the Ingester says so
// until the HPA is gone.
func TestAnHPAScalesAnIngester(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c, env, start := startCluster(t, "--controllers=horizontal-pod-autoscaler-controller", "--horizontal-pod-autoscaler-sync-period=1s")
	start("--kafka-poll-interval=1s")
	broker := testproc.StartKfake(t, "-topic="+topic, fmt.Sprintf("-partitions=%d", partitions))
	hpaAt := func(name, target string) string {
		return fmt.Sprintf(`apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: %[1]s, namespace: default}
spec:
  scaleTargetRef: %[2]s
  minReplicas: 3
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
`, name, target)
	}
	hpa := func(name string) string {
		return hpaAt(name, "{apiVersion: spanflow.dev/v1alpha1, kind: Ingester, name: "+name+"}")
	}
	get := func(g Gomega, name string) *spanflowv1alpha1.Ingester {
		var ing spanflowv1alpha1.Ingester
		g.Expect(c.Get(ctx, types.NamespacedName{Namespace: "default", Name: name}, &ing)).To(Succeed())
		return &ing
	}

	kubectlApply(t, env, fmt.Sprintf(`apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: scaled, namespace: default}
spec:
  storage: {type: blackhole}
  kafka: {brokers: [%q], topic: %s}
`, broker, topic)+"---\n"+hpa("scaled"))
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, "scaled").Spec.Replicas).To(Equal(ptr.To[int32](3)))
		g.Expect(getDeployment(g, c, "default", "scaled").Spec.Replicas).To(Equal(ptr.To[int32](3)))
		var h autoscalingv2.HorizontalPodAutoscaler
		g.Expect(c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "scaled"}, &h)).To(Succeed())
		g.Expect(h.Status.CurrentReplicas).To(Equal(int32(3)))
		// Past the bound, it reads the pods' metrics: through the selector the scale
		// subresource gave it, which it found (no metrics API answers here).
		active := hpaCondition(h, autoscalingv2.ScalingActive)
		g.Expect(active).NotTo(BeNil())
		g.Expect(active.Reason).NotTo(Equal("InvalidSelector"), active.Message)
		// As it should be: nothing to report.
		degraded := ingesterCondition(c, "scaled", spanflowv1alpha1.ConditionDegraded)
		g.Expect(degraded).NotTo(BeNil())
		g.Expect(degraded.Reason).NotTo(Equal(spanflowv1alpha1.ReasonScalerConflict), degraded.Message)
	}, "60s", "200ms").Should(Succeed())

	kubectlApply(t, env, fmt.Sprintf(`apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: both, namespace: default}
spec:
  storage: {type: blackhole}
  kafka: {brokers: [%q], topic: %s}
  autoscaling: {enabled: true, maxReplicas: 2, targetLagRecords: 1000}
`, broker, topic))
	var decided int32
	g.Eventually(func(g Gomega) {
		a := get(g, "both").Status.Autoscaling
		g.Expect(a).NotTo(BeNil())
		g.Expect(a.Reason).NotTo(ContainSubstring("waiting for the first lag figures"))
		decided = a.DesiredReplicas
		g.Expect(getDeployment(g, c, "default", "both").Spec.Replicas).To(Equal(ptr.To(decided)))
	}, "60s", "200ms").Should(Succeed())
	kubectlApply(t, env, hpa("both"))
	g.Eventually(func(g Gomega) {
		ing := get(g, "both")
		g.Expect(ing.Spec.Replicas).To(Equal(ptr.To[int32](3)))
		g.Expect(ing.Status.Autoscaling.IgnoredReplicas).To(Equal(ptr.To[int32](3)))
		g.Expect(eventReasons(g, c, "default", "both")).To(ContainElement(spanflowv1alpha1.ReasonReplicasIgnored))
		degraded := ingesterCondition(c, "both", spanflowv1alpha1.ConditionDegraded)
		g.Expect(degraded).NotTo(BeNil())
		g.Expect(degraded.Reason).To(Equal(spanflowv1alpha1.ReasonScalerConflict))
		g.Expect(degraded.Message).To(ContainSubstring("HorizontalPodAutoscaler default/both scales the Ingester, but spec.autoscaling is enabled"))
	}, "60s", "200ms").Should(Succeed())
	dep := getDeployment(g, c, "default", "both")
	g.Consistently(func(g Gomega) {
		now := getDeployment(g, c, "default", "both")
		g.Expect(now.Spec.Replicas).To(Equal(ptr.To(decided)))
		g.Expect(now.Generation).To(Equal(dep.Generation))
	}, "5s", "250ms").Should(Succeed())

	kubectlApply(t, env, fmt.Sprintf(`apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: fought, namespace: default}
spec:
  storage: {type: blackhole}
  kafka: {brokers: [%q], topic: %s}
`, broker, topic)+"---\n"+hpaAt("fought", "{apiVersion: apps/v1, kind: Deployment, name: fought-ingester}"))
	g.Eventually(func(g Gomega) {
		degraded := ingesterCondition(c, "fought", spanflowv1alpha1.ConditionDegraded)
		g.Expect(degraded).NotTo(BeNil())
		g.Expect(degraded.Reason).To(Equal(spanflowv1alpha1.ReasonScalerConflict))
		g.Expect(degraded.Message).To(ContainSubstring("HorizontalPodAutoscaler default/fought scales the Deployment fought-ingester"))
		// The fight itself: the HPA's 3 put back to spec.replicas.
		g.Expect(eventMessages(g, c, "default", "fought")).To(ContainElement(And(
			ContainSubstring("The Deployment fought-ingester was scaled to 3 by someone else and is put back to 1"),
			ContainSubstring("HorizontalPodAutoscaler default/fought aims at the Deployment"))))
	}, "60s", "200ms").Should(Succeed())
	g.Expect(c.Delete(ctx, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "fought"}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		degraded := ingesterCondition(c, "fought", spanflowv1alpha1.ConditionDegraded)
		g.Expect(degraded).NotTo(BeNil())
		g.Expect(degraded.Reason).NotTo(Equal(spanflowv1alpha1.ReasonScalerConflict))
		g.Expect(getDeployment(g, c, "default", "fought").Spec.Replicas).To(Equal(ptr.To[int32](1)))
	}, "60s", "200ms").Should(Succeed())
}

func hpaCondition(h autoscalingv2.HorizontalPodAutoscaler, t autoscalingv2.HorizontalPodAutoscalerConditionType) *autoscalingv2.HorizontalPodAutoscalerCondition {
	for i := range h.Status.Conditions {
		if h.Status.Conditions[i].Type == t {
			return &h.Status.Conditions[i]
		}
	}
	return nil
}
