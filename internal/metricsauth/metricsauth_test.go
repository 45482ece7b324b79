package metricsauth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/spanflow/spanflow/internal/testenv"
)

var (
	env *envtest.Environment
	cfg *rest.Config
)

func TestMain(m *testing.M) {
	var err error
	env, cfg, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// guarded serves "ok" behind the guard, reviewing as the identity of config.
func guarded(t *testing.T, config *rest.Config) *httptest.Server {
	t.Helper()
	hc, err := rest.HTTPClientFor(config)
	if err != nil {
		t.Fatal(err)
	}
	filter, err := FilterProvider(config, hc)
	if err != nil {
		t.Fatal(err)
	}
	h, err := filter(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestOnlyAllowedReadersGetMetrics: against a real API server, a ServiceAccount bound to a
// ClusterRole that may get /metrics reads them; no token, a token the API server does not
// know, a ServiceAccount without the role, another verb or path are refused, each with its
// status; and an operator that may not review tokens serves nothing.
func TestOnlyAllowedReadersGetMetrics(t *testing.T) {
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(cfg)
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "monitoring-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := func(name string) string {
		if _, err := cs.CoreV1().ServiceAccounts(ns.Name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := cs.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	prometheus, stranger := token("prometheus"), token("stranger")
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: ns.Name + "-metrics-reader"},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns.Name, Name: "prometheus"}}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	srv := guarded(t, cfg)
	for _, tc := range []struct {
		name, method, path, token string
		want                      int
		says                      string
	}{
		{"no token", http.MethodGet, "/metrics", "", http.StatusUnauthorized, "bearer token is needed"},
		{"a token the API server does not know", http.MethodGet, "/metrics", "not-a-token", http.StatusUnauthorized, "does not accept"},
		{"a ServiceAccount without the role", http.MethodGet, "/metrics", stranger, http.StatusForbidden, `nonResourceURLs ["/metrics"]`},
		{"the reader", http.MethodGet, "/metrics", prometheus, http.StatusOK, "ok"},
		{"the reader again (remembered)", http.MethodGet, "/metrics", prometheus, http.StatusOK, "ok"},
		{"the reader, another verb", http.MethodPost, "/metrics", prometheus, http.StatusForbidden, "may not post"},
		{"the reader, another path", http.MethodGet, "/debug/pprof/", prometheus, http.StatusForbidden, "may not get /debug/pprof/"},
	} {
		if got, body := call(t, srv, tc.method, tc.path, tc.token); got != tc.want || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %q, want %d saying %q", tc.name, got, body, tc.want, tc.says)
		}
	}
	if _, body := call(t, srv, http.MethodGet, "/metrics", stranger); strings.Contains(body, stranger) {
		t.Error("a refusal echoes the token")
	}

	// An operator whose own rights do not cover the reviews lets no one in.
	user, err := env.AddUser(envtest.User{Name: "no-review-rights"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := call(t, guarded(t, user.Config()), http.MethodGet, "/metrics", prometheus); got != http.StatusServiceUnavailable {
		t.Errorf("reviewing without the rights to: %d, want 503", got)
	}
}
