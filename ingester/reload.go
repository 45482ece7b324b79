package ingester

import (
	"bytes"
	"context"
	"time"

	"github.com/go-logr/logr"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/eventlog"
	"github.com/spanflow/spanflow/ingester/metrics"
)

// defaultReloadInterval is how often the configuration is read again for a new
// parallelism. The kubelet refreshes a mounted ConfigMap about once a minute, so a few
// seconds here add little to how soon a change takes effect.
const defaultReloadInterval = 5 * time.Second

// SetParallelism changes the number of deliveries in flight while running; deliveries
// already in flight finish.
func (c *Chain) SetParallelism(n int) { c.parallel.SetLimit(n) }

// followParallelism reads the configuration again every interval until ctx ends and
// applies a new parallelism at once: the operator changes it (the autoscaler's cheap
// lever) without restarting the pods. Every other setting needs a restart, which the
// operator makes when they change; a change of one here is only logged.
func followParallelism(ctx context.Context, reload func() (config.Config, error), interval time.Duration,
	running config.Config, chain *Chain, m *metrics.Metrics, log logr.Logger) error {
	failed := eventlog.Error(log, "Reading the configuration again failed; the parallelism in effect stays", time.Minute)
	defer failed.Close()
	current := running.Parallelism
	started, _ := running.Marshal()
	noted := started // the other settings last logged as changed
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		cfg, err := reload()
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			failed.Event(err, "parallelism", current)
			continue
		}
		others := cfg
		others.Parallelism = running.Parallelism
		if now, err := others.Marshal(); err == nil && !bytes.Equal(now, noted) {
			if !bytes.Equal(now, started) {
				log.Info("The configuration changed beyond parallelism: this process keeps the settings it started with until it restarts")
			}
			noted = now
		}
		if cfg.Parallelism != current {
			log.Info("Parallelism changed", "from", current, "to", cfg.Parallelism)
			chain.SetParallelism(cfg.Parallelism)
			m.Parallelism.Set(float64(cfg.Parallelism))
			current = cfg.Parallelism
		}
	}
}
