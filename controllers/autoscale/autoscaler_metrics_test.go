package autoscale

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

// testIngester is an Ingester with the least a spec holds.
func testIngester(ns, name string) *spanflowv1alpha1.Ingester {
	return &spanflowv1alpha1.Ingester{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: spanflowv1alpha1.IngesterSpec{Kafka: spanflowv1alpha1.KafkaSpec{Brokers: []string{"127.0.0.1:9092"}, Topic: "spans"}}}
}

// TestOperatorMetricsForAlerts: what the chart's alerts read of an Ingester — its
// conditions with their reasons, whether Kafka could be seen, its lag target — one
// series per condition, replaced when the reason changes, gone with the Ingester.
func TestOperatorMetricsForAlerts(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := NewAutoscaler(reg)
	ing := testIngester("obs", "traces")
	ing.Spec.Autoscaling = &spanflowv1alpha1.AutoscalingSpec{Enabled: true, TargetLagSeconds: ptr.To[int32](30)}
	status := func(degraded metav1.ConditionStatus, reason string, stale bool) spanflowv1alpha1.IngesterStatus {
		return spanflowv1alpha1.IngesterStatus{Lag: &spanflowv1alpha1.LagStatus{Records: 10, Seconds: 3, Stale: stale},
			Conditions: []metav1.Condition{
				{Type: spanflowv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: spanflowv1alpha1.ReasonAvailable},
				{Type: spanflowv1alpha1.ConditionDegraded, Status: degraded, Reason: reason},
			}}
	}
	a.Record(ing, status(metav1.ConditionTrue, spanflowv1alpha1.ReasonKafkaUnreachable, true))
	a.Record(ing, status(metav1.ConditionTrue, spanflowv1alpha1.ReasonSecretMissing, false))
	want := `
# HELP spanflow_ingester_condition 1 when the Ingester's condition (Ready, Progressing, Degraded) is True, 0 when False; reason is the condition's reason.
# TYPE spanflow_ingester_condition gauge
spanflow_ingester_condition{ingester="traces",namespace="obs",reason="Available",type="Ready"} 1
spanflow_ingester_condition{ingester="traces",namespace="obs",reason="SecretMissing",type="Degraded"} 1
# HELP spanflow_ingester_lag_stale 1 when the operator's latest look at the Ingester's Kafka topic and group failed (the lag figures are the last known ones), else 0.
# TYPE spanflow_ingester_lag_stale gauge
spanflow_ingester_lag_stale{ingester="traces",namespace="obs"} 0
# HELP spanflow_ingester_target_lag_seconds spec.autoscaling.targetLagSeconds of the Ingester, when it sets one: the age of the oldest unconsumed record it should stay under.
# TYPE spanflow_ingester_target_lag_seconds gauge
spanflow_ingester_target_lag_seconds{ingester="traces",namespace="obs"} 30
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "spanflow_ingester_condition", "spanflow_ingester_lag_stale", "spanflow_ingester_target_lag_seconds"); err != nil {
		t.Error(err)
	}
	a.Forget(types.NamespacedName{Namespace: "obs", Name: "traces"}, true)
	if n, err := testutil.GatherAndCount(reg, "spanflow_ingester_condition", "spanflow_ingester_lag_stale", "spanflow_ingester_target_lag_seconds"); err != nil || n != 0 {
		t.Errorf("%d series left after the Ingester was deleted (%v)", n, err)
	}
}
