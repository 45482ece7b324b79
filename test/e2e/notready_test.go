package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/testproc"
)

// TestWhyPodsAreNotReadyIsSaid: pods of the current spec that are not ready are not
// "rolling out". When storage fails their writes they hold their partitions and fail
// their readiness check, and the Ingester says StorageUnavailable, naming them (from
// their load reports), with nothing in progress; when storage takes the writes again it
// is Available. A rollout someone paused with kubectl rollout pause says RolloutPaused
// until kubectl rollout resume lets it finish.
func TestWhyPodsAreNotReadyIsSaid(t *testing.T) {
	c, env, _, _ := startOperator(t, "--kafka-poll-interval=1s")
	broker := testproc.StartKfake(t, "-topic="+topic, fmt.Sprintf("-partitions=%d", partitions))

	// An OTLP/HTTP backend that can be taken down: 503 for every write while it is.
	var down atomic.Bool
	var written atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if down.Load() {
			http.Error(w, "backend unavailable", http.StatusServiceUnavailable)
			return
		}
		written.Add(1)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(backend.Close)

	kubectlApply(t, env, fmt.Sprintf(`apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: held, namespace: default}
spec:
  kafka:
    brokers: [%q]
    topic: %s
    heartbeatInterval: 500ms
    sessionTimeout: 6s
    maxWait: 100ms
    commitInterval: 200ms
  storage:
    type: otlp
    otlp: {endpoint: %q, protocol: http}
  processing:
    retry: {min: 100ms, max: 1s}
  replicas: 1
`, broker, topic, backend.URL))
	kubelet := testproc.StartKubelet(t, c, "default")
	key := types.NamespacedName{Namespace: "default", Name: "held"}
	conditionIs := func(conditionType string, status metav1.ConditionStatus, reason string) func() bool {
		return func() bool {
			cond := ingesterCondition(c, key.Name, conditionType)
			return cond != nil && cond.Status == status && cond.Reason == reason
		}
	}
	eventually(t, 90*time.Second, "the Ingester Ready", conditionIs(spanflowv1alpha1.ConditionReady, metav1.ConditionTrue, spanflowv1alpha1.ReasonAvailable))

	producer := kafkatest.Attach(t, broker)
	down.Store(true)
	producer.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, 100, 2)...)
	deadline := time.Now().Add(60 * time.Second)
	for !conditionIs(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonStorageUnavailable)() {
		if time.Now().After(deadline) {
			t.Log(kubectl(t, env, "get", "ingester/held", "-o", "yaml"))
			t.Log(kubectl(t, env, "get", "pods", "-o", "yaml"))
			for _, p := range ingesterPods(t, c) {
				admin, _ := kubelet.AdminAddr(p)
				resp, err := http.Get("http://" + admin + "/metrics")
				if err == nil {
					data, _ := io.ReadAll(resp.Body)
					for _, l := range strings.Split(string(data), "\n") {
						if strings.Contains(l, "paused") || strings.Contains(l, "commits") || strings.Contains(l, "retries") || strings.Contains(l, "write_errors") {
							t.Log(l)
						}
					}
				}
			}
			t.Fatal("timed out waiting for StorageUnavailable")
		}
		time.Sleep(100 * time.Millisecond)
	}
	pods := ingesterPods(t, c)
	degraded := ingesterCondition(c, key.Name, spanflowv1alpha1.ConditionDegraded)
	if len(pods) != 1 || !strings.Contains(degraded.Message, "pod "+pods[0]) {
		t.Errorf("the message does not name the pod of %v: %q", pods, degraded.Message)
	}
	for conditionType, reason := range map[string]string{
		spanflowv1alpha1.ConditionReady:       spanflowv1alpha1.ReasonStorageUnavailable,
		spanflowv1alpha1.ConditionProgressing: spanflowv1alpha1.ReasonAsExpected,
	} {
		if cond := ingesterCondition(c, key.Name, conditionType); cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != reason {
			t.Errorf("%s is %+v during the outage, want False/%s", conditionType, cond, reason)
		}
	}

	down.Store(false)
	eventually(t, 60*time.Second, "the Ingester Ready again", conditionIs(spanflowv1alpha1.ConditionReady, metav1.ConditionTrue, spanflowv1alpha1.ReasonAvailable))
	eventually(t, 30*time.Second, "Degraded False", conditionIs(spanflowv1alpha1.ConditionDegraded, metav1.ConditionFalse, spanflowv1alpha1.ReasonAsExpected))
	if written.Load() == 0 {
		t.Error("nothing was written once storage was back")
	}

	// Someone pauses the Deployment's rollout; a new spec then waits for them.
	kubectl(t, env, "rollout", "pause", "deployment/held-ingester")
	if err := updateIngester(c, key, func(i *spanflowv1alpha1.Ingester) { i.Spec.Processing.BatchSize = 300 }); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "Degraded RolloutPaused for the new spec", func() bool {
		var ing spanflowv1alpha1.Ingester
		return c.Get(context.Background(), key, &ing) == nil && ing.Status.ObservedGeneration == ing.Generation &&
			conditionIs(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonRolloutPaused)()
	})
	if msg := ingesterCondition(c, key.Name, spanflowv1alpha1.ConditionDegraded).Message; !strings.Contains(msg, "kubectl rollout resume deployment/held-ingester") {
		t.Errorf("the message does not say how to resume: %q", msg)
	}
	if cond := ingesterCondition(c, key.Name, spanflowv1alpha1.ConditionProgressing); cond == nil || cond.Reason != spanflowv1alpha1.ReasonRolloutPaused {
		t.Errorf("Progressing is %+v while the rollout is paused", cond)
	}
	kubectl(t, env, "rollout", "resume", "deployment/held-ingester")
	settled := func() bool {
		return conditionIs(spanflowv1alpha1.ConditionReady, metav1.ConditionTrue, spanflowv1alpha1.ReasonAvailable)() &&
			conditionIs(spanflowv1alpha1.ConditionDegraded, metav1.ConditionFalse, spanflowv1alpha1.ReasonAsExpected)()
	}
	eventually(t, 120*time.Second, "the rollout to finish", settled)

	// A message that cannot be decoded stops its partition (onDecodeError: fail, the
	// default): not a storage outage, and the status says which it is and what to do.
	producer.Produce(t, topic, kafka.Message{Partition: 1, Value: []byte{0xff, 0xff, 0xff, 0xff}})
	eventually(t, 60*time.Second, "Degraded MessageHeld", conditionIs(spanflowv1alpha1.ConditionDegraded, metav1.ConditionTrue, spanflowv1alpha1.ReasonMessageHeld))
	if msg := ingesterCondition(c, key.Name, spanflowv1alpha1.ConditionDegraded).Message; !strings.Contains(msg, "cannot be decoded") || !strings.Contains(msg, "onDecodeError: skip") {
		t.Errorf("the message does not say what holds the partition, and what to do: %q", msg)
	}
	if err := updateIngester(c, key, func(i *spanflowv1alpha1.Ingester) {
		i.Spec.Processing.OnDecodeError = spanflowv1alpha1.OnDecodeErrorSkip
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 120*time.Second, "the message skipped, the Ingester Available", settled)
}
