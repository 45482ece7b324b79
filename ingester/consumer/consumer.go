// Package consumer is the Kafka side of the ingester: consumer-group membership with
// kafka-go, one reader loop per assigned partition that cuts the partition's messages into
// deliveries for the processor chain, and commits, soon after each delivery finishes, of
// the offsets the chain has finished.
package consumer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/eventlog"
	"github.com/spanflow/spanflow/ingester/failure"
	"github.com/spanflow/spanflow/ingester/fetchwire"
	"github.com/spanflow/spanflow/ingester/loadreport"
	"github.com/spanflow/spanflow/ingester/metrics"
	"github.com/spanflow/spanflow/ingester/processor"
)

const (
	// fetchRetryWait is the pause after a failed fetch (the broker may be restarting).
	fetchRetryWait = 500 * time.Millisecond
	// topicWaitMin and topicWaitMax bound the backoff while the topic does not exist.
	topicWaitMin, topicWaitMax = time.Second, 30 * time.Second
	// summaryInterval is how often repeated errors are summarized in the log.
	summaryInterval = 10 * time.Second
)

// Settings are what the consumer needs of the configuration.
type Settings struct {
	Kafka config.Kafka
	// DeliverySpans is about how many spans a delivery holds (processing.batchSize): the
	// messages of one are counted from the spans per message seen so far.
	DeliverySpans int
	// DeliveryBytes bounds the bytes of message values in one delivery.
	DeliveryBytes int64
	// FetchedBytes bounds the fetched responses the partitions hold together, as
	// Kafka's fetch.max.bytes does a request's: each partition holds up to two
	// responses, so a pod of many partitions asks for less than Kafka.MaxBytes of each
	// (fetchBytesPerPartition). No bound when 0.
	FetchedBytes int64
	// Linger is the longest the first message of a delivery waits for more.
	Linger time.Duration
	// DrainTimeout bounds the wait for in-flight deliveries of a revoked partition.
	DrainTimeout time.Duration
	// CommitMetadata, if set, gives the metadata the commits of one partition carry (the
	// lowest this member holds): the pod's load report, with the partitions it holds,
	// which the operator reads back with the committed offsets.
	CommitMetadata func(partitions []int) string
	// MetadataInterval is how often that partition is committed again, unchanged, so that
	// the metadata stays fresh while nothing moves; 0: never.
	MetadataInterval time.Duration
	// ReportClient commits the partition that carries the metadata, on a transport of its
	// own: after a failed commit its connections are dropped (what it knew of the cluster
	// may be stale), and the fetches' connections must not go with them. The consumer's
	// client when nil.
	ReportClient *kafka.Client
}

// commitTimeout bounds one commit request.
const commitTimeout = 10 * time.Second

// minFetchShare is the least a partition's fetch asks for however many partitions share
// the bound on fetched bytes: fetches much smaller would cut deliveries short, each then
// copying its bytes out of several responses.
const minFetchShare = 128 << 10

// fetchBytesPerPartition is how much each of a member's partitions asks for in one fetch:
// k.MaxBytes, or less when the partitions' two responses each would pass bound together
// (not less than minFetchShare, nor than k.MinBytes). A record batch larger than that
// still comes whole.
func fetchBytesPerPartition(k config.Kafka, bound int64, partitions int) int {
	if bound <= 0 || partitions == 0 {
		return k.MaxBytes
	}
	share := bound / int64(2*partitions)
	return int(min(int64(k.MaxBytes), max(share, minFetchShare, int64(k.MinBytes))))
}

// Consumer reads a topic as a member of a consumer group and hands its messages, in
// deliveries, to the processor chain, committing a partition's offset only past deliveries
// the chain finished.
type Consumer struct {
	s      Settings
	dialer *kafka.Dialer
	client *kafka.Client
	// fetchDialer connects the partitions' fetches to their leaders, as dialer would;
	// leaders finds them.
	fetchDialer *fetchwire.Dialer
	leaders     *leaders
	chain       processor.Processor
	m           *metrics.Metrics
	log         logr.Logger
	// rackRefused logs once that the brokers read no rack; rackChecked is set once the
	// brokers answered whether any of them is in the rack (checkRack).
	rackRefused sync.Once
	rackChecked atomic.Bool

	groupErrors  *eventlog.Repeated
	fetchErrors  *eventlog.Repeated
	commitErrors *eventlog.Repeated
	holdLogs     holdLogs

	// spansPerMessage is a running average (float64 bits) that sizes deliveries; 0 until
	// a delivery was decoded.
	spansPerMessage atomic.Uint64

	joined atomic.Bool
	mu     sync.Mutex
	// partitions of the current generation, for readiness.
	partitions map[int]*partition
	// missingTopic says why the topic cannot be read, while it does not exist.
	missingTopic error
	// joinErr is why the last attempt to join the group failed (nil once one succeeded),
	// for readiness: "not a member yet" alone does not say what to fix.
	joinErr error
	// generationEnded is when the last generation ended (zero before one did); pause is
	// how long consumption stopped between it and the next (nanoseconds).
	generationEnded time.Time
	pause           atomic.Int64
	// endCheck is how often the ends of partitions not fetched lately are asked for.
	endCheck time.Duration
}

// New returns a consumer; Run starts it. dialer connects the group and the partitions'
// fetches to the brokers, client asks for metadata and offsets (both with TLS and SASL as
// configured), and commits the load reports unless s.ReportClient does. chain
// must be safe for concurrent use: it is called from one goroutine per partition.
func New(s Settings, dialer *kafka.Dialer, client *kafka.Client, chain processor.Processor, m *metrics.Metrics, log logr.Logger) *Consumer {
	if s.ReportClient == nil {
		s.ReportClient = client
	}
	c := &Consumer{s: s, dialer: dialer, client: client, chain: chain, m: m, log: log, fetchDialer: &fetchwire.Dialer{}, endCheck: endCheckInterval,
		groupErrors:  eventlog.Error(log, "Cannot take part in the consumer group; trying again", summaryInterval),
		fetchErrors:  eventlog.Info(log, "Fetch failed, retrying", summaryInterval),
		commitErrors: eventlog.Info(log, "Offset commit failed; it is retried, or the messages are read again", summaryInterval),
		holdLogs:     newHoldLogs(log)}
	c.leaders = newLeaders(client, func() *kafka.Transport { return &kafka.Transport{} })
	if dialer != nil {
		c.fetchDialer = &fetchwire.Dialer{TLS: dialer.TLS, SASL: dialer.SASLMechanism, Timeout: dialer.Timeout, ClientID: dialer.ClientID}
		c.leaders.transport = func() *kafka.Transport {
			return &kafka.Transport{DialTimeout: dialer.Timeout, TLS: dialer.TLS, SASL: dialer.SASLMechanism, ClientID: dialer.ClientID}
		}
	}
	return c
}

// Ready returns nil when this member is in the group and no partition is held, or why not.
// A member holding no partition (more members than partitions) is ready.
func (c *Consumer) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.missingTopic != nil {
		return c.missingTopic
	}
	if !c.joined.Load() {
		if c.joinErr != nil {
			return fmt.Errorf("not a member of the consumer group yet: %w", c.joinErr)
		}
		return errors.New("not a member of the consumer group yet: joining (the brokers answer a join when the group's rebalance ends, which a member stopped without leaving the group holds up for as long as its session timeout)")
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(c.partitions)) {
		if reason := c.partitions[id].pausedReason(); reason != nil {
			errs = append(errs, fmt.Errorf("partition %d paused: %w", id, reason))
		}
	}
	return errors.Join(errs...)
}

// Blocked is true while a partition is held because its deliveries could not be written:
// consumption is limited downstream, and more consumers would not help.
func (c *Consumer) Blocked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.partitions {
		if p.pausedReason() != nil {
			return true
		}
	}
	return false
}

// HeldBy says why partitions are held, sorted kinds of loadreport.Held* (none while no
// partition is): the operator tells a storage outage from a message that stops its
// partition.
func (c *Consumer) HeldBy() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var kinds []string
	for _, p := range c.partitions {
		for _, reason := range p.holdReasons() {
			if kind := holdKind(reason); !slices.Contains(kinds, kind) {
				kinds = append(kinds, kind)
			}
		}
	}
	slices.Sort(kinds)
	return kinds
}

// holdKind is the kind of a hold's reason: a message that cannot be decoded, one storage
// refuses for good (both with nowhere else to go), or writes that fail.
func holdKind(reason error) string {
	switch {
	case failure.IsDecode(reason):
		return loadreport.HeldUndecodable
	case failure.IsPermanent(reason) || failure.AsRejected(reason) != nil:
		return loadreport.HeldRefused
	}
	return loadreport.HeldStorage
}

// LastPause is how long the latest rebalance stopped this member's consumption: from the
// end of one generation to the start of the next. Zero before the second generation.
func (c *Consumer) LastPause() time.Duration { return time.Duration(c.pause.Load()) }

// Run consumes until ctx is cancelled, then stops fetching, lets in-flight deliveries
// finish (up to the drain timeout), commits, and leaves the group.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.groupErrors.Close()
	defer c.fetchErrors.Close()
	defer c.commitErrors.Close()
	defer c.holdLogs.Close()
	for {
		// kafka-go's group asks for the topic's partitions in a way that lets a broker
		// with auto.create.topics.enable (Kafka's default) create it: a misspelt topic
		// would become an empty one, consumed without a word, and a deleted one would be
		// made again at once, with the broker's default settings. So the group is joined
		// only once the topic is seen to exist (asking without creating), or the brokers
		// cannot tell, and left when the topic is deleted.
		for wait := topicWaitMin; c.topicIsMissing(ctx); wait = min(2*wait, topicWaitMax) {
			if sleep(ctx, wait) != nil {
				return nil
			}
		}
		deleted, err := c.consumeAsMember(ctx)
		if !deleted || err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// checkRack says, once the brokers answer, when no broker is in kafka.rack: no leader
// will name a replica there, and every partition is read from its leader — a rack named
// otherwise than the brokers name theirs (a zone's name where they use its id) would
// pass unnoticed. It is asked at each generation's start until the brokers answered (at
// the process's start alone, brokers not reachable yet kept it from ever being said).
func (c *Consumer) checkRack(ctx context.Context) {
	rack := c.s.Kafka.Rack
	if rack == "" || c.rackChecked.Load() {
		return
	}
	meta, err := c.leaders.metadata(ctx, c.s.Kafka.Topic, false)
	if err != nil {
		return // the group's errors say why the brokers cannot be reached
	}
	if !c.rackChecked.CompareAndSwap(false, true) {
		return
	}
	if problem := rackProblem(meta.Brokers, rack); problem != "" {
		c.log.Error(nil, "No broker is in this process's rack: partitions are read from their leaders", "rack", rack, "problem", problem)
	}
}

// rackProblem says why no replica can be named in rack, or "".
func rackProblem(brokers []kafka.Broker, rack string) string {
	var racks []string
	for _, b := range brokers {
		if b.Rack == rack {
			return ""
		}
		if b.Rack != "" && !slices.Contains(racks, b.Rack) {
			racks = append(racks, b.Rack)
		}
	}
	if len(racks) == 0 {
		return "the brokers name no racks (broker.rack is not set)"
	}
	slices.Sort(racks)
	return fmt.Sprintf("kafka.rack must be one of the brokers' racks: %s (on Amazon MSK, zone ids such as use1-az1)", strings.Join(racks, ", "))
}

// consumeAsMember joins the group and consumes in its generations until ctx is cancelled
// or the topic is deleted (deleted), then leaves it.
func (c *Consumer) consumeAsMember(ctx context.Context) (deleted bool, err error) {
	k := c.s.Kafka
	start := kafka.FirstOffset
	if k.InitialOffset == config.OffsetLatest {
		start = kafka.LastOffset
	}
	conns := &groupConns{open: map[net.Conn]struct{}{}}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                k.ConsumerGroup,
		Brokers:           k.Brokers,
		Dialer:            c.joinGated(conns),
		Topics:            []string{k.Topic},
		SessionTimeout:    k.SessionTimeout.D(),
		HeartbeatInterval: k.HeartbeatInterval.D(),
		RebalanceTimeout:  k.RebalanceTimeout.D(),
		JoinGroupBackoff:  time.Second,
		// Partitions added to the topic are picked up by watchTopic, not by kafka-go's
		// watcher, whose look at them would create the topic again once deleted.
		WatchPartitionChanges: false,
		StartOffset:           start,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.V(1).Info("kafka-go: " + fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return false, fmt.Errorf("consumer group %q: %w", k.ConsumerGroup, err)
	}
	var gone atomic.Bool
	var generations sync.WaitGroup // the generations' consumption, until drained and committed
	leave := func() {
		// Closing the group from a goroutine of the generation would wait for itself.
		gone.Store(true)
		go func() { _ = group.Close() }()
	}
	// Processing is not cancelled by ctx: a stop first drains (see runGeneration).
	work := context.WithoutCancel(ctx)
	for {
		gen, err := group.Next(ctx)
		if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
			break
		}
		if err != nil {
			// kafka-go has already backed off before reporting the failed join.
			c.groupErrors.Event(err, "group", k.ConsumerGroup, "brokers", strings.Join(k.Brokers, ","))
			c.mu.Lock()
			c.joinErr = err
			c.mu.Unlock()
			continue
		}
		c.mu.Lock()
		c.joinErr = nil
		c.mu.Unlock()
		c.m.GroupJoins.Inc()
		if len(gen.Assignments[k.Topic]) == 0 && c.topicIsMissing(ctx) {
			// The topic went as the group joined: leave, rather than rejoin in a loop
			// (and have the next leader's look at it create it again).
			gone.Store(true)
			break
		}
		c.runGeneration(gen, work, leave, &generations)
	}
	// Closing the group ends the current generation: kafka-go waits for its goroutines,
	// which drain and commit on the way out; then it leaves the group.
	if ctx.Err() == nil {
		return gone.Load(), group.Close()
	}
	closed := make(chan error, 1)
	go func() { closed <- group.Close() }()
	drained := make(chan struct{})
	go func() { generations.Wait(); close(drained) }()
	select {
	case err := <-closed:
		return gone.Load(), err
	case <-drained:
	}
	// Stopped, and the generation (if any) drained and committed: what Close may still
	// wait for is leaving the group — quick — or a join the brokers hold for a rebalance,
	// which a member killed without leaving keeps open for up to its session timeout. The
	// join is given up: its connection is closed.
	select {
	case err := <-closed:
		return gone.Load(), err
	case <-time.After(leaveGrace):
	}
	conns.closeAll()
	return gone.Load(), <-closed
}

// leaveGrace is how long a stopped member waits for kafka-go to leave the group, its
// generation drained, before it gives up a join in progress.
const leaveGrace = 2 * time.Second

// groupConns are the connections kafka-go's consumer group opened, to close under a join
// in progress when the consumer stops.
type groupConns struct {
	mu   sync.Mutex
	open map[net.Conn]struct{}
}

func (g *groupConns) add(nc net.Conn) net.Conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open[nc] = struct{}{}
	return &trackedConn{Conn: nc, set: g}
}

func (g *groupConns) closeAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for nc := range g.open {
		_ = nc.Close()
	}
}

// trackedConn leaves its set when closed.
type trackedConn struct {
	net.Conn
	set *groupConns
}

func (t *trackedConn) Close() error {
	t.set.mu.Lock()
	delete(t.set.open, t.Conn)
	t.set.mu.Unlock()
	return t.Conn.Close()
}

// topicIsMissing asks the brokers whether the topic exists, and records and reports the
// answer. It says false when the brokers cannot tell.
func (c *Consumer) topicIsMissing(ctx context.Context) bool {
	topic := c.s.Kafka.Topic
	// A fresh answer: the client's may be seconds old, and say the topic exists just
	// after it was deleted, or not yet just after it was made.
	meta, err := c.leaders.metadata(ctx, topic, true)
	if err != nil {
		return false
	}
	var missing error
	for _, t := range meta.Topics {
		if t.Name == topic && (t.Error != nil || len(t.Partitions) == 0) {
			missing = c.topicMissing()
		}
	}
	c.setMissingTopic(missing)
	return missing != nil
}

// topicMissing is the error that says the topic does not exist.
func (c *Consumer) topicMissing() error {
	return fmt.Errorf("topic %q does not exist on the brokers %s", c.s.Kafka.Topic, strings.Join(c.s.Kafka.Brokers, ","))
}

// setMissingTopic records whether the topic is missing, logging and counting the changes.
func (c *Consumer) setMissingTopic(missing error) {
	c.mu.Lock()
	was := c.missingTopic
	c.missingTopic = missing
	c.mu.Unlock()
	switch {
	case missing != nil && was == nil:
		c.m.TopicMissing.Set(1)
		c.log.Error(missing, "The topic to consume does not exist; waiting for it to be created")
	case missing == nil && was != nil:
		c.m.TopicMissing.Set(0)
		c.log.Info("The topic exists now", "topic", c.s.Kafka.Topic)
	}
}

// runGeneration starts the work of one group generation: a loop per assigned partition and
// a committer. kafka-go ends the generation on rebalance or close and waits for them;
// running counts the consumption until it drained and committed.
func (c *Consumer) runGeneration(gen *kafka.Generation, work context.Context, leave func(), running *sync.WaitGroup) {
	c.setMissingTopic(nil)
	assignments := gen.Assignments[c.s.Kafka.Topic]
	finished := make(chan struct{}, 1)
	gen.Start(func(ctx context.Context) { c.watchTopic(ctx, gen.GroupID, leave) })
	running.Add(1)
	gen.Start(func(ctx context.Context) {
		defer running.Done()
		parts := make(map[int]*partition, len(assignments))
		for _, a := range assignments {
			parts[a.ID] = newPartition(a, c.m.ForPartition(a.ID), c.log, c.holdLogs, ctx.Done(), finished, c.learn)
		}
		c.log.Info("Joined consumer group", "group", gen.GroupID, "generation", gen.ID, "partitions", slices.Sorted(maps.Keys(parts)))
		c.checkRack(ctx)
		c.mu.Lock()
		c.partitions = parts
		if !c.generationEnded.IsZero() {
			c.pause.Store(int64(time.Since(c.generationEnded)))
		}
		c.mu.Unlock()
		c.joined.Store(true)
		c.m.Partitions.Set(float64(len(parts)))

		fetchBytes := fetchBytesPerPartition(c.s.Kafka, c.s.FetchedBytes, len(parts))
		var loops sync.WaitGroup
		for _, p := range parts {
			loops.Go(func() { c.consumePartition(ctx, work, p, fetchBytes) })
		}
		loops.Go(func() { c.askEnds(ctx, parts, c.endCheck) })
		// Commit soon after deliveries finish, one request at a time (finishes coalesce
		// while one is in flight); the interval retries a failed commit.
		ticker := time.NewTicker(c.s.Kafka.CommitInterval.D())
		defer ticker.Stop()
		committer := newCommitter(c, gen, parts)
		for {
			select {
			case <-finished:
				committer.commit()
			case <-ticker.C:
				committer.commit()
				trimBufferPools()
				now := time.Now()
				for _, p := range parts {
					p.showLagSeconds(now) // a delivery held by storage keeps ageing
				}
			case <-ctx.Done():
				loops.Wait()
				committer.commit()
				committer.close()
				c.joined.Store(false)
				c.mu.Lock()
				c.generationEnded = time.Now()
				c.mu.Unlock()
				c.m.Partitions.Set(0)
				for id := range parts {
					c.m.ForgetPartition(id)
				}
				return
			}
		}
	})
}

// topicCheckInterval is how often a member looks at the topic while it consumes: for
// partitions added (a rebalance assigns them) and for its deletion.
const topicCheckInterval = 5 * time.Second

// watchTopic returns, ending the generation so that the group rebalances, when some
// partition of the topic is assigned to no member of the group — partitions added while
// it runs, or as it rebalanced, which kafka-go's own watcher (comparing the topic with
// what it saw as the generation started) would have left unread until the next
// rebalance; otherwise when the generation ends. When the topic is deleted it has the
// member leave the group, which Run joins again once the topic exists: a rejoin would ask
// for the topic in a way that creates it again.
func (c *Consumer) watchTopic(ctx context.Context, group string, leave func()) {
	topic := c.s.Kafka.Topic
	covered := -1 // partitions the group's assignment was last found to cover
	for sleep(ctx, topicCheckInterval) == nil {
		// The client's answer may be seconds old; it costs no request most of the time.
		meta, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			continue
		}
		partitions, deleted := topicPartitions(meta, topic)
		if deleted {
			// Only a fresh answer, not the client's memory of one, deletes.
			if fresh, err := c.leaders.metadata(ctx, topic, true); err != nil {
				continue
			} else if _, deleted = topicPartitions(fresh, topic); !deleted {
				continue
			}
			c.setMissingTopic(c.topicMissing())
			c.log.Info("The topic was deleted; leaving the consumer group until it exists again", "topic", topic)
			leave()
			<-ctx.Done()
			return
		}
		if partitions == covered {
			continue
		}
		missing, checked, err := c.unassigned(ctx, group)
		switch {
		case err != nil:
			c.log.V(1).Info("Could not check the group's assignment; checking again", "error", err.Error())
		case len(missing) > 0:
			c.log.Info("Partitions of the topic are assigned to no member of the group (added since it joined); rebalancing",
				"partitions", missing)
			return
		default:
			// What the check saw, not the client's count: an answer that had not seen
			// partitions added yet must not mark them covered.
			covered = checked
		}
	}
}

// joinGated is the dialer of the group's connections, which connects only while the topic
// exists. kafka-go joins the group again on its own whenever a generation ends, and a
// join's leader asks for the topic's partitions in a way that creates a deleted topic
// (auto.create.topics.enable): when one member leaves because the topic is gone, the
// others' generations end too, before their own look at the topic may have seen it gone.
// Each join first connects to the group's coordinator, so a join while the topic does
// not exist fails there, and kafka-go tries again after its backoff. Its connections are
// kept in conns, to be closed under a join in progress when the consumer stops.
func (c *Consumer) joinGated(conns *groupConns) *kafka.Dialer {
	gated := *kafka.DefaultDialer
	if c.dialer != nil {
		gated = *c.dialer
	}
	dial := gated.DialFunc
	if dial == nil {
		dial = (&net.Dialer{LocalAddr: gated.LocalAddr, DualStack: gated.DualStack, FallbackDelay: gated.FallbackDelay, KeepAlive: gated.KeepAlive}).DialContext
	}
	topic := c.s.Kafka.Topic
	// The TLS handshake is made here, not by kafka-go, which leaves the socket of a failed
	// one open (to the collector, and conns would keep it from that).
	tlsConfig := gated.TLS
	gated.TLS = nil
	gated.DialFunc = func(ctx context.Context, network, address string) (net.Conn, error) {
		// A fresh answer: the client's may be seconds old, and a join on a stale "it
		// exists" is the one that creates it.
		if meta, err := c.leaders.metadata(ctx, topic, true); err == nil {
			if _, deleted := topicPartitions(meta, topic); deleted {
				c.setMissingTopic(c.topicMissing())
				return nil, fmt.Errorf("topic %q does not exist: not joining the consumer group, whose leader would create it", topic)
			}
		}
		nc, err := dial(ctx, network, address)
		if err != nil {
			return nil, err
		}
		if tlsConfig != nil {
			cfg := tlsConfig.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName, _, _ = net.SplitHostPort(address)
			}
			tc := tls.Client(nc, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = nc.Close()
				return nil, err
			}
			nc = tc
		}
		return conns.add(nc), nil
	}
	return &gated
}

// topicPartitions counts the partitions of topic in a metadata answer; deleted is true
// when the brokers say it does not exist.
func topicPartitions(meta *kafka.MetadataResponse, topic string) (partitions int, deleted bool) {
	for _, t := range meta.Topics {
		if t.Name == topic {
			return len(t.Partitions), errors.Is(t.Error, kafka.UnknownTopicOrPartition)
		}
	}
	return 0, false
}

// unassigned returns the partitions of the topic that no member of the group is assigned,
// and how many partitions the topic had in the answer it checked.
func (c *Consumer) unassigned(ctx context.Context, group string) (missing []int, partitions int, err error) {
	topic := c.s.Kafka.Topic
	meta, err := c.leaders.metadata(ctx, topic, true) // the client's may be seconds old
	if err != nil {
		return nil, 0, err
	}
	desc, err := c.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return nil, 0, err
	}
	assigned := map[int]bool{}
	for _, g := range desc.Groups {
		if g.Error != nil {
			return nil, 0, g.Error
		}
		if g.GroupState != "Stable" {
			return nil, 0, fmt.Errorf("the group is %s", g.GroupState)
		}
		for _, m := range g.Members {
			for _, t := range m.MemberAssignments.Topics {
				if t.Topic == topic {
					for _, id := range t.Partitions {
						assigned[id] = true
					}
				}
			}
		}
	}
	for _, t := range meta.Topics {
		if t.Name == topic && t.Error == nil {
			partitions = len(t.Partitions)
			for _, p := range t.Partitions {
				if !assigned[p.ID] {
					missing = append(missing, p.ID)
				}
			}
		}
	}
	slices.Sort(missing)
	return missing, partitions, nil
}

// learn keeps the running average of spans per message from a finished delivery.
func (c *Consumer) learn(d *processor.Delivery) {
	if d.Spans == 0 {
		return
	}
	observed := float64(d.Spans) / float64(len(d.Messages))
	avg := math.Float64frombits(c.spansPerMessage.Load())
	if avg == 0 {
		avg = observed // the first delivery is all there is to go by
	}
	c.spansPerMessage.Store(math.Float64bits(0.8*avg + 0.2*observed))
}

// deliveryMessages is how many messages make a delivery of about DeliverySpans spans.
// Until a delivery was decoded the spans a message are unknown, and a delivery takes a
// fiftieth of DeliverySpans messages: counting one span a message, a pod's first
// deliveries — one for each of its partitions at once, all formed before any is decoded —
// each took up to DeliveryBytes of messages of many spans (on otlp_proto, a third more
// memory at the start than ever after).
func (c *Consumer) deliveryMessages() int {
	perMessage := math.Float64frombits(c.spansPerMessage.Load())
	if perMessage == 0 {
		return max(1, c.s.DeliverySpans/firstDeliveryShare)
	}
	return max(1, min(c.s.DeliverySpans, int(float64(c.s.DeliverySpans)/max(perMessage, 1e-3))))
}

// firstDeliveryShare is the share of DeliverySpans, in messages, of a delivery formed
// before the spans a message are known.
const firstDeliveryShare = 50

// consumePartition fetches one partition in order and hands its messages to the chain in
// deliveries. When the generation ends it stops fetching, waits for the partition's
// in-flight deliveries up to the drain timeout, and then cancels what is left (it will be
// read again).
func (c *Consumer) consumePartition(genCtx, work context.Context, p *partition, fetchBytes int) {
	procCtx, cancelProc := context.WithCancel(work)
	defer cancelProc()
	defer func() {
		drainCtx, cancel := context.WithTimeout(work, c.s.DrainTimeout)
		defer cancel()
		if err := p.tracker.Wait(drainCtx); err != nil {
			p.mu.Lock()
			p.released = true
			p.mu.Unlock()
			p.log.Info("Partition released with deliveries still in flight; they will be read again", "inFlight", p.tracker.InFlight())
		}
	}()

	k := c.s.Kafka
	p.gauges.OpenTransaction.Set(0) // none until a response read committed says
	p.gauges.FromFollower.Set(0)
	fetch := &fetcher{client: c.client, dialer: c.fetchDialer, topic: k.Topic, partition: p.id, minBytes: k.MinBytes, maxBytes: fetchBytes,
		readCommitted: k.IsolationLevel == config.ReadCommitted, offset: p.start, rack: k.Rack,
		fromFollower: func(follower bool) {
			p.gauges.FromFollower.Set(map[bool]float64{true: 1}[follower])
		},
		rackRefused: func(version int16) {
			c.rackRefused.Do(func() {
				c.log.Error(nil, "The brokers do not read a rack (Fetch v11, Kafka 2.4 and later): kafka.rack is left out, and partitions are read from their leaders", "fetchVersion", version, "rack", k.Rack)
			})
		},
		skipped: func(from, to int64) {
			c.m.RecordsLost.Add(float64(to - from))
			p.log.Error(nil, "Records deleted by retention before they were read; reading on from the first the broker has",
				"from", from, "to", to, "lost", to-from)
		},
		truncated: func(offset, first, last int64) {
			p.log.Error(nil, "The offset to read is past the end of the partition's log, which lost records read before (an unclean leader election?); reading it again from the first record the broker has",
				"offset", offset, "logStart", first, "logEnd", last)
		},
		stable: func(highWatermark, lastStable int64) {
			p.gauges.OpenTransaction.Set(float64(max(highWatermark-lastStable, 0)))
		},
		passed:  p.pass,
		sawEnd:  p.sawEnd,
		leaders: c.leaders}
	defer fetch.close()
	reserver, _ := c.chain.(processor.Reserver)
	for {
		// A held partition fetches nothing more: a hold cancels the fetch in progress.
		fetchCtx, err := p.fetching(genCtx)
		if err != nil {
			return
		}
		// Messages first, then a slot: a partition with nothing to read holds none.
		if err := fetch.await(fetchCtx, c.s.Kafka.MaxWait.D()); err != nil {
			if c.fetchFailed(genCtx, fetchCtx, p, err) {
				return
			}
			continue
		}
		var slot *processor.Reservation
		if reserver != nil {
			// Waiting ends with a hold too: a held partition waits for no slot.
			if slot, err = reserver.Reserve(fetchCtx, p.Revoked()); err != nil {
				if genCtx.Err() != nil || errors.Is(err, processor.ErrRevoked) {
					return // what was fetched is read again by the next owner
				}
				continue
			}
		}
		msgs, backing, err := c.fetchDelivery(fetchCtx, fetch, slot)
		if err != nil || genCtx.Err() != nil {
			if slot != nil {
				slot.Cancel()
			}
			if err == nil || c.fetchFailed(genCtx, fetchCtx, p, err) {
				return // what was fetched and not handed over is read again by the next owner
			}
			continue
		}
		// Messages fetched as a hold began are handed over when it ends; the slot is not
		// kept meanwhile.
		giveBack := func() {
			if slot != nil {
				slot.Cancel()
				slot = nil
			}
		}
		if err := p.waitUnpaused(genCtx, giveBack); err != nil {
			giveBack()
			return
		}
		d := processor.NewDelivery(p, msgs)
		d.Tail = d.Last()+1 >= fetch.highWatermark
		if d.First() < p.begun {
			// The log is read again from an earlier offset (it was truncated). A partition's
			// deliveries are tracked, and their bytes held, by their first offsets, in order:
			// those in flight are finished first.
			giveBack()
			if p.tracker.Wait(genCtx) != nil {
				return
			}
		}
		p.begin(d, backing)
		p.showLagSeconds(time.Now())
		if slot != nil {
			err = slot.Start(procCtx, d)
		} else {
			err = c.chain.Process(procCtx, d)
		}
		if err != nil {
			// Revoked (or stopped) before the hand-over: the delivery was never processed
			// and will be read again; the drain does not wait for it.
			p.abandon(d)
			return
		}
	}
}

// fetchFailed handles a fetch that brought nothing: it reports whether the partition's
// loop ends (the generation ended); a failure is logged and waited out, a hold is not.
func (c *Consumer) fetchFailed(genCtx, fetchCtx context.Context, p *partition, err error) bool {
	switch {
	case genCtx.Err() != nil:
		return true
	case fetchCtx.Err() != nil:
		return false // held while waiting for messages; the fetcher keeps what it has
	}
	c.fetchErrors.Event(err, "partition", p.id)
	return sleep(genCtx, fetchRetryWait) != nil
}

// fetchDelivery fetches the next run of messages, held by an arena of their own: it
// waits for the first, then takes more until the run holds about DeliverySpans spans or
// DeliveryBytes bytes, or Linger has passed since the first arrived, or — formed in a
// reserved slot — as soon as what was fetched is taken while other partitions wait for a
// slot. An error is returned only when no message was fetched.
func (c *Consumer) fetchDelivery(ctx context.Context, fetch *fetcher, slot *processor.Reservation) ([]kafka.Message, *arena, error) {
	backing := &arena{}
	first, err := fetch.next(ctx, c.s.Kafka.MaxWait.D(), backing)
	if err != nil {
		return nil, nil, err
	}
	limit := c.deliveryMessages()
	msgs := append(backing.messages(limit), first)
	bytes := int64(len(first.Value))
	deadline := time.Now().Add(c.s.Linger)
	for len(msgs) < limit && bytes < c.s.DeliveryBytes {
		msg, ok := fetch.queued(backing)
		if !ok {
			// Nothing fetched is left: one more fetch, waiting no longer than the linger.
			// It is not cancelled when the linger ends (that would drop its connection):
			// the broker answers by then.
			left := time.Until(deadline)
			if left <= 0 || (slot != nil && slot.Contended()) {
				break
			}
			// A delivery waiting for its partition's next response holds no more of the
			// last than its own bytes; when those are most of it, a delivery three
			// quarters full goes now rather than hold it through the fetch (cut at half,
			// deliveries of one to two responses' size came out half their size, twice
			// the writes). Measured under a backlog, each partition's delivery being
			// formed held its last response (1 MiB, of which otlp_proto's deliveries are
			// about one) while the next was fetched: a third of the heap.
			if !backing.detach(msgs) && (4*len(msgs) >= 3*limit || 4*bytes >= 3*c.s.DeliveryBytes) {
				break
			}
			fill := func() error { return fetch.fill(ctx, left) }
			if slot != nil {
				fill = func() error { return slot.Await(ctx, func() error { return fetch.fill(ctx, left) }) }
			}
			if fill() != nil {
				break
			}
			msg, ok = fetch.queued(backing)
		}
		if !ok {
			break
		}
		msgs = append(msgs, msg)
		bytes += int64(len(msg.Value))
	}
	c.m.Deliveries.Observe(float64(len(msgs)))
	backing.formed = len(msgs)
	return backing.fit(msgs), backing, nil
}

// committer commits the offsets of one generation. The generation's own commits are the
// quick path: one request on its coordinator connection, one at a time. They carry no
// metadata, so one partition, the lowest this member holds, is committed apart by a
// reporter with the load report in its metadata, through the client (which looks the
// coordinator up on every request: a slower path, kept off the others' way).
type committer struct {
	c     *Consumer
	gen   *kafka.Generation
	parts map[int]*partition
	// report is the partition that carries the load report (-1: no report to carry).
	report int
	// wake asks the reporter for a commit; stop ends it, and done is closed when it ended.
	wake       chan struct{}
	stop, done chan struct{}
}

func newCommitter(c *Consumer, gen *kafka.Generation, parts map[int]*partition) *committer {
	k := &committer{c: c, gen: gen, parts: parts, report: -1, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if c.s.CommitMetadata != nil && len(parts) > 0 {
		k.report = slices.Min(slices.Collect(maps.Keys(parts)))
		go k.reporter()
	} else {
		close(k.done)
	}
	return k
}

// commit commits, in one request, every partition but the reporter's whose finished
// offset moved, and wakes the reporter.
func (k *committer) commit() {
	c := k.c
	pending := map[int]int64{}
	for id, p := range k.parts {
		if next := p.tracker.Committable(); id != k.report && next >= 0 && next != p.committed {
			pending[id] = next
		}
	}
	select {
	case k.wake <- struct{}{}:
	default: // a wake is pending already
	}
	if len(pending) == 0 {
		return
	}
	if err := k.gen.CommitOffsets(map[string]map[int]int64{c.s.Kafka.Topic: pending}); err != nil {
		c.m.Commits.WithLabelValues("error").Inc()
		c.commitErrors.Event(err, "generation", k.gen.ID)
		return
	}
	c.m.Commits.WithLabelValues("ok").Inc()
	for id, next := range pending {
		k.parts[id].committed = next
		k.parts[id].gauges.CommittedOffset.Set(float64(next))
		k.parts[id].committedAt(next)
	}
}

// reporter commits the report partition when it moved, and again with a fresh report
// every MetadataInterval while it does not, one request at a time, until stopped.
func (k *committer) reporter() {
	defer close(k.done)
	var sent time.Time
	for {
		select {
		case <-k.stop:
			return
		case <-k.wake:
		}
		refresh := k.c.s.MetadataInterval > 0 && time.Since(sent) >= k.c.s.MetadataInterval
		if k.commitReport(refresh) {
			sent = time.Now()
		}
	}
}

// close stops the reporter and commits the report partition a last time.
func (k *committer) close() {
	if k.report < 0 {
		return
	}
	close(k.stop)
	<-k.done
	k.commitReport(false)
}

// commitReport commits the report partition with the load report when it moved (or
// when refresh is set, unmoved); it reports whether it committed. Only the reporter (and
// close, after it) touches the partition's committed offset.
func (k *committer) commitReport(refresh bool) bool {
	c, p := k.c, k.parts[k.report]
	next := p.tracker.Committable()
	if next < 0 || (next == p.committed && !refresh) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	send := func(metadata string) error {
		commit := kafka.OffsetCommit{Partition: k.report, Offset: next, Metadata: metadata}
		resp, err := c.s.ReportClient.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: k.gen.GroupID, GenerationID: int(k.gen.ID),
			MemberID: k.gen.MemberID, Topics: map[string][]kafka.OffsetCommit{c.s.Kafka.Topic: {commit}}})
		if err != nil {
			return err
		}
		for _, r := range resp.Topics[c.s.Kafka.Topic] {
			if r.Error != nil {
				return fmt.Errorf("partition %d: %w", r.Partition, r.Error)
			}
		}
		return nil
	}
	err := send(c.s.CommitMetadata(slices.Sorted(maps.Keys(k.parts))))
	if errors.Is(err, kafka.OffsetMetadataTooLarge) {
		// The brokers take less metadata than a report (offset.metadata.max.bytes): the
		// offset matters more than the report.
		c.commitErrors.Event(err, "generation", k.gen.ID)
		err = send("")
	}
	if err != nil {
		c.m.Commits.WithLabelValues("error").Inc()
		c.commitErrors.Event(err, "generation", k.gen.ID)
		// The client's transport keeps what it learnt of the cluster (its brokers, its
		// connections) for seconds; after a broker restart that is stale, and every
		// commit would fail until it expires. Start afresh.
		if t, ok := c.s.ReportClient.Transport.(interface{ CloseIdleConnections() }); ok {
			t.CloseIdleConnections()
		}
		return false
	}
	c.m.Commits.WithLabelValues("ok").Inc()
	p.committed = next
	p.gauges.CommittedOffset.Set(float64(next))
	p.committedAt(next)
	return true
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
