// Package demo runs the whole ingestion path on one machine with nothing installed: an
// embedded Kafka-protocol broker, a trace generator, the ingester writing to the file
// store, and the operator's lag observer watching the consumer group. It checks at the
// end that every span produced was stored.
package demo

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/gogo/protobuf/jsonpb"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/controllers/autoscale"
	"github.com/spanflow/spanflow/ingester"
	"github.com/spanflow/spanflow/ingester/config"
	"github.com/spanflow/spanflow/ingester/otlpwire"
	"github.com/spanflow/spanflow/ingester/store"
	"github.com/spanflow/spanflow/internal/spangen"
)

const (
	topic = "jaeger-spans"
	group = "spanflow-demo"
)

// Options configure a demo run.
type Options struct {
	Dir        string        // where the broker's data and the stored spans go
	Duration   time.Duration // how long to produce
	Rate       int           // spans per second, tripled in the middle third (the burst)
	Partitions int
	Broker     string // an existing Kafka; empty: the embedded one
	// Encoding is what the generator writes and the ingester reads: one of Encodings
	// (jaeger_proto when empty).
	Encoding string
	// Storage is "file" (default, in Dir) or "otlp", configured by OTLP.
	Storage     string
	OTLP        config.OTLPStorage
	Out         io.Writer
	Interactive bool // a terminal: redraw one status line instead of printing lines
}

// Summary is what a run found.
type Summary struct {
	Produced, Stored, Duplicates int
	P50, P99                     time.Duration
	Throughput                   float64
}

// Encodings are those the demo's generator writes: as Jaeger's collector and the
// Collector's Kafka exporter write them, a span or a trace a message.
var Encodings = []string{config.EncodingJaegerProto, config.EncodingJaegerJSON, config.EncodingOTLPProto, config.EncodingOTLPJSON}

// Run runs the demo until ctx is cancelled or the duration is over, then drains and checks.
func Run(ctx context.Context, opts Options, log logr.Logger) (Summary, error) {
	opts.Encoding = cmp.Or(opts.Encoding, config.EncodingJaegerProto)
	if !slices.Contains(Encodings, opts.Encoding) {
		return Summary{}, fmt.Errorf("the demo writes %s, not %q", strings.Join(Encodings, ", "), opts.Encoding)
	}
	spansDir := filepath.Join(opts.Dir, "spans")
	if err := os.RemoveAll(spansDir); err != nil {
		return Summary{}, err
	}
	broker := opts.Broker
	if broker == "" {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(opts.Partitions), topic),
			kfake.GroupMinSessionTimeout(100*time.Millisecond))
		if err != nil {
			return Summary{}, fmt.Errorf("starting the embedded broker: %w", err)
		}
		defer cluster.Close()
		broker = cluster.ListenAddrs()[0]
	}
	destination := spansDir
	if opts.Storage == config.StorageOTLP {
		destination = opts.OTLP.Protocol + "://" + opts.OTLP.Endpoint
	}
	partitions := fmt.Sprintf("%d partitions", opts.Partitions)
	if opts.Broker != "" {
		partitions = "as it is there"
	}
	fmt.Fprintf(opts.Out, "spanflow demo: broker %s, topic %q (%s), %d spans/s in %s for %s, storing in %s\n",
		broker, topic, partitions, opts.Rate, opts.Encoding, opts.Duration, destination)

	cfg := config.Default()
	cfg.Kafka.Brokers = []string{broker}
	cfg.Kafka.Topic = topic
	cfg.Kafka.ConsumerGroup = group
	if opts.Broker != "" {
		// The topic may hold spans of earlier runs and other producers: this run's group
		// starts where the topic ends now, so that it reads, counts and checks its own.
		cfg.Kafka.ConsumerGroup = fmt.Sprintf("%s-%d", group, time.Now().UnixNano())
		if err := startAtTheEnd(ctx, broker, cfg.Kafka.ConsumerGroup); err != nil {
			return Summary{}, fmt.Errorf("starting the demo's group at the end of %q: %w", topic, err)
		}
	}
	cfg.Kafka.SessionTimeout = config.Duration(6 * time.Second)
	cfg.Kafka.HeartbeatInterval = config.Duration(500 * time.Millisecond)
	cfg.Kafka.MaxWait = config.Duration(100 * time.Millisecond)
	cfg.Kafka.CommitInterval = config.Duration(200 * time.Millisecond)
	cfg.Encoding = opts.Encoding
	cfg.AdminAddress = "127.0.0.1:0"
	var storage store.Writer
	var err error
	if opts.Storage == config.StorageOTLP {
		cfg.Storage = config.Storage{Type: config.StorageOTLP, OTLP: opts.OTLP}
		storage, err = store.NewOTLP(opts.OTLP)
	} else {
		cfg.Storage = config.Storage{Type: config.StorageFile, File: config.FileStorage{Path: spansDir, MaxFileBytes: 64 << 20}}
		storage, err = store.NewFile(spansDir, cfg.Storage.File.MaxFileBytes, false)
	}
	if err != nil {
		return Summary{}, err
	}
	writer := &latencyWriter{next: storage}

	ingestCtx, stopIngest := context.WithCancel(context.WithoutCancel(ctx))
	defer stopIngest()
	ingestDone := make(chan error, 1)
	go func() { ingestDone <- ingester.Run(ingestCtx, cfg, ingester.Options{Writer: writer}, log) }()

	lag := autoscale.NewLagObserver(time.Second, 30)
	lagCtx, stopLag := context.WithCancel(context.Background())
	lagDone := make(chan error, 1)
	go func() { lagDone <- lag.Start(lagCtx) }()
	defer func() { stopLag(); <-lagDone }()

	produceCtx, stopProducing := context.WithTimeout(ctx, opts.Duration)
	defer stopProducing()
	var produced atomic.Int64
	producerDone := make(chan error, 1)
	start := time.Now()
	go func() { producerDone <- produce(produceCtx, broker, opts, &produced) }()

	// The operator's autoscaling policy, on demo time scales, advising on the one ingester
	// running here (it advises; nothing is resized).
	advisor := autoscale.NewScaleAdvisor(lag, []string{broker}, topic, cfg.Kafka.ConsumerGroup, spanflowv1alpha1.AutoscalingSpec{Enabled: true,
		TargetLagSeconds: ptr.To[int32](5), Cooldown: spanflowv1alpha1.NewDuration(5 * time.Second),
		ScaleDown: &spanflowv1alpha1.ScalingRules{StabilizationWindow: spanflowv1alpha1.NewDuration(20 * time.Second)}}, int32(cfg.Parallelism))
	var lastVerdict string
	status := func(final bool) {
		l := lag.ObserveTopic([]string{broker}, topic, cfg.Kafka.ConsumerGroup)
		advice := advisor.Advise(time.Now(), 1, int32(cfg.Parallelism))
		line := fmt.Sprintf("produced %8d  stored %8d  lag %6d records / %3d s  autoscaler: %d × %d",
			produced.Load(), writer.spans.Load(), l.Records, l.Seconds, advice.Replicas, advice.Parallelism)
		// The reason's figures change every second: show it when the verdict changes.
		verdict := fmt.Sprintf("%d × %d", advice.Replicas, advice.Parallelism)
		why := ""
		if verdict != lastVerdict || final {
			lastVerdict = verdict
			why = "  autoscaler would run " + verdict + ": " + advice.Reason
		}
		if opts.Interactive {
			if why != "" {
				fmt.Fprintf(opts.Out, "\r\033[K%s\n", why)
			}
			fmt.Fprintf(opts.Out, "\r%s %s", progress(time.Since(start), opts.Duration), line)
			if final {
				fmt.Fprintln(opts.Out)
			}
			return
		}
		if why != "" {
			fmt.Fprintln(opts.Out, why)
		}
		fmt.Fprintf(opts.Out, "%5.1fs  %s\n", time.Since(start).Seconds(), line)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var produceErr error
waitProducer:
	for {
		select {
		case produceErr = <-producerDone:
			break waitProducer
		case <-tick.C:
			status(false)
		}
	}
	if produceErr != nil && !errors.Is(produceErr, context.DeadlineExceeded) && !errors.Is(produceErr, context.Canceled) {
		return Summary{}, produceErr
	}
	produceTime := time.Since(start)

	// Drain: wait until every produced span is stored (or give up after a while).
	drainDeadline := time.Now().Add(60 * time.Second)
	for writer.spans.Load() < produced.Load() && time.Now().Before(drainDeadline) {
		select {
		case err := <-ingestDone:
			return Summary{}, fmt.Errorf("the ingester stopped: %w", err)
		case <-tick.C:
			status(false)
		}
	}
	status(true)
	stopIngest()
	if err := <-ingestDone; err != nil {
		return Summary{}, err
	}
	if opts.Broker != "" {
		deleteGroup(ctx, broker, cfg.Kafka.ConsumerGroup) // the run's own, left empty by the ingester
	}

	s := Summary{Produced: int(produced.Load()), Throughput: float64(writer.spans.Load()) / produceTime.Seconds()}
	s.P50, s.P99 = writer.percentiles()
	if opts.Storage == config.StorageOTLP {
		// The backend is not ours to read back: count what it acknowledged.
		s.Stored = int(min(writer.spans.Load(), produced.Load()))
		s.Duplicates = int(max(writer.spans.Load()-produced.Load(), 0))
		fmt.Fprintf(opts.Out, "\nspans produced %d, acknowledged by %s %d (not acknowledged %d, at least %d written twice)\nend-to-end latency p50 %s, p99 %s; %.0f spans/s\n",
			s.Produced, opts.OTLP.Endpoint, s.Stored, s.Produced-s.Stored, s.Duplicates, s.P50.Round(time.Millisecond), s.P99.Round(time.Millisecond), s.Throughput)
		if s.Stored < s.Produced {
			return s, fmt.Errorf("%d spans were not acknowledged", s.Produced-s.Stored)
		}
		return s, nil
	}
	distinct, dups, err := store.CountFiles(spansDir)
	if err != nil {
		return s, err
	}
	s.Stored, s.Duplicates = distinct, dups
	fmt.Fprintf(opts.Out, "\nspans produced %d, stored %d (lost %d, duplicates %d)\nend-to-end latency p50 %s, p99 %s; %.0f spans/s\n",
		s.Produced, s.Stored, max(s.Produced-s.Stored, 0), s.Duplicates, s.P50.Round(time.Millisecond), s.P99.Round(time.Millisecond), s.Throughput)
	fmt.Fprintf(opts.Out, "the spans are OTLP JSON lines in %s; summarize them with: spanflow inspect %s\n", spansDir, spansDir)
	if s.Stored < s.Produced {
		return s, fmt.Errorf("%d spans were lost", s.Produced-s.Stored)
	}
	return s, nil
}

// startAtTheEnd commits, for a new group, each partition's end offset of the topic.
func startAtTheEnd(ctx context.Context, broker, group string) error {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(broker), Transport: transport, Timeout: 10 * time.Second}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return err
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return fmt.Errorf("the brokers do not list it: %v", meta.Topics)
	}
	var ends []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		ends = append(ends, kafka.LastOffsetOf(p.ID))
	}
	listed, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: ends}})
	if err != nil {
		return err
	}
	var commits []kafka.OffsetCommit
	for _, p := range listed.Topics[topic] {
		if p.Error != nil {
			return p.Error
		}
		commits = append(commits, kafka.OffsetCommit{Partition: p.Partition, Offset: p.LastOffset})
	}
	res, err := client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{topic: commits}})
	if err != nil {
		return err
	}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return p.Error
		}
	}
	return nil
}

// deleteGroup deletes a group of the demo's from the user's broker, as far as it can: a
// group left behind expires with the broker's offsets.retention.minutes anyway.
func deleteGroup(ctx context.Context, broker, group string) {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(broker), Transport: transport, Timeout: 10 * time.Second}
	_, _ = client.DeleteGroups(context.WithoutCancel(ctx), &kafka.DeleteGroupsRequest{GroupIDs: []string{group}})
}

// produce writes multi-service traces at the configured rate, tripled in the middle third.
func produce(ctx context.Context, broker string, opts Options, produced *atomic.Int64) error {
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, Balancer: &kafka.Hash{}, Transport: transport,
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, BatchSize: 1000}
	defer w.Close()
	gen := spangen.New(uint64(time.Now().UnixNano()))
	start := time.Now()
	const tick = 50 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	var seq uint64
	budget := 0.0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		rate := float64(opts.Rate)
		if elapsed := time.Since(start); elapsed > opts.Duration/3 && elapsed < 2*opts.Duration/3 {
			rate *= 3
		}
		budget += rate * tick.Seconds()
		var msgs []kafka.Message
		spans := 0
		for budget >= 1 {
			seq++
			traceMsgs, n, err := encodeTrace(gen, seq, opts.Encoding)
			if err != nil {
				return err
			}
			msgs, spans = append(msgs, traceMsgs...), spans+n
			budget -= float64(n)
		}
		// Produce with a context of its own: what is handed over is counted only once
		// acknowledged, and is not abandoned half-way when the duration ends.
		writeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := w.WriteMessages(writeCtx, msgs...)
		cancel()
		if err != nil {
			return fmt.Errorf("producing: %w", err)
		}
		produced.Add(int64(spans))
	}
}

// encodeTrace makes the messages of trace seq in encoding, as its producers write them:
// Jaeger's a span a message, the Collector's a trace a message (each service's spans under
// its own resource). It returns the messages and the spans they hold.
func encodeTrace(gen *spangen.Generator, seq uint64, encoding string) ([]kafka.Message, int, error) {
	now := time.Now()
	switch encoding {
	case config.EncodingOTLPProto, config.EncodingOTLPJSON:
		td, key, err := gen.OTLPTrace(seq, now)
		if err != nil {
			return nil, 0, err
		}
		var m ptrace.Marshaler = &ptrace.ProtoMarshaler{}
		if encoding == config.EncodingOTLPJSON {
			m = &ptrace.JSONMarshaler{}
		}
		data, err := m.MarshalTraces(td)
		return []kafka.Message{{Key: key, Value: data}}, td.SpanCount(), err
	}
	var msgs []kafka.Message
	for _, span := range gen.JaegerTrace(seq, now) {
		var data []byte
		var err error
		if encoding == config.EncodingJaegerJSON {
			var buf bytes.Buffer
			err = (&jsonpb.Marshaler{}).Marshal(&buf, span)
			data = buf.Bytes()
		} else {
			data, err = span.Marshal()
		}
		if err != nil {
			return nil, 0, err
		}
		msgs = append(msgs, kafka.Message{Key: spangen.TraceKey(span.TraceID), Value: data})
	}
	return msgs, len(msgs), nil
}

// latencyWriter counts the spans written and records each one's end-to-end latency: from
// its start time (the moment it was produced) to the moment the store confirmed it.
type latencyWriter struct {
	next  store.Writer
	spans atomic.Int64

	mu        sync.Mutex
	latencies []time.Duration
}

func (w *latencyWriter) Write(ctx context.Context, req otlpwire.Request) error {
	if err := w.next.Write(ctx, req); err != nil {
		return err
	}
	td, err := req.Traces()
	if err != nil {
		return err
	}
	now := time.Now()
	w.mu.Lock()
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				w.latencies = append(w.latencies, now.Sub(spans.At(k).StartTimestamp().AsTime()))
			}
		}
	}
	w.mu.Unlock()
	w.spans.Add(int64(td.SpanCount()))
	return nil
}

func (w *latencyWriter) Close(ctx context.Context) error { return w.next.Close(ctx) }

func (w *latencyWriter) percentiles() (p50, p99 time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.latencies) == 0 {
		return 0, 0
	}
	sorted := slices.Clone(w.latencies)
	slices.Sort(sorted)
	return sorted[len(sorted)/2], sorted[len(sorted)*99/100]
}

func progress(elapsed, total time.Duration) string {
	const width = 20
	done := min(int(float64(width)*elapsed.Seconds()/total.Seconds()), width)
	return "[" + strings.Repeat("#", done) + strings.Repeat(".", width-done) + "]"
}
