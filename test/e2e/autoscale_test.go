package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/otlptest"
	"github.com/spanflow/spanflow/internal/testproc"
)

// metricValue reads a sample of the operator's /metrics for one Ingester.
func metricValue(t *testing.T, metricsAddr, name, ns, ingester string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	want := fmt.Sprintf(`%s{ingester=%q,namespace=%q} `, name, ingester, ns)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, want); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// eventReasons lists the reasons of the events about an object.
func eventReasons(g Gomega, c client.Client, ns, name string) []string {
	var reasons []string
	for _, e := range eventsAbout(g, c, ns, name) {
		reasons = append(reasons, e.Reason)
	}
	return reasons
}

// configuredParallelism is the parallelism in the ingester config the operator rendered.
func configuredParallelism(g Gomega, c client.Client, ns, name string) int {
	var cm corev1.ConfigMap
	g.Expect(c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name + "-ingester"}, &cm)).To(Succeed())
	cfg := config.Default() // the file holds what differs from the defaults, read over them
	g.Expect(yaml.UnmarshalStrict([]byte(cm.Data["ingester.yaml"]), &cfg)).To(Succeed())
	return cfg.Parallelism
}

func getDeployment(g Gomega, c client.Client, ns, name string) *appsv1.Deployment {
	var dep appsv1.Deployment
	g.Expect(c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name + "-ingester"}, &dep)).To(Succeed())
	return &dep
}

// eventMessages lists the messages of the events about an object.
func eventMessages(g Gomega, c client.Client, ns, name string) []string {
	var messages []string
	for _, e := range eventsAbout(g, c, ns, name) {
		messages = append(messages, e.Note)
	}
	return messages
}

// eventsAbout lists the events about an object.
func eventsAbout(g Gomega, c client.Client, ns, name string) []eventsv1.Event {
	var events eventsv1.EventList
	g.Expect(c.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	var about []eventsv1.Event
	for _, e := range events.Items {
		if e.Regarding.Name == name {
			about = append(about, e)
		}
	}
	return about
}

// TestAutoscaling: an Ingester with autoscaling on a 4-partition topic with a backlog
// gets as many pods as partitions (not its maxReplicas); kubectl scale is ignored and said
// so; real ingester processes, run from the pod spec the operator rendered, drain the
// backlog, the parallelism staying where the spec puts it while no bounds allow it to move;
// the pods go back down after the stabilization window, sized by the capacity they
// reported in the metadata of their commits; with no more pods allowed, room
// for more parallelism and a new backlog, the parallelism goes up instead, without
// touching the pod template; with autoscaling off, spec.replicas rules again. The
// Deployment is rolled out by the real kube-controller-manager and the pods run by
// testenv's kubelet.
func TestAutoscaling(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, env, metrics, _ := startOperator(t, "--kafka-poll-interval=500ms")
	const autoTopic, autoPartitions = "autoscale", 4
	addr := testproc.StartKfake(t, "-topic="+autoTopic, fmt.Sprintf("-partitions=%d", autoPartitions))
	broker := kafkatest.Attach(t, addr)
	broker.Produce(t, autoTopic, kafkatest.OTLPProtoMessages(t, 0, 20000, 1)...)

	kubectlApply(t, env, fmt.Sprintf(`apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: auto, namespace: default}
spec:
  storage: {type: blackhole}
  kafka:
    brokers: [%q]
    topic: %s
    heartbeatInterval: 500ms
    sessionTimeout: 6s
    maxWait: 100ms
    commitInterval: 200ms
  parallelism: 10
  autoscaling:
    enabled: true
    maxReplicas: 10
    targetLagRecords: 500
    cooldown: 1s
    scaleDown: {stabilizationWindow: 4s}
`, addr, autoTopic))
	key := types.NamespacedName{Namespace: "default", Name: "auto"}
	get := func(g Gomega) *spanflowv1alpha1.Ingester {
		var cur spanflowv1alpha1.Ingester
		g.Expect(c.Get(ctx, key, &cur)).To(Succeed())
		return &cur
	}
	replicas := func(g Gomega) int32 { return ptr.Deref(getDeployment(g, c, "default", "auto").Spec.Replicas, -1) }

	// 1. Far behind with no pod measured yet: as many pods as partitions, no more.
	g.Eventually(func(g Gomega) {
		g.Expect(replicas(g)).To(Equal(int32(autoPartitions)))
		a := get(g).Status.Autoscaling
		g.Expect(a).NotTo(BeNil())
		g.Expect(a.DesiredReplicas).To(Equal(int32(autoPartitions)))
		g.Expect(a.Reason).To(ContainSubstring("pod capacity not measured yet"))
	}, "30s", "200ms").Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(replicas(g)).To(BeNumerically("<=", autoPartitions)) }, "2s", "200ms").Should(Succeed())
	g.Expect(configuredParallelism(g, c, "default", "auto")).To(Equal(10))
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasons(g, c, "default", "auto")).To(ContainElement(spanflowv1alpha1.ReasonAutoscaled))
		v, ok := metricValue(t, metrics, "spanflow_ingester_desired_replicas", "default", "auto")
		g.Expect(ok).To(BeTrue())
		g.Expect(v).To(Equal(float64(autoPartitions)))
	}, "10s", "200ms").Should(Succeed())

	// 2. kubectl scale changes spec.replicas, which the autoscaler ignores, saying so.
	if _, stderr, err := env.ControlPlane.KubeCtl().Run("scale", "ingester/auto", "--replicas=2"); err != nil {
		data, _ := io.ReadAll(stderr)
		t.Fatalf("kubectl scale: %v %s", err, data)
	}
	g.Eventually(func(g Gomega) {
		a := get(g).Status.Autoscaling
		g.Expect(a).NotTo(BeNil())
		g.Expect(a.IgnoredReplicas).To(Equal(ptr.To[int32](2)))
		g.Expect(eventReasons(g, c, "default", "auto")).To(ContainElement(spanflowv1alpha1.ReasonReplicasIgnored))
	}, "10s", "200ms").Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(replicas(g)).To(Equal(int32(autoPartitions))) }, "2s", "200ms").Should(Succeed())

	// 3. The kubelet comes up: the pods, run as real processes, drain the backlog while
	// more is produced.
	kubelet := testproc.StartKubelet(t, c, "default")
	for i := range 20 {
		broker.Produce(t, autoTopic, kafkatest.OTLPProtoMessages(t, uint64(100000+i*100), 100, 1)...)
		time.Sleep(100 * time.Millisecond)
	}
	g.Eventually(func(g Gomega) {
		lag := get(g).Status.Lag
		g.Expect(lag).NotTo(BeNil())
		g.Expect(lag.Records).To(BeZero())
	}, "60s", "200ms").Should(Succeed())

	// 4. Nothing left and nothing produced: fewer pods once the window has passed, sized
	// by the capacity the pods reported in their commits (not by a guess).
	g.Eventually(func(g Gomega) {
		g.Expect(replicas(g)).To(BeNumerically("<", autoPartitions))
		cur := get(g)
		g.Expect(cur.Status.LastScaleTime).NotTo(BeNil())
		g.Expect(cur.Status.Autoscaling.PodCapacity).NotTo(BeNil(), "no capacity measured: %s", cur.Status.Autoscaling.Reason)
		g.Expect(cur.Status.Autoscaling.Reason).To(ContainSubstring("/s needed"))
		g.Expect(eventMessages(g, c, "default", "auto")).To(ContainElement(MatchRegexp(`/s needed, \d+ pods? (do|does) .*scaling down from 4 `)))
	}, "60s", "200ms").Should(Succeed())
	t.Logf("measured: %+v", *get(g).Status.Autoscaling.PodCapacity)
	kubelet.Stop()
	g.Expect(configuredParallelism(g, c, "default", "auto")).To(Equal(10), "parallelism moved without bounds to move in")

	// 5. Storage a network away (100 ms a write), batches of 10 spans, one pod at most,
	// parallelism up to 40, and a backlog: the pod reports its delivery slots full, and the
	// parallelism rises in the running pod — the config only; the pod template, and the
	// pod, stay (TestParallelismFollowsTheConfigFile shows the pod applying it).
	sink := otlptest.StartCounting(t)
	sink.SetLatency(100 * time.Millisecond)
	oldHash := getDeployment(g, c, "default", "auto").Spec.Template.Annotations["spanflow.dev/config-hash"]
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := get(g)
		cur.Spec.Autoscaling.MaxReplicas = ptr.To[int32](1)
		cur.Spec.Autoscaling.MaxParallelism = ptr.To[int32](40)
		cur.Spec.Storage = spanflowv1alpha1.StorageSpec{Type: spanflowv1alpha1.StorageOTLP,
			OTLP: &spanflowv1alpha1.OTLPStorage{Endpoint: sink.Addr, Insecure: true}}
		cur.Spec.Processing.BatchSize = 10
		return c.Update(ctx, cur)
	})).To(Succeed())
	kubelet = testproc.StartKubelet(t, c, "default")
	var pod string
	g.Eventually(func(g Gomega) {
		g.Expect(replicas(g)).To(Equal(int32(1)))
		// The new storage rolled the pod: one pod, of the new template.
		dep := getDeployment(g, c, "default", "auto")
		hash := dep.Spec.Template.Annotations["spanflow.dev/config-hash"]
		g.Expect(hash).NotTo(Equal(oldHash))
		g.Expect(dep.Status.ObservedGeneration).To(BeNumerically(">=", dep.Generation))
		g.Expect(dep.Status.UpdatedReplicas).To(Equal(int32(1)))
		g.Expect(dep.Status.Replicas).To(Equal(int32(1)))
		var pods corev1.PodList
		g.Expect(c.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels(dep.Spec.Selector.MatchLabels))).To(Succeed())
		var running []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				g.Expect(p.Annotations["spanflow.dev/config-hash"]).To(Equal(hash))
				running = append(running, p.Name)
			}
		}
		g.Expect(running).To(HaveLen(1))
		pod = running[0]
	}, "60s", "200ms").Should(Succeed())
	hashBefore := getDeployment(g, c, "default", "auto").Spec.Template.Annotations["spanflow.dev/config-hash"]
	broker.Produce(t, autoTopic, kafkatest.OTLPProtoMessages(t, 200000, 100000, 1)...)
	g.Eventually(func(g Gomega) {
		p := configuredParallelism(g, c, "default", "auto")
		g.Expect(p).To(BeNumerically(">", 10), "autoscaler: %+v", get(g).Status.Autoscaling)
		g.Expect(p).To(BeNumerically("<=", 40))
		g.Expect(get(g).Status.Parallelism).To(Equal(int32(p)))
		g.Expect(getDeployment(g, c, "default", "auto").Spec.Template.Annotations["spanflow.dev/config-hash"]).To(Equal(hashBefore))
	}, "60s", "200ms").Should(Succeed())
	var same corev1.Pod
	g.Expect(c.Get(ctx, types.NamespacedName{Namespace: "default", Name: pod}, &same)).To(Succeed(), "the pod was replaced")
	g.Expect(same.DeletionTimestamp).To(BeNil())
	g.Expect(replicas(g)).To(Equal(int32(1)))
	t.Logf("autoscaler: %s", get(g).Status.Autoscaling.Reason)
	kubelet.Stop()

	// Autoscaling off: spec.replicas (2, from kubectl scale) rules again.
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := get(g)
		cur.Spec.Autoscaling.Enabled = false
		return c.Update(ctx, cur)
	})).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(replicas(g)).To(Equal(int32(2)))
		g.Expect(get(g).Status.Autoscaling).To(BeNil())
	}, "30s", "200ms").Should(Succeed())
}
