package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// applyStep is one desired object of an Ingester: its apply configuration, and an empty
// object of its kind to read the live one into.
type applyStep struct {
	obj     client.Object
	desired runtime.ApplyConfiguration
	// digest identifies desired as built (an apply writes the answer into it).
	digest [sha256.Size]byte
	// owned is true when the live object's fields owned by the operator equal desired.
	owned func(live client.Object) bool
}

func applyStepOf[T any, PT interface {
	*T
	client.Object
}, AC runtime.ApplyConfiguration](desired AC, extract func(PT, string) (AC, error)) applyStep {
	raw, _ := json.Marshal(desired)
	return applyStep{obj: PT(new(T)), desired: desired, digest: sha256.Sum256(raw), owned: func(live client.Object) bool {
		owned, err := extract(live.(PT), string(FieldOwner))
		return err == nil && equality.Semantic.DeepEqual(owned, desired)
	}}
}

// appliedVersions remembers, for each object the operator applied, what it applied and
// the resourceVersion the API server answered with. An object still at that version is as
// that apply left it, whatever admission changed on the way in — a policy or webhook that
// rewrites an image to a registry mirror, say, leaves fields the operator owns differing
// from its configuration for good — and is not applied again while the desired object is
// the same: a resync costs no writes. The zero value is ready to use.
type appliedVersions struct {
	mu       sync.Mutex
	versions map[appliedKey]appliedVersion
}

type appliedKey struct {
	kind string
	key  types.NamespacedName
}

type appliedVersion struct {
	digest          [sha256.Size]byte
	resourceVersion string
}

// unchanged is true when the live object in s.obj is the one the operator's apply of the
// same desired object left.
func (a *appliedVersions) unchanged(s applyStep, key types.NamespacedName) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.versions[appliedKey{s.kind(), key}]
	return ok && s.obj.GetName() != "" && v.digest == s.digest && v.resourceVersion == s.obj.GetResourceVersion()
}

// record remembers that applying s left the object at resourceVersion ("": forget it).
func (a *appliedVersions) record(s applyStep, key types.NamespacedName, resourceVersion string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := appliedKey{s.kind(), key}
	if resourceVersion == "" {
		delete(a.versions, k)
		return
	}
	if a.versions == nil {
		a.versions = map[appliedKey]appliedVersion{}
	}
	a.versions[k] = appliedVersion{digest: s.digest, resourceVersion: resourceVersion}
}

// forget drops what is remembered of the objects named key.
func (a *appliedVersions) forget(key types.NamespacedName) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.versions {
		if k.key == key {
			delete(a.versions, k)
		}
	}
}

// kind names the step's object in errors: "Deployment".
func (s applyStep) kind() string { return reflect.TypeOf(s.obj).Elem().Name() }

// unchanged reads the live object (from the cache) into s.obj and reports whether it
// already is as desired; s.obj's name is empty when there is none.
func (s applyStep) unchanged(ctx context.Context, c client.Client, key types.NamespacedName) (bool, error) {
	err := c.Get(ctx, key, s.obj)
	switch {
	case err == nil:
		return s.owned(s.obj) && ownUpdates(s.obj) == nil, nil
	case apierrors.IsNotFound(err):
		s.obj.SetName("")
		return false, nil
	default:
		return false, err
	}
}

// apply server-side applies the step's object and returns the resourceVersion it left
// ("" when unknown). When the API server refuses the result as
// invalid and the object is the Ingester's, someone's edit left fields the operator's
// cannot merge with — a Service port or container port changed by hand keeps its name,
// which the operator's port then repeats — and the object is put back whole: the
// Deployment by replacing its spec (its pods roll, as the edit's own change did), the
// others, which hold no state, by deleting and applying them afresh.
func (s applyStep) apply(ctx context.Context, c client.Client, key types.NamespacedName, ing metav1.Object) (string, error) {
	err := c.Apply(ctx, s.desired, FieldOwner, client.ForceOwnership)
	live := s.obj
	if unmergeable(err) && s.obj.GetName() != "" && metav1.IsControlledBy(s.obj, ing) {
		log.FromContext(ctx).Info("Putting back an object edited into one the operator's fields cannot merge with", "kind", s.kind(), "name", key.Name, "refused", err.Error())
		if live, err = s.putBack(ctx, c); err == nil {
			err = c.Apply(ctx, s.desired, FieldOwner, client.ForceOwnership)
		}
	}
	// A put-back's update owns the fields it set under an entry of its own, which would
	// keep a field the Ingester drops later (an apply removes only what no one else
	// owns). The entry goes once the apply owns those fields again; if the object moved
	// meanwhile, the next reconcile sees the entry and tries again.
	if patch := ownUpdates(live); err == nil && live != nil && patch != nil {
		err = c.Patch(ctx, live, client.RawPatch(types.JSONPatchType, patch))
		if err == nil {
			return live.GetResourceVersion(), nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("applying %s %s: %w", s.kind(), key.Name, err)
	}
	var answer metav1.PartialObjectMetadata
	if jsonCopy(s.desired, &answer) != nil {
		return "", nil
	}
	return answer.ResourceVersion, nil
}

// ownUpdates is the JSON patch that removes the managedFields entries of the operator's
// own updates from obj, each guarded by a test of what it removes; nil when there are none.
func ownUpdates(obj client.Object) []byte {
	if obj == nil {
		return nil
	}
	var ops []map[string]any
	fields := obj.GetManagedFields()
	for i := len(fields) - 1; i >= 0; i-- { // from the end: removals keep earlier indexes
		if f := fields[i]; f.Manager == string(FieldOwner) && f.Operation == metav1.ManagedFieldsOperationUpdate {
			path := fmt.Sprintf("/metadata/managedFields/%d", i)
			ops = append(ops,
				map[string]any{"op": "test", "path": path + "/manager", "value": f.Manager},
				map[string]any{"op": "test", "path": path + "/operation", "value": string(f.Operation)},
				map[string]any{"op": "remove", "path": path})
		}
	}
	if ops == nil {
		return nil
	}
	patch, _ := json.Marshal(ops)
	return patch
}

// unmergeable is true for the refusal a merge with someone's edit brings: a list entry
// whose name repeats another's. Other refusals (an admission policy, say) are left to the
// status: putting an object back is for what the operator's own fields cannot fix.
func unmergeable(err error) bool {
	if !apierrors.IsInvalid(err) {
		return false
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return false
	}
	for _, cause := range status.Status().Details.Causes {
		if cause.Type == metav1.CauseTypeFieldValueDuplicate {
			return true
		}
	}
	return false
}

// putBack replaces the object and returns it as the API server stored it (nil when it
// was deleted, to be applied afresh).
func (s applyStep) putBack(ctx context.Context, c client.Client) (client.Object, error) {
	live, ok := s.obj.(*appsv1.Deployment)
	if !ok {
		uid := s.obj.GetUID()
		return nil, client.IgnoreNotFound(c.Delete(ctx, s.obj, client.Preconditions{UID: &uid}))
	}
	desired, err := deploymentOf(s.desired.(*appsv1ac.DeploymentApplyConfiguration))
	if err != nil {
		return s.obj, err
	}
	replaced := live.DeepCopy()
	replaced.Spec = desired.Spec
	keepOthersSettings(replaced, live)
	replaced.ResourceVersion = "" // a repair: whatever the cache is behind on is replaced too
	return replaced, c.Update(ctx, replaced, FieldOwner)
}

// keepOthersSettings carries into a Deployment whose spec is replaced what others set in
// it beside the operator's fields, and what replacing it would undo: the pod template's
// annotations the operator does not own (kubectl rollout restart's restartedAt: without it
// the pods would roll once more, as if restarted again) and a paused rollout.
func keepOthersSettings(replaced, live *appsv1.Deployment) {
	var mine map[string]string
	if owned, err := appsv1ac.ExtractDeployment(live, string(FieldOwner)); err == nil && owned.Spec != nil &&
		owned.Spec.Template != nil && owned.Spec.Template.ObjectMetaApplyConfiguration != nil {
		mine = owned.Spec.Template.Annotations
	}
	for k, v := range live.Spec.Template.Annotations {
		_, owned := mine[k]
		_, set := replaced.Spec.Template.Annotations[k]
		if owned || set {
			continue
		}
		if replaced.Spec.Template.Annotations == nil {
			replaced.Spec.Template.Annotations = map[string]string{}
		}
		replaced.Spec.Template.Annotations[k] = v
	}
	replaced.Spec.Paused = live.Spec.Paused
}

// checkDeployment asks the API server, in a dry run, whether the desired Deployment is
// valid on its own: applied over a live one, its spec replaces the live spec, so that a
// field someone else set there (which apply would put right) is not taken for a fault
// of the Ingester's spec.
func checkDeployment(ctx context.Context, c client.Client, key types.NamespacedName, s applyStep) error {
	var err error
	if live := s.obj.(*appsv1.Deployment); live.Name == "" {
		// Apply writes the answer into the configuration: a copy, so that the real apply
		// does not send the dry run's UID.
		var check appsv1ac.DeploymentApplyConfiguration
		if err = jsonCopy(s.desired, &check); err == nil {
			err = c.Apply(ctx, &check, FieldOwner, client.ForceOwnership, client.DryRunAll)
		}
	} else {
		var desired *appsv1.Deployment
		if desired, err = deploymentOf(s.desired.(*appsv1ac.DeploymentApplyConfiguration)); err == nil {
			check := live.DeepCopy()
			check.Spec = desired.Spec
			// Unconditional: the cached copy is often behind the Deployment's status
			// updates, and a conflict would read as a refusal.
			check.ResourceVersion = ""
			err = c.Update(ctx, check, FieldOwner, client.DryRunAll)
		}
	}
	if apierrors.IsInvalid(err) {
		return fmt.Errorf("the Deployment %s would be refused, so nothing was changed: %w", key.Name, err)
	}
	return err // a stale read (conflict) or an API failure: tried again
}

// refusedAsItIs is true of an apply the API server refuses for what it holds, or for who
// sends it — invalid, forbidden (a policy, an admission webhook, a quota, the operator's
// own role), too large — which trying again soon will not change, unlike a conflict or
// an API server that did not answer.
func refusedAsItIs(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err)
}

// deploymentOf is the Deployment an apply configuration describes.
func deploymentOf(ac *appsv1ac.DeploymentApplyConfiguration) (*appsv1.Deployment, error) {
	var d appsv1.Deployment
	if err := jsonCopy(ac, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// jsonCopy copies from into to through their JSON: between an apply configuration and
// its type, or into a new apply configuration.
func jsonCopy(from, to any) error {
	raw, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, to)
}

// deleteIfExists deletes the object if the cache has it and owner controls it.
func deleteIfExists(ctx context.Context, c client.Client, key types.NamespacedName, obj client.Object, owner metav1.Object) error {
	if err := c.Get(ctx, key, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, owner) {
		return nil
	}
	if err := c.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting %T %s: %w", obj, key.Name, err)
	}
	return nil
}
