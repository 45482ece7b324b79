package consumer

import (
	"context"
	"sync"
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

	mu sync.Mutex
	// fresh is the last lookup asked of the brokers and when: the partitions failing at
	// once (a broker restarted) share it for freshFor, rather than each asking.
	fresh   *kafka.MetadataResponse
	freshAt time.Time
}

// freshFor is how long a lookup from the brokers serves the partitions that fail after it.
const freshFor = time.Second

// metadata returns topic's metadata: from the brokers when stale, else from the client.
func (l *leaders) metadata(ctx context.Context, topic string, stale bool) (*kafka.MetadataResponse, error) {
	req := &kafka.MetadataRequest{Topics: []string{topic}}
	if !stale || l.transport == nil {
		return l.client.Metadata(ctx, req)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fresh != nil && time.Since(l.freshAt) < freshFor {
		return l.fresh, nil
	}
	t := l.transport()
	defer t.CloseIdleConnections()
	res, err := (&kafka.Client{Addr: l.client.Addr, Transport: t}).Metadata(ctx, req)
	if err != nil {
		return nil, err
	}
	l.fresh, l.freshAt = res, time.Now()
	return res, nil
}
