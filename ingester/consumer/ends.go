package consumer

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/config"
)

// endCheckInterval is how often the ends of partitions that no fetch told of lately are
// asked for.
const endCheckInterval = 5 * time.Second

// processStart is the base of the monotonic times partitions keep (a step of the wall
// clock must not make a partition look fetched, or long unfetched).
var processStart = time.Now()

// sinceStart is t as nanoseconds since processStart, by the monotonic clock.
func sinceStart(t time.Time) int64 { return int64(t.Sub(processStart)) }

// askEnds keeps lag_records true for partitions that stopped fetching: one held behind
// storage, or waiting for a slot while others take them all, learns its end from no
// fetch, and its lag would stand still while its backlog grows — exactly while the
// dashboard is looked at. Every interval, the ends not told by a fetch within it are
// listed, until ctx is done. (kafka-go's client asks for each partition in a request of
// its own: with every partition held, a pod of 96 sends 96 small requests every 5 s.)
func (c *Consumer) askEnds(ctx context.Context, parts map[int]*partition, interval time.Duration) {
	isolation := kafka.ReadUncommitted
	if c.s.Kafka.IsolationLevel == config.ReadCommitted {
		isolation = kafka.ReadCommitted // the end a fetch tells is the last stable offset
	}
	for sleep(ctx, interval) == nil {
		asked := time.Now()
		var stale []kafka.OffsetRequest
		for _, id := range slices.Sorted(maps.Keys(parts)) {
			if seen := parts[id].endSeenAt.Load(); sinceStart(asked)-seen >= int64(interval) {
				stale = append(stale, kafka.LastOffsetOf(id))
			}
		}
		if len(stale) == 0 {
			continue
		}
		askCtx, cancel := context.WithTimeout(ctx, interval)
		res, err := c.client.ListOffsets(askCtx, &kafka.ListOffsetsRequest{
			Topics: map[string][]kafka.OffsetRequest{c.s.Kafka.Topic: stale}, IsolationLevel: isolation})
		cancel()
		if err != nil {
			c.log.V(1).Info("Could not list the ends of partitions not fetched lately; lag_records stands until a fetch or the next try", "error", err.Error())
			continue
		}
		for _, listed := range res.Topics[c.s.Kafka.Topic] {
			if p := parts[listed.Partition]; p != nil && listed.Error == nil && listed.LastOffset >= 0 {
				p.listedEnd(listed.LastOffset, asked)
			}
		}
	}
}
