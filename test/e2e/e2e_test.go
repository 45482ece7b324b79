// Package e2e runs both halves of spanflow together on one machine, the way a cluster
// would: a real kube-apiserver with the CRD, the operator as a process, Kafka (kfake) as a
// process, an Ingester applied with kubectl, and the ingester pods of the operator's
// Deployment executed as local processes with the command, args, env and mounted config
// the Deployment specifies.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/cli"
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

// runPod executes the ingester container of a pod spec as a local process: every volume
// becomes a temporary directory filled as the kubelet would (ConfigMap keys as files,
// emptyDir empty), mount paths in the args and in the mounted config are mapped to those
// directories, and the admin address, which each pod would have on its own network, is
// given a free port through its documented environment override.
func runPod(t *testing.T, c client.Client, ns string, pod corev1.PodSpec) (adminAddr string, storeDir string) {
	t.Helper()
	container := pod.Containers[0]
	mounts := map[string]string{}
	for _, vm := range container.VolumeMounts {
		mounts[vm.Name] = vm.MountPath
	}
	replacements := map[string]string{}
	for _, v := range pod.Volumes {
		dir := t.TempDir()
		switch {
		case v.ConfigMap != nil:
			var cm corev1.ConfigMap
			if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: v.ConfigMap.Name}, &cm); err != nil {
				t.Fatal(err)
			}
			for key, value := range cm.Data {
				if err := os.WriteFile(filepath.Join(dir, key), []byte(value), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		case v.EmptyDir != nil:
			storeDir = dir
		default:
			t.Fatalf("the runner cannot materialize volume %s", v.Name)
		}
		replacements[mounts[v.Name]] = dir
	}
	rewrite := func(s string) string {
		for from, to := range replacements {
			s = strings.ReplaceAll(s, from, to)
		}
		return s
	}
	// The mounted config names paths inside the pod: map them too.
	for _, v := range pod.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		dir := replacements[mounts[v.Name]]
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			path := filepath.Join(dir, e.Name())
			data, _ := os.ReadFile(path)
			if err := os.WriteFile(path, []byte(rewrite(string(data))), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	var args []string
	for _, a := range container.Args {
		args = append(args, rewrite(a))
	}
	env := []string{"SPANFLOW_ADMIN_ADDRESS=" + testproc.FreeAddr(t)}
	for _, e := range container.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	adminAddr = strings.TrimPrefix(env[0], "SPANFLOW_ADMIN_ADDRESS=")
	testproc.Start(t, testproc.Spanflow, nil, env, args...)
	return adminAddr, storeDir
}

func TestEndToEnd(t *testing.T) {
	env, cfg, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: cli.Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	// Kafka, in a process of its own.
	broker := testproc.StartKfake(t, "-topic="+topic, fmt.Sprintf("-partitions=%d", partitions))

	// The operator, as a process, as the chart runs it.
	admin, err := env.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	testproc.Start(t, testproc.Spanflow, nil, []string{"KUBECONFIG=" + kubeconfigPath}, "manager", "--ingester-image=spanflow:e2e",
		"--metrics-bind-address=0", "--health-probe-bind-address="+testproc.FreeAddr(t))

	// The user applies an Ingester with kubectl.
	ingesterYAML := filepath.Join(t.TempDir(), "ingester.yaml")
	if err := os.WriteFile(ingesterYAML, []byte(fmt.Sprintf(`apiVersion: spanflow.dev/v1alpha1
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
    type: file
    file: {path: /var/lib/spanflow/spans}
  replicas: 2
  parallelism: 200
`, broker, topic)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := env.ControlPlane.KubeCtl().Run("apply", "-f", ingesterYAML)
	if err != nil {
		data, _ := io.ReadAll(out)
		t.Fatalf("kubectl apply: %v %s", err, data)
	}

	var dep appsv1.Deployment
	depKey := types.NamespacedName{Namespace: "default", Name: "e2e-ingester"}
	eventually(t, 30*time.Second, "the operator's Deployment", func() bool { return c.Get(context.Background(), depKey, &dep) == nil })

	// The "kubelet": one local process per replica, from the Deployment's pod template.
	var admins, stores []string
	for range *dep.Spec.Replicas {
		a, s := runPod(t, c, "default", dep.Spec.Template.Spec)
		admins, stores = append(admins, a), append(stores, s)
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
	stored := func() int {
		total := 0
		for _, dir := range stores {
			n, _, err := store.CountFiles(dir)
			if err != nil {
				t.Fatal(err)
			}
			total += n
		}
		return total
	}
	eventually(t, 60*time.Second, "every span in the ingesters' file stores", func() bool { return stored() == messages*spansPer })

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
