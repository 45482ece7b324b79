package consumer

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
)

// leaders finds where partitions are led. As a rule from the client's metadata, which
// kafka-go serves from a cache of up to six seconds; after a fetch failed (its broker no
// longer leads the partition, or is gone), from the brokers themselves, through a
// transport of its own that is closed afterwards: resetting the client's instead would
// leave the offsets' requests, and every partition's lookups, without metadata until its
// first discovery succeeds.
type leaders struct {
	client *kafka.Client
	// transport returns a new transport that reaches the brokers as the client's does.
	transport func() *kafka.Transport

	// turn lets one partition at a time ask the brokers; a partition whose generation
	// ends while it waits stops waiting.
	turn chan struct{}
	// fresh is the last answer of the brokers, and when it came: the partitions failing
	// at once (a broker restarted) share it for freshFor, rather than each asking — an
	// error too, so that brokers out of reach are not asked once a partition in turn.
	fresh    *kafka.MetadataResponse
	freshErr error
	freshAt  time.Time
}

// freshFor is how long an answer of the brokers serves the partitions that fail after it.
const freshFor = time.Second

func newLeaders(client *kafka.Client, transport func() *kafka.Transport) *leaders {
	return &leaders{client: client, transport: transport, turn: make(chan struct{}, 1)}
}

// metadata returns topic's metadata: from the brokers when stale, else from the client.
func (l *leaders) metadata(ctx context.Context, topic string, stale bool) (*kafka.MetadataResponse, error) {
	req := &kafka.MetadataRequest{Topics: []string{topic}}
	if !stale {
		return l.client.Metadata(ctx, req)
	}
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-l.turn }()
	if !l.freshAt.IsZero() && time.Since(l.freshAt) < freshFor {
		return l.fresh, l.freshErr
	}
	t := l.transport()
	defer t.CloseIdleConnections()
	res, err := (&kafka.Client{Addr: l.client.Addr, Transport: t}).Metadata(ctx, req)
	if ctx.Err() == nil { // this partition's own end is no answer of the brokers'
		l.fresh, l.freshErr, l.freshAt = res, err, time.Now()
	}
	return res, err
}
