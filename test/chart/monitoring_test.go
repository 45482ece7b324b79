package chart

// The chart's PodMonitor, PrometheusRule and Grafana dashboard, tested with Debian's
// prometheus package: promtool checks the rendered rules and runs their unit tests, and a
// real Prometheus scrapes the operator and a running `spanflow ingest` and must know every
// metric the alerts and the dashboard query.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/testenv"
	"github.com/spanflow/spanflow/internal/testproc"
)

// alerts are the PrometheusRule's alerts, as README "Monitoring" lists them.
var alerts = []string{
	"SpanflowIngesterDegraded",
	"SpanflowIngesterLagHigh",
	"SpanflowIngesterNotConsuming",
	"SpanflowMessagesDeadLettered",
	"SpanflowOperatorKafkaUnreachable",
	"SpanflowPartitionPaused",
	"SpanflowRecordsLostToRetention",
	"SpanflowSpansRejected",
	"SpanflowTransactionHanging",
}

// lookPrometheusTool finds a program of Debian's prometheus package. CI installs it, so
// there its absence fails the test; elsewhere the test is skipped with the reason.
func lookPrometheusTool(t *testing.T, name string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; .ci/run installs Debian's prometheus package", name)
	}
	t.Skipf("%s is not installed (apt-get install prometheus); skipping", name)
	return ""
}

// ruleGroups is the spec.groups of the rendered PrometheusRule.
func ruleGroups(t *testing.T, objs []*unstructured.Unstructured) []any {
	t.Helper()
	rules := find(objs, "PrometheusRule", namespace)
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules rendered", len(rules))
	}
	groups, ok, err := unstructured.NestedSlice(rules[0].Object, "spec", "groups")
	if !ok || err != nil {
		t.Fatalf("the PrometheusRule has no spec.groups: %v", err)
	}
	return groups
}

// writeRules writes the PrometheusRule's groups as a Prometheus rules file in dir.
func writeRules(t *testing.T, objs []*unstructured.Unstructured, dir string) string {
	t.Helper()
	data, err := sigsyaml.Marshal(map[string]any{"groups": ruleGroups(t, objs)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func rulesOf(t *testing.T, objs []*unstructured.Unstructured) []rule {
	t.Helper()
	var groups []struct {
		Rules []rule `json:"rules"`
	}
	data, _ := json.Marshal(ruleGroups(t, objs))
	if err := json.Unmarshal(data, &groups); err != nil {
		t.Fatal(err)
	}
	var rules []rule
	for _, g := range groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

// dashboardOf is the JSON in the rendered dashboard ConfigMap.
func dashboardOf(t *testing.T, objs []*unstructured.Unstructured, label, value string) map[string]any {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, cm := range find(objs, "ConfigMap", "*") {
		if cm.GetLabels()[label] == value {
			found = append(found, cm)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d ConfigMaps labelled %s=%q", len(found), label, value)
	}
	data, _, _ := unstructured.NestedStringMap(found[0].Object, "data")
	if len(data) != 1 {
		t.Fatalf("the dashboard ConfigMap holds %d files", len(data))
	}
	var dash map[string]any
	for file, text := range data {
		if err := json.Unmarshal([]byte(text), &dash); err != nil {
			t.Fatalf("%s is not JSON: %v", file, err)
		}
	}
	return dash
}

// query is a PromQL expression of the alerts or the dashboard, with where it is.
type query struct {
	where, expr string
	// panel: a panel's target, which must return data against a running ingester.
	panel bool
}

var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// dashboardQueries lists the PromQL of the dashboard's panels, annotations and variables;
// a variable's label_values(selector, label) becomes count by (label) (selector).
func dashboardQueries(t *testing.T, dash map[string]any) []query {
	t.Helper()
	var qs []query
	var walk func(panels []any)
	walk = func(panels []any) {
		for _, p := range panels {
			panel := p.(map[string]any)
			title, _ := panel["title"].(string)
			if nested, ok := panel["panels"].([]any); ok {
				walk(nested)
			}
			if panel["type"] == "row" {
				continue
			}
			targets, _ := panel["targets"].([]any)
			if len(targets) == 0 {
				t.Errorf("panel %q has no queries", title)
			}
			if ds, _ := panel["datasource"].(map[string]any); ds["uid"] != "${datasource}" {
				t.Errorf("panel %q does not use the dashboard's data source variable: %v", title, panel["datasource"])
			}
			for _, tg := range targets {
				target := tg.(map[string]any)
				expr, _ := target["expr"].(string)
				qs = append(qs, query{where: fmt.Sprintf("panel %q query %v", title, target["refId"]), expr: expr, panel: true})
			}
		}
	}
	panels, _ := dash["panels"].([]any)
	walk(panels)
	annotations, _, _ := unstructured.NestedSlice(dash, "annotations", "list")
	for _, a := range annotations {
		ann := a.(map[string]any)
		if expr, ok := ann["expr"].(string); ok {
			qs = append(qs, query{where: fmt.Sprintf("annotation %q", ann["name"]), expr: expr})
		}
	}
	variables, _, _ := unstructured.NestedSlice(dash, "templating", "list")
	for _, v := range variables {
		variable := v.(map[string]any)
		if variable["type"] != "query" {
			continue
		}
		text, _, _ := unstructured.NestedString(variable, "query", "query")
		m := labelValuesQuery.FindStringSubmatch(text)
		if m == nil {
			t.Errorf("variable %v: query %q is not label_values(selector, label)", variable["name"], text)
			continue
		}
		qs = append(qs, query{where: fmt.Sprintf("variable %v", variable["name"]), expr: fmt.Sprintf("count by (%s) (%s)", m[2], m[1]), panel: true})
	}
	return qs
}

// grafanaExpr replaces the Grafana variables the dashboard uses, as Grafana would for one
// Ingester; any other variable is an error.
func grafanaExpr(expr, ns, ingester string) (string, error) {
	out := strings.NewReplacer(
		"$__rate_interval", "10s",
		"$__interval", "5s",
		"$__range", "10m",
		"$namespace", regexp.QuoteMeta(ns),
		"$ingester", regexp.QuoteMeta(ingester),
	).Replace(expr)
	if strings.Contains(out, "$") {
		return "", fmt.Errorf("unknown Grafana variable in %q", expr)
	}
	return out, nil
}

// metricNames parses expr and returns the metric names it selects; a selector without a
// single metric name is an error (it could match nothing, and no test would know).
func metricNames(expr string) ([]string, error) {
	parsed, err := parser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var problem error
	parser.Inspect(parsed, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			problem = fmt.Errorf("%s selects no metric by name", vs)
			return nil
		}
		names = append(names, name)
		return nil
	})
	return names, problem
}

// unknownMetrics returns the problems of qs against the metric names Prometheus knows: a
// query that does not parse, or a metric name it does not know.
func unknownMetrics(qs []query, known map[string]bool) []string {
	var problems []string
	for _, q := range qs {
		expr, err := grafanaExpr(q.expr, "ns", "name")
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", q.where, err))
			continue
		}
		names, err := metricNames(expr)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %q: %v", q.where, q.expr, err))
		}
		for _, n := range names {
			if !known[n] {
				problems = append(problems, fmt.Sprintf("%s queries %s, which no scraped target exports", q.where, n))
			}
		}
	}
	return problems
}

// TestQueriedMetricCheck: the check the live test applies finds a metric that does not
// exist, a selector with no metric name, a query that does not parse, and an unknown
// Grafana variable, and passes an expression whose metrics all exist.
func TestQueriedMetricCheck(t *testing.T) {
	known := map[string]bool{"spanflow_ingester_messages_total": true, "spanflow_ingester_spans_written_total": true}
	for expr, want := range map[string]string{
		`sum(rate(spanflow_ingester_messages_total{namespace=~"$namespace"}[$__rate_interval])) / sum(rate(spanflow_ingester_spans_writen_total[5m]))`: "spanflow_ingester_spans_writen_total, which no scraped target exports",
		`sum({__name__=~"spanflow_ingester_.*"})`:            "selects no metric by name",
		`sum(rate(spanflow_ingester_messages_total[5m])`:     "unclosed left parenthesis",
		`rate(spanflow_ingester_messages_total[$__step])`:    "unknown Grafana variable",
		`spanflow_ingester_messages_total offset 1h > 0`:     "",
		`{__name__="spanflow_ingester_spans_written_total"}`: "",
	} {
		problems := unknownMetrics([]query{{where: "test", expr: expr}}, known)
		switch {
		case want == "" && len(problems) > 0:
			t.Errorf("%s: unexpected %v", expr, problems)
		case want != "" && (len(problems) != 1 || !strings.Contains(problems[0], want)):
			t.Errorf("%s: got %v, want one problem with %q", expr, problems, want)
		}
	}
}

// TestMonitoringRendered: what users switch on renders as they asked, and only then.
func TestMonitoringRendered(t *testing.T) {
	// By default: the dashboard (it needs no CRD), nothing that needs the Prometheus Operator.
	_, objs := render(t)
	for _, kind := range []string{"PodMonitor", "PrometheusRule", "ServiceMonitor"} {
		if n := len(find(objs, kind, "*")); n != 0 {
			t.Errorf("%d %s rendered by default", n, kind)
		}
	}
	dash := dashboardOf(t, objs, "grafana_dashboard", "1")
	if qs := dashboardQueries(t, dash); len(qs) < 20 {
		t.Errorf("the dashboard has %d queries", len(qs))
	}
	ids := map[float64]bool{}
	var walk func([]any)
	walk = func(panels []any) {
		for _, p := range panels {
			panel := p.(map[string]any)
			id, _ := panel["id"].(float64)
			if ids[id] {
				t.Errorf("panel id %v twice", id)
			}
			ids[id] = true
			nested, _ := panel["panels"].([]any)
			walk(nested)
		}
	}
	panels, _ := dash["panels"].([]any)
	walk(panels)

	_, objs = render(t, "values-monitoring.yaml")
	pm := find(objs, "PodMonitor", namespace)
	if len(pm) != 1 {
		t.Fatalf("%d PodMonitors", len(pm))
	}
	selector, _, _ := unstructured.NestedStringMap(pm[0].Object, "spec", "selector", "matchLabels")
	if want := map[string]string{"app.kubernetes.io/name": "spanflow-ingester", "app.kubernetes.io/managed-by": "spanflow"}; fmt.Sprint(selector) != fmt.Sprint(want) {
		t.Errorf("PodMonitor selects %v, want %v", selector, want)
	}
	if anyNamespace, _, _ := unstructured.NestedBool(pm[0].Object, "spec", "namespaceSelector", "any"); !anyNamespace {
		t.Error("the PodMonitor does not look in every namespace while the operator watches them all")
	}
	if pm[0].GetLabels()["release"] != "prometheus" {
		t.Error("the PodMonitor lacks monitoring.podMonitor.labels")
	}
	endpoints, _, _ := unstructured.NestedSlice(find(objs, "ServiceMonitor", namespace)[0].Object, "spec", "endpoints")
	if honor, _ := endpoints[0].(map[string]any)["honorLabels"].(bool); !honor {
		t.Error("the ServiceMonitor renames the per-Ingester namespace label (honorLabels is not true)")
	}
	var names []string
	for _, r := range rulesOf(t, objs) {
		names = append(names, r.Alert)
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s lacks a summary or a description", r.Alert)
		}
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s has severity %q", r.Alert, s)
		}
	}
	sort.Strings(names)
	if !slices.Equal(names, alerts) {
		t.Errorf("alerts %v, want %v", names, alerts)
	}

	// Watched namespaces, alert labels, another sidecar label, a namespace for the dashboard.
	_, objs = render(t, "values-namespaced.yaml", "values-full.yaml")
	matchNames, _, _ := unstructured.NestedStringSlice(find(objs, "PodMonitor", namespace)[0].Object, "spec", "namespaceSelector", "matchNames")
	if !slices.Equal(matchNames, []string{"team-a", "team-b"}) {
		t.Errorf("PodMonitor namespaces %v with watchNamespaces team-a, team-b", matchNames)
	}
	for _, r := range rulesOf(t, objs) {
		if r.Labels["team"] != "observability" {
			t.Errorf("%s lacks monitoring.prometheusRule.alertLabels: %v", r.Alert, r.Labels)
		}
		if r.Alert == "SpanflowIngesterLagHigh" && !strings.Contains(r.Expr, "spanflow_ingester_desired_replicas) + 120\n") {
			t.Errorf("%s ignores monitoring.prometheusRule.lagSecondsThreshold: %s", r.Alert, r.Expr)
		}
	}
	var cms []*unstructured.Unstructured
	for _, cm := range find(objs, "ConfigMap", "team-b") {
		if cm.GetLabels()["dashboards"] == "spanflow" && cm.GetAnnotations()["grafana_folder"] == "Tracing" {
			cms = append(cms, cm)
		}
	}
	if len(cms) != 1 {
		t.Error("the dashboard ConfigMap does not follow monitoring.grafanaDashboard's label, namespace and annotations")
	}
}

// TestPrometheusRulesCheck: promtool accepts the rendered rules.
func TestPrometheusRulesCheck(t *testing.T) {
	promtool := lookPrometheusTool(t, "promtool")
	_, objs := render(t, "values-monitoring.yaml")
	path := writeRules(t, objs, t.TempDir())
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(alerts)); !strings.Contains(string(out), want) {
		t.Errorf("promtool check rules: %s, want %q", out, want)
	}
}

// TestPrometheusRulesUnit runs testdata/alerts-test.yaml with promtool against the rendered
// rules: each alert fires on its series, not before its "for", and not on series that look
// alike (the pods' per-partition lag of the same name as the operator's).
func TestPrometheusRulesUnit(t *testing.T) {
	promtool := lookPrometheusTool(t, "promtool")
	_, objs := render(t, "values-monitoring.yaml")
	dir := t.TempDir()
	writeRules(t, objs, dir)
	tests, err := os.ReadFile(filepath.Join("testdata", "alerts-test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Every alert has a case where it fires and one where it does not.
	var file struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := sigsyaml.Unmarshal(tests, &file); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, g := range file.Tests {
		for _, c := range g.AlertRuleTest {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alertname] = true
			} else {
				silent[c.Alertname] = true
			}
		}
	}
	for _, a := range alerts {
		if !fires[a] || !silent[a] {
			t.Errorf("alerts-test.yaml lacks a case where %s fires (%v) or one where it does not (%v)", a, fires[a], silent[a])
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts-test.yaml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", "alerts-test.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// prometheusAPI is a client of Prometheus's HTTP API.
type prometheusAPI string

func (p prometheusAPI) get(path string, params url.Values, data any) error {
	resp, err := http.Get(string(p) + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("%s: %s: %w", path, body, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", path, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}

// series is the result of an instant query: the label sets it returned.
func (p prometheusAPI) series(expr string) ([]map[string]string, error) {
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
		} `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, r := range data.Result {
		out = append(out, r.Metric)
	}
	return out, nil
}

// poll calls check until it returns nil, failing the test with its last error at timeout.
func poll(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// metaLabel is the name Kubernetes service discovery gives a pod label.
func metaLabel(k string) string {
	return "__meta_kubernetes_pod_label_" + regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(k, "_")
}

// relabelConfigs converts a Prometheus Operator relabeling list to Prometheus's
// relabel_configs (sourceLabels → source_labels, …).
func relabelConfigs(t *testing.T, list []any) []map[string]any {
	t.Helper()
	snake := regexp.MustCompile(`[A-Z]`)
	var out []map[string]any
	for _, r := range list {
		c := map[string]any{}
		for k, v := range r.(map[string]any) {
			if k == "action" {
				v = strings.ToLower(v.(string))
			}
			c[snake.ReplaceAllStringFunc(k, func(s string) string { return "_" + strings.ToLower(s) })] = v
		}
		out = append(out, c)
	}
	return out
}

// TestPrometheusScrapesEveryQueriedMetric: a real Prometheus scrapes the operator (as the
// chart's ServiceMonitor says) and a running `spanflow ingest` (as the chart's PodMonitor
// says, its target labelled like the pod of the Deployment the operator created) while
// spans flow and the autoscaler resizes an Ingester; then every metric the dashboard and
// the alerts query exists in Prometheus, every dashboard query returns data for that
// Ingester, and every rule evaluates without error.
func TestPrometheusScrapesEveryQueriedMetric(t *testing.T) {
	prometheusBin := lookPrometheusTool(t, "prometheus")
	_, objs := render(t, "values-monitoring.yaml")
	dir := t.TempDir()
	rulesPath := writeRules(t, objs, dir)
	dash := dashboardOf(t, objs, "grafana_dashboard", "1")
	var qs []query
	for _, r := range rulesOf(t, objs) {
		qs = append(qs, query{where: "alert " + r.Alert, expr: r.Expr})
	}
	qs = append(qs, dashboardQueries(t, dash)...)

	// Kafka with a backlog on two partitions.
	const ns, name, topic, group = "monitoring", "live", "spans", "live-group"
	broker := testproc.StartKfake(t, "-topic="+topic, "-partitions=2")
	kafkatest.Attach(t, broker).Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 2000, 3)...)

	// The operator, and an autoscaled Ingester it resizes for the backlog.
	if out, err := kubectlAdmin("create", "namespace", ns); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	kubeconfig := testenv.Kubeconfig(t, env, envtest.User{Name: "monitoring-admin", Groups: []string{"system:masters"}})
	operatorMetrics := testenv.FreeAddr(t)
	operatorLogs := &lockedBuffer{}
	testproc.Start(t, testproc.Spanflow, operatorLogs, []string{"KUBECONFIG=" + kubeconfig}, "manager",
		"--metrics-bind-address="+operatorMetrics, "--health-probe-bind-address="+testenv.FreeAddr(t),
		"--kafka-poll-interval=500ms", "--watch-namespaces="+ns, "--ingester-image=spanflow:test")
	ingesterYAML := filepath.Join(dir, "ingester.yaml")
	if err := os.WriteFile(ingesterYAML, fmt.Appendf(nil, `apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: %s, namespace: %s}
spec:
  storage: {type: blackhole}
  kafka: {brokers: [%q], topic: %s, consumerGroup: %s}
  autoscaling: {enabled: true, maxReplicas: 2, targetLagRecords: 100, targetLagSeconds: 30}
`, name, ns, broker, topic, group), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectlAdmin("apply", "-f", ingesterYAML); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var dep appsv1.Deployment
	poll(t, 60*time.Second, "the operator's Deployment", func() error {
		out, err := kubectlAdmin("get", "deployment", "-n", ns, name+"-ingester", "-o", "json")
		if err != nil {
			return errors.New(out)
		}
		return json.Unmarshal([]byte(out), &dep)
	})

	// The ingester pod: spanflow ingest in the Ingester's consumer group.
	ingestAdmin := testenv.FreeAddr(t)
	ingestLogs := &lockedBuffer{}
	testproc.Start(t, testproc.Spanflow, ingestLogs, nil, "ingest", "--brokers="+broker, "--topic="+topic,
		"--group="+group, "--storage=blackhole", "--admin-address="+ingestAdmin)

	// Prometheus, with the scrape configs the Prometheus Operator would generate from the
	// chart's ServiceMonitor and PodMonitor, on static targets.
	sm := find(objs, "ServiceMonitor", namespace)[0]
	smEndpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	smEndpoint := smEndpoints[0].(map[string]any)
	pm := find(objs, "PodMonitor", namespace)[0]
	pmEndpoints, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	pmEndpoint := pmEndpoints[0].(map[string]any)
	selector, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
	podLabels := map[string]string{
		"__meta_kubernetes_namespace": ns,
		"__meta_kubernetes_pod_name":  name + "-ingester-6d5f8-x7k2p",
	}
	for k, v := range dep.Spec.Template.Labels {
		podLabels[metaLabel(k)] = v
	}
	var ports []string
	for _, p := range dep.Spec.Template.Spec.Containers[0].Ports {
		ports = append(ports, p.Name)
	}
	podLabels["__meta_kubernetes_pod_container_port_name"] = strings.Join(ports, ",")
	podRelabel := []map[string]any{ // what the Prometheus Operator generates for every PodMonitor
		{"action": "keep", "source_labels": []string{"__meta_kubernetes_pod_container_port_name"}, "regex": pmEndpoint["port"]},
		{"source_labels": []string{"__meta_kubernetes_namespace"}, "target_label": "namespace"},
		{"source_labels": []string{"__meta_kubernetes_pod_name"}, "target_label": "pod"},
		{"target_label": "job", "replacement": pm.GetNamespace() + "/" + pm.GetName()},
	}
	for k, v := range selector {
		podRelabel = append(podRelabel, map[string]any{"action": "keep", "source_labels": []string{metaLabel(k)}, "regex": regexp.QuoteMeta(v)})
	}
	relabelings, _ := pmEndpoint["relabelings"].([]any)
	podRelabel = append(podRelabel, relabelConfigs(t, relabelings)...)
	honor, _ := smEndpoint["honorLabels"].(bool)
	config := map[string]any{
		"global":     map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"},
		"rule_files": []string{rulesPath},
		"scrape_configs": []map[string]any{
			{
				"job_name":     "operator",
				"metrics_path": smEndpoint["path"],
				"honor_labels": honor,
				"static_configs": []map[string]any{{"targets": []string{operatorMetrics}, "labels": map[string]string{
					// The ServiceMonitor's target labels: the operator's namespace and pod.
					"namespace": namespace, "pod": "sf-spanflow-7d9f8-x2x4q", "service": "sf-spanflow-metrics", "endpoint": "metrics"}}},
				"relabel_configs": []map[string]any{{"target_label": "job", "replacement": "sf-spanflow-metrics"}},
			},
			{
				"job_name":        "ingesters",
				"metrics_path":    pmEndpoint["path"],
				"static_configs":  []map[string]any{{"targets": []string{ingestAdmin}, "labels": podLabels}},
				"relabel_configs": podRelabel,
			},
		},
	}
	configData, err := sigsyaml.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, configData, 0o600); err != nil {
		t.Fatal(err)
	}
	promAddr := testenv.FreeAddr(t)
	promLogs := &lockedBuffer{}
	prom := exec.Command(prometheusBin, "--config.file="+configPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	prom.Stdout, prom.Stderr = promLogs, promLogs
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = prom.Process.Signal(syscall.SIGTERM)
		_ = prom.Wait()
	})
	defer func() {
		if t.Failed() {
			t.Logf("prometheus.yml:\n%s\nprometheus:\n%s\noperator:\n%s\ningest:\n%s", configData, promLogs, operatorLogs, ingestLogs)
		}
	}()
	api := prometheusAPI("http://" + promAddr)

	// Spans written, the operator's lag of the Ingester, and a change by the autoscaler,
	// each under the Ingester's namespace and name.
	poll(t, 120*time.Second, "spans written, the operator's lag and an autoscaler change in Prometheus", func() error {
		for _, expr := range []string{
			fmt.Sprintf(`spanflow_ingester_spans_written_total{namespace=%q, ingester=%q} > 0`, ns, name),
			fmt.Sprintf(`spanflow_ingester_lag_records{namespace=%q, ingester=%q, partition=""}`, ns, name),
			fmt.Sprintf(`spanflow_ingester_autoscaler_changes_total{namespace=%q, ingester=%q}`, ns, name),
		} {
			if s, err := api.series(expr); err != nil || len(s) == 0 {
				return fmt.Errorf("%s: %v %v", expr, s, err)
			}
		}
		return nil
	})

	// Every metric name queried exists.
	var names []string
	if err := api.get("/api/v1/label/__name__/values", nil, &names); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	for _, p := range unknownMetrics(qs, known) {
		t.Error(p)
	}

	// Every dashboard query returns data for the Ingester (a rate needs a few scrapes).
	poll(t, 60*time.Second, "every dashboard query to return data for the Ingester", func() error {
		var empty []string
		for _, q := range qs {
			if !q.panel {
				continue
			}
			expr, err := grafanaExpr(q.expr, ns, name)
			if err != nil {
				return err
			}
			s, err := api.series(expr)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", q.where, expr, err)
			}
			if len(s) == 0 {
				empty = append(empty, q.where+": "+expr)
			}
		}
		if len(empty) > 0 {
			return fmt.Errorf("no data:\n%s", strings.Join(empty, "\n"))
		}
		return nil
	})

	// Every rule is loaded and evaluates without error against the real series.
	poll(t, 30*time.Second, "every rule evaluated without error", func() error {
		var data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := api.get("/api/v1/rules", nil, &data); err != nil {
			return err
		}
		var loaded []string
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				if r.Health != "ok" {
					return fmt.Errorf("%s: %s %s", r.Name, r.Health, r.LastError)
				}
				loaded = append(loaded, r.Name)
			}
		}
		sort.Strings(loaded)
		if !slices.Equal(loaded, alerts) {
			return fmt.Errorf("rules loaded: %v", loaded)
		}
		return nil
	})
}
