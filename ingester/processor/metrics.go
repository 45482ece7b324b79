package processor

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/metrics"
)

type measured struct {
	next Processor
	m    *metrics.Metrics
}

// NewMetrics counts messages and bytes taken, tracks what is in flight and how long
// processing takes, and counts messages left unfinished (an error from next).
func NewMetrics(next Processor, m *metrics.Metrics) Processor {
	return &measured{next: next, m: m}
}

func (p *measured) Process(ctx context.Context, msg kafka.Message) error {
	size := float64(len(msg.Value))
	p.m.Messages.Inc()
	p.m.Bytes.Add(size)
	p.m.InFlightMsgs.Inc()
	p.m.InFlightBytes.Add(size)
	start := time.Now()
	err := p.next.Process(ctx, msg)
	p.m.Processing.Observe(time.Since(start).Seconds())
	p.m.InFlightMsgs.Dec()
	p.m.InFlightBytes.Sub(size)
	if err != nil {
		p.m.Abandoned.Inc()
	}
	return err
}
