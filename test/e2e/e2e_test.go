// Package e2e runs both halves of spanflow together on one machine, the way a cluster
// would: a real kube-apiserver with the CRD, a real kube-controller-manager (Deployments,
// ReplicaSets, garbage collection, PodDisruptionBudgets), the operator as a process, Kafka
// (kfake) as a process, Jaeger v2 as the trace storage, an Ingester applied with kubectl,
// and the pods the ReplicaSet controller creates bound and run as local processes — the
// command, args, env and mounted config their spec says — by testenv's kubelet, which
// reports their status back.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/internal/cli"
	"github.com/spanflow/spanflow/internal/jaegertest"
	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/testenv"
	"github.com/spanflow/spanflow/internal/testproc"
)

const (
	topic      = "spans"
	partitions = 4
)

func TestMain(m *testing.M) {
	testproc.Dispatch()
	os.Exit(m.Run())
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startOperator starts a control plane with the CRDs, kube-controller-manager, and the
// operator as a process, as the chart runs it, with extra manager flags; it returns a
// client, kubectl, and the addresses of the operator's /metrics and of its probes.
func startOperator(t *testing.T, managerArgs ...string) (c client.Client, env *envtest.Environment, metrics, probes string) {
	t.Helper()
	env, cfg, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	testenv.StartControllerManager(t, env)
	c, err = client.New(cfg, client.Options{Scheme: cli.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := testenv.Kubeconfig(t, env, envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}})
	metrics, probes = testenv.FreeAddr(t), testenv.FreeAddr(t)
	args := append([]string{"manager", "--ingester-image=spanflow:e2e", "--metrics-bind-address=" + metrics,
		"--health-probe-bind-address=" + probes}, managerArgs...)
	testproc.Start(t, testproc.Spanflow, nil, []string{"KUBECONFIG=" + kubeconfigPath}, args...)
	return c, env, metrics, probes
}

// probe returns the body of a 200 answer from the operator's probes at addr.
func probe(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s\n%s", path, resp.Status, body)
	}
	return string(body)
}

// kubectlApply applies YAML with the real kubectl.
func kubectlApply(t *testing.T, env *envtest.Environment, yaml string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "object.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := env.ControlPlane.KubeCtl().Run("apply", "-f", path)
	if err != nil {
		data, _ := io.ReadAll(out)
		errData, _ := io.ReadAll(stderr)
		t.Fatalf("kubectl apply: %v %s %s", err, data, errData)
	}
}

func TestEndToEnd(t *testing.T) {
	c, env, _, probes := startOperator(t)
	// Kafka, in a process of its own; the trace storage, Jaeger v2.
	broker := testproc.StartKfake(t, "-topic="+topic, fmt.Sprintf("-partitions=%d", partitions))
	jaeger := jaegertest.StartBackend(t)

	// The user applies an Ingester with kubectl.
	kubectlApply(t, env, fmt.Sprintf(`apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: e2e, namespace: default}
spec:
  kafka:
    brokers: [%q]
    topic: %s
    heartbeatInterval: 500ms
    sessionTimeout: 6s
    maxWait: 100ms
    commitInterval: 200ms
  storage:
    type: otlp
    otlp: {endpoint: %q, insecure: true}
  replicas: 2
  parallelism: 200
`, broker, topic, jaeger.OTLPGRPC))

	// The kubelet runs the pods the ReplicaSet controller creates.
	kubelet := testproc.StartKubelet(t, c, "default")
	ingKey := types.NamespacedName{Namespace: "default", Name: "e2e"}
	depKey := types.NamespacedName{Namespace: "default", Name: "e2e-ingester"}
	var ing spanflowv1alpha1.Ingester
	readyIngester := func() bool {
		if err := c.Get(context.Background(), ingKey, &ing); err != nil {
			return false
		}
		return meta.IsStatusConditionTrue(ing.Status.Conditions, spanflowv1alpha1.ConditionReady) && ing.Status.ReadyReplicas == 2
	}
	eventually(t, 90*time.Second, "the Ingester Ready with both pods, as the Deployment controller reports them", readyIngester)
	// The operator says it is ready by its informers' caches, not by answering at all.
	if body := probe(t, probes, "/readyz?verbose"); !strings.Contains(body, "[+]informers ok") {
		t.Errorf("the operator's /readyz does not report its informers:\n%s", body)
	}
	pods := ingesterPods(t, c)
	if len(pods) != 2 {
		t.Fatalf("%d pods, want 2", len(pods))
	}

	// With more than one replica a PodDisruptionBudget keeps all but one pod up; the
	// disruption controller counts the pods it covers.
	eventually(t, 30*time.Second, "the PodDisruptionBudget to cover both pods", func() bool {
		var pdb policyv1.PodDisruptionBudget
		return c.Get(context.Background(), depKey, &pdb) == nil && pdb.Status.ExpectedPods == 2 &&
			pdb.Status.CurrentHealthy == 2 && pdb.Status.DisruptionsAllowed == 1
	})

	// Traces arrive on the topic.
	producer := kafkatest.Attach(t, broker)
	const messages, spansPer = 1000, 3
	producer.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, messages, spansPer)...)
	// Every produced span is queryable in Jaeger.
	for seq := range uint64(messages) {
		id := kafkatest.Traces(seq, spansPer).ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
		eventually(t, 60*time.Second, "trace "+id.String()+" with its spans in Jaeger", func() bool {
			tr, found, err := jaeger.Trace(id)
			return err == nil && found && len(tr.Spans) == spansPer
		})
	}

	eventually(t, 60*time.Second, "the Ingester Ready with no lag", func() bool {
		if err := c.Get(context.Background(), ingKey, &ing); err != nil {
			return false
		}
		return meta.IsStatusConditionTrue(ing.Status.Conditions, spanflowv1alpha1.ConditionReady) &&
			ing.Status.Lag != nil && ing.Status.Lag.Records == 0 && ing.Status.Partitions == partitions
	})

	// A new parallelism is applied by the running pods: no pod restarts, no new ReplicaSet.
	if err := updateIngester(c, ingKey, func(i *spanflowv1alpha1.Ingester) { i.Spec.Parallelism = ptr.To[int32](50) }); err != nil {
		t.Fatal(err)
	}
	for _, pod := range pods {
		eventually(t, 30*time.Second, "pod "+pod+" to run with parallelism 50", func() bool {
			admin, ok := kubelet.AdminAddr(pod)
			return ok && scrape(admin, "spanflow_ingester_parallelism") == "50"
		})
		if n := kubelet.Started(pod); n != 1 {
			t.Errorf("pod %s was started %d times for a parallelism change", pod, n)
		}
	}
	if got := ingesterPods(t, c); !slices.Equal(got, pods) {
		t.Errorf("pods %v became %v for a parallelism change", pods, got)
	}
	if n := len(replicaSets(t, c)); n != 1 {
		t.Errorf("%d ReplicaSets after a parallelism change, want 1", n)
	}

	// Any other change rolls the pods one at a time: a new pod first (maxSurge 1), an old
	// one removed only once the new one is available (maxUnavailable 0), so two run at
	// every moment and three at the most. (Readiness itself may blink: each membership
	// change rebalances the group, and a pod without partitions is not ready.) The spans
	// produced meanwhile all arrive.
	if err := updateIngester(c, ingKey, func(i *spanflowv1alpha1.Ingester) { i.Spec.Processing.BatchSize = 500 }); err != nil {
		t.Fatal(err)
	}
	producer.Produce(t, topic, kafkatest.OTLPProtoMessages(t, messages, messages, spansPer)...)
	leastPods, mostPods := 2, 2
	eventually(t, 120*time.Second, "the rollout: two new pods ready, the old ones gone", func() bool {
		running := len(ingesterPods(t, c))
		leastPods, mostPods = min(leastPods, running), max(mostPods, running)
		current := ingesterPods(t, c)
		return readyIngester() && len(current) == 2 && !slices.Contains(current, pods[0]) && !slices.Contains(current, pods[1])
	})
	if leastPods < 2 || mostPods > 3 {
		t.Errorf("during the rollout %d pods ran at the least and %d at the most, want ≥ 2 and ≤ 3", leastPods, mostPods)
	}
	for seq := range uint64(2 * messages) {
		id := kafkatest.Traces(seq, spansPer).ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
		eventually(t, 60*time.Second, "trace "+id.String()+" with its spans in Jaeger", func() bool {
			tr, found, err := jaeger.Trace(id)
			return err == nil && found && len(tr.Spans) == spansPer
		})
	}

	// Deleting the Ingester deletes everything it owns, through the garbage collector:
	// the Deployment, its ReplicaSets and pods, the ConfigMap, Service, ServiceAccount and
	// PodDisruptionBudget.
	if err := c.Get(context.Background(), ingKey, &ing); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(context.Background(), &ing); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{}, &corev1.ServiceAccount{}, &policyv1.PodDisruptionBudget{}} {
		eventually(t, 60*time.Second, fmt.Sprintf("the %T to be garbage-collected", obj), func() bool {
			return apierrors.IsNotFound(c.Get(context.Background(), depKey, obj))
		})
	}
	eventually(t, 90*time.Second, "the pods and ReplicaSets to be garbage-collected", func() bool {
		return len(ingesterPods(t, c)) == 0 && len(replicaSets(t, c)) == 0
	})
}

// updateIngester changes an Ingester's spec on its latest version.
func updateIngester(c client.Client, key types.NamespacedName, mutate func(*spanflowv1alpha1.Ingester)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur spanflowv1alpha1.Ingester
		if err := c.Get(context.Background(), key, &cur); err != nil {
			return err
		}
		mutate(&cur)
		return c.Update(context.Background(), &cur)
	})
}

// ingesterPods names the pods of namespace default that are not being deleted, sorted.
func ingesterPods(t *testing.T, c client.Client) []string {
	t.Helper()
	var pods corev1.PodList
	if err := c.List(context.Background(), &pods, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return names
}

// replicaSets lists the ReplicaSets of namespace default.
func replicaSets(t *testing.T, c client.Client) []appsv1.ReplicaSet {
	t.Helper()
	var list appsv1.ReplicaSetList
	if err := c.List(context.Background(), &list, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// scrape returns the value of an unlabelled sample of the /metrics at admin, "" if absent.
func scrape(admin, name string) string {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// TestRefusedPodsAreReported: in a namespace whose Pod Security admission enforces the
// restricted profile, pods asking for root are refused when the ReplicaSet controller
// creates them; the Ingester says so at once, with the admission's message. (The operator
// runs with --allow-privileged-pods: it would allow root, Pod Security does not.)
func TestRefusedPodsAreReported(t *testing.T) {
	c, env, _, _ := startOperator(t, "--allow-privileged-pods")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "restricted",
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	kubectlApply(t, env, `apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: root, namespace: restricted}
spec:
  storage: {type: blackhole}
  kafka: {brokers: ["127.0.0.1:1"], topic: spans}
  template:
    securityContext: {runAsUser: 0, runAsNonRoot: false}
`)
	key := types.NamespacedName{Namespace: "restricted", Name: "root"}
	var degraded *metav1.Condition
	eventually(t, 60*time.Second, "the Ingester Degraded with the admission's message", func() bool {
		var ing spanflowv1alpha1.Ingester
		if c.Get(context.Background(), key, &ing) != nil {
			return false
		}
		degraded = meta.FindStatusCondition(ing.Status.Conditions, spanflowv1alpha1.ConditionDegraded)
		return degraded != nil && degraded.Reason == spanflowv1alpha1.ReasonPodCreationFailed
	})
	if !strings.Contains(degraded.Message, "violates PodSecurity") {
		t.Errorf("the message does not pass the admission's reason on: %q", degraded.Message)
	}
}
