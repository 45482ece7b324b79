package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/internal/kafkatest"
	"github.com/spanflow/spanflow/internal/testenv"
	"github.com/spanflow/spanflow/internal/testproc"
)

// TestPodsReadFromTheReplicaInTheirZone: an Ingester whose pods take their rack from the
// zone label reads each partition from the replica in its pod's zone. The whole way is
// real but the brokers' selection: the API server copies the node's zone onto the pod
// as it is bound, the pod's environment carries it (the downward API), and the ingester
// names it in its fetches to brokers that stand in three zones and select replicas by
// rack as Kafka's RackAwareReplicaSelector does. Every message is consumed.
func TestPodsReadFromTheReplicaInTheirZone(t *testing.T) {
	c, env, _, _ := startOperator(t)
	const rackTopic, partitions, messages = "zoned", 3, 600
	broker := testproc.StartKfake(t, "-topic="+rackTopic, fmt.Sprintf("-partitions=%d", partitions), "-racks=zone-a,zone-b,zone-c")
	ctx := context.Background()
	// The pod's zone is that of the broker leading the fewest partitions, so that some are
	// read from a follower there (broker i stands in zone racks[i]).
	racks := []string{"zone-a", "zone-b", "zone-c"}
	leaders, err := (&kafka.Client{Addr: kafka.TCP(broker)}).Metadata(ctx, &kafka.MetadataRequest{Topics: []string{rackTopic}})
	if err != nil {
		t.Fatal(err)
	}
	led := make([]int, len(racks))
	for _, p := range leaders.Topics[0].Partitions {
		led[p.Leader.ID]++
	}
	zoneBroker := slices.Index(led, slices.Min(led))
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testenv.NodeName, Labels: map[string]string{"topology.kubernetes.io/zone": racks[zoneBroker]}}}
	if err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	kubectlApply(t, env, fmt.Sprintf(`apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata: {name: zoned, namespace: default}
spec:
  kafka:
    brokers: [%q]
    topic: %s
    rack: {podLabel: topology.kubernetes.io/zone}
    heartbeatInterval: 500ms
    sessionTimeout: 6s
    maxWait: 100ms
    commitInterval: 200ms
  storage: {type: blackhole}
`, broker, rackTopic))
	kubelet := testproc.StartKubelet(t, c, "default")
	kafkatest.Attach(t, broker).Produce(t, rackTopic, kafkatest.OTLPProtoMessages(t, 0, messages, 3)...)

	ingKey := types.NamespacedName{Namespace: "default", Name: "zoned"}
	eventually(t, 90*time.Second, "every message consumed", func() bool {
		var ing spanflowv1alpha1.Ingester
		return c.Get(ctx, ingKey, &ing) == nil && meta.IsStatusConditionTrue(ing.Status.Conditions, spanflowv1alpha1.ConditionReady) &&
			ing.Status.Lag != nil && ing.Status.Lag.Records == 0 && ing.Status.Partitions == partitions
	})
	pods := ingesterPods(t, c)
	if len(pods) != 1 {
		t.Fatalf("pods %v, want one", pods)
	}
	var pod corev1.Pod
	if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: pods[0]}, &pod); err != nil {
		t.Fatal(err)
	}
	if zone := pod.Labels["topology.kubernetes.io/zone"]; zone != racks[zoneBroker] {
		t.Fatalf("the pod's zone label is %q: the API server did not copy the node's", zone)
	}
	admin, ok := kubelet.AdminAddr(pods[0])
	if !ok {
		t.Fatal("the pod's admin address is not known")
	}
	if got := scrape(admin, "spanflow_ingester_messages_total"); got != fmt.Sprint(messages) {
		t.Errorf("the pod consumed %s messages, want %d", got, messages)
	}
	// The partitions the pod's zone's broker leads are read from it, the others from
	// their replica on it.
	for _, p := range leaders.Topics[0].Partitions {
		want := map[bool]string{true: "0", false: "1"}[p.Leader.ID == zoneBroker]
		if got := scrape(admin, fmt.Sprintf(`spanflow_ingester_partition_read_from_follower{partition="%d"}`, p.ID)); got != want {
			t.Errorf("partition %d, led by broker %d: read from a follower %q, want %s", p.ID, p.Leader.ID, got, want)
		}
	}
}
