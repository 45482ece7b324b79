package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// TestScalersAreWatchedOnlyWhereTheOperatorMay: under the API server's RBAC, an operator
// whose role lets it list HorizontalPodAutoscalers but not watch them (a role cut down by
// hand) does not watch them — its informer would log "Failed to watch" at every retry
// and learn of changes only when it lists again — and one allowed both does.
func TestScalersAreWatchedOnlyWhereTheOperatorMay(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const name = "spanflow-test-hpa-lister"
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: []string{"get", "list"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}}}
	for _, o := range []client.Object{role, binding} {
		g.Expect(k8sClient.Create(ctx, o)).To(Succeed())
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), o) })
	}
	user, err := testEnv.AddUser(envtest.User{Name: name}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	operator, err := client.New(user.Config(), client.Options{Scheme: k8sClient.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())

	// Once the role applies, the list is allowed and the watch is not.
	g.Eventually(func() error {
		return operator.List(ctx, &autoscalingv2.HorizontalPodAutoscalerList{}, client.Limit(1))
	}, eventually, poll).Should(Succeed())
	watched, err := mayWatchScalers(ctx, operator, operator, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(watched).To(BeFalse(), "HorizontalPodAutoscalers are watched with the right to list them only")

	role.Rules[0].Verbs = append(role.Rules[0].Verbs, "watch")
	g.Expect(k8sClient.Update(ctx, role)).To(Succeed())
	g.Eventually(func(g Gomega) {
		watched, err := mayWatchScalers(ctx, operator, operator, nil)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(watched).To(BeTrue())
	}, eventually, poll).Should(Succeed())
}
