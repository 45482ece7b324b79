package ingester

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

// TestTheGroupMembersCarryTheClientID: the pods join their group as kafka.clientID says
// (brokers key quotas and logs by it, and kafka-consumer-groups --describe lists it), as
// "spanflow" without it — not kafka-go's default of the program and the pod's name.
func TestTheGroupMembersCarryTheClientID(t *testing.T) {
	const topic = "client_ids"
	b := kafkatest.Start(t, topic, partitions)
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(b.Addr), Transport: transport, Timeout: 5 * time.Second}
	for group, clientID := range map[string]string{"named": "team-a.traces", "unnamed": ""} {
		cfg := testConfig(b.Addr, topic, group)
		cfg.Kafka.ClientID = clientID
		r := startIngester(t, cfg, &store.Blackhole{})
		var members []string
		waitFor(t, 20*time.Second, "a member of group "+group, func() bool {
			res, err := client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
			if err != nil || len(res.Groups) != 1 {
				return false
			}
			members = members[:0]
			for _, m := range res.Groups[0].Members {
				members = append(members, m.ClientID)
			}
			return len(members) > 0
		})
		r.stop(t)
		want := clientID
		if want == "" {
			want = config.DefaultClientID
		}
		if len(members) != 1 || members[0] != want {
			t.Errorf("group %s: members' client ids %q, want %q", group, members, want)
		}
	}
}
