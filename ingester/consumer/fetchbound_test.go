package consumer

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/metrics"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

func TestFetchBytesPerPartition(t *testing.T) {
	k := config.Default().Kafka // MaxBytes 1 MiB, MinBytes 1
	for _, tc := range []struct {
		name       string
		bound      int64
		partitions int
		minBytes   int
		want       int
	}{
		{"no bound", 0, 500, 1, 1 << 20},
		{"few partitions: their own maximum", 64 << 20, 6, 1, 1 << 20},
		{"32 partitions fill the bound", 64 << 20, 32, 1, 1 << 20},
		{"64 share it", 64 << 20, 64, 1, 512 << 10},
		{"256 share it", 64 << 20, 256, 1, 128 << 10},
		{"past the least share", 64 << 20, 1000, 1, minFetchShare},
		{"never below minBytes", 64 << 20, 1000, 300 << 10, 300 << 10},
		{"none assigned", 64 << 20, 0, 1, 1 << 20},
	} {
		k.MinBytes = tc.minBytes
		if got := fetchBytesPerPartition(k, tc.bound, tc.partitions); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestManyPartitionsShareTheFetchBound: a member of 48 partitions with a backlog asks each
// for its share of the bound on fetched bytes, not for Kafka.MaxBytes each (48 partitions
// holding two 1 MiB responses each were 96 MiB however small maxInFlightBytes was), and
// still reads every message.
func TestManyPartitionsShareTheFetchBound(t *testing.T) {
	const topic, group, partitions, messages = "many", "bounded", 48, 4800
	b := kafkatest.Start(t, topic, partitions)
	b.Produce(t, topic, kafkatest.OTLPProtoMessages(t, 0, messages, 20)...)
	var mu sync.Mutex
	asked := map[int32]int32{} // partition: the most asked for
	b.Cluster.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		mu.Lock()
		defer mu.Unlock()
		for _, rt := range req.(*kmsg.FetchRequest).Topics {
			for _, p := range rt.Partitions {
				asked[p.Partition] = max(asked[p.Partition], p.PartitionMaxBytes)
			}
		}
		return nil, nil, false // the broker answers
	})

	k := quickKafka(b, topic, group)
	const bound = 24 << 20 // 256 KiB a partition, above the least share
	s := Settings{Kafka: k, DeliverySpans: 1000, DeliveryBytes: 1 << 20, FetchedBytes: bound, Linger: 50 * time.Millisecond, DrainTimeout: time.Second}
	if count := readToTheEnd(t, b, s, metrics.New(prometheus.NewRegistry()), partitions, nil); count != messages {
		t.Errorf("read %d distinct messages, want %d", count, messages)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != partitions {
		t.Fatalf("fetched %d partitions, want %d", len(asked), partitions)
	}
	for p, most := range asked {
		if most != bound/(2*partitions) {
			t.Errorf("partition %d asked for up to %d bytes, want its share %d", p, most, bound/(2*partitions))
		}
	}
}
