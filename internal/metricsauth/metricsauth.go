// Package metricsauth lets only the callers the cluster allows read the operator's
// metrics: a bearer token the API server accepts (TokenReview) whose user may get the
// path as a non-resource URL (SubjectAccessReview), as the cluster's own components
// guard theirs. It is controller-runtime's metrics filter, written against client-go's
// typed clients: the library's own pulls k8s.io/apiserver into the one binary the
// ingester pods run too.
package metricsauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Decisions are remembered this long: a Prometheus scraping every 30 s costs two reviews
// a minute, and a token revoked or a binding removed takes effect within it.
const (
	allowedTTL = time.Minute
	deniedTTL  = 10 * time.Second
	// maxRemembered bounds the memory of decisions: callers with ever new tokens (an
	// attacker's guesses) must not grow it.
	maxRemembered = 1024
	reviewTimeout = 10 * time.Second
)

// FilterProvider is a metricsserver.Options.FilterProvider. Its identity (the operator's
// ServiceAccount) needs create on tokenreviews (authentication.k8s.io) and
// subjectaccessreviews (authorization.k8s.io).
func FilterProvider(config *rest.Config, httpClient *http.Client) (metricsserver.Filter, error) {
	authn, err := authenticationclient.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, err
	}
	authz, err := authorizationclient.NewForConfigAndClient(config, httpClient)
	if err != nil {
		return nil, err
	}
	g := &Guard{Tokens: authn.TokenReviews(), Access: authz.SubjectAccessReviews()}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return g.Wrap(log, next), nil
	}, nil
}

// TokenReviewer and AccessReviewer are the two API calls the guard makes.
type TokenReviewer interface {
	Create(ctx context.Context, review *authenticationv1.TokenReview, opts metav1.CreateOptions) (*authenticationv1.TokenReview, error)
}

type AccessReviewer interface {
	Create(ctx context.Context, review *authorizationv1.SubjectAccessReview, opts metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error)
}

// Guard decides who may read a path.
type Guard struct {
	Tokens TokenReviewer
	Access AccessReviewer

	mu        sync.Mutex
	decisions map[decisionKey]decision
}

type decisionKey struct {
	token      [sha256.Size]byte // never the token itself
	verb, path string
}

type decision struct {
	status  int // http.StatusOK, StatusUnauthorized or StatusForbidden
	expires time.Time
}

// Wrap serves next only to the callers allowed to.
func (g *Guard) Wrap(log logr.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="spanflow metrics"`)
			http.Error(w, "Unauthorized: a bearer token is needed (a ServiceAccount's, allowed to get this path)", http.StatusUnauthorized)
			return
		}
		status, err := g.decide(r.Context(), token, verbOf(r.Method), r.URL.Path)
		if err != nil {
			log.Error(err, "Cannot check a metrics reader's rights")
			http.Error(w, "cannot check the caller's rights with the Kubernetes API", http.StatusServiceUnavailable)
			return
		}
		switch status {
		case http.StatusOK:
			next.ServeHTTP(w, r)
		case http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", `Bearer realm="spanflow metrics"`)
			http.Error(w, "Unauthorized: the API server does not accept the token", http.StatusUnauthorized)
		default:
			http.Error(w, fmt.Sprintf("Forbidden: the caller may not %s %s (a ClusterRole with nonResourceURLs [%q], verbs [%q])",
				verbOf(r.Method), r.URL.Path, r.URL.Path, verbOf(r.Method)), http.StatusForbidden)
		}
	})
}

// decide asks the API server, or remembers its answer.
func (g *Guard) decide(ctx context.Context, token, verb, path string) (int, error) {
	key := decisionKey{token: sha256.Sum256([]byte(token)), verb: verb, path: path}
	now := time.Now()
	g.mu.Lock()
	d, ok := g.decisions[key]
	g.mu.Unlock()
	if ok && now.Before(d.expires) {
		return d.status, nil
	}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	status, err := g.review(ctx, token, verb, path)
	if err != nil {
		return 0, err // not remembered: the next scrape asks again
	}
	ttl := allowedTTL
	if status != http.StatusOK {
		ttl = deniedTTL
	}
	g.remember(key, decision{status: status, expires: now.Add(ttl)}, now)
	return status, nil
}

func (g *Guard) review(ctx context.Context, token, verb, path string) (int, error) {
	tr, err := g.Tokens.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return 0, fmt.Errorf("reviewing a token: %w", err)
	}
	if !tr.Status.Authenticated {
		return http.StatusUnauthorized, nil
	}
	u := tr.Status.User
	extra := make(map[string]authorizationv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := g.Access.Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return 0, fmt.Errorf("reviewing %s's access to %s: %w", u.Username, path, err)
	}
	if !sar.Status.Allowed || sar.Status.Denied {
		return http.StatusForbidden, nil
	}
	return http.StatusOK, nil
}

func (g *Guard) remember(key decisionKey, d decision, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.decisions == nil {
		g.decisions = map[decisionKey]decision{}
	}
	if len(g.decisions) >= maxRemembered {
		for k, old := range g.decisions {
			if !now.Before(old.expires) {
				delete(g.decisions, k)
			}
		}
		if len(g.decisions) >= maxRemembered {
			clear(g.decisions)
		}
	}
	g.decisions[key] = d
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// verbOf is the authorization verb of an HTTP method, as the API server maps them for
// non-resource URLs.
func verbOf(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "post"
	case http.MethodPut:
		return "put"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(method)
}
