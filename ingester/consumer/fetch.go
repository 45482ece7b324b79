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
// record batches; their keys, values and header values are copied into one buffer a
// response (one allocation a fetch, not several a message), and the messages wait in a
// queue until handed over. kafka-go's Reader costs about three times as much CPU a
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
	var buf []byte
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
		if buf == nil {
			buf = make([]byte, 0, f.responseBytes(rec))
		}
		m := kafka.Message{Topic: f.topic, Partition: f.partition, Offset: rec.Offset, HighWaterMark: f.highWatermark, Time: rec.Time}
		if buf, m.Key, err = appendBytes(buf, rec.Key); err != nil {
			return err
		}
		if buf, m.Value, err = appendBytes(buf, rec.Value); err != nil {
			return err
		}
		if len(rec.Headers) > 0 {
			m.Headers = make([]kafka.Header, len(rec.Headers))
			for i, h := range rec.Headers {
				start := len(buf)
				buf = append(buf, h.Value...) // may move to a new array: the copy is taken after
				m.Headers[i] = kafka.Header{Key: h.Key, Value: buf[start:len(buf):len(buf)]}
			}
		}
		f.queue = append(f.queue, m)
		f.offset = rec.Offset + 1
	}
}

// responseBytes sizes the buffer of one response's contents: the fetch's byte limit,
// unless the first record says the response is smaller (a small fetch must not hold a
// large buffer alive).
func (f *fetcher) responseBytes(first *kafka.Record) int {
	size := 0
	if first.Value != nil {
		size = first.Value.Len()
	}
	return min(f.maxBytes, max(64<<10, size*64))
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

// appendBytes copies b to the end of buf and returns the copy (nil for nil).
func appendBytes(buf []byte, b kafka.Bytes) ([]byte, []byte, error) {
	if b == nil {
		return buf, nil, nil
	}
	n := b.Len()
	if cap(buf)-len(buf) < n {
		// Full: a new buffer for the rest of the response; the old one stays with the
		// messages that point into it.
		buf = make([]byte, 0, max(cap(buf), n))
	}
	start := len(buf)
	buf = buf[:start+n]
	if _, err := io.ReadFull(b, buf[start:]); err != nil {
		return buf, nil, err
	}
	return buf, buf[start : start+n : start+n], nil
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
