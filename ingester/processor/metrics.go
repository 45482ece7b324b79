package processor

import (
	"context"
	"time"

	"github.com/spanflow/spanflow/ingester/metrics"
)

type measured struct {
	next Processor
	m    *metrics.Metrics
}

// NewMetrics counts the messages and bytes taken, tracks what is in flight and how long a
// delivery takes from hand-over to finish, and counts deliveries left unfinished (an error
// from next).
func NewMetrics(next Processor, m *metrics.Metrics) Processor {
	return &measured{next: next, m: m}
}

func (p *measured) Process(ctx context.Context, d *Delivery) error {
	msgs, size := float64(len(d.Messages)), float64(d.Bytes())
	p.m.Messages.Add(msgs)
	p.m.Bytes.Add(size)
	p.m.InFlightMsgs.Add(msgs)
	p.m.InFlightBytes.Add(size)
	start := time.Now()
	err := p.next.Process(ctx, d)
	p.m.Processing.Observe(time.Since(start).Seconds())
	p.m.InFlightMsgs.Sub(msgs)
	p.m.InFlightBytes.Sub(size)
	if err != nil {
		p.m.Abandoned.Add(msgs)
	}
	return err
}
