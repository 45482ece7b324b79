package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// fetcher reads one partition with the client's Fetch requests. One request brings many
// record batches; their keys, values and header values are copied into 64 KB chunks (a
// few allocations a fetch, not several a message), and the messages wait in a queue until
// handed over. kafka-go's Reader costs about three times as much CPU a
// message: it parses the stream message by message through a buffered connection.
type fetcher struct {
	client    *kafka.Client
	topic     string
	partition int
	minBytes  int
	maxBytes  int
	// offset is the next offset to fetch; negative (kafka.FirstOffset, kafka.LastOffset)
	// until resolved.
	offset int64
	queue  []kafka.Message
	// highWatermark is the partition's end as the last response gave it.
	highWatermark int64
	// buf holds the keys and values of the response being read (held: the bytes of the
	// full buffers before it); lastResponse is how many the last response held.
	buf          []byte
	held         int
	lastResponse int
	// skipped is told of records the broker no longer has (deleted by retention before
	// they were read): from, to.
	skipped func(from, to int64)
	// grace is how long past its wait a fetch's answer may take before the fetch is given
	// up (a broker gone silent without closing the connection); fetchGrace when zero.
	grace time.Duration
}

// fetchGrace is how long past its wait a fetch may go unanswered.
const fetchGrace = 30 * time.Second

// next returns the next message, waiting for it with fetches of at most maxWait each
// until ctx ends.
func (f *fetcher) next(ctx context.Context, maxWait time.Duration) (kafka.Message, error) {
	for len(f.queue) == 0 {
		if err := ctx.Err(); err != nil {
			return kafka.Message{}, err
		}
		if err := f.fill(ctx, maxWait); err != nil {
			return kafka.Message{}, err
		}
	}
	return f.pop(), nil
}

// queued returns the next message already fetched, if any.
func (f *fetcher) queued() (kafka.Message, bool) {
	if len(f.queue) == 0 {
		return kafka.Message{}, false
	}
	return f.pop(), true
}

func (f *fetcher) pop() kafka.Message {
	m := f.queue[0]
	f.queue[0] = kafka.Message{} // the queue's array must not keep the buffer alive
	f.queue = f.queue[1:]
	return m
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
	// The response's keys and values go into chunks (room); the last one is let go after.
	defer func() {
		if f.buf != nil {
			f.lastResponse = f.held + len(f.buf)
		}
		f.buf, f.held = nil, 0 // the queued messages keep what they point into
	}()
	return f.read(res.Records)
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
			continue
		}
		if f.buf == nil {
			f.buf = make([]byte, 0, f.responseBytes(rec))
		}
		m := kafka.Message{Topic: f.topic, Partition: f.partition, Offset: rec.Offset, HighWaterMark: f.highWatermark, Time: rec.Time}
		if m.Key, err = f.copyOf(rec.Key); err != nil {
			return err
		}
		if m.Value, err = f.copyOf(rec.Value); err != nil {
			return err
		}
		if len(rec.Headers) > 0 {
			m.Headers = make([]kafka.Header, len(rec.Headers))
			for i, h := range rec.Headers {
				m.Headers[i] = kafka.Header{Key: h.Key, Value: f.copyBytes(h.Value)}
			}
		}
		f.queue = append(f.queue, m)
		f.offset = rec.Offset + 1
	}
}

// chunkBytes is the size of the buffers a response's keys and values are copied into: a
// delivery keeps alive the buffers its messages point into, and smaller ones are freed
// sooner as deliveries finish (1 MiB buffers kept about a third more memory resident).
const chunkBytes = 64 << 10

// responseBytes sizes the first buffer of a response: a chunk, or as much as the last
// response held when that was less (a quiet partition's single messages need no 64 KB),
// and at least its first record.
func (f *fetcher) responseBytes(first *kafka.Record) int {
	size := 0
	if first.Value != nil {
		size = first.Value.Len()
	}
	return max(size, min(chunkBytes, max(4<<10, f.lastResponse)))
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
		f.offset = max(f.offset, rec.Offset+1)
	}
}

// copyOf copies b into the response's buffer and returns the copy (nil for nil).
func (f *fetcher) copyOf(b kafka.Bytes) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	n := b.Len()
	out := f.room(n)
	if _, err := io.ReadFull(b, out); err != nil {
		return nil, err
	}
	return out, nil
}

// copyBytes copies b into the response's buffer and returns the copy.
func (f *fetcher) copyBytes(b []byte) []byte {
	out := f.room(len(b))
	copy(out, b)
	return out
}

// room returns the next n bytes of the response's buffer. A full buffer is followed by
// a chunk (or n, if more); the full one stays with the messages that point into it.
func (f *fetcher) room(n int) []byte {
	if cap(f.buf)-len(f.buf) < n {
		f.held += len(f.buf)
		f.buf = make([]byte, 0, max(n, chunkBytes))
	}
	start := len(f.buf)
	f.buf = f.buf[:start+n]
	return f.buf[start : start+n : start+n]
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
