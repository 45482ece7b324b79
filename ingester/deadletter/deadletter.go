// Package deadletter produces messages the ingester cannot process to a dead-letter topic,
// unchanged, with headers that say where they came from and why they failed.
package deadletter

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Headers added to a dead-lettered message.
const (
	HeaderError     = "spanflow.error"
	HeaderTopic     = "spanflow.source.topic"
	HeaderPartition = "spanflow.source.partition"
	HeaderOffset    = "spanflow.source.offset"
)

// maxErrorHeader bounds the error text carried in a header.
const maxErrorHeader = 1024

// Writer produces to the dead-letter topic.
type Writer struct {
	w         *kafka.Writer
	transport *kafka.Transport
}

// New returns a writer to topic on brokers through transport, which it owns from then on.
// Produces wait for every in-sync replica, so a message counts as dead-lettered only when
// it is safely stored.
func New(brokers []string, topic string, transport *kafka.Transport) *Writer {
	return &Writer{transport: transport, w: &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond,
		Transport:    transport,
	}}
}

// DeadLetter produces msg's key and value with its headers and the source headers.
func (d *Writer) DeadLetter(ctx context.Context, msg kafka.Message, cause error) error {
	reason := cause.Error()
	if len(reason) > maxErrorHeader {
		reason = reason[:maxErrorHeader]
	}
	headers := make([]kafka.Header, 0, len(msg.Headers)+4)
	for _, h := range msg.Headers {
		headers = append(headers, kafka.Header{Key: h.Key, Value: bytes.Clone(h.Value)})
	}
	headers = append(headers,
		kafka.Header{Key: HeaderError, Value: []byte(reason)},
		kafka.Header{Key: HeaderTopic, Value: []byte(msg.Topic)},
		kafka.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(msg.Partition))},
		kafka.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
	)
	// Copies: a write whose ctx ends returns while kafka-go's writer may still hold the
	// message, and the caller's buffers are reused once its delivery is finished.
	return d.w.WriteMessages(ctx, kafka.Message{Key: bytes.Clone(msg.Key), Value: bytes.Clone(msg.Value), Headers: headers, Time: msg.Time})
}

// Close flushes and closes the producer, giving up after timeout (kafka-go's Close can
// block for a long time when the broker is gone).
func (d *Writer) Close(timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- d.w.Close() }()
	select {
	case err := <-done:
		d.transport.CloseIdleConnections()
		return err
	case <-time.After(timeout):
		return context.DeadlineExceeded
	}
}
