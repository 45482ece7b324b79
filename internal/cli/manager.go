package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/controllers"
	"github.com/spanflow/spanflow/controllers/autoscale"
	"github.com/spanflow/spanflow/internal/metricsauth"
	"github.com/spanflow/spanflow/internal/version"
)

// Scheme holds every API type the operator reads or writes.
func Scheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(spanflowv1alpha1.AddToScheme(scheme))
	return scheme
}

func runManager(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("manager", "Run the operator: reconcile Ingester resources into the Deployments that run\n'spanflow ingest'. Uses the in-cluster config or $KUBECONFIG.", stderr)
	metricsAddr := fs.String("metrics-bind-address", ":8080", "address of the operator's /metrics endpoint; \"0\" disables it")
	metricsSecure := fs.Bool("metrics-secure", false, "serve /metrics over HTTPS to callers with a bearer token the API server accepts whose user may get the non-resource URL /metrics (needs create on tokenreviews and subjectaccessreviews)")
	metricsCertDir := fs.String("metrics-cert-dir", "", "with --metrics-secure: directory of the serving certificate, tls.crt and tls.key, reloaded when they change (default: a self-signed one)")
	probeAddr := fs.String("health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	leaderElect := fs.Bool("leader-elect", false, "elect a leader so that only one of several operator replicas reconciles")
	leaderElectionNamespace := fs.String("leader-election-namespace", "", "namespace of the leader-election Lease (default: the pod's namespace)")
	leaderElectionID := fs.String("leader-election-id", "manager.spanflow.dev", "name of the leader-election Lease: one per operator installation sharing a namespace")
	ingesterImage := fs.String("ingester-image", version.DefaultImage, "image of the ingester pods, unless an Ingester names another")
	kafkaInterval := fs.Duration("kafka-poll-interval", 10*time.Second, "how often the operator reads each Ingester's log-end and committed offsets (the lag, and the autoscaler's input) and looks at the Ingester again")
	allowPrivileged := fs.Bool("allow-privileged-pods", false, "let Ingesters' pod templates ask for privileged containers, privilege escalation, added capabilities, root, unconfined seccomp or AppArmor, and sysctls (refused by default: whoever may create an Ingester would get such pods through the operator)")
	allowServiceAccount := fs.Bool("allow-service-account", false, "let Ingesters run their pods as another ServiceAccount of their namespace (spec.template.serviceAccountName), with its API rights (refused by default)")
	watchNamespaces := fs.String("watch-namespaces", "", "comma-separated namespaces whose Ingesters the operator manages (empty: all; then it needs cluster-wide rights)")
	logOpts := logFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *metricsCertDir != "" && !*metricsSecure {
		return errors.New("--metrics-cert-dir is for --metrics-secure")
	}
	if *kafkaInterval <= 0 {
		return fmt.Errorf("--kafka-poll-interval must be positive, not %s", *kafkaInterval)
	}
	logger := newLogger(logOpts, stderr)
	ctrl.SetLogger(logger)

	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("finding the Kubernetes API: %w", err)
	}
	var cacheOptions cache.Options
	var namespaces []string
	if *watchNamespaces != "" {
		cacheOptions.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range strings.Split(*watchNamespaces, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				cacheOptions.DefaultNamespaces[ns] = cache.Config{}
				namespaces = append(namespaces, ns)
			}
		}
	}
	metricsOptions := metricsserver.Options{BindAddress: *metricsAddr}
	if *metricsSecure {
		metricsOptions.SecureServing = true
		metricsOptions.CertDir = *metricsCertDir
		metricsOptions.FilterProvider = metricsauth.FilterProvider
		// HTTP/1.1 only: HTTP/2's stream resets let a client make the server work for
		// nothing (CVE-2023-44487), and a scrape gains nothing from HTTP/2.
		metricsOptions.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                        Scheme(),
		Cache:                         cacheOptions,
		Metrics:                       metricsOptions,
		HealthProbeBindAddress:        *probeAddr,
		LeaderElection:                *leaderElect,
		LeaderElectionID:              *leaderElectionID,
		LeaderElectionNamespace:       *leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := (&controllers.IngesterReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Recorder:        mgr.GetEventRecorder("spanflow"),
		IngesterImage:   *ingesterImage,
		Lag:             autoscale.NewLagObserver(*kafkaInterval, 30),
		Autoscaler:      autoscale.NewAutoscaler(ctrlmetrics.Registry),
		ResyncInterval:  *kafkaInterval,
		PodPolicy:       controllers.PodPolicy{AllowPrivileged: *allowPrivileged, AllowServiceAccount: *allowServiceAccount},
		WatchNamespaces: namespaces,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the Ingester controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	// Ready once the informers' caches are filled: a rolling update of the operator keeps
	// the old pod until the new one knows the cluster.
	if err := mgr.AddReadyzCheck("informers", cachesSynced(mgr.GetCache())); err != nil {
		return err
	}
	logger.Info("Starting the spanflow operator", "version", version.Describe(), "ingesterImage", *ingesterImage, "watchNamespaces", *watchNamespaces,
		"allowPrivilegedPods", *allowPrivileged, "allowServiceAccount", *allowServiceAccount, "metricsSecure", *metricsSecure)
	return mgr.Start(ctx)
}

// cachesSynced is a readiness check that passes once every informer of c has synced.
func cachesSynced(c cache.Cache) healthz.Checker {
	return func(r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errors.New("the informers' caches have not synced yet")
		}
		return nil
	}
}
