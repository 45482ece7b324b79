// Package chart tests the Helm chart the way users meet it: lint, render, schema, a
// server-side dry-run and a real install into a kube-apiserver, the manager running as a
// process under the chart's own ServiceAccount and RBAC.
package chart

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/spanflow/spanflow/internal/testenv"
	"github.com/spanflow/spanflow/internal/testproc"
)

const (
	release   = "sf"
	namespace = "spanflow-system"
)

var (
	env       *envtest.Environment
	chartDir  = filepath.Join(testenv.RepoRoot(), "charts", "spanflow")
	helmPath  = filepath.Join(testenv.RepoRoot(), "bin", "tools", "helm")
	kubectlAt string
)

func TestMain(m *testing.M) {
	testproc.Dispatch()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	env, _, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart tests need the control plane:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	assets, _ := testenv.AssetsDir()
	kubectlAt = filepath.Join(assets, "kubectl")
	for _, ns := range []string{namespace, "team-a", "team-b"} {
		if out, err := kubectlAdmin("create", "namespace", ns); err != nil {
			fmt.Fprintln(os.Stderr, out, err)
			return 1
		}
	}
	if out, err := kubectlAdmin("apply", "-f", filepath.Join("testdata", "prometheus-operator-crds.yaml")); err != nil {
		fmt.Fprintln(os.Stderr, out, err)
		return 1
	}
	return m.Run()
}

// kubectlAdmin runs kubectl as the envtest administrator.
func kubectlAdmin(args ...string) (string, error) {
	stdout, stderr, err := env.ControlPlane.KubeCtl().Run(args...)
	out, _ := io.ReadAll(stdout)
	errOut, _ := io.ReadAll(stderr)
	if err != nil {
		return string(out) + string(errOut), err
	}
	return string(out), nil
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmPath, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// render runs helm template with the given values files and returns the objects.
func render(t *testing.T, valuesFiles ...string) (string, []*unstructured.Unstructured) {
	t.Helper()
	return renderRelease(t, release, valuesFiles...)
}

// renderRelease is render under another release name, so that renders do not overlap.
func renderRelease(t *testing.T, name string, valuesFiles ...string) (string, []*unstructured.Unstructured) {
	t.Helper()
	args := []string{"template", name, chartDir, "--namespace", namespace}
	for _, f := range valuesFiles {
		args = append(args, "-f", filepath.Join("testdata", f))
	}
	out, err := helm(t, args...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", valuesFiles, err, out)
	}
	var objs []*unstructured.Unstructured
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, &obj)
		}
	}
	return out, objs
}

func find(objs []*unstructured.Unstructured, kind, ns string) []*unstructured.Unstructured {
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && (ns == "*" || o.GetNamespace() == ns) {
			found = append(found, o)
		}
	}
	return found
}

func convert[T any](t *testing.T, obj *unstructured.Unstructured) *T {
	t.Helper()
	var typed T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &typed); err != nil {
		t.Fatal(err)
	}
	return &typed
}

func TestLint(t *testing.T) {
	for _, values := range [][]string{nil, {"values-full.yaml"}, {"values-namespaced.yaml"}} {
		args := []string{"lint", "--strict", chartDir}
		for _, f := range values {
			args = append(args, "-f", filepath.Join("testdata", f))
		}
		if out, err := helm(t, args...); err != nil {
			t.Errorf("helm lint %v: %v\n%s", values, err, out)
		}
	}
}

func TestSchemaRejectsInvalidValues(t *testing.T) {
	for file, want := range map[string]string{
		"invalid-unknown-key.yaml": "additional properties 'replica' not allowed",
		"invalid-log-level.yaml":   "/logLevel",
		"invalid-namespace.yaml":   "/watchNamespaces/0",
		"invalid-crds.yaml":        "additional properties 'install' not allowed",
	} {
		out, err := helm(t, "template", release, chartDir, "-f", filepath.Join("testdata", file))
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s: err %v, output lacks %q:\n%s", file, err, want, out)
		}
	}
}

// TestRenderedChart checks the parts users rely on.
func TestRenderedChart(t *testing.T) {
	_, objs := render(t)
	// RBAC: exactly the rules controller-gen generated from the markers.
	var generated rbacv1.ClusterRole
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sigsyaml.Unmarshal(data, &generated); err != nil {
		t.Fatal(err)
	}
	roles := map[string]*rbacv1.ClusterRole{}
	for _, o := range find(objs, "ClusterRole", "*") {
		roles[o.GetName()] = convert[rbacv1.ClusterRole](t, o)
	}
	rendered, ok := roles[release+"-spanflow"]
	if !ok || len(roles) != 3 {
		t.Fatalf("ClusterRoles %v: want the manager's and the two for users", slices.Sorted(maps.Keys(roles)))
	}
	// Users of the built-in edit and admin roles manage and scale Ingesters; view reads them.
	if editor := roles[release+"-spanflow-ingester-editor"]; editor == nil || editor.Labels["rbac.authorization.k8s.io/aggregate-to-edit"] != "true" ||
		editor.Labels["rbac.authorization.k8s.io/aggregate-to-admin"] != "true" || !strings.Contains(fmt.Sprint(editor.Rules), "ingesters/scale") {
		t.Errorf("no editor role aggregated to edit and admin: %v", editor)
	}
	if viewer := roles[release+"-spanflow-ingester-viewer"]; viewer == nil || viewer.Labels["rbac.authorization.k8s.io/aggregate-to-view"] != "true" {
		t.Errorf("no viewer role aggregated to view: %v", viewer)
	}
	if fmt.Sprint(rendered.Rules) != fmt.Sprint(generated.Rules) {
		t.Errorf("chart rules differ from config/rbac/role.yaml:\n%v\n%v", rendered.Rules, generated.Rules)
	}
	for _, r := range rendered.Rules {
		for _, v := range append(r.Verbs, r.Resources...) {
			if v == "*" {
				t.Errorf("wildcard in %v", r)
			}
		}
		if len(r.Resources) == 1 && r.Resources[0] == "secrets" && strings.Join(r.Verbs, ",") != "get,list,watch" {
			t.Errorf("Secrets are not read-only: %v", r.Verbs)
		}
	}
	// Restricted security contexts.
	dep := convert[appsv1.Deployment](t, find(objs, "Deployment", namespace)[0])
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if !*pod.SecurityContext.RunAsNonRoot || *pod.SecurityContext.RunAsUser != 65532 || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		*c.SecurityContext.AllowPrivilegeEscalation || !*c.SecurityContext.ReadOnlyRootFilesystem || c.SecurityContext.Capabilities.Drop[0] != "ALL" {
		t.Error("the operator pod is not restricted")
	}
	// Even one replica elects a leader: during helm upgrade the old and new pods overlap.
	if args := strings.Join(c.Args, " "); !strings.Contains(args, "--leader-elect") || !strings.Contains(args, "--leader-election-namespace="+namespace) {
		t.Errorf("no leader election with one replica: %s", args)
	}
	// A Lease of the release's own: a second release in the namespace must not wait on it.
	if args := strings.Join(c.Args, " "); !strings.Contains(args, "--leader-election-id="+release+"-spanflow.spanflow.dev") {
		t.Errorf("the Lease is not the release's: %s", args)
	}
	// Ingesters get restricted pods in their own ServiceAccount unless the values allow more.
	if args := strings.Join(c.Args, " "); strings.Contains(args, "--allow-") {
		t.Errorf("the operator allows more than restricted pods by default: %s", args)
	}
	// The CRD, kept on uninstall.
	crds := find(objs, "CustomResourceDefinition", "*")
	if len(crds) != 1 || crds[0].GetAnnotations()["helm.sh/resource-policy"] != "keep" {
		t.Errorf("CRD missing or not kept: %d", len(crds))
	}
	if len(find(objs, "ServiceMonitor", "*")) != 0 || len(find(objs, "PodDisruptionBudget", "*")) != 0 {
		t.Error("optional objects rendered by default")
	}

	// watchNamespaces: Roles in those namespaces, nothing cluster-wide for the manager.
	_, objs = render(t, "values-namespaced.yaml")
	if n := len(find(objs, "ClusterRole", "*")) + len(find(objs, "ClusterRoleBinding", "*")); n != 0 {
		t.Errorf("%d cluster-wide RBAC objects with watchNamespaces (and rbac.aggregateToDefaultRoles false)", n)
	}
	for _, ns := range []string{"team-a", "team-b"} {
		if len(find(objs, "Role", ns)) != 1 || len(find(objs, "RoleBinding", ns)) != 1 {
			t.Errorf("no Role and RoleBinding in %s", ns)
		}
	}
	dep = convert[appsv1.Deployment](t, find(objs, "Deployment", namespace)[0])
	if !strings.Contains(strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " "), "--watch-namespaces=team-a,team-b") {
		t.Error("the manager is not told which namespaces to watch")
	}
	if crd := find(objs, "CustomResourceDefinition", "*"); len(crd) != 1 || crd[0].GetAnnotations()["helm.sh/resource-policy"] != "" {
		t.Error("crds.keep false still keeps the CRD")
	}

	// Everything optional.
	_, objs = render(t, "values-full.yaml")
	dep = convert[appsv1.Deployment](t, find(objs, "Deployment", namespace)[0])
	args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"--leader-elect", "--ingester-image=registry.example.com/spanflow-ingester:1.2.3", "--metrics-bind-address=:9090", "--zap-encoder=json",
		"--allow-privileged-pods", "--allow-service-account"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	if len(find(objs, "ServiceMonitor", namespace)) != 1 || len(find(objs, "PodDisruptionBudget", namespace)) != 1 {
		t.Error("optional objects missing")
	}
	if _, objs = render(t, "values-pdb-one-replica.yaml"); len(find(objs, "PodDisruptionBudget", "*")) != 0 {
		t.Error("a PodDisruptionBudget of minAvailable 1 for the only operator pod: node drains would block")
	}
}

// TestValuesAsUsersMeanThem: a parent chart's global values, an image by digest, pod
// labels that name a selector key, and the longest release name Helm allows render a chart
// the API server takes, with the operator's selector intact.
func TestValuesAsUsersMeanThem(t *testing.T) {
	name := strings.Repeat("r", 53)
	out, objs := renderRelease(t, name, "values-edge.yaml")
	dep := convert[appsv1.Deployment](t, find(objs, "Deployment", namespace)[0])
	const image = "ghcr.io/spanflow/spanflow@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if c := dep.Spec.Template.Spec.Containers[0]; c.Image != image || !slices.Contains(c.Args, "--ingester-image="+image) {
		t.Errorf("image %s, args %v: want %s", c.Image, c.Args, image)
	}
	labels := dep.Spec.Template.Labels
	if labels["app.kubernetes.io/name"] != "spanflow" || labels["team"] != "observability" {
		t.Errorf("pod labels %v: the selector's must win, the others be added", labels)
	}
	for _, svc := range find(objs, "Service", namespace) {
		if len(svc.GetName()) > 63 {
			t.Errorf("Service name %q is longer than a DNS label", svc.GetName())
		}
	}
	path := filepath.Join(t.TempDir(), "rendered.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := kubectlAdmin("apply", "--dry-run=server", "-f", path); err != nil {
		t.Errorf("server-side dry-run: %v\n%s", err, res)
	}
}

// TestServerSideDryRun: what the chart renders is accepted by a real API server.
func TestServerSideDryRun(t *testing.T) {
	for i, values := range [][]string{nil, {"values-full.yaml"}, {"values-namespaced.yaml"}} {
		// A release name of its own: the dry-run must not depend on what other tests installed.
		out, _ := renderRelease(t, fmt.Sprintf("dry%d", i), values...)
		path := filepath.Join(t.TempDir(), "rendered.yaml")
		if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		if res, err := kubectlAdmin("apply", "--dry-run=server", "-f", path); err != nil {
			t.Errorf("server-side dry-run of %v: %v\n%s", values, err, res)
		}
	}
}

// TestKustomizeDryRun: `kubectl apply -k config/default` is accepted by a real API server,
// and so is config/secure-metrics, the operator as the chart's metrics.secure runs it: its
// /metrics on 8443 over HTTPS, the rights to review callers, the reader's ClusterRole.
func TestKustomizeDryRun(t *testing.T) {
	for dir, wants := range map[string][]string{
		"default": {"namespace/spanflow-system", "deployment.apps/spanflow-controller-manager", "clusterrole.rbac.authorization.k8s.io/spanflow-manager-role",
			"service/spanflow-controller-manager-metrics-service"},
		"secure-metrics": {"deployment.apps/spanflow-controller-manager", "clusterrole.rbac.authorization.k8s.io/spanflow-metrics-auth",
			"clusterrolebinding.rbac.authorization.k8s.io/spanflow-metrics-auth", "clusterrole.rbac.authorization.k8s.io/spanflow-metrics-reader"},
	} {
		path := filepath.Join(testenv.RepoRoot(), "config", dir)
		res, err := kubectlAdmin("apply", "--dry-run=server", "-k", path)
		if err != nil {
			t.Fatalf("%s: %v\n%s", dir, err, res)
		}
		for _, want := range wants {
			if !strings.Contains(res, want) {
				t.Errorf("config/%s: the output lacks %s:\n%s", dir, want, res)
			}
		}
	}
	rendered, err := kubectlAdmin("kustomize", filepath.Join(testenv.RepoRoot(), "config", "secure-metrics"))
	if err != nil {
		t.Fatalf("%v\n%s", err, rendered)
	}
	for _, want := range []string{"- --metrics-bind-address=:8443", "- --metrics-secure", "containerPort: 8443", "port: 8443", "nonResourceURLs:", "- tokenreviews"} {
		if !strings.Contains(rendered, want) {
			t.Errorf("config/secure-metrics lacks %q:\n%s", want, rendered)
		}
	}
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestInstallAndRun takes the user's path after helm install: the rendered chart applied to
// the API server, the manager run as a process with the chart's args under the chart's
// ServiceAccount (so its RBAC is what is tested), a sample Ingester applied with kubectl,
// and its Deployment appearing. Then every object in the namespace is searched for the
// value of a Secret the Ingester uses: it must appear in none.
func TestInstallAndRun(t *testing.T) {
	_, logs := installAndRunManager(t, release)

	const password = "p4ss-that-must-not-leak-7c1e"
	secret := filepath.Join(t.TempDir(), "secret.yaml")
	if err := os.WriteFile(secret, []byte(`apiVersion: v1
kind: Secret
metadata: {name: kafka-user, namespace: team-a}
stringData: {username: ingester, password: `+password+`}
---
apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: sample, namespace: team-a}
spec:
  storage: {type: blackhole}
  kafka:
    brokers: ["127.0.0.1:1"]
    topic: spans
    sasl: {mechanism: SCRAM-SHA-512, credentialsSecretName: kafka-user}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := kubectlAdmin("apply", "-f", secret); err != nil {
		t.Fatalf("%v\n%s", err, res)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := kubectlAdmin("get", "deployment", "-n", "team-a", "sample-ingester", "-o", "name")
		if err == nil && strings.Contains(res, "sample-ingester") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the manager installed by the chart did not create the ingester Deployment")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Wait for the status (the operator's look at Kafka fails: 127.0.0.1:1), then scan.
	for {
		res, _ := kubectlAdmin("get", "ingester", "-n", "team-a", "sample", "-o", "jsonpath={.status.conditions[?(@.type==\"Degraded\")].reason}")
		if res == "KafkaUnreachable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Degraded condition on the Ingester (got %q)", res)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, kind := range []string{"configmaps", "deployments", "ingesters", "events", "services", "serviceaccounts"} {
		res, err := kubectlAdmin("get", kind, "-A", "-o", "yaml")
		if err != nil {
			t.Fatalf("%v\n%s", err, res)
		}
		if strings.Contains(res, password) {
			t.Errorf("the Secret's password appears in %s", kind)
		}
	}
	if strings.Contains(logs.String(), password) {
		t.Error("the Secret's password appears in the manager's logs")
	}
	// The chart's RBAC covers everything the manager did, leader election's events included.
	if strings.Contains(logs.String(), "forbidden") {
		t.Error("the manager was refused something by the chart's RBAC")
	}
}

// TestRBACWithoutHPAs: an operator run with the RBAC of a chart from before it looked for
// HorizontalPodAutoscalers (upgraded without its chart) goes on managing Ingesters, only
// without that check, which it says once in its debug log — instead of waiting for ever
// on a cache of HPAs the API server will not fill.
func TestRBACWithoutHPAs(t *testing.T) {
	removed := 0
	withoutHPAs := func(objs []*unstructured.Unstructured) {
		for _, role := range find(objs, "Role", "*") {
			rules, _, err := unstructured.NestedSlice(role.Object, "rules")
			if err != nil {
				t.Fatal(err)
			}
			kept := rules[:0]
			for _, r := range rules {
				if strings.Contains(fmt.Sprint(r), "horizontalpodautoscalers") {
					removed++
					continue
				}
				kept = append(kept, r)
			}
			if err := unstructured.SetNestedSlice(role.Object, kept, "rules"); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, logs := installEditedAndRunManager(t, "older", withoutHPAs, "values-namespaced.yaml", "values-debug.yaml")
	if removed != 2 {
		t.Fatalf("removed %d rules on HPAs, want one from each watched namespace's Role", removed)
	}
	ingester := filepath.Join(t.TempDir(), "ingester.yaml")
	if err := os.WriteFile(ingester, []byte(`apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: older, namespace: team-b}
spec:
  storage: {type: blackhole}
  kafka: {brokers: ["127.0.0.1:1"], topic: spans}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := kubectlAdmin("apply", "-f", ingester); err != nil {
		t.Fatalf("%v\n%s", err, res)
	}
	// Reconciled to the end: the Deployment made, and the status written (the operator's
	// look at Kafka fails: 127.0.0.1:1).
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, _ := kubectlAdmin("get", "ingester", "-n", "team-b", "older", "-o", "jsonpath={.status.conditions[?(@.type==\"Degraded\")].reason}")
		_, err := kubectlAdmin("get", "deployment", "-n", "team-b", "older-ingester", "-o", "name")
		if err == nil && res == "KafkaUnreachable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the manager without rights on HPAs did not reconcile the Ingester (Degraded %q, Deployment: %v)", res, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := strings.Count(logs.String(), "HorizontalPodAutoscalers cannot be listed"); n != 1 {
		t.Errorf("the missing rights are logged %d times, want once", n)
	}
	if strings.Contains(logs.String(), "forbidden") {
		t.Error("the manager asked for what its RBAC does not allow")
	}
}

// installAndRunManager installs the chart rendered for release with the values files
// (kubectl apply as the administrator) and runs the manager as a process with the chart's
// args, under the chart's ServiceAccount (so its RBAC is what is tested), on free ports of
// this machine. It returns the args and the manager's output, logged if the test fails.
func installAndRunManager(t *testing.T, release string, valuesFiles ...string) ([]string, *lockedBuffer) {
	t.Helper()
	return installEditedAndRunManager(t, release, nil, valuesFiles...)
}

// installEditedAndRunManager is installAndRunManager with the rendered objects changed by
// edit (if not nil) before they are installed: an older chart's, say.
func installEditedAndRunManager(t *testing.T, release string, edit func([]*unstructured.Unstructured), valuesFiles ...string) ([]string, *lockedBuffer) {
	t.Helper()
	out, objs := renderRelease(t, release, valuesFiles...)
	if edit != nil {
		edit(objs)
		var docs []string
		for _, o := range objs {
			data, err := json.Marshal(o.Object)
			if err != nil {
				t.Fatal(err)
			}
			docs = append(docs, string(data))
		}
		out = strings.Join(docs, "\n---\n")
	}
	path := filepath.Join(t.TempDir(), "rendered.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := kubectlAdmin("apply", "--server-side", "-f", path); err != nil {
		t.Fatalf("installing the rendered chart: %v\n%s", err, res)
	}

	// The manager's identity: the chart's ServiceAccount.
	sa := find(objs, "ServiceAccount", namespace)[0].GetName()
	kubeconfigPath := testenv.Kubeconfig(t, env, envtest.User{
		Name:   "system:serviceaccount:" + namespace + ":" + sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	})

	dep := convert[appsv1.Deployment](t, find(objs, "Deployment", namespace)[0])
	var args []string
	for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
		// The chart's ports are the pod's; on this machine pick free ones.
		switch {
		case strings.HasPrefix(a, "--metrics-bind-address="):
			a = "--metrics-bind-address=" + testenv.FreeAddr(t)
		case strings.HasPrefix(a, "--health-probe-bind-address="):
			a = "--health-probe-bind-address=" + testenv.FreeAddr(t)
		}
		args = append(args, a)
	}
	logs := &lockedBuffer{}
	testproc.Start(t, testproc.Spanflow, logs, []string{"KUBECONFIG=" + kubeconfigPath, "POD_NAMESPACE=" + namespace}, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("manager output:\n%s", logs.String())
		}
	})
	return args, logs
}

// TestSecureMetrics installs the chart with metrics.secure and runs the manager under its
// ServiceAccount: /metrics is HTTPS, refused without a token and to a ServiceAccount
// without the chart's metrics-reader ClusterRole, and served to one bound to it (so the
// chart grants the manager the token and access reviews it needs).
func TestSecureMetrics(t *testing.T) {
	const name = "secm"
	args, logs := installAndRunManager(t, name, "values-secure-metrics.yaml")
	if !slices.Contains(args, "--metrics-secure") {
		t.Fatalf("metrics.secure does not reach the manager: %v", args)
	}
	var metricsAddr string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--metrics-bind-address="); ok {
			metricsAddr = v
		}
	}

	token := func(sa string) string {
		if res, err := kubectlAdmin("create", "serviceaccount", "-n", namespace, sa); err != nil {
			t.Fatalf("%v\n%s", err, res)
		}
		res, err := kubectlAdmin("create", "token", "-n", namespace, sa)
		if err != nil {
			t.Fatalf("%v\n%s", err, res)
		}
		return strings.TrimSpace(res)
	}
	prometheus, stranger := token("prometheus"), token("stranger")
	if res, err := kubectlAdmin("create", "clusterrolebinding", "prometheus-reads-spanflow",
		"--clusterrole="+name+"-spanflow-metrics-reader", "--serviceaccount="+namespace+":prometheus"); err != nil {
		t.Fatalf("%v\n%s", err, res)
	}

	// The certificate is self-signed (no metrics.certSecretName): not verified, as the
	// chart's ServiceMonitor does not.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(token string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, "https://"+metricsAddr+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body, err := get(prometheus)
		if err == nil && code == http.StatusOK {
			if !strings.Contains(body, "# TYPE controller_runtime_") {
				t.Errorf("the metrics served are not the operator's:\n%.500s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reader never got the metrics: %d %q %v", code, body, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for who, tok := range map[string]string{"no token": "", "a ServiceAccount not bound to the reader role": stranger} {
		code, body, err := get(tok)
		if err != nil || (code != http.StatusUnauthorized && code != http.StatusForbidden) || strings.Contains(body, "controller_runtime") {
			t.Errorf("%s: %d %v\n%.300s", who, code, err, body)
		}
	}
	if resp, err := client.Get("http://" + metricsAddr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the metrics are served over plain HTTP too")
		}
	}
	if strings.Contains(logs.String(), "forbidden") {
		t.Error("the manager was refused something by the chart's RBAC")
	}
}
