package fetchwire_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spanflow/spanflow/ingester/fetchwire"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

// TestListEndsInOneRequest: the ends of three partitions (and one the topic does not
// have) come in one ListOffsets request, as the broker counts them; reading committed,
// the partition with a transaction open ends where the transaction began.
func TestListEndsInOneRequest(t *testing.T) {
	const topic = "ends"
	b := kafkatest.Start(t, topic, 3)
	for range 7 {
		b.Produce(t, topic, kafka.Message{Value: []byte("span")})
	}
	committed := b.EndOffsets(t, topic, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.TransactionalID("open"), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := open.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := open.ProduceSync(ctx, &kgo.Record{Partition: 2, Value: []byte("uncommitted")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var requests, partitions int
	b.Cluster.ControlKey(int16(kmsg.ListOffsets), func(req kmsg.Request) (kmsg.Response, error, bool) {
		b.Cluster.KeepControl()
		requests++
		for _, t := range req.(*kmsg.ListOffsetsRequest).Topics {
			partitions += len(t.Partitions)
		}
		return nil, nil, false
	})

	c, err := (&fetchwire.Dialer{}).Dial(ctx, b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	uncommitted := map[int]int64{0: committed[0], 1: committed[1], 2: committed[2] + 3}
	for _, tc := range []struct {
		readCommitted bool
		want          map[int]int64
	}{{false, uncommitted}, {true, committed}} {
		ends, err := c.ListEnds(ctx, topic, []int{0, 1, 2, 7}, tc.readCommitted)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int]int64{}
		for _, e := range ends {
			switch {
			case e.Partition == 7 && !errors.Is(e.Error, kafka.UnknownTopicOrPartition):
				t.Errorf("partition 7, which the topic does not have: %v", e.Error)
			case e.Partition != 7 && e.Error != nil:
				t.Errorf("partition %d: %v", e.Partition, e.Error)
			case e.Partition != 7:
				got[e.Partition] = e.End
			}
		}
		if len(ends) != 4 || len(got) != 3 || got[0] != tc.want[0] || got[1] != tc.want[1] || got[2] != tc.want[2] {
			t.Errorf("read committed %v: ends %+v, want %v", tc.readCommitted, ends, tc.want)
		}
	}
	if requests != 2 || partitions != 8 {
		t.Errorf("the broker saw %d ListOffsets requests for %d partitions, want 2 for 8", requests, partitions)
	}
}
