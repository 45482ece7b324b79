package controllers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/controllers/autoscale"
	"github.com/spanflow/spanflow/internal/testenv"
)

const (
	testImage = "example.test/spanflow:test"
	testTopic = "otlp_spans"
)

var (
	// k8sClient talks to the envtest API server directly, not through a cache.
	k8sClient client.Client
	testEnv   *envtest.Environment
	// testBroker is the address of the tests' Kafka-protocol broker.
	testBroker string
)

// TestMain runs every test of this package against one real kube-apiserver and etcd with
// the operator's manager running. There is no kube-controller-manager: Deployments get no
// pods and nothing garbage-collects, so tests play those parts where they need them.
// writesByNamespace counts the write requests the manager sends, by namespace.
var writesByNamespace sync.Map // namespace → *atomic.Int64

// writeCounter counts the manager's write requests per namespace of the URL.
type writeCounter struct{ next http.RoundTripper }

func (w writeCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, rest, ok := strings.Cut(req.URL.Path, "/namespaces/"); ok {
		ns, resource, _ := strings.Cut(rest, "/")
		counts := &writesByNamespace
		switch {
		case strings.HasPrefix(resource, "events"):
			// Events are recorded asynchronously, seconds later under load: not a resync's.
			counts = nil
		case req.Method != http.MethodGet:
		case strings.HasPrefix(resource, "secrets/"):
			counts = &secretReadsByNamespace
		default:
			counts = nil
		}
		if counts != nil {
			n, _ := counts.LoadOrStore(ns, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}
	}
	return w.next.RoundTrip(req)
}

// secretReadsByNamespace counts the manager's reads of single Secrets (their contents),
// by namespace.
var secretReadsByNamespace sync.Map // namespace → *atomic.Int64

// managerSecretReadsIn is the number of Secrets the manager has read in namespace ns.
func managerSecretReadsIn(ns string) int64 {
	n, ok := secretReadsByNamespace.Load(ns)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// managerWritesIn is the number of write requests the manager has sent to namespace ns.
func managerWritesIn(ns string) int64 {
	n, ok := writesByNamespace.Load(ns)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// Goroutines still running after the suite (the manager and the control plane stopped)
// fail it.
func TestMain(m *testing.M) {
	before := goleak.IgnoreCurrent()
	code := runSuite(m)
	if code == 0 {
		// client-go's event broadcaster leaves a filtered watch blocked on a send after
		// shutdown; it belongs to the library, not to the operator.
		if err := goleak.Find(before, goleak.IgnoreTopFunction("k8s.io/apimachinery/pkg/watch.(*filteredWatch).loop")); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left running:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(io.MultiWriter(os.Stderr, &operatorLog))))
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "controllers tests need the control plane:", err)
		return 1
	}
	testEnv = env
	// A Kafka-protocol broker with the topic the tests' Ingesters read, so that the
	// operator's look at Kafka succeeds unless a test wants it to fail.
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, testTopic))
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting kfake:", err)
		return 1
	}
	defer broker.Close()
	testBroker = broker.ListenAddrs()[0]
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(spanflowv1alpha1.AddToScheme(scheme))
	if k8sClient, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	// As ctrl.GetConfig does for the real manager: no client-side rate limit (the API
	// server's priority and fairness applies); envtest's config would otherwise allow 5/s.
	cfg.QPS = -1
	managerCfg := rest.CopyConfig(cfg)
	managerCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return writeCounter{next: rt} })
	mgr, err := ctrl.NewManager(managerCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := (&IngesterReconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Recorder:       mgr.GetEventRecorder("spanflow"),
		IngesterImage:  testImage,
		Lag:            autoscale.NewLagObserver(500*time.Millisecond, 20),
		Autoscaler:     autoscale.NewAutoscaler(ctrlmetrics.Registry),
		ResyncInterval: 2 * time.Second,
	}).SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	managerDone := make(chan error, 1)
	go func() { managerDone <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-managerDone; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return m.Run()
}

// operatorLog is what the operator logged, for the tests that read it.
var operatorLog logLines

// logLines keeps the lines written to it.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count is the number of lines holding every one of parts.
func (l *logLines) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.Lines(l.buf.String()) {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
			n++
		}
	}
	return n
}
