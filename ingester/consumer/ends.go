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

// askEnds keeps lag_records true for partitions that stopped fetching: one held behind
// storage, or waiting for a slot while others take them all, learns its end from no
// fetch, and its lag would stand still while its backlog grows — exactly while the
// dashboard is looked at. Every interval, the ends not told by a fetch within it are
// listed in one request (the client sends it to their leaders), until ctx is done.
func (c *Consumer) askEnds(ctx context.Context, parts map[int]*partition, interval time.Duration) {
	isolation := kafka.ReadUncommitted
	if c.s.Kafka.IsolationLevel == config.ReadCommitted {
		isolation = kafka.ReadCommitted // the end a fetch tells is the last stable offset
	}
	for sleep(ctx, interval) == nil {
		asked := time.Now()
		var stale []kafka.OffsetRequest
		for _, id := range slices.Sorted(maps.Keys(parts)) {
			if seen := parts[id].endSeenAt.Load(); asked.Sub(time.Unix(0, seen)) >= interval {
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
