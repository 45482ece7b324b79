package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// fetcher reads one partition with the client's Fetch requests. One request brings many
// record batches; their records wait in a queue, their keys and values still in kafka-go's
// pooled pages, until they join a delivery: then they are copied into the delivery's arena
// and the pages go back to kafka-go's pool. kafka-go's Reader costs about three times as
// much CPU a message: it parses the stream message by message through a buffered
// connection.
type fetcher struct {
	client    *kafka.Client
	topic     string
	partition int
	minBytes  int
	maxBytes  int
	// offset is the next offset to fetch; negative (kafka.FirstOffset, kafka.LastOffset)
	// until resolved.
	offset int64
	queue  []pending
	// queueArray is the queue's array from its start, filled again once the queue is
	// empty (a response is read only into an empty queue).
	queueArray []pending
	// queuedBytes is the size of the queued records' keys, values and header values.
	queuedBytes int
	// highWatermark is the partition's end as the last response gave it.
	highWatermark int64
	// skipped is told of records the broker no longer has (deleted by retention before
	// they were read): from, to.
	skipped func(from, to int64)
	// grace is how long past its wait a fetch's answer may take before the fetch is given
	// up (a broker gone silent without closing the connection); fetchGrace when zero.
	grace time.Duration
}

// pending is a fetched record not yet handed over.
type pending struct {
	offset, highWatermark int64
	time                  time.Time
	key, value            kafka.Bytes // in kafka-go's pages until copied
	headers               []kafka.Header
	size                  int
}

// fetchGrace is how long past its wait a fetch may go unanswered.
const fetchGrace = 30 * time.Second

// next returns the next message, copied into a (a fresh buffer when nil), waiting for it
// with fetches of at most maxWait each until ctx ends.
func (f *fetcher) next(ctx context.Context, maxWait time.Duration, a *arena) (kafka.Message, error) {
	if err := f.await(ctx, maxWait); err != nil {
		return kafka.Message{}, err
	}
	return f.pop(a)
}

// await waits until a record is queued, with fetches of at most maxWait each, or ctx ends.
func (f *fetcher) await(ctx context.Context, maxWait time.Duration) error {
	for len(f.queue) == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f.fill(ctx, maxWait); err != nil {
			return err
		}
	}
	return nil
}

// queued returns the next message already fetched, copied into a, if any.
func (f *fetcher) queued(a *arena) (kafka.Message, bool, error) {
	if len(f.queue) == 0 {
		return kafka.Message{}, false, nil
	}
	m, err := f.pop(a)
	return m, err == nil, err
}

// pop copies the first queued record into a and gives its pages back. If the copy fails
// the queue is dropped and fetching starts again from that record: none is lost.
func (f *fetcher) pop(a *arena) (kafka.Message, error) {
	if a == nil {
		a = &arena{}
	}
	r := &f.queue[0]
	m := kafka.Message{Topic: f.topic, Partition: f.partition, Offset: r.offset, HighWaterMark: r.highWatermark, Time: r.time}
	var err error
	if m.Key, err = a.copyOf(r.key, f.queuedBytes); err == nil {
		m.Value, err = a.copyOf(r.value, f.queuedBytes-len(m.Key))
	}
	if err != nil {
		err = fmt.Errorf("copying the record at offset %d of partition %d: %w", r.offset, f.partition, err)
		f.rewind(r.offset)
		return kafka.Message{}, err
	}
	if len(r.headers) > 0 {
		m.Headers = make([]kafka.Header, len(r.headers))
		for i, h := range r.headers {
			m.Headers[i] = kafka.Header{Key: h.Key, Value: a.copyBytes(h.Value, f.queuedBytes)}
		}
	}
	closeBytes(r.key, r.value)
	f.queuedBytes -= r.size
	f.queue[0] = pending{} // the queue's array must not keep the pages referenced
	if f.queue = f.queue[1:]; len(f.queue) == 0 {
		f.queue = f.queueArray[:0] // the next response fills the same array
	}
	return m, nil
}

// rewind drops the queue and fetches again from offset.
func (f *fetcher) rewind(offset int64) {
	f.drop()
	f.offset = offset
}

// drop empties the queue, giving its records' pages back to kafka-go's pool.
func (f *fetcher) drop() {
	for _, r := range f.queue {
		closeBytes(r.key, r.value)
	}
	clear(f.queue)
	f.queue, f.queuedBytes = nil, 0
}

// fill fetches once, waiting at most maxWait for data, and queues what came.
func (f *fetcher) fill(ctx context.Context, maxWait time.Duration) error {
	if f.offset < 0 {
		if err := f.resolve(ctx); err != nil {
			return err
		}
	}
	maxWait = max(maxWait, time.Millisecond)
	// The deadline also bounds the connection's read: without one a silent broker would
	// hold the partition until TCP gives up.
	ctx, cancel := context.WithTimeout(ctx, maxWait+cmp.Or(f.grace, fetchGrace))
	defer cancel()
	res, err := f.client.Fetch(ctx, &kafka.FetchRequest{Topic: f.topic, Partition: f.partition, Offset: f.offset,
		MinBytes: int64(f.minBytes), MaxBytes: int64(f.maxBytes), MaxWait: maxWait})
	if err != nil {
		return err
	}
	if res.Error != nil {
		if errors.Is(res.Error, kafka.OffsetOutOfRange) {
			return f.outOfRange(ctx)
		}
		return res.Error
	}
	f.highWatermark = res.HighWatermark
	err = f.read(res.Records)
	f.queueArray = f.queue[:0] // filled from empty: the queue starts its array
	return err
}

// read queues the records of a response from the fetch offset on (a response may start
// with a batch from before it), skipping control batches (transaction markers).
func (f *fetcher) read(records kafka.RecordReader) error {
	if stream, ok := records.(*protocol.RecordStream); ok {
		for _, r := range stream.Records {
			if _, control := r.(*protocol.ControlBatch); control {
				if err := f.skipAll(r); err != nil {
					return err
				}
				continue
			}
			if err := f.read(r); err != nil {
				return err
			}
		}
		return nil
	}
	if _, control := records.(*protocol.ControlBatch); control {
		return f.skipAll(records)
	}
	for {
		rec, err := records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			// A batch cut short at the end of the response (MaxBytes) is fetched whole
			// next time; the complete records before it count.
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return fmt.Errorf("reading partition %d at offset %d: %w", f.partition, f.offset, err)
		}
		if rec.Offset < f.offset {
			closeBytes(rec.Key, rec.Value)
			continue
		}
		r := pending{offset: rec.Offset, highWatermark: f.highWatermark, time: rec.Time, key: rec.Key, value: rec.Value}
		r.size = bytesLen(r.key) + bytesLen(r.value)
		if len(rec.Headers) > 0 {
			r.headers = slices.Clone(rec.Headers) // the reader's own slice may be reused
			for _, h := range r.headers {
				r.size += len(h.Value)
			}
		}
		f.queue = append(f.queue, r)
		f.queuedBytes += r.size
		f.offset = rec.Offset + 1
	}
}

// closeBytes gives keys and values read by kafka-go back: they point into its pooled
// pages, which are reused only once nothing points into them (never closed, every
// response allocated pages of its own: half of what the ingester allocated).
func closeBytes(key, value kafka.Bytes) {
	if key != nil {
		_ = key.Close()
	}
	if value != nil {
		_ = value.Close()
	}
}

func bytesLen(b kafka.Bytes) int {
	if b == nil {
		return 0
	}
	return b.Len()
}

// skipAll reads a control batch to its end, moving the fetch offset past it.
func (f *fetcher) skipAll(records kafka.RecordReader) error {
	for {
		rec, err := records.ReadRecord()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return err
		}
		closeBytes(rec.Key, rec.Value)
		f.offset = max(f.offset, rec.Offset+1)
	}
}

// resolve turns kafka.FirstOffset or kafka.LastOffset into the partition's offset.
func (f *fetcher) resolve(ctx context.Context) error {
	first, last, err := f.bounds(ctx)
	if err != nil {
		return err
	}
	if f.offset == kafka.FirstOffset {
		f.offset = first
	} else {
		f.offset = last
	}
	return nil
}

// outOfRange moves a fetch offset the broker no longer has to the first it has (what
// retention deleted before it was read cannot be read); one past the end is fetched again
// later.
func (f *fetcher) outOfRange(ctx context.Context) error {
	first, _, err := f.bounds(ctx)
	if err != nil {
		return err
	}
	if f.offset < first {
		if f.skipped != nil {
			f.skipped(f.offset, first)
		}
		f.offset = first
		return nil
	}
	return fmt.Errorf("partition %d: offset %d is past the end of the log: %w", f.partition, f.offset, kafka.OffsetOutOfRange)
}

// bounds returns the partition's first offset and its end.
func (f *fetcher) bounds(ctx context.Context) (first, last int64, err error) {
	res, err := f.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		f.topic: {kafka.FirstOffsetOf(f.partition), kafka.LastOffsetOf(f.partition)},
	}})
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
