package processor

import (
	"context"
	"errors"
)

// Partition is the chain's view of the partition a message came from. The consumer puts
// one in the context it passes with every message of that partition (see WithPartition).
type Partition interface {
	// Done records that the message at offset is finished, so its offset may be committed.
	Done(offset int64) bool
	// Pause says the partition cannot move on: a message can be neither written nor
	// dead-lettered. The consumer stops fetching it and reports not-ready until Resume.
	Pause(reason error)
	// Resume ends a Pause.
	Resume()
	// Revoked is closed when the partition is taken away (a rebalance, a stop): a message
	// still waiting to be handed over is not, and is read again by the next owner.
	Revoked() <-chan struct{}
}

// ErrRevoked is what Parallel.Process returns for a message of a revoked partition that
// was not handed over: it is unfinished, and nothing of it was processed.
var ErrRevoked = errors.New("partition revoked before the message was handed over")

// revokedOf is the Revoked channel of the partition in ctx; nil (never ready) without one.
func revokedOf(ctx context.Context) <-chan struct{} {
	if p := partitionOf(ctx); p != nil {
		return p.Revoked()
	}
	return nil
}

type partitionKey struct{}

// WithPartition returns a context that carries p for the messages of its partition.
func WithPartition(ctx context.Context, p Partition) context.Context {
	return context.WithValue(ctx, partitionKey{}, p)
}

// partitionOf returns the partition in ctx, or nil.
func partitionOf(ctx context.Context) Partition {
	p, _ := ctx.Value(partitionKey{}).(Partition)
	return p
}
