// Package kafkatest runs a Kafka-protocol broker in process (franz-go's kfake) and offers
// the few client operations tests need: produce spans, read a group's committed offsets.
package kafkatest

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Broker is an in-process Kafka-protocol cluster of one broker on loopback.
type Broker struct {
	Cluster *kfake.Cluster
	Addr    string
	opts    []kfake.Opt
	// transport and dialer are this broker's own (kafka-go's shared default transport
	// caches metadata); StartSecure gives them TLS and SASL.
	transport *kafka.Transport
	dialer    *kafka.Dialer
}

// Start starts a broker with topic seeded with the given number of partitions. It
// accepts short group session timeouts, so tests can rebalance quickly, and is closed
// when the test ends.
func Start(t testing.TB, topic string, partitions int32, opts ...kfake.Opt) *Broker {
	t.Helper()
	b := &Broker{transport: &kafka.Transport{}, dialer: kafka.DefaultDialer}
	b.opts = append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, topic),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}, opts...)
	b.start(t, b.opts)
	t.Cleanup(func() {
		b.transport.CloseIdleConnections()
		b.Cluster.Close()
	})
	return b
}

// Attach returns a Broker for a cluster running elsewhere (another process), for its
// client methods; Stop and Resume do not apply to it.
func Attach(t testing.TB, addr string) *Broker {
	b := &Broker{Addr: addr, transport: &kafka.Transport{}, dialer: kafka.DefaultDialer}
	t.Cleanup(b.transport.CloseIdleConnections)
	return b
}

// StartDurable starts a broker like Start that keeps its data (topics, records, committed
// offsets) in a directory, so that Restart brings it back with its state.
func StartDurable(t testing.TB, topic string, partitions int32) *Broker {
	t.Helper()
	return Start(t, topic, partitions, kfake.DataDir(t.TempDir()))
}

func (b *Broker) start(t testing.TB, opts []kfake.Opt) {
	t.Helper()
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	b.Cluster = cluster
	b.Addr = cluster.ListenAddrs()[0]
}

// SilenceFetches makes the broker take every fetch request and answer none, nor close the
// connection, until the test ends: a broker gone silent.
func (b *Broker) SilenceFetches(t testing.TB) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	b.Cluster.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		b.Cluster.KeepControl()
		b.Cluster.SleepControl(func() { <-release })
		return nil, nil, false
	})
}

// Stop closes the broker; clients see connection errors until Resume.
func (b *Broker) Stop() { b.Cluster.Close() }

// Resume starts the broker again on the same address, from its data directory.
func (b *Broker) Resume(t testing.TB) {
	t.Helper()
	_, portText, _ := net.SplitHostPort(b.Addr)
	port, _ := strconv.Atoi(portText)
	b.start(t, append(append([]kfake.Opt(nil), b.opts...), kfake.Ports(port)))
	// The old transport holds connections to the broker that went away.
	b.transport.CloseIdleConnections()
	b.transport = &kafka.Transport{TLS: b.transport.TLS, SASL: b.transport.SASL}
}

// Produce writes messages to topic and waits until the broker acknowledged all of them.
func (b *Broker) Produce(t testing.TB, topic string, msgs ...kafka.Message) {
	t.Helper()
	if err := b.TryProduce(topic, msgs...); err != nil {
		t.Fatal(err)
	}
}

// TryProduce is Produce for goroutines other than the test's: it returns the error.
func (b *Broker) TryProduce(topic string, msgs ...kafka.Message) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(b.Addr),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    1000,
		Transport:    b.transport,
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("producing %d messages: %w", len(msgs), err)
	}
	return nil
}

// CreateTopic creates topic with the given number of partitions.
func (b *Broker) CreateTopic(topic string, partitions int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := b.client().CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}}})
	if err != nil {
		return err
	}
	return resp.Errors[topic]
}

// EndOffsets returns the log-end offset of every partition of topic.
func (b *Broker) EndOffsets(t testing.TB, topic string, partitions int) map[int]int64 {
	t.Helper()
	req := make([]kafka.OffsetRequest, partitions)
	for p := range partitions {
		req[p] = kafka.LastOffsetOf(p)
	}
	res, err := b.client().ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		t.Fatalf("listing offsets: %v", err)
	}
	out := map[int]int64{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("listing offsets of partition %d: %v", po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	return out
}

// CommittedOffsets returns the group's committed offset of every partition of topic
// (-1 where nothing was committed).
func (b *Broker) CommittedOffsets(t testing.TB, group, topic string, partitions int) map[int]int64 {
	t.Helper()
	out := map[int]int64{}
	for _, p := range b.committed(t, group, topic, partitions) {
		if p.Error != nil {
			t.Fatalf("committed offset of partition %d: %v", p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

// CommittedMetadata returns the metadata committed with the group's offset of every
// partition of topic that has one.
func (b *Broker) CommittedMetadata(t testing.TB, group, topic string, partitions int) map[int]string {
	t.Helper()
	out := map[int]string{}
	for _, p := range b.committed(t, group, topic, partitions) {
		if p.Error == nil && p.CommittedOffset >= 0 {
			out[p.Partition] = p.Metadata
		}
	}
	return out
}

// committed fetches the group's commits of every partition of topic.
func (b *Broker) committed(t testing.TB, group, topic string, partitions int) []kafka.OffsetFetchPartition {
	t.Helper()
	ps := make([]int, partitions)
	for p := range partitions {
		ps[p] = p
	}
	res, err := b.client().OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		t.Fatalf("fetching committed offsets: %v", err)
	}
	return res.Topics[topic]
}

// Commit commits offsets for group as a member outside any generation would (a simple
// consumer's commit), as a consumer catching up does.
func (b *Broker) Commit(group, topic string, offsets map[int]int64) error {
	var parts []kafka.OffsetCommit
	for p, o := range offsets {
		parts = append(parts, kafka.OffsetCommit{Partition: p, Offset: o})
	}
	res, err := b.client().OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{
		GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{topic: parts},
	})
	if err != nil {
		return err
	}
	for _, ps := range res.Topics[topic] {
		if ps.Error != nil {
			return fmt.Errorf("committing partition %d: %w", ps.Partition, ps.Error)
		}
	}
	return nil
}

func (b *Broker) client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(b.Addr), Timeout: 10 * time.Second, Transport: b.transport}
}

// Traces builds an OTLP request of one trace with the given number of spans. seq makes
// the trace ID unique.
func Traces(seq uint64, spans int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("service-%d", seq%7))
	ss := rs.ScopeSpans().AppendEmpty()
	var traceID pcommon.TraceID
	for i := range 8 {
		traceID[i] = byte(seq >> (8 * i))
	}
	traceID[15] = 1
	start := time.Unix(1_780_000_000, 0).Add(time.Duration(seq) * time.Millisecond)
	for i := range spans {
		span := ss.Spans().AppendEmpty()
		span.SetTraceID(traceID)
		span.SetSpanID(pcommon.SpanID{byte(i + 1), 0, 0, 0, 0, 0, 0, 1})
		span.SetName(fmt.Sprintf("op-%d", i))
		span.SetKind(ptrace.SpanKindServer)
		span.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		span.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i+1) * time.Millisecond)))
		span.Attributes().PutStr("http.route", "/api/v1/items")
		span.Attributes().PutInt("http.status_code", 200)
	}
	return td
}

// OTLPProtoMessage returns a message holding an OTLP protobuf request of one trace (made
// by Traces(seq, spans)), keyed by its trace ID.
func OTLPProtoMessage(t testing.TB, seq uint64, spans int) kafka.Message {
	t.Helper()
	var m ptrace.ProtoMarshaler
	td := Traces(seq, spans)
	data, err := m.MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	id := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
	return kafka.Message{Key: id[:], Value: data}
}

// OTLPProtoMessages returns n messages of spansPer spans, for traces first, first+1, ….
func OTLPProtoMessages(t testing.TB, first uint64, n, spansPer int) []kafka.Message {
	t.Helper()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = OTLPProtoMessage(t, first+uint64(i), spansPer)
	}
	return msgs
}

// ReadAll reads every message of every partition of topic, from the beginning to the end
// at the time of the call.
func (b *Broker) ReadAll(t testing.TB, topic string, partitions int) []kafka.Message {
	t.Helper()
	end := b.EndOffsets(t, topic, partitions)
	var all []kafka.Message
	for p := range partitions {
		if end[p] == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr}, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond, Dialer: b.dialer})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for {
			msg, err := r.ReadMessage(ctx)
			if err != nil {
				cancel()
				r.Close()
				t.Fatalf("reading partition %d: %v", p, err)
			}
			all = append(all, msg)
			if msg.Offset+1 >= end[p] {
				break
			}
		}
		cancel()
		r.Close()
	}
	return all
}

// ClientIDs listens on loopback as a broker would and sends on ids the client id of the
// first request of each connection (then closes it), or the error that kept it from being
// read, 16 at the most unread; the listener closes when the test ends.
func ClientIDs(t testing.TB) (addr string, ids <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	got := make(chan string, 16)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			// size, api key, version, correlation id, then the client id (int16 length).
			var header [14]byte
			said := ""
			if _, err := io.ReadFull(nc, header[:]); err != nil {
				said = err.Error()
			} else {
				id := make([]byte, binary.BigEndian.Uint16(header[12:]))
				_, _ = io.ReadFull(nc, id)
				said = string(id)
			}
			_ = nc.Close()
			select {
			case got <- said:
			default: // nobody reads that many
			}
		}
	}()
	return ln.Addr().String(), got
}
