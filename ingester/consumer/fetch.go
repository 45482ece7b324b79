package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/fetchwire"
)

// fetcher reads one partition with Fetch requests on a connection of its own to the
// partition's leader (fetchwire). One request brings many record batches; their records
// wait in a queue until they join a delivery, their keys and values slices of the
// response (or of the batch decompressed) throughout: the delivery's arena holds the
// response's buffer until the delivery is done. kafka-go's Reader costs about three times
// as much CPU a message (it parses the stream message by message through a buffered
// connection), and its Client's Fetch about twice (it decodes a response varint by varint
// through io.Readers into pooled pages, from where every value was read again).
type fetcher struct {
	client    *kafka.Client // the partition's offsets
	leaders   *leaders      // where it is led
	dialer    *fetchwire.Dialer
	topic     string
	partition int
	minBytes  int
	maxBytes  int
	// readCommitted reads with read_committed isolation: up to the last stable offset,
	// which then is the partition's end, and without the aborted transactions' records.
	readCommitted bool
	// offset is the next offset to fetch; negative (kafka.FirstOffset, kafka.LastOffset)
	// until resolved.
	offset int64
	queue  []pending
	// queueArray is the queue's array from its start, filled again once the queue is
	// empty (a response is read only into an empty queue).
	queueArray []pending
	// highWatermark is the partition's end as the last response gave it (its last stable
	// offset when readCommitted).
	highWatermark int64
	// skipped is told of records the broker no longer has (deleted by retention before
	// they were read): from, to.
	skipped func(from, to int64)
	// truncated is told of an offset past the end of the log (the log lost records read
	// before: an unclean leader election), and of the log's first offset and end.
	truncated func(offset, first, last int64)
	// stable, unless nil, is told of the partition's high watermark and last stable offset
	// at each response read committed.
	stable func(highWatermark, lastStable int64)
	// passed, unless nil, is told of the offset to fetch next when a fetch left nothing
	// queued, every message before it handed over (see await): the offsets between hold
	// no message (transaction markers, records deleted), or the partition was read from
	// nothing.
	passed func(next, highWatermark int64)
	// sawEnd, unless nil, is told of the partition's end (highWatermark) at each response
	// and each look at its bounds.
	sawEnd func(end int64)
	// grace is how long past its wait a fetch's answer may take before the fetch is given
	// up (a broker gone silent without closing the connection); fetchGrace when zero.
	grace time.Duration
	// staleLeader says a fetch failed since the leader was looked up: the next lookup asks
	// the brokers.
	staleLeader bool
	// rack is the pod's rack, "" when none: the fetches say it, and a leader whose
	// brokers select replicas by rack names a replica in it to read from (KIP-392), which
	// keeps the records from crossing zones.
	rack string
	// replica is the replica the leader named, while the partition is read from it.
	replica preferredReplica
	// throttledUntil is when a broker over a quota reads fetches again (KIP-219): the next
	// fetch waits for it.
	throttledUntil time.Time
	// rackAfter is when fetches say the rack again after a replica the leader named
	// failed (gone from the brokers' list, unreachable, behind or ahead of the offset):
	// meanwhile the leader serves, so that a replica it keeps naming cannot stall the
	// partition.
	rackAfter time.Time
	// fromFollower, unless nil, is told whether the partition is read from a follower the
	// leader named (true) or from its leader, at each connection.
	fromFollower func(bool)
	// rackChecked says the brokers were asked whether they read a rack (Fetch v11); where
	// they do not, rack is emptied and rackRefused, unless nil, told the highest version.
	rackChecked bool
	rackRefused func(fetchVersion int16)

	conn *fetchwire.Conn // to the leader or the replica; nil until needed and after any failure
	// connLeader is the broker id of the leader when conn reaches it.
	connLeader int
	onReplica  bool // conn reaches replica
	// response holds the last response, which the queued records are slices of, and
	// decompressed what its compressed batches held; the fetcher lets go of them once
	// the queue is empty.
	response, decompressed *sharedBuffer
}

// pending is a fetched record not yet handed over.
type pending struct {
	offset, highWatermark int64
	time                  time.Time
	key, value            []byte // slices of in
	headers               []kafka.Header
	in                    *sharedBuffer
}

// fetchGrace is how long past its wait a fetch may go unanswered.
const fetchGrace = 30 * time.Second

// preferredReplica is a broker a partition's leader named to read the partition from.
type preferredReplica struct {
	broker int
	// until is when the leader is asked again (zero: no replica named), as Kafka's own
	// consumer asks again after metadata.max.age.ms: replicas leave and rejoin the set
	// in sync, and a new one may be nearer.
	until time.Time
}

// replicaLease is how long a replica the leader named is read from before the leader is
// asked again: Kafka's consumer's default metadata.max.age.ms.
const replicaLease = 5 * time.Minute

// replicaRetry is how long the leader serves after a replica it named failed.
const replicaRetry = 30 * time.Second

// next returns the next message, held by a (a fresh arena when nil), waiting for it
// with fetches of at most maxWait each until ctx ends.
func (f *fetcher) next(ctx context.Context, maxWait time.Duration, a *arena) (kafka.Message, error) {
	if err := f.await(ctx, maxWait); err != nil {
		return kafka.Message{}, err
	}
	return f.pop(a), nil
}

// await waits until a record is queued, with fetches of at most maxWait each, or ctx ends.
// It is called with every message popped before handed over (in a delivery begun), so
// that where a fetch leaves nothing queued, passed may be told of the offset reached.
func (f *fetcher) await(ctx context.Context, maxWait time.Duration) error {
	for len(f.queue) == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Records queued before a failure (a broken batch after good ones) are handed
		// over first; the failure comes back with the next fetch.
		err := f.fill(ctx, maxWait)
		if len(f.queue) > 0 {
			break
		}
		if err != nil {
			return err
		}
		if f.passed != nil && f.offset >= 0 {
			f.passed(f.offset, f.highWatermark)
		}
	}
	return nil
}

// queued returns the next message already fetched, held by a, if any.
func (f *fetcher) queued(a *arena) (kafka.Message, bool) {
	if len(f.queue) == 0 {
		return kafka.Message{}, false
	}
	return f.pop(a), true
}

// pop returns the first queued record, a holding the buffer it is in.
func (f *fetcher) pop(a *arena) kafka.Message {
	if a == nil {
		a = &arena{}
	}
	r := &f.queue[0]
	m := kafka.Message{Topic: f.topic, Partition: f.partition, Offset: r.offset, HighWaterMark: r.highWatermark, Time: r.time,
		Key: r.key, Value: r.value, Headers: r.headers}
	a.hold(r.in)
	f.queue[0] = pending{} // the queue's array must not keep the response referenced
	if f.queue = f.queue[1:]; len(f.queue) == 0 {
		f.queue = f.queueArray[:0] // the next response fills the same array
		f.releaseBuffers()
	}
	return m
}

// drop empties the queue.
func (f *fetcher) drop() {
	clear(f.queue)
	f.queue = nil
	f.releaseBuffers()
}

// close drops the queue and the connection: the partition is no longer read.
func (f *fetcher) close() {
	f.drop()
	f.disconnect()
}

// releaseBuffers lets go of the last response: the deliveries with messages in it hold
// it still.
func (f *fetcher) releaseBuffers() {
	for _, b := range []**sharedBuffer{&f.response, &f.decompressed} {
		if *b != nil {
			(*b).release()
			*b = nil
		}
	}
}

// fill fetches once, waiting at most maxWait for data, and queues what came. It is called
// with the queue empty.
func (f *fetcher) fill(ctx context.Context, maxWait time.Duration) error {
	if f.offset < 0 {
		if err := f.resolve(ctx); err != nil {
			return err
		}
		// Where reading starts is committable at once, before any delivery is written: a
		// new group whose storage fails from the start still commits, and with that the
		// pod's load report says it is held by storage (the operator would otherwise see
		// only a growing lag, and size for it), and a member stopped now leaves the next
		// no gap.
		if f.passed != nil {
			f.passed(f.offset, f.highWatermark)
		}
	}
	if f.onReplica && !time.Now().Before(f.replica.until) {
		f.toLeader() // the lease ended: the leader names a replica again, or serves itself
	}
	if wait := time.Until(f.throttledUntil); wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
	if f.conn == nil {
		if err := f.connect(ctx); err != nil {
			if ctx.Err() == nil {
				f.staleLeader = true // a leader that cannot be reached may be a leader no more
				if !f.replica.until.IsZero() {
					f.replicaFailed()
				}
			}
			return err
		}
	}
	rack := f.rack
	if time.Now().Before(f.rackAfter) {
		rack = ""
	}
	maxWait = max(maxWait, time.Millisecond)
	// The deadline also bounds the connection's read: without one a silent broker would
	// hold the partition until TCP gives up.
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, maxWait+cmp.Or(f.grace, fetchGrace))
	defer cancel()
	res, err := f.conn.Fetch(ctx, fetchwire.FetchRequest{Topic: f.topic, Partition: f.partition, Offset: f.offset,
		MinBytes: f.minBytes, MaxBytes: f.maxBytes, MaxWait: maxWait, ReadCommitted: f.readCommitted, Rack: rack}, func() []byte {
		if f.response == nil {
			f.response = responseBuffers.get()
		}
		return f.response.b
	})
	if err != nil {
		// A failed fetch keeps no buffer (its queue is empty).
		f.releaseBuffers()
		if parent.Err() != nil { // ended here (a hold, the generation's end): no fault of the leader's
			f.disconnect()
			return err
		}
		if f.onReplica {
			f.replicaFailed()
		}
		f.forgetLeader()
		return err
	}
	f.response.b = res.Buffer
	f.throttledUntil = time.Now().Add(res.Throttle)
	if res.Error != nil {
		f.releaseBuffers() // nothing queued: no buffer while the next fetch waits
		if f.onReplica {
			// A follower may not have the records yet, or no longer, or have left the
			// replicas: the leader says what the offset is, as Kafka's consumer asks it,
			// and serves a while. The leader's answer is the partition's.
			f.replicaFailed()
			return nil
		}
		if errors.Is(res.Error, kafka.OffsetOutOfRange) {
			return f.outOfRange(ctx)
		}
		// Most partition errors say the leader moved or is not known yet: the next
		// fetch asks where it is.
		f.forgetLeader()
		return res.Error
	}
	named := int(res.PreferredReadReplica)
	redirected := !f.onReplica && named >= 0 && named != f.connLeader
	if redirected && len(res.Records) == 0 {
		// The leader names a replica in the pod's rack, and says only that (the
		// partition's end is the replica's to say): the next fetch goes there.
		f.releaseBuffers()
		f.replica = preferredReplica{broker: named, until: time.Now().Add(replicaLease)}
		f.disconnect()
		return nil
	}
	f.highWatermark = res.HighWatermark
	if f.readCommitted {
		f.highWatermark = res.LastStableOffset
		if f.stable != nil {
			f.stable(res.HighWatermark, res.LastStableOffset)
		}
	}
	f.endSeen()
	err = f.read(res.Records, res.Aborted)
	f.queueArray = f.queue[:0] // filled from empty: the queue starts its array
	if len(f.queue) == 0 {
		f.releaseBuffers()
	}
	if redirected {
		// Records, and a replica to read the next from.
		f.replica = preferredReplica{broker: named, until: time.Now().Add(replicaLease)}
		f.disconnect()
	}
	return err
}

// read queues the records of a response from the fetch offset on, moving the offset past
// the last complete batch.
func (f *fetcher) read(records []byte, aborted []fetchwire.AbortedTransaction) error {
	if f.decompressed == nil {
		f.decompressed = decompressedBuffers.get()
	}
	next, decompressed, err := fetchwire.ParseRecords(records, f.offset, aborted, f.decompressed.b, func(rec *fetchwire.Record) {
		in := f.response
		if rec.Decompressed {
			in = f.decompressed
		}
		f.queue = append(f.queue, pending{offset: rec.Offset, highWatermark: f.highWatermark, time: rec.Time,
			key: rec.Key, value: rec.Value, headers: rec.Headers, in: in})
		f.offset = rec.Offset + 1
	})
	f.decompressed.b = decompressed
	if err == nil && len(f.queue) == 0 && next == f.offset && len(records) > 0 {
		// Bytes, yet no batch whole: brokers since Kafka 0.10.1 return the first batch
		// whole however large; fetching again would bring the same part.
		err = fmt.Errorf("the response holds only part of a record batch (%d bytes)", len(records))
	}
	if err != nil {
		return fmt.Errorf("reading partition %d at offset %d: %w", f.partition, f.offset, err)
	}
	f.offset = max(f.offset, next)
	return nil
}

// connect opens a connection to the partition's leader, or to the replica the leader
// named while its lease lasts and the brokers list it.
func (f *fetcher) connect(ctx context.Context) error {
	meta, err := f.leaders.metadata(ctx, f.topic, f.staleLeader)
	if err != nil {
		return err
	}
	for _, t := range meta.Topics {
		if t.Name != f.topic {
			continue
		}
		if t.Error != nil {
			return t.Error
		}
		for _, p := range t.Partitions {
			if p.ID != f.partition {
				continue
			}
			if p.Error != nil {
				return p.Error
			}
			if p.Leader.Host == "" {
				return fmt.Errorf("partition %d of %s has no leader: %w", f.partition, f.topic, kafka.LeaderNotAvailable)
			}
			broker, onReplica := p.Leader, false
			if !f.replica.until.IsZero() && !time.Now().Before(f.replica.until) {
				f.replica = preferredReplica{} // the lease ended while the partition was not read
			}
			if !f.replica.until.IsZero() {
				if i := slices.IndexFunc(meta.Brokers, func(b kafka.Broker) bool { return b.ID == f.replica.broker }); i >= 0 {
					broker, onReplica = meta.Brokers[i], true
				} else {
					f.replicaFailed() // not among the brokers (yet): the leader serves
				}
			}
			dialer := f.dialer
			if dialer == nil {
				dialer = &fetchwire.Dialer{}
			}
			if f.conn, err = dialer.Dial(ctx, net.JoinHostPort(broker.Host, strconv.Itoa(broker.Port))); err != nil {
				return err
			}
			if err := f.checkRack(ctx); err != nil {
				f.disconnect()
				return err
			}
			f.staleLeader = false
			f.connLeader, f.onReplica = p.Leader.ID, onReplica
			if f.fromFollower != nil {
				f.fromFollower(onReplica)
			}
			return nil
		}
	}
	return fmt.Errorf("partition %d of %s: %w", f.partition, f.topic, kafka.UnknownTopicOrPartition)
}

// checkRack asks the broker once whether it reads a rack (Fetch v11, Kafka 2.4 and
// later): an older one would refuse every fetch that says it, so the rack is dropped.
func (f *fetcher) checkRack(ctx context.Context) error {
	if f.rack == "" || f.rackChecked {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(f.grace, fetchGrace))
	defer cancel()
	version, err := f.conn.FetchVersions(ctx)
	if err != nil {
		return err
	}
	f.rackChecked = true
	if version < 11 {
		f.rack = ""
		if f.rackRefused != nil {
			f.rackRefused(version)
		}
	}
	return nil
}

// toLeader drops the connection to the replica the leader named: the next fetch goes to
// the leader.
func (f *fetcher) toLeader() {
	f.replica = preferredReplica{}
	f.disconnect()
}

// replicaFailed sends the fetches to the leader, without the rack for replicaRetry.
func (f *fetcher) replicaFailed() {
	f.toLeader()
	f.rackAfter = time.Now().Add(replicaRetry)
}

// forgetLeader drops the connection to the leader and has the next fetch ask the
// brokers where the partition is led.
func (f *fetcher) forgetLeader() {
	f.disconnect()
	f.staleLeader = true
	f.replica = preferredReplica{} // the leader is asked again whether a replica serves
}

func (f *fetcher) disconnect() {
	if f.conn != nil {
		_ = f.conn.Close()
		f.conn = nil
	}
	f.onReplica = false
}

// resolve turns kafka.FirstOffset or kafka.LastOffset into the partition's offset.
func (f *fetcher) resolve(ctx context.Context) error {
	first, last, err := f.bounds(ctx, f.readCommitted)
	if err != nil {
		return err
	}
	if f.offset == kafka.FirstOffset {
		f.offset = first
	} else {
		f.offset = last
	}
	f.highWatermark = last
	f.endSeen()
	return nil
}

// endSeen tells sawEnd of the end just learnt.
func (f *fetcher) endSeen() {
	if f.sawEnd != nil {
		f.sawEnd(f.highWatermark)
	}
}

// outOfRange moves a fetch offset the broker no longer has to the first it has: what
// retention deleted before it was read cannot be read, and an offset past the end of the
// log means that the log lost records read before (an unclean leader election truncated
// it): whatever it holds now may never have been read, and waiting for it to grow past
// the offset would pass over, unread, every record produced until then.
//
// The end is the high watermark even when reading committed records: an offset inside a
// transaction still open (committed by a group read uncommitted before) is not past it.
func (f *fetcher) outOfRange(ctx context.Context) error {
	first, last, err := f.bounds(ctx, false)
	if err != nil {
		return err
	}
	switch {
	case f.offset < first:
		if f.skipped != nil {
			f.skipped(f.offset, first)
		}
	case f.offset > last:
		if f.truncated != nil {
			f.truncated(f.offset, first, last)
		}
	default: // the log grew or moved since the fetch: fetched again
		return fmt.Errorf("partition %d: offset %d: %w", f.partition, f.offset, kafka.OffsetOutOfRange)
	}
	f.offset, f.highWatermark = first, last
	f.endSeen()
	return nil
}

// bounds returns the partition's first offset and its end (its last stable offset when
// committed).
func (f *fetcher) bounds(ctx context.Context, committed bool) (first, last int64, err error) {
	isolation := kafka.ReadUncommitted
	if committed {
		isolation = kafka.ReadCommitted
	}
	res, err := f.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		f.topic: {kafka.FirstOffsetOf(f.partition), kafka.LastOffsetOf(f.partition)},
	}, IsolationLevel: isolation})
	if err != nil {
		return 0, 0, err
	}
	for _, p := range res.Topics[f.topic] {
		if p.Partition == f.partition {
			if p.Error != nil {
				return 0, 0, p.Error
			}
			return p.FirstOffset, p.LastOffset, nil
		}
	}
	return 0, 0, fmt.Errorf("partition %d of %s: no offsets listed", f.partition, f.topic)
}
