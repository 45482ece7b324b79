// Package e2e runs both halves of spanflow together on one machine, the way a cluster
// would: a real kube-apiserver with the CRD, the operator as a process, Kafka (kfake) as a
// process, Jaeger v2 as the trace storage, an Ingester applied with kubectl, and the
// ingester pods of the operator's Deployment executed as local processes with the command,
// args, env and mounted config the Deployment specifies.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// startOperator starts a control plane with the CRDs and the operator as a process, as the
// chart runs it, with extra manager flags; it returns a client, kubectl, and the address of
// the operator's /metrics.
func startOperator(t *testing.T, managerArgs ...string) (client.Client, *envtest.Environment, string) {
	t.Helper()
	env, cfg, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: cli.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := testenv.Kubeconfig(t, env, envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}})
	metrics := testenv.FreeAddr(t)
	args := append([]string{"manager", "--ingester-image=spanflow:e2e", "--metrics-bind-address=" + metrics,
		"--health-probe-bind-address=" + testenv.FreeAddr(t)}, managerArgs...)
	testproc.Start(t, testproc.Spanflow, nil, []string{"KUBECONFIG=" + kubeconfigPath}, args...)
	return c, env, metrics
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
	c, env, _ := startOperator(t)
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

	var dep appsv1.Deployment
	depKey := types.NamespacedName{Namespace: "default", Name: "e2e-ingester"}
	eventually(t, 30*time.Second, "the operator's Deployment", func() bool { return c.Get(context.Background(), depKey, &dep) == nil })

	// The "kubelet": one local process per replica, from the Deployment's pod template.
	var admins []string
	for range *dep.Spec.Replicas {
		a, _, _ := testproc.RunPod(t, c, "default", dep.Spec.Template.Spec)
		admins = append(admins, a)
	}
	ready := func() int32 {
		n := int32(0)
		for _, a := range admins {
			if resp, err := http.Get("http://" + a + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					n++
				}
			}
		}
		return n
	}
	eventually(t, 60*time.Second, "both ingester processes to be ready", func() bool { return ready() == 2 })
	// The "Deployment controller": report the ready pods.
	if err := c.Get(context.Background(), depKey, &dep); err != nil {
		t.Fatal(err)
	}
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
	if err := c.Status().Update(context.Background(), &dep); err != nil {
		t.Fatal(err)
	}

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

	var ing spanflowv1alpha1.Ingester
	ingKey := types.NamespacedName{Namespace: "default", Name: "e2e"}
	eventually(t, 60*time.Second, "the Ingester Ready with no lag", func() bool {
		if err := c.Get(context.Background(), ingKey, &ing); err != nil {
			return false
		}
		return meta.IsStatusConditionTrue(ing.Status.Conditions, spanflowv1alpha1.ConditionReady) &&
			ing.Status.Lag != nil && ing.Status.Lag.Records == 0 && ing.Status.Partitions == partitions
	})

	// Deleting the Ingester leaves its objects to the garbage collector (which envtest does
	// not run): each one names it as its controlling owner.
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Service{}, &corev1.ServiceAccount{}} {
		if err := c.Get(context.Background(), depKey, obj); err != nil {
			t.Fatal(err)
		}
		owner := metav1.GetControllerOf(obj)
		if owner == nil || owner.UID != ing.UID || !ptr.Deref(owner.BlockOwnerDeletion, false) {
			t.Errorf("%T is not owned by the Ingester", obj)
		}
	}
	if err := c.Delete(context.Background(), &ing); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the Ingester to be gone", func() bool {
		return c.Get(context.Background(), ingKey, &spanflowv1alpha1.Ingester{}) != nil
	})
}
