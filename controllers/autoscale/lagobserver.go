package autoscale

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/kafkaclient"
	"github.com/spanflow/spanflow/ingester/loadreport"
)

// Observation is what Observe knows: the latest snapshot (if any poll succeeded), and
// the error of the latest poll, in which case the snapshot is stale.
type Observation struct {
	snapshot lagSnapshot
	have     bool
	err      error
}

// Known is true once a poll succeeded: the figures below are the latest.
func (o Observation) Known() bool { return o.have }

// Err is why the latest poll failed (the figures are stale then), or nil.
func (o Observation) Err() error { return o.err }

// Partitions is the topic's partition count; Records and Seconds the group's lag, in
// records and in the age of the oldest unconsumed one; At when they were polled.
func (o Observation) Partitions() int { return o.snapshot.partitions }
func (o Observation) Records() int64  { return o.snapshot.records }
func (o Observation) Seconds() int64  { return o.snapshot.seconds }

// OpenTransactionRecords is, for a group reading committed records, how many records
// wait behind transactions still open: not lag the pods can take, and no part of Records.
func (o Observation) OpenTransactionRecords() int64 { return o.snapshot.open }
func (o Observation) At() time.Time                 { return o.snapshot.at }

// BlockedPods are the pods whose latest load report (of the last 45 s) says their
// consumption is held downstream — writes failed and were tried again, or a partition
// waits — with why partitions are held (loadreport.Held*; none when the report does not
// say: an earlier version's, or writes retried with no partition held).
// Nothing while the latest poll failed: the reports of its last success may describe an
// outage long over.
func (o Observation) BlockedPods() map[string][]string {
	if o.err != nil {
		return nil
	}
	var pods map[string][]string
	for _, pl := range o.snapshot.pods {
		if pl.Blocked {
			if pods == nil {
				pods = map[string][]string{}
			}
			pods[pl.Pod] = pl.Held
		}
	}
	return pods
}

// LagObserver polls, per distinct cluster, credentials, topic and group, the log and
// committed offsets on an interval, and keeps a window of them to estimate lag in records
// and seconds. Ingesters that share a target share its poller and its Kafka client.
// It is a manager Runnable: Start owns the pollers and stops them.
type LagObserver struct {
	interval time.Duration
	window   int
	// poll reads one sample; tests replace it.
	poll func(ctx context.Context, client *kafka.Client, t Target) (offsetSample, error)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	pollers map[string]*poller
}

type poller struct {
	target Target
	cancel context.CancelFunc

	mu        sync.Mutex
	samples   []offsetSample
	oldest    oldestRecords
	obs       Observation
	lastAsked time.Time
}

// NewLagObserver returns an observer polling every interval and estimating rates over
// the last window polls.
func NewLagObserver(interval time.Duration, window int) *LagObserver {
	ctx, cancel := context.WithCancel(context.Background())
	return &LagObserver{interval: interval, window: window, poll: pollOffsets, ctx: ctx, cancel: cancel, pollers: map[string]*poller{}}
}

// Start blocks until ctx is done, then stops every poller.
func (o *LagObserver) Start(ctx context.Context) error {
	<-ctx.Done()
	o.cancel()
	o.wg.Wait()
	return nil
}

// Observe returns what is known of the target, starting its poller on first use.
func (o *LagObserver) Observe(t Target) Observation {
	key := t.key()
	o.mu.Lock()
	p, ok := o.pollers[key]
	if !ok && o.ctx.Err() == nil {
		ctx, cancel := context.WithCancel(o.ctx)
		p = &poller{target: t, cancel: cancel}
		o.pollers[key] = p
		o.wg.Go(func() { o.run(ctx, key, p) })
	}
	o.mu.Unlock()
	if p == nil {
		return Observation{err: errors.New("the lag observer has stopped")}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastAsked = time.Now()
	return p.obs
}

// run polls until ctx ends or nobody has asked for the target for a while (its Ingesters
// were deleted or changed).
func (o *LagObserver) run(ctx context.Context, key string, p *poller) {
	defer func() {
		o.mu.Lock()
		delete(o.pollers, key)
		o.mu.Unlock()
	}()
	conn, err := kafkaclient.FromMaterial(p.target.Material)
	conn.ClientID = cmp.Or(p.target.ClientID, config.DefaultClientID)
	if err != nil {
		p.mu.Lock()
		p.obs.err = err
		p.mu.Unlock()
	}
	transport := conn.Transport()
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(p.target.Brokers...), Transport: transport, Timeout: probeTimeout}
	idleAfter := 10 * o.interval
	for {
		if err == nil {
			o.pollOnce(ctx, client, p)
		}
		p.mu.Lock()
		idle := time.Since(p.lastAsked) > idleAfter
		p.mu.Unlock()
		if idle {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(o.interval):
		}
	}
}

func (o *LagObserver) pollOnce(ctx context.Context, client *kafka.Client, p *poller) {
	pollCtx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	s, err := o.poll(pollCtx, client, p.target)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		// Keep the last known lag; the error marks it stale.
		p.obs.err = err
		return
	}
	// Partitions added or removed make earlier samples incomparable for rates only per
	// partition; computeLag matches partitions by ID, so the window can be kept.
	p.samples = append(p.samples, s)
	if len(p.samples) > o.window {
		p.samples = p.samples[len(p.samples)-o.window:]
	}
	if p.oldest == nil {
		p.oldest = oldestRecords{}
	}
	p.obs = Observation{snapshot: computeLagRemembering(p.samples, p.target.FromEarliest, p.oldest), have: true}
}

// ErrTopicNotFound is the verdict on a reachable cluster without the topic.
var ErrTopicNotFound = errors.New("topic not found")

// pollOffsets reads the topic's partitions, their log-start and log-end offsets, and the
// group's committed offsets.
func pollOffsets(ctx context.Context, client *kafka.Client, t Target) (offsetSample, error) {
	unreachable := func(err error) error {
		return fmt.Errorf("cannot reach the Kafka brokers %s: %w", strings.Join(t.Brokers, ","), err)
	}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{t.Topic}})
	if err != nil {
		return offsetSample{}, unreachable(err)
	}
	var ids []int
	for _, topic := range meta.Topics {
		if topic.Name != t.Topic {
			continue
		}
		if topic.Error != nil {
			return offsetSample{}, fmt.Errorf("%w: %q: %v", ErrTopicNotFound, t.Topic, topic.Error)
		}
		for _, p := range topic.Partitions {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		return offsetSample{}, fmt.Errorf("%w: %q", ErrTopicNotFound, t.Topic)
	}
	var reqs []kafka.OffsetRequest
	for _, id := range ids {
		reqs = append(reqs, kafka.FirstOffsetOf(id), kafka.LastOffsetOf(id))
	}
	isolation := kafka.ReadUncommitted
	if t.ReadCommitted {
		isolation = kafka.ReadCommitted
	}
	offsets, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{t.Topic: reqs}, IsolationLevel: isolation})
	if err != nil {
		return offsetSample{}, unreachable(err)
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: t.Group, Topics: map[string][]int{t.Topic: ids}})
	if err != nil {
		return offsetSample{}, unreachable(err)
	}
	// An error is not "nothing committed": read so, the lag would jump to the whole log
	// (the coordinator moving during a broker restart, a group the credentials may not
	// describe) and the autoscaler would scale to its maximum.
	// A group that does not exist yet has committed nothing: some brokers say so with
	// GROUP_ID_NOT_FOUND, others with offsets of -1.
	if committed.Error != nil && !errors.Is(committed.Error, kafka.GroupIdNotFound) {
		return offsetSample{}, fmt.Errorf("committed offsets of group %q: %w", t.Group, committed.Error)
	}
	s := offsetSample{at: time.Now(), partitions: map[int]partitionOffsets{}}
	for _, po := range offsets.Topics[t.Topic] {
		if po.Error != nil {
			return offsetSample{}, fmt.Errorf("offsets of partition %d: %w", po.Partition, po.Error)
		}
		s.partitions[po.Partition] = partitionOffsets{start: po.FirstOffset, end: po.LastOffset, committed: -1}
	}
	if t.ReadCommitted {
		// The high watermarks too: what lies between them and the last stable offsets waits
		// for open transactions, which the status says apart from the lag.
		var ends []kafka.OffsetRequest
		for _, id := range ids {
			ends = append(ends, kafka.LastOffsetOf(id))
		}
		res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{t.Topic: ends}})
		if err != nil {
			return offsetSample{}, unreachable(err)
		}
		for _, po := range res.Topics[t.Topic] {
			if p, ok := s.partitions[po.Partition]; ok && po.Error == nil {
				p.open = max(po.LastOffset-p.end, 0)
				s.partitions[po.Partition] = p
			}
		}
	}
	for _, c := range committed.Topics[t.Topic] {
		if c.Error != nil {
			return offsetSample{}, fmt.Errorf("committed offset of group %q on partition %d: %w", t.Group, c.Partition, c.Error)
		}
		if p, ok := s.partitions[c.Partition]; ok {
			p.committed = c.CommittedOffset
			if r, ok := loadreport.Parse(c.Metadata); ok && c.CommittedOffset >= 0 {
				p.report = &r
			}
			s.partitions[c.Partition] = p
		}
	}
	return s, nil
}

// TopicLag is the lag of a consumer group on a topic, for callers outside the operator
// (spanflow demo).
type TopicLag struct {
	Partitions int
	Records    int64
	Seconds    int64
	Known      bool
	Err        error
}

// ObserveTopic is Observe for a plaintext cluster, by brokers, topic and group.
func (o *LagObserver) ObserveTopic(brokers []string, topic, group string) TopicLag {
	obs := o.Observe(Target{Brokers: brokers, Topic: topic, Group: group, FromEarliest: true})
	return TopicLag{Partitions: obs.snapshot.partitions, Records: obs.snapshot.records, Seconds: obs.snapshot.seconds, Known: obs.have, Err: obs.err}
}
