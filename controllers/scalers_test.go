package controllers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

// hpaAt is an HPA of namespace ns named name aiming at apiVersion, kind and target.
func hpaAt(ns, name, apiVersion, kind, target string) autoscalingv2.HorizontalPodAutoscaler {
	return autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 5,
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: apiVersion, Kind: kind, Name: target}}}
}

// madeByKEDA is hpa as KEDA makes it for ScaledObject so: its controller, and its labels.
func madeByKEDA(hpa autoscalingv2.HorizontalPodAutoscaler, so string) autoscalingv2.HorizontalPodAutoscaler {
	hpa.OwnerReferences = []metav1.OwnerReference{{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: so, UID: "u", Controller: ptr.To(true)}}
	hpa.Labels = map[string]string{"app.kubernetes.io/managed-by": "keda-operator", "app.kubernetes.io/part-of": so, "scaledobject.keda.sh/name": so}
	return hpa
}

func TestScalerConflicts(t *testing.T) {
	const ns = "team"
	labeled := hpaAt(ns, "custom-name", "apps/v1", "Deployment", "traces-ingester")
	labeled.Labels = map[string]string{"scaledobject.keda.sh/name": "from-label"}
	oldKEDA := hpaAt(ns, "keda-hpa-old", "apps/v1", "Deployment", "traces-ingester")
	oldKEDA.Labels = map[string]string{"app.kubernetes.io/managed-by": "keda-operator", "app.kubernetes.io/part-of": "old"}
	going := hpaAt(ns, "going", "apps/v1", "Deployment", "traces-ingester")
	going.DeletionTimestamp = &metav1.Time{}
	cases := []struct {
		name        string
		autoscaling bool
		hpa         autoscalingv2.HorizontalPodAutoscaler
		want        *scalerConflict // nil: no conflict
		says        []string
	}{
		{"at the Deployment", false, hpaAt(ns, "cpu", "apps/v1", "Deployment", "traces-ingester"),
			&scalerConflict{hpa: "team/cpu", atDeployment: true},
			[]string{"HorizontalPodAutoscaler team/cpu scales the Deployment traces-ingester, whose replicas are the Ingester's",
				"aim it at the Ingester (scaleTargetRef: {apiVersion: spanflow.dev/v1alpha1, kind: Ingester, name: traces})",
				"or delete it and use spec.autoscaling"}},
		{"at the Deployment, autoscaling on", true, hpaAt(ns, "cpu", "apps/v1", "Deployment", "traces-ingester"),
			&scalerConflict{hpa: "team/cpu", atDeployment: true},
			[]string{"whose replicas are the built-in autoscaler's (spec.autoscaling)", "delete it, or aim it at the Ingester (scaleTargetRef: {apiVersion: spanflow.dev/v1alpha1, kind: Ingester, name: traces}) and turn spec.autoscaling off"}},
		{"at the Deployment, an old API version", false, hpaAt(ns, "old", "extensions/v1beta1", "Deployment", "traces-ingester"),
			&scalerConflict{hpa: "team/old", atDeployment: true}, nil},
		{"at the Deployment, apps/v1beta2", false, hpaAt(ns, "old", "apps/v1beta2", "Deployment", "traces-ingester"),
			&scalerConflict{hpa: "team/old", atDeployment: true}, nil},
		{"KEDA at the Deployment", false, madeByKEDA(hpaAt(ns, "keda-hpa-lag", "apps/v1", "Deployment", "traces-ingester"), "lag"),
			&scalerConflict{hpa: "team/keda-hpa-lag", scaledObject: "lag", atDeployment: true},
			[]string{`KEDA ScaledObject "lag" (through HorizontalPodAutoscaler team/keda-hpa-lag) scales the Deployment traces-ingester`,
				"aim the ScaledObject at the Ingester (scaleTargetRef: {apiVersion: spanflow.dev/v1alpha1, kind: Ingester, name: traces}), or delete the ScaledObject"}},
		{"KEDA known by its label only", false, labeled, &scalerConflict{hpa: "team/custom-name", scaledObject: "from-label", atDeployment: true}, nil},
		{"KEDA of an older version", false, oldKEDA, &scalerConflict{hpa: "team/keda-hpa-old", scaledObject: "old", atDeployment: true}, nil},
		{"KEDA known by its name only", false, hpaAt(ns, "keda-hpa-named", "apps/v1", "Deployment", "traces-ingester"),
			&scalerConflict{hpa: "team/keda-hpa-named", scaledObject: "named", atDeployment: true}, nil},
		{"at the Ingester, autoscaling off: as it should be", false, hpaAt(ns, "right", "spanflow.dev/v1alpha1", "Ingester", "traces"), nil, nil},
		{"at the Ingester, autoscaling on", true, hpaAt(ns, "both", "spanflow.dev/v1alpha1", "Ingester", "traces"),
			&scalerConflict{hpa: "team/both"},
			[]string{"HorizontalPodAutoscaler team/both scales the Ingester, but spec.autoscaling is enabled", "the HPA changes nothing; delete it, or turn spec.autoscaling off"}},
		{"KEDA at the Ingester, autoscaling on", true, madeByKEDA(hpaAt(ns, "keda-hpa-both", "spanflow.dev/v1beta1", "Ingester", "traces"), "both"),
			&scalerConflict{hpa: "team/keda-hpa-both", scaledObject: "both"}, []string{"delete the ScaledObject, or turn spec.autoscaling off"}},
		{"another Ingester", true, hpaAt(ns, "other", "spanflow.dev/v1alpha1", "Ingester", "logs"), nil, nil},
		{"another Deployment", false, hpaAt(ns, "other", "apps/v1", "Deployment", "traces"), nil, nil},
		{"another Ingester's Deployment", false, hpaAt(ns, "other", "apps/v1", "Deployment", "logs-ingester"), nil, nil},
		{"a StatefulSet of the name", false, hpaAt(ns, "other", "apps/v1", "StatefulSet", "traces-ingester"), nil, nil},
		{"a Deployment of the name in another group", false, hpaAt(ns, "other", "example.com/v1", "Deployment", "traces-ingester"), nil, nil},
		{"an Ingester of the name in another group", true, hpaAt(ns, "other", "example.com/v1", "Ingester", "traces"), nil, nil},
		{"another namespace", true, hpaAt("elsewhere", "cpu", "apps/v1", "Deployment", "traces-ingester"), nil, nil},
		{"being deleted", false, going, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ing := &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "traces"}}
			if tc.autoscaling {
				ing.Spec.Autoscaling = &spanflowv1alpha1.AutoscalingSpec{Enabled: true}
			}
			got := scalerConflicts(ing, []autoscalingv2.HorizontalPodAutoscaler{tc.hpa})
			switch {
			case tc.want == nil && len(got) != 0:
				t.Fatalf("got %+v, want no conflict", got)
			case tc.want == nil:
				return
			case len(got) != 1 || got[0] != *tc.want:
				t.Fatalf("got %+v, want %+v", got, *tc.want)
			}
			msg := scalerConflictsMessage(ing, got)
			for _, s := range tc.says {
				if !strings.Contains(msg, s) {
					t.Errorf("the message lacks %q:\n%s", s, msg)
				}
			}
		})
	}
}

func TestScalerConflictsAreSortedAndJoined(t *testing.T) {
	ing := &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "traces"}}
	got := scalerConflicts(ing, []autoscalingv2.HorizontalPodAutoscaler{
		hpaAt("team", "zz", "apps/v1", "Deployment", "traces-ingester"),
		hpaAt("team", "right", "spanflow.dev/v1alpha1", "Ingester", "traces"),
		hpaAt("team", "aa", "apps/v1", "Deployment", "traces-ingester"),
	})
	if names := []string{got[0].hpa, got[1].hpa}; len(got) != 2 || !slices.Equal(names, []string{"team/aa", "team/zz"}) {
		t.Fatalf("got %+v", got)
	}
	msg := scalerConflictsMessage(ing, got)
	if strings.Count(msg, "HorizontalPodAutoscaler team/") != 2 || strings.Index(msg, "team/aa") > strings.Index(msg, "team/zz") {
		t.Errorf("both HPAs are not named, in order: %s", msg)
	}
	if strings.Contains(msg, "spec.paused") {
		t.Errorf("an Ingester not paused is said to be: %s", msg)
	}
	ing.Spec.Paused = true
	if msg := scalerConflictsMessage(ing, got); !strings.Contains(msg, "puts nothing back") {
		t.Errorf("a paused Ingester's message says the operator puts the replicas back: %s", msg)
	}
}

func TestIngestersScaledBy(t *testing.T) {
	for _, tc := range []struct {
		hpa  autoscalingv2.HorizontalPodAutoscaler
		want string // namespace/name, "" for none
	}{
		{hpaAt("team", "a", "apps/v1", "Deployment", "traces-ingester"), "team/traces"},
		{hpaAt("team", "a", "spanflow.dev/v1alpha1", "Ingester", "traces"), "team/traces"},
		{hpaAt("team", "a", "apps/v1", "Deployment", "web"), ""},
		{hpaAt("team", "a", "apps/v1", "Deployment", "-ingester"), ""},
		{hpaAt("team", "a", "apps/v1", "StatefulSet", "traces-ingester"), ""},
	} {
		var got []string
		for _, r := range ingestersScaledBy(context.Background(), &tc.hpa) {
			got = append(got, r.String())
		}
		if want := []string{tc.want}; (tc.want == "" && got != nil) || (tc.want != "" && !slices.Equal(got, want)) {
			t.Errorf("%+v: got %v, want %q", tc.hpa.Spec.ScaleTargetRef, got, tc.want)
		}
	}
}

func TestScalerChanged(t *testing.T) {
	base := hpaAt("team", "a", "apps/v1", "Deployment", "traces-ingester")
	statusOnly := base.DeepCopy()
	statusOnly.Status.DesiredReplicas = 4
	statusOnly.ResourceVersion = "2"
	retargeted := base.DeepCopy()
	retargeted.Spec.ScaleTargetRef = autoscalingv2.CrossVersionObjectReference{APIVersion: "spanflow.dev/v1alpha1", Kind: "Ingester", Name: "traces"}
	relabeled := base.DeepCopy()
	relabeled.Labels = map[string]string{"scaledobject.keda.sh/name": "x"}
	for name, tc := range map[string]struct {
		next *autoscalingv2.HorizontalPodAutoscaler
		want bool
	}{"status": {statusOnly, false}, "target": {retargeted, true}, "labels": {relabeled, true}} {
		if got := scalerChanged.Update(event.UpdateEvent{ObjectOld: &base, ObjectNew: tc.next}); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}

// TestMayWatchScalers: an operator without the right to list and watch HPAs (installed
// by an older chart) goes on without looking for them; a failing API server is an error.
func TestMayWatchScalers(t *testing.T) {
	hpas := schema.GroupResource{Group: "autoscaling", Resource: "horizontalpodautoscalers"}
	reviews := schema.GroupResource{Group: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"}
	// failing refuses lists in one namespace with err; its access review answers watch
	// in that namespace with watchAllowed, or fails with reviewErr.
	failing := func(inNamespace string, err error, watchAllowed bool, reviewErr error) client.Client {
		return fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
			List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				var o client.ListOptions
				o.ApplyOptions(opts)
				if o.Namespace == inNamespace {
					return err
				}
				return c.List(ctx, list, opts...)
			},
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				review := obj.(*authorizationv1.SelfSubjectAccessReview)
				a := review.Spec.ResourceAttributes
				if a.Verb != "watch" || a.Resource != "horizontalpodautoscalers" || a.Group != "autoscaling" {
					t.Errorf("asked about %+v", a)
				}
				review.Status.Allowed = a.Namespace != inNamespace || watchAllowed
				if a.Namespace == inNamespace {
					return reviewErr
				}
				return nil
			}}).Build()
	}
	forbidden := apierrors.NewForbidden(hpas, "", errors.New("no"))
	for _, tc := range []struct {
		name       string
		client     client.Client
		namespaces []string
		want       bool
		wantErr    bool
	}{
		{"allowed everywhere", failing("nowhere", nil, true, nil), nil, true, false},
		{"forbidden cluster-wide", failing("", forbidden, true, nil), nil, false, false},
		{"forbidden cluster-wide, allowed in the watched namespaces", failing("", forbidden, true, nil), []string{"a", "b"}, true, false},
		{"forbidden in one watched namespace", failing("b", forbidden, true, nil), []string{"a", "b"}, false, false},
		{"listed but not watched", failing("", nil, false, nil), nil, false, false},
		{"listed but not watched in one watched namespace", failing("b", nil, false, nil), []string{"a", "b"}, false, false},
		{"listed, and no right to ask about watching", failing("", nil, false, apierrors.NewForbidden(reviews, "", errors.New("no"))), nil, true, false},
		{"not served", failing("", apierrors.NewNotFound(hpas, ""), true, nil), nil, false, false},
		{"the API server fails", failing("", apierrors.NewServiceUnavailable("down"), true, nil), nil, false, true},
		{"the access review fails", failing("", nil, false, apierrors.NewServiceUnavailable("down")), nil, false, true},
	} {
		got, err := mayWatchScalers(context.Background(), tc.client, tc.client, tc.namespaces)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%s: %v, %v; want %v, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}
