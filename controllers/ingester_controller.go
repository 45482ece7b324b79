// Package controllers holds the spanflow operator's reconcilers: each Ingester becomes the
// ServiceAccount, ConfigMap, Service, Deployment and PodDisruptionBudget that run
// `spanflow ingest`, and its status reports how that went.
package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/controllers/autoscale"
	"github.com/spanflow/spanflow/ingester/kafkaclient"
)

// FieldOwner is the server-side apply field manager of everything the operator writes.
const FieldOwner = client.FieldOwner("spanflow")

// secretIndex indexes Ingesters by the Secrets they reference.
const secretIndex = "spec.secretNames"

// groupIndex indexes Ingesters by the consumer group they consume with.
const groupIndex = "status.consumerGroup"

// IngesterReconciler reconciles Ingester resources into the objects that run them.
type IngesterReconciler struct {
	Client client.Client
	// APIReader reads straight from the API server what the operator does not cache:
	// Secrets (only those Ingesters reference are kept, and read again only when their
	// resourceVersion changes), and an Ingester's pods while some are not ready (to say why).
	APIReader client.Reader
	secrets   *secretCache
	applied   appliedVersions
	Recorder  recorder.EventRecorder
	// IngesterImage is the image of the ingester pods unless an Ingester names another.
	IngesterImage string
	// Lag observes each Ingester's topic and consumer group.
	Lag *autoscale.LagObserver
	// Autoscaler sizes the Ingesters with autoscaling enabled.
	Autoscaler *autoscale.Autoscaler
	// ResyncInterval is how often an Ingester is looked at again without any change, to
	// keep what the status says of Kafka current.
	ResyncInterval time.Duration
	// PodPolicy is what the Ingesters' pod templates may ask for beyond the restricted
	// profile; the zero value allows nothing more.
	PodPolicy PodPolicy
	// WatchNamespaces are the namespaces the manager's cache is limited to (none: every
	// namespace), where the operator must be allowed to read HorizontalPodAutoscalers to
	// look for those that fight it.
	WatchNamespaces []string
	// scalersVisible is true when HorizontalPodAutoscalers are watched and cached.
	scalersVisible bool
	// problemsLogged is the spec problem last logged of each Ingester held back, and
	// applyFailuresLogged the refusal last logged of each whose objects are refused.
	problemsLogged, applyFailuresLogged sync.Map
}

// +kubebuilder:rbac:groups=spanflow.dev,resources=ingesters,verbs=get;list;watch
// +kubebuilder:rbac:groups=spanflow.dev,resources=ingesters/status,verbs=get;update;patch
// Owner references block their owner's deletion; where the OwnerReferencesPermissionEnforcement
// admission plugin runs (OpenShift), setting that needs update on the owner's finalizers.
// +kubebuilder:rbac:groups=spanflow.dev,resources=ingesters/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps;services;serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile applies the desired objects of one Ingester and records the outcome in its status.
func (r *IngesterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var ing spanflowv1alpha1.Ingester
	if err := r.Client.Get(ctx, req.NamespacedName, &ing); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted: owner references let the garbage collector remove what it owned.
			r.Autoscaler.Forget(req.NamespacedName, true)
			gone := &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name}}
			r.applied.forget(types.NamespacedName{Namespace: req.Namespace, Name: ingesterObjectName(gone)})
			// One made again under the name says its problems anew.
			r.problemsLogged.Delete(req.NamespacedName)
			r.applyFailuresLogged.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	obs := observation{now: metav1.Now()}
	secrets, secretErr := r.fetchSecrets(ctx, &ing)
	if secrets == nil && secretErr != nil {
		return ctrl.Result{}, secretErr // the API server failed us, not the user
	}
	obs.secretErr = secretErr
	current, err := r.currentDeployment(ctx, &ing)
	if err != nil {
		return ctrl.Result{}, err
	}
	if current != nil {
		obs.previousReplicas = current.Spec.Replicas
	}
	stored := ing.DeepCopy() // the status as the API server has it, for the write below
	recordGroupInUse(&ing, current)
	obs.problem = checkSpec(&ing, r.PodPolicy)
	if obs.problem == nil {
		if obs.problem, err = r.conflicts(ctx, &ing); err != nil {
			return ctrl.Result{}, err
		}
	}
	if obs.podFailure, obs.notReady, obs.startingPods, err = r.observePods(ctx, &ing, current); err != nil {
		return ctrl.Result{}, err
	}
	if secretErr == nil {
		obs.lag = r.Lag.Observe(kafkaTargetOf(&ing, secrets))
		obs.blockedPods = obs.lag.BlockedPods()
	}
	if obs.sharedGroup, err = r.groupSharedWith(ctx, &ing); err != nil {
		return ctrl.Result{}, err
	}
	if obs.scalers, err = r.scalersOf(ctx, &ing); err != nil {
		return ctrl.Result{}, err
	}
	// Paused by the user, or the new spec cannot run: the running pods are better left on
	// their last good config.
	// Being deleted (with the foreground propagation, or its namespace going): what is
	// gone is not made again.
	changeNothing := ing.Spec.Paused || secretErr != nil || obs.problem != nil || ing.DeletionTimestamp != nil

	// target is the Ingester as the builders and the status see it: with autoscaling, its
	// replicas and parallelism are the autoscaler's.
	target := &ing
	var scaled bool
	switch {
	case !autoscale.Enabled(&ing):
		r.Autoscaler.Forget(req.NamespacedName, false)
	case !changeNothing:
		in := autoscale.Input{Now: obs.now.Time, Lag: obs.lag, Parallelism: ing.Status.Parallelism,
			SpecReplicas: desiredReplicas(&ing), SpecParallelism: desiredParallelism(&ing), Settled: settled(current),
			Deployed: replicasGiven(&ing, current)}
		d := r.Autoscaler.Decide(&ing, in)
		scaled, obs.scale = d.Changed, &d
		if spec := desiredReplicas(&ing); spec != d.Replicas {
			obs.ignoredReplicas = &spec
		}
		target = sized(&ing, d)
	}
	if changeNothing && current != nil && current.Spec.Replicas != nil && *current.Spec.Replicas != desiredReplicas(target) {
		// Nothing is changed: the pods are measured against what the Deployment runs (with
		// autoscaling, the autoscaler's size, not the spec.replicas it ignores).
		target = target.DeepCopy()
		target.Spec.Replicas = ptr.To(*current.Spec.Replicas)
	}

	if changeNothing {
		obs.deployment = current
	} else {
		if other := scaledByOthers(current, desiredReplicas(target)); other != nil {
			r.Recorder.Eventf(&ing, current, corev1.EventTypeWarning, spanflowv1alpha1.ReasonDeploymentScaledBack, "Reconcile",
				"The Deployment %s was scaled to %d by someone else and is put back to %d: its replicas are the Ingester's. Scale the Ingester (kubectl scale ingester/%s; an HPA or KEDA aimed at the Ingester's scale subresource)%s%s",
				current.Name, *other, desiredReplicas(target), ing.Name, autoscaledNote(&ing), scalersNote(obs.scalers))
		}
		obs.deployment, obs.applyErr = r.apply(ctx, target, secrets.digests(referencedSecrets(target)))
		if apierrors.HasStatusCause(obs.applyErr, corev1.NamespaceTerminatingCause) {
			// The namespace is being deleted, the Ingester with it: not a failure to report.
			logger.V(1).Info("Not applying: the namespace is being deleted")
			return ctrl.Result{}, nil
		}
		if errors.Is(obs.applyErr, errBeingDeleted) {
			// Read before its deletion: the event of the deletion brings it again.
			logger.V(1).Info("Not applying: the Ingester is being deleted")
			return ctrl.Result{}, nil
		}
		obs.applied = obs.applyErr == nil
	}
	if obs.problem != nil {
		// Once a problem, not at every look: the status and an event say it too.
		if said, _ := r.problemsLogged.Load(req.NamespacedName); said != obs.problem.err.Error() {
			logger.Info("Not applying the spec", "reason", obs.problem.reason, "problem", obs.problem.err.Error())
			r.problemsLogged.Store(req.NamespacedName, obs.problem.err.Error())
		}
	} else {
		r.problemsLogged.Delete(req.NamespacedName)
	}

	status := desiredStatus(target, obs)
	if err := r.writeStatus(ctx, stored, status, obs.applyErr != nil && refusedAsItIs(obs.applyErr)); err != nil {
		return ctrl.Result{}, err
	}
	r.Autoscaler.Record(target, status)
	if obs.applyErr != nil {
		if !refusedAsItIs(obs.applyErr) {
			// A conflict, an API server that did not answer: retried by the work queue
			// with exponential backoff; the status says why.
			return ctrl.Result{}, obs.applyErr
		}
		// Refused as it is (invalid, forbidden by a policy, a webhook or a quota): the
		// status says why, the log says it once, and it is tried again at the resync —
		// at the work queue's backoff (up to 16 minutes) a fix made elsewhere, to the
		// policy or the quota, waited that long to be taken.
		if said, _ := r.applyFailuresLogged.Load(req.NamespacedName); said != obs.applyErr.Error() {
			logger.Error(obs.applyErr, "The spec cannot be applied; trying again at each resync")
			r.applyFailuresLogged.Store(req.NamespacedName, obs.applyErr.Error())
		}
		return ctrl.Result{RequeueAfter: r.ResyncInterval}, nil
	}
	r.applyFailuresLogged.Delete(req.NamespacedName)
	if scaled {
		r.Recorder.Eventf(&ing, nil, corev1.EventTypeNormal, spanflowv1alpha1.ReasonAutoscaled, "Autoscale", "%s", obs.scale.Reason)
	}
	logger.V(1).Info("Reconciled", "replicas", status.Replicas, "ready", status.ReadyReplicas)
	// A missing Secret needs no retry loop: its creation triggers a reconcile (see the
	// watch). Kafka has no watch, and an object in the way (ResourceConflict) is not
	// watched either: look again after a while, soon if the first poll of the Ingester's
	// topic is still under way.
	if secretErr == nil && !obs.lag.Known() && obs.lag.Err() == nil {
		return ctrl.Result{RequeueAfter: min(time.Second, r.ResyncInterval)}, nil
	}
	return ctrl.Result{RequeueAfter: r.ResyncInterval}, nil
}

// fetchedSecrets are the referenced Secrets, by name.
type fetchedSecrets map[string]*corev1.Secret

// digests are what the pods read of each referenced Secret, for the pod template hash, in
// a stable order.
func (f fetchedSecrets) digests(refs []secretRef) []secretDigest {
	keys := map[string][]string{}
	for _, ref := range refs {
		keys[ref.name] = append(keys[ref.name], ref.keys...)
	}
	digests := make([]secretDigest, 0, len(f))
	for _, name := range slices.Sorted(maps.Keys(f)) {
		digests = append(digests, digestSecret(f[name], keys[name]))
	}
	return digests
}

// fetchSecrets reads every referenced Secret and checks its keys. A Secret or key that does
// not exist is reported in the error with the Secrets that do; an API failure returns nil.
// Contents stay in memory for the Kafka probe: never logged, never written anywhere.
func (r *IngesterReconciler) fetchSecrets(ctx context.Context, ing *spanflowv1alpha1.Ingester) (fetchedSecrets, error) {
	secrets := fetchedSecrets{}
	var missing []error
	for _, ref := range referencedSecrets(ing) {
		s, ok := secrets[ref.name]
		if !ok {
			var err error
			s, err = r.secrets.get(ctx, types.NamespacedName{Namespace: ing.Namespace, Name: ref.name})
			if apierrors.IsNotFound(err) {
				missing = append(missing, fmt.Errorf("%s: Secret %q does not exist", ref.field, ref.name))
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reading Secret %q: %w", ref.name, err)
			}
			secrets[ref.name] = s
		}
		for _, key := range ref.keys {
			if _, ok := s.Data[key]; !ok {
				missing = append(missing, fmt.Errorf("%s: Secret %q has no key %q", ref.field, ref.name, key))
			}
		}
	}
	if len(missing) == 0 {
		missing = unusableKafkaMaterial(ing, secrets)
	}
	return secrets, oneLine(missing)
}

// unusableKafkaMaterial says what of the Kafka TLS material and SASL credentials the
// Secrets hold cannot be used — a CA bundle without a certificate, a key that does not
// match its certificate, empty credentials — naming the fields: pods given them could
// not connect, and only "unreachable" would show. Never the contents.
func unusableKafkaMaterial(ing *spanflowv1alpha1.Ingester, secrets fetchedSecrets) []error {
	m := kafkaTargetOf(ing, secrets).Material
	var errs []error
	if m.TLS {
		if _, err := kafkaclient.FromMaterial(kafkaclient.Material{TLS: true, CA: m.CA, Cert: m.Cert, Key: m.Key}); err != nil {
			var refs []string
			for _, ref := range kafkaTLS(ing).refs() {
				refs = append(refs, fmt.Sprintf("%s: Secret %q", ref.field, ref.name))
			}
			errs = append(errs, fmt.Errorf("%s: %w", strings.Join(refs, ", "), err))
		}
	}
	if s := ing.Spec.Kafka.SASL; s != nil {
		if _, err := kafkaclient.FromMaterial(kafkaclient.Material{Mechanism: m.Mechanism, Username: m.Username, Password: m.Password}); err != nil {
			errs = append(errs, fmt.Errorf("spec.kafka.sasl.credentialsSecretName: Secret %q: sasl: %w", s.CredentialsSecretName, errors.Unwrap(err)))
		}
	}
	return errs
}

// oneLine joins errors into one, "; " between them: a status message and an event read on
// one line (kubectl get events shows the first line only).
func oneLine(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// kafkaTargetOf is the Ingester's cluster, topic and consumer group, with the credentials
// from its Secrets.
func kafkaTargetOf(ing *spanflowv1alpha1.Ingester, secrets fetchedSecrets) autoscale.Target {
	t := autoscale.Target{Brokers: ing.Spec.Kafka.Brokers, Topic: ing.Spec.Kafka.Topic, Group: groupInUse(ing), ClientID: ing.Spec.Kafka.ClientID,
		FromEarliest:  ing.Spec.Kafka.InitialOffset != spanflowv1alpha1.InitialOffsetLatest,
		ReadCommitted: ing.Spec.Kafka.IsolationLevel == spanflowv1alpha1.IsolationReadCommitted}
	if tls := ing.Spec.Kafka.TLS; tls != nil && tls.Enabled {
		t.Material.TLS = true
		t.Material.InsecureSkipVerify = tls.InsecureSkipVerify
		if tls.CA != nil {
			t.Material.CA = secrets[tls.CA.Name].Data[tls.CA.Key]
		}
		if tls.ClientCertSecretName != "" {
			s := secrets[tls.ClientCertSecretName]
			t.Material.Cert, t.Material.Key = s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
		}
	}
	if sasl := ing.Spec.Kafka.SASL; sasl != nil {
		s := secrets[sasl.CredentialsSecretName]
		t.Material.Mechanism = string(sasl.Mechanism)
		t.Material.Username, t.Material.Password = string(s.Data[saslUsernameKey]), string(s.Data[saslPasswordKey])
	}
	return t
}

// groupSharedWith names the other Ingesters (namespace/name) consuming with this one's
// consumer group on a broker it lists too. A group is the Ingester's own unless
// spec.kafka.consumerGroup names one, so sharing is a copied spec's mistake.
func (r *IngesterReconciler) groupSharedWith(ctx context.Context, ing *spanflowv1alpha1.Ingester) ([]string, error) {
	group := groupInUse(ing)
	var same spanflowv1alpha1.IngesterList
	if err := r.Client.List(ctx, &same, client.MatchingFields{groupIndex: group}); err != nil {
		return nil, err
	}
	var shared []string
	for i := range same.Items {
		other := &same.Items[i]
		if other.UID == ing.UID || other.DeletionTimestamp != nil || !sameCluster(ing, other) {
			continue
		}
		shared = append(shared, other.Namespace+"/"+other.Name)
	}
	slices.Sort(shared)
	return shared, nil
}

// sameCluster is true when two Ingesters list a broker in common. A short host name is a
// Service of the Ingester's own namespace (Strimzi's my-cluster-kafka-bootstrap in each
// team's), so it is read with the namespace.
func sameCluster(a, b *spanflowv1alpha1.Ingester) bool {
	qualified := func(ing *spanflowv1alpha1.Ingester, broker string) string {
		host, port, err := net.SplitHostPort(broker)
		if err != nil || strings.Contains(host, ".") || strings.Contains(host, ":") || host == "localhost" {
			return broker
		}
		return net.JoinHostPort(host+"."+ing.Namespace, port)
	}
	for _, x := range a.Spec.Kafka.Brokers {
		for _, y := range b.Spec.Kafka.Brokers {
			if qualified(a, x) == qualified(b, y) {
				return true
			}
		}
	}
	return false
}

// currentDeployment is the Ingester's Deployment, nil when there is none that it controls.
func (r *IngesterReconciler) currentDeployment(ctx context.Context, ing *spanflowv1alpha1.Ingester) (*appsv1.Deployment, error) {
	var dep appsv1.Deployment
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ing.Namespace, Name: ingesterObjectName(ing)}, &dep)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !metav1.IsControlledBy(&dep, ing) {
		return nil, nil
	}
	return &dep, nil
}

// observePods says why pods of the Ingester's Deployment cannot run ("" when none is
// failing), lists those that run but are not ready, and counts those not ready yet since
// they were created. The pods are read from the API server, not cached, and only while
// some are not ready: a healthy Ingester costs nothing.
func (r *IngesterReconciler) observePods(ctx context.Context, ing *spanflowv1alpha1.Ingester, dep *appsv1.Deployment) (failure string, notReady []notReadyPod, starting int, err error) {
	if dep == nil || dep.Status.Replicas == 0 || dep.Status.ReadyReplicas >= dep.Status.Replicas {
		return "", nil, 0, nil
	}
	var pods corev1.PodList
	if err := r.APIReader.List(ctx, &pods, client.InNamespace(ing.Namespace), client.MatchingLabels(selectorLabels(ing))); err != nil {
		return "", nil, 0, fmt.Errorf("listing the ingester pods: %w", err)
	}
	return podFailures(pods.Items), notReadyPods(pods.Items), startingPods(pods.Items), nil
}

// replicasGiven is the size the autoscaler last gave the Deployment: its spec.replicas
// while the operator's apply owns them (after an operator restart, too), or else —
// someone scaled the Deployment itself: kubectl scale deployment, an HPA or KEDA aimed at
// it — the last decision the status recorded. Someone else's size is drift to put back,
// not a size to start from (it may exceed maxReplicas or the partitions). Nil before
// there is a Deployment.
func replicasGiven(ing *spanflowv1alpha1.Ingester, current *appsv1.Deployment) *int32 {
	if current == nil {
		return nil
	}
	owned, err := appsv1ac.ExtractDeployment(current, string(FieldOwner))
	if err == nil && owned.Spec != nil && owned.Spec.Replicas != nil && *owned.Spec.Replicas == ptr.Deref(current.Spec.Replicas, 1) {
		return current.Spec.Replicas
	}
	if a := ing.Status.Autoscaling; a != nil {
		return ptr.To(a.DesiredReplicas)
	}
	return nil
}

// scaledByOthers is the Deployment's replicas when someone other than the operator set
// them to a value other than want (nil otherwise): the apply is about to put them back.
func scaledByOthers(current *appsv1.Deployment, want int32) *int32 {
	if current == nil || current.Spec.Replicas == nil || *current.Spec.Replicas == want {
		return nil
	}
	owned, err := appsv1ac.ExtractDeployment(current, string(FieldOwner))
	if err != nil || (owned.Spec != nil && owned.Spec.Replicas != nil && *owned.Spec.Replicas == *current.Spec.Replicas) {
		return nil // the operator's own size, now changing
	}
	return current.Spec.Replicas
}

// autoscaledNote adds, for an Ingester the built-in autoscaler sizes, that it owns the
// replicas.
func autoscaledNote(ing *spanflowv1alpha1.Ingester) string {
	if autoscale.Enabled(ing) {
		return "; with spec.autoscaling enabled the built-in autoscaler sizes it, and a scale of the Ingester is ignored too"
	}
	return ""
}

// scalersNote adds the HorizontalPodAutoscalers aimed at the Deployment, which the
// Degraded condition names too.
func scalersNote(conflicts []scalerConflict) string {
	var hpas []string
	for _, c := range conflicts {
		if c.atDeployment {
			hpas = append(hpas, c.hpa)
		}
	}
	if hpas == nil {
		return ""
	}
	return fmt.Sprintf(". HorizontalPodAutoscaler %s aims at the Deployment: see the Ingester's Degraded condition (%s)",
		strings.Join(hpas, ", "), spanflowv1alpha1.ReasonScalerConflict)
}

// recordGroupInUse corrects, in memory, the consumer group the Ingester's status records
// to the one its Deployment's pods consume as, when the Deployment says. A status written
// by hand, or lost, would otherwise hold the Ingester at ConsumerGroupChanged for good, or
// let a changed spec move the running pods to a new group. The next status write keeps it.
func recordGroupInUse(ing *spanflowv1alpha1.Ingester, current *appsv1.Deployment) {
	if current == nil {
		return
	}
	if group := current.Annotations[consumerGroupAnnotation]; group != "" {
		ing.Status.ConsumerGroup = group
	}
}

// conflicts names the objects the Ingester would apply that exist but are not controlled
// by it (nil when there are none). The operator never takes such an object over: applying
// it with an owner reference would make it the Ingester's, and deleting the Ingester
// would delete it. A PodDisruptionBudget counts only when the Ingester may run more than
// one pod: with one, the operator makes none, and a user's own is not in its way.
func (r *IngesterReconciler) conflicts(ctx context.Context, ing *spanflowv1alpha1.Ingester) (*specProblem, error) {
	type kind struct {
		name string
		obj  client.Object
	}
	kinds := []kind{{"ServiceAccount", &corev1.ServiceAccount{}}, {"ConfigMap", &corev1.ConfigMap{}}, {"Service", &corev1.Service{}},
		{"Deployment", &appsv1.Deployment{}}}
	if desiredReplicas(ing) > 1 || autoscale.Enabled(ing) {
		kinds = append(kinds, kind{"PodDisruptionBudget", &policyv1.PodDisruptionBudget{}})
	}
	key := types.NamespacedName{Namespace: ing.Namespace, Name: ingesterObjectName(ing)}
	var taken, left, leftRefs []string
	leftPods := false
	for _, k := range kinds {
		err := r.Client.Get(ctx, key, k.obj)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		switch {
		case metav1.IsControlledBy(k.obj, ing):
		case leftover(k.obj, ing):
			left = append(left, fmt.Sprintf("%s %q", k.name, key.Name))
			leftRefs = append(leftRefs, strings.ToLower(k.name)+"/"+key.Name)
			leftPods = leftPods || k.name == "Deployment"
		default:
			taken = append(taken, fmt.Sprintf("%s %q", k.name, key.Name))
		}
	}
	var problems []string
	if len(left) > 0 {
		// Renaming the Ingester is no way out here: a new name is a new consumer group
		// (re-reading the topic) beside the old pods, which go on consuming.
		problems = append(problems, fmt.Sprintf("%s made for an Ingester named %q but not controlled by this one (left by an earlier one, deleted with --cascade=orphan or restored from a backup, or their owner reference removed): the operator does not take objects over, and the pods of such a Deployment go on consuming, unmanaged; delete them (kubectl delete -n %s %s) and the operator makes them again",
			strings.Join(left, ", "), ing.Name, ing.Namespace, strings.Join(leftRefs, " ")))
	}
	if len(taken) > 0 {
		problems = append(problems, fmt.Sprintf("not controlled by this Ingester, so the operator leaves them alone: %s; rename or delete them, or give the Ingester another name",
			strings.Join(taken, ", ")))
	}
	if problems == nil {
		return nil, nil
	}
	return &specProblem{reason: spanflowv1alpha1.ReasonResourceConflict, err: errors.New(strings.Join(problems, "; ")), unmanagedPods: leftPods}, nil
}

// leftover is true when obj looks made by the operator for an earlier Ingester of this
// name: its controller is an Ingester of that name (restored from a backup: the UID is
// new), or it has none and carries the labels the operator gives such objects (deleted
// with --cascade=orphan, to which the garbage collector answers by removing the owner
// references). Labels can be copied: this changes what the status says, never what the
// operator does.
func leftover(obj client.Object, ing *spanflowv1alpha1.Ingester) bool {
	if ref := metav1.GetControllerOf(obj); ref != nil {
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		return err == nil && gv.Group == spanflowv1alpha1.GroupVersion.Group && ref.Kind == "Ingester" && ref.Name == ing.Name
	}
	labels := obj.GetLabels()
	for k, v := range objectLabels(ing) {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// apply server-side applies the desired objects and returns the Deployment as stored.
// An object whose fields owned by the operator already equal the desired ones is left
// alone, so a resync of an unchanged Ingester costs the API server nothing; a field
// someone else took over (kubectl edit, kubectl scale) is no longer the operator's, so
// the object differs and is applied, which takes the field back. It is all or nothing:
// the Deployment is checked (a dry run) before anything changes, so that a spec the API
// server refuses there (a pod template field no schema of ours checks) cannot change the
// ConfigMap under running pods, which would read it at their next restart.
func (r *IngesterReconciler) apply(ctx context.Context, ing *spanflowv1alpha1.Ingester, secrets []secretDigest) (*appsv1.Deployment, error) {
	cm, err := desiredConfigMap(ing)
	if err != nil {
		return nil, err
	}
	hash, err := podTemplateHash(ing, secrets)
	if err != nil {
		return nil, err
	}
	key := types.NamespacedName{Namespace: ing.Namespace, Name: ingesterObjectName(ing)}
	deployment := applyStepOf(desiredDeployment(ing, r.IngesterImage, cm, hash), appsv1ac.ExtractDeployment)
	steps := []applyStep{
		applyStepOf(desiredServiceAccount(ing), corev1ac.ExtractServiceAccount),
		applyStepOf(cm, corev1ac.ExtractConfigMap),
		applyStepOf(desiredService(ing), corev1ac.ExtractService),
		deployment,
	}
	if pdb := desiredPodDisruptionBudget(ing); pdb != nil {
		steps = append(steps, applyStepOf(pdb, policyv1ac.ExtractPodDisruptionBudget))
	}
	changed := steps[:0]
	for _, s := range steps {
		same, err := s.unchanged(ctx, r.Client, key)
		if err != nil {
			return nil, err
		}
		if !same && !r.applied.unchanged(s, key) {
			changed = append(changed, s)
		}
	}
	if len(changed) > 0 {
		if err := r.stillThere(ctx, ing); err != nil {
			return nil, err
		}
	}
	if slices.ContainsFunc(changed, func(s applyStep) bool { return s.obj == deployment.obj }) {
		if err := checkDeployment(ctx, r.Client, key, deployment); err != nil {
			return nil, err
		}
	}
	for _, s := range changed {
		resourceVersion, err := s.apply(ctx, r.Client, key, ing)
		r.applied.record(s, key, resourceVersion)
		if err != nil {
			return nil, err
		}
	}
	if desiredPodDisruptionBudget(ing) == nil {
		if err := deleteIfExists(ctx, r.Client, key, &policyv1.PodDisruptionBudget{}, ing); err != nil {
			return nil, err
		}
	}
	return r.currentDeployment(ctx, ing)
}

// errBeingDeleted: the Ingester is being deleted (or gone), so nothing is applied.
var errBeingDeleted = errors.New("the Ingester is being deleted")

// stillThere reads the Ingester from the API server before anything is written for it:
// the cache can be behind its deletion. With kubectl delete --cascade=orphan the garbage
// collector frees its objects of their owner reference as soon as the deletion begins; a
// reconcile that still saw the Ingester as it was would find the objects differing (no
// owner reference) and apply them, giving them back to an owner about to go — and the
// collector would then delete them as dangling, the Deployment's pods with them.
func (r *IngesterReconciler) stillThere(ctx context.Context, ing *spanflowv1alpha1.Ingester) error {
	var fresh metav1.PartialObjectMetadata
	fresh.SetGroupVersionKind(spanflowv1alpha1.GroupVersion.WithKind("Ingester"))
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ing), &fresh)
	switch {
	case apierrors.IsNotFound(err):
		return errBeingDeleted
	case err != nil:
		return err
	case fresh.UID != ing.UID || fresh.DeletionTimestamp != nil:
		return errBeingDeleted
	}
	return nil
}

// specProblems are the Degraded reasons whose message names what is wrong in the spec,
// or around it, with no figures that move by themselves (pod counts, log lines).
var specProblems = []string{spanflowv1alpha1.ReasonSecretMissing, spanflowv1alpha1.ReasonInvalidSpec,
	spanflowv1alpha1.ReasonNotAllowed, spanflowv1alpha1.ReasonConsumerGroupChanged, spanflowv1alpha1.ReasonConsumerGroupShared,
	spanflowv1alpha1.ReasonScalerConflict, spanflowv1alpha1.ReasonResourceConflict}

// newSpecProblem is true when Degraded stays True for the same spec problem, which now
// says something else: another Secret missing, another field refused (ApplyFailed, when
// the API server refused the objects as they are: applyRefused). Its warning is what
// `kubectl get events` shows (one fixed and another made read as the first still
// unfixed).
func newSpecProblem(t string, old, now *metav1.Condition, applyRefused bool) bool {
	problem := slices.Contains(specProblems, now.Reason) || (applyRefused && now.Reason == spanflowv1alpha1.ReasonApplyFailed)
	return t == spanflowv1alpha1.ConditionDegraded && now.Status == metav1.ConditionTrue && problem &&
		problemOf(old.Message) != problemOf(now.Message)
}

// problemOf is a spec problem's message without what it says of the pods, which changes
// when pods come or go (the Deployment scaled by hand), not the problem.
func problemOf(message string) string {
	return strings.TrimSuffix(strings.TrimSuffix(message, podsLeftNone), podsLeftKept)
}

// writeStatus writes the status in one request when it differs from the stored one, and
// emits an event when Ready or Degraded changes (or a spec problem changes its message).
func (r *IngesterReconciler) writeStatus(ctx context.Context, ing *spanflowv1alpha1.Ingester, status spanflowv1alpha1.IngesterStatus, applyRefused bool) error {
	if equality.Semantic.DeepEqual(ing.Status, status) {
		return nil
	}
	before := ing.Status.DeepCopy()
	patchBase := client.MergeFrom(ing.DeepCopy())
	ing.Status = status
	patch, err := countsWritten(patchBase, ing)
	if err != nil {
		return err
	}
	if err := r.Client.Status().Patch(ctx, ing, patch); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("writing status: %w", err)
	}
	for _, t := range []string{spanflowv1alpha1.ConditionReady, spanflowv1alpha1.ConditionDegraded} {
		old, now := meta.FindStatusCondition(before.Conditions, t), meta.FindStatusCondition(status.Conditions, t)
		if now == nil || (old != nil && old.Status == now.Status && old.Reason == now.Reason && !newSpecProblem(t, old, now, applyRefused)) {
			continue
		}
		eventType := corev1.EventTypeNormal
		if t == spanflowv1alpha1.ConditionDegraded && now.Status == metav1.ConditionTrue {
			eventType = corev1.EventTypeWarning
		}
		if t == spanflowv1alpha1.ConditionDegraded && old == nil && now.Status == metav1.ConditionFalse {
			continue // "nothing is wrong" from the start is not news
		}
		if d := meta.FindStatusCondition(status.Conditions, spanflowv1alpha1.ConditionDegraded); t == spanflowv1alpha1.ConditionReady &&
			now.Status == metav1.ConditionFalse && d != nil && d.Status == metav1.ConditionTrue && d.Reason == now.Reason {
			continue // Degraded's warning tells the same, once
		}
		r.Recorder.Eventf(ing, nil, eventType, now.Reason, "Reconcile", "%s", now.Message)
	}
	if a := status.Autoscaling; a != nil && a.IgnoredReplicas != nil &&
		(before.Autoscaling == nil || !equality.Semantic.DeepEqual(before.Autoscaling.IgnoredReplicas, a.IgnoredReplicas)) {
		r.Recorder.Eventf(ing, nil, corev1.EventTypeWarning, spanflowv1alpha1.ReasonReplicasIgnored, "Reconcile",
			"spec.replicas is %d, but spec.autoscaling is enabled and the autoscaler runs %d pods: spec.replicas (and kubectl scale) has no effect until autoscaling is disabled",
			*a.IgnoredReplicas, a.DesiredReplicas)
	}
	return nil
}

// countsWritten is the merge patch from base to ing, with the status's pod counts always
// in it: a diff of two zeros says nothing, and a count the stored object lacks prints as a
// blank in kubectl get instead of 0.
func countsWritten(base client.Patch, ing *spanflowv1alpha1.Ingester) (client.Patch, error) {
	data, err := base.Data(ing)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	status, _ := doc["status"].(map[string]any)
	if status == nil {
		status = map[string]any{}
		doc["status"] = status
	}
	status["replicas"], status["readyReplicas"] = ing.Status.Replicas, ing.Status.ReadyReplicas
	if data, err = json.Marshal(doc); err != nil {
		return nil, err
	}
	return client.RawPatch(types.MergePatchType, data), nil
}

// SetupWithManager registers the reconciler. Changes to owned objects requeue their
// Ingester (so drift is corrected and Deployment progress reaches the status), and so does
// any change to a Secret an Ingester references (so rotating it rolls the pods), and a
// HorizontalPodAutoscaler made, retargeted or deleted that aims at an Ingester or its
// Deployment (so that the status reports a conflict at once) — when the operator may read
// them.
func (r *IngesterReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &spanflowv1alpha1.Ingester{}, secretIndex,
		func(obj client.Object) []string { return referencedSecretNames(obj.(*spanflowv1alpha1.Ingester)) }); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &spanflowv1alpha1.Ingester{}, groupIndex,
		func(obj client.Object) []string { return []string{groupInUse(obj.(*spanflowv1alpha1.Ingester))} }); err != nil {
		return err
	}
	r.secrets = newSecretCache(r.Client, r.APIReader)
	if err := mgr.Add(r.Lag); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	visible, err := mayWatchScalers(ctx, r.APIReader, r.Client, r.WatchNamespaces)
	if err != nil {
		return err
	}
	r.scalersVisible = visible
	b := ctrl.NewControllerManagedBy(mgr).
		For(&spanflowv1alpha1.Ingester{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		// Only the metadata of Secrets is watched and cached, never their contents.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.ingestersReferencing), builder.OnlyMetadata)
	if visible {
		// The whole HPA: its target is in the spec.
		b = b.Watches(&autoscalingv2.HorizontalPodAutoscaler{}, handler.EnqueueRequestsFromMapFunc(ingestersScaledBy),
			builder.WithPredicates(scalerChanged))
	} else {
		mgr.GetLogger().V(1).Info("HorizontalPodAutoscalers cannot be listed and watched: those aimed at an Ingester's Deployment are not reported (grant get, list and watch on horizontalpodautoscalers.autoscaling, as the chart does)",
			"namespaces", r.WatchNamespaces)
	}
	return b.Named("ingester").Complete(r)
}

// ingestersReferencing maps a Secret to the Ingesters of its namespace that reference it.
func (r *IngesterReconciler) ingestersReferencing(ctx context.Context, secret client.Object) []reconcile.Request {
	var list spanflowv1alpha1.IngesterList
	if err := r.Client.List(ctx, &list, client.InNamespace(secret.GetNamespace()),
		client.MatchingFields{secretIndex: secret.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "Listing the Ingesters that reference a Secret", "secret", secret.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return reqs
}

// settled is true when every pod of the Deployment runs its current template and is ready
// (no Deployment: nothing to wait for).
func settled(dep *appsv1.Deployment) bool {
	return dep == nil || deploymentRolledOut(dep, ptr.Deref(dep.Spec.Replicas, 1))
}

// sized is the Ingester with replicas and parallelism replaced by the autoscaler's
// decision, for the builders of the desired objects and the status.
func sized(ing *spanflowv1alpha1.Ingester, d autoscale.Decision) *spanflowv1alpha1.Ingester {
	out := ing.DeepCopy()
	out.Spec.Replicas, out.Spec.Parallelism = ptr.To(d.Replicas), ptr.To(d.Parallelism)
	return out
}
