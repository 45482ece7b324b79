package consumer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/fetchwire"
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
// listed, until ctx is done.
func (c *Consumer) askEnds(ctx context.Context, parts map[int]*partition, interval time.Duration) {
	asker := &endAsker{c: c, conns: map[string]*fetchwire.Conn{}}
	defer asker.close()
	for sleep(ctx, interval) == nil {
		asked := time.Now()
		var stale []int
		for _, id := range slices.Sorted(maps.Keys(parts)) {
			if seen := parts[id].endSeenAt.Load(); sinceStart(asked)-seen >= int64(interval) {
				stale = append(stale, id)
			}
		}
		if len(stale) == 0 {
			asker.close() // every partition fetches: no connection waits idle for the next outage
			continue
		}
		askCtx, cancel := context.WithTimeout(ctx, interval)
		ends, err := asker.ask(askCtx, stale)
		cancel()
		if err != nil {
			c.log.V(1).Info("Could not list the ends of partitions not fetched lately; lag_records stands until a fetch or the next try", "error", err.Error())
		}
		for _, listed := range ends {
			if p := parts[listed.Partition]; p != nil && listed.Error == nil && listed.End >= 0 {
				p.listedEnd(listed.End, asked)
			}
		}
	}
}

// endAsker lists partitions' ends with a request to each broker that leads some of them,
// on a connection to each kept from one interval to the next. (kafka-go's client sends a
// request for each partition: a pod holding 96 partitions in a storage outage sent 96
// every 5 s.)
type endAsker struct {
	c     *Consumer
	conns map[string]*fetchwire.Conn // by broker address
	// staleLeaders is set when a broker did not lead a partition it was asked for, or
	// failed: the next ask finds the leaders from the brokers, not the client's cache.
	staleLeaders bool
}

// ask lists the ends of partitions ids; what it could list comes back with the error of
// what it could not.
func (a *endAsker) ask(ctx context.Context, ids []int) ([]fetchwire.ListedEnd, error) {
	topic := a.c.s.Kafka.Topic
	meta, err := a.c.leaders.metadata(ctx, topic, a.staleLeaders)
	if err != nil {
		return nil, err
	}
	a.staleLeaders = false
	byLeader := map[string][]int{}
	for _, t := range meta.Topics {
		if t.Name != topic {
			continue
		}
		for _, p := range t.Partitions {
			if slices.Contains(ids, p.ID) && p.Error == nil && p.Leader.Host != "" {
				addr := net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port))
				byLeader[addr] = append(byLeader[addr], p.ID)
			}
		}
	}
	readCommitted := a.c.s.Kafka.IsolationLevel == config.ReadCommitted // the end is the last stable offset
	var ends []fetchwire.ListedEnd
	var errs []error
	for _, addr := range slices.Sorted(maps.Keys(byLeader)) {
		listed, err := a.listEnds(ctx, addr, topic, byLeader[addr], readCommitted)
		if err != nil {
			a.staleLeaders = true
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		for _, e := range listed {
			a.staleLeaders = a.staleLeaders || e.Error != nil
		}
		ends = append(ends, listed...)
	}
	return ends, errors.Join(errs...)
}

// listEnds asks the broker at addr, on the connection kept to it; one the broker closed
// while it waited (idle, or the broker restarted) is replaced once.
func (a *endAsker) listEnds(ctx context.Context, addr, topic string, ids []int, readCommitted bool) ([]fetchwire.ListedEnd, error) {
	for attempt := 0; ; attempt++ {
		conn, kept := a.conns[addr]
		if !kept {
			var err error
			if conn, err = a.c.fetchDialer.Dial(ctx, addr); err != nil {
				return nil, err
			}
			a.conns[addr] = conn
		}
		ends, err := conn.ListEnds(ctx, topic, ids, readCommitted)
		if err == nil {
			return ends, nil
		}
		_ = conn.Close()
		delete(a.conns, addr)
		if !kept || attempt > 0 || ctx.Err() != nil {
			return nil, err
		}
	}
}

// close closes the connections kept.
func (a *endAsker) close() {
	for addr, conn := range a.conns {
		_ = conn.Close()
		delete(a.conns, addr)
	}
}
