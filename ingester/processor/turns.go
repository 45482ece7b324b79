package processor

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// cpuTurns are the turns on a CPU that deliveries take to be formed and decoded: as many
// as GOMAXPROCS, read at every take, so that they follow a container's CPU limit changed
// in place (Go's GOMAXPROCS follows it). First come, first served.
type cpuTurns struct {
	mu      sync.Mutex
	held    int
	waiters []chan struct{} // closed when granted
	// waiting is len(waiters), read without the lock.
	waiting atomic.Int32
}

// take waits for a turn until ctx ends (its error) or revoked is closed (ErrRevoked).
func (t *cpuTurns) take(ctx context.Context, revoked <-chan struct{}) error {
	t.mu.Lock()
	if len(t.waiters) == 0 && t.held < runtime.GOMAXPROCS(0) {
		t.held++
		t.mu.Unlock()
		return nil
	}
	granted := make(chan struct{})
	t.waiters = append(t.waiters, granted)
	t.waiting.Add(1)
	t.mu.Unlock()
	err := awaitGrant(ctx, revoked, granted)
	if err == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if i := slices.Index(t.waiters, granted); i >= 0 {
		t.waiters = slices.Delete(t.waiters, i, i+1)
		t.waiting.Add(-1)
		return err
	}
	t.held-- // granted as it gave up: the turn goes on
	t.grant()
	return err
}

// give gives a turn back.
func (t *cpuTurns) give() {
	t.mu.Lock()
	t.held--
	t.grant()
	t.mu.Unlock()
}

// grant hands free turns to the first waiters. Turns are taken back only as they are
// given: GOMAXPROCS lowered, the surplus ends with the deliveries holding it.
func (t *cpuTurns) grant() {
	for len(t.waiters) > 0 && t.held < runtime.GOMAXPROCS(0) {
		t.held++
		close(t.waiters[0])
		t.waiters[0] = nil
		t.waiters = t.waiters[1:]
		t.waiting.Add(-1)
	}
}

// awaitGrant waits until granted is closed (nil), ctx ends (its error) or revoked is
// closed (ErrRevoked). A caller that gives up may have been granted meanwhile.
func awaitGrant(ctx context.Context, revoked <-chan struct{}, granted <-chan struct{}) error {
	select {
	case <-granted:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-revoked:
		return ErrRevoked
	}
}
