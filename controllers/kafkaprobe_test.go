package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spanflow/spanflow/ingester/kafkaclient"
)

func TestCachingProber(t *testing.T) {
	now := time.Unix(0, 0)
	calls := 0
	p := &cachingProber{ttl: 30 * time.Second, now: func() time.Time { return now }, cache: map[string]probeResult{},
		probe: func(context.Context, kafkaTarget) (int, error) {
			calls++
			if calls == 2 {
				return 0, errors.New("down")
			}
			return 6, nil
		}}
	a := kafkaTarget{brokers: []string{"k:9092"}, topic: "spans"}
	ctx := context.Background()
	if n, err := p.Partitions(ctx, a); n != 6 || err != nil || calls != 1 {
		t.Fatalf("first probe: %d %v after %d calls", n, err, calls)
	}
	now = now.Add(10 * time.Second)
	if n, _ := p.Partitions(ctx, a); n != 6 || calls != 1 {
		t.Errorf("probed again within the TTL (%d calls)", calls)
	}
	// Other credentials are another target.
	b := a
	b.material = kafkaclient.Material{Mechanism: "PLAIN", Username: "u", Password: "p"}
	if _, err := p.Partitions(ctx, b); err == nil || calls != 2 {
		t.Errorf("a target with other credentials shared the cache (%d calls, err %v)", calls, err)
	}
	now = now.Add(31 * time.Second)
	if n, err := p.Partitions(ctx, a); n != 6 || err != nil || calls != 3 {
		t.Errorf("not probed again after the TTL: %d %v (%d calls)", n, err, calls)
	}
	if a.key() == b.key() {
		t.Error("credentials do not enter the cache key")
	}
}
