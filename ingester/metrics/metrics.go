// Package metrics defines the ingester's Prometheus metrics, shared by the consumer and
// the processor chain and served on the admin port's /metrics.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "spanflow_ingester"

// Metrics are the ingester's collectors. Per-message hot paths use the fields directly;
// partition-labelled gauges are looked up once per partition with ForPartition.
type Metrics struct {
	Messages      prometheus.Counter
	Bytes         prometheus.Counter
	Spans         prometheus.Counter
	DecodeErrors  prometheus.Counter
	WriteErrors   prometheus.Counter
	WriteRequests prometheus.Counter
	Retries       prometheus.Counter
	DeadLettered  prometheus.Counter
	Skipped       prometheus.Counter
	Empty         prometheus.Counter
	RejectedSpans prometheus.Counter
	Splits        prometheus.Counter
	Abandoned     prometheus.Counter
	RecordsLost   prometheus.Counter
	Processing    prometheus.Histogram
	InFlightMsgs  prometheus.Gauge
	InFlightBytes prometheus.Gauge
	Commits       *prometheus.CounterVec
	Partitions    prometheus.Gauge
	Deliveries    prometheus.Histogram
	TopicMissing  prometheus.Gauge
	GroupJoins    prometheus.Counter
	Parallelism   prometheus.Gauge

	committedOffset *prometheus.GaugeVec
	lagRecords      *prometheus.GaugeVec
	lagSeconds      *prometheus.GaugeVec
	paused          *prometheus.GaugeVec
	openTransaction *prometheus.GaugeVec
	fromFollower    *prometheus.GaugeVec
}

// New creates the metrics and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	}
	partitionGauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, []string{"partition"})
	}
	m := &Metrics{
		Messages:      counter("messages_total", "Kafka messages consumed."),
		Bytes:         counter("bytes_total", "Bytes of Kafka message values consumed."),
		Spans:         counter("spans_written_total", "Spans written to storage."),
		DecodeErrors:  counter("decode_errors_total", "Messages that could not be decoded."),
		WriteErrors:   counter("write_errors_total", "Failed attempts to write a message's spans to storage."),
		WriteRequests: counter("write_requests_total", "Requests sent to storage: a delivery's, or several small deliveries' joined into one."),
		Retries:       counter("retries_total", "Retries of deliveries whose write failed, and attempts while a partition was held: deliveries, not requests (each of the deliveries sharing a failed write counts; write_requests_total counts requests)."),
		DeadLettered:  counter("dead_lettered_total", "Messages produced to the dead-letter topic."),
		Skipped:       counter("skipped_total", "Undecodable messages skipped because onDecodeError is skip."),
		Empty:         counter("empty_messages_total", "Messages that hold no spans (empty values, tombstones); counted and committed."),
		RejectedSpans: counter("rejected_spans_total", "Spans the backend refused in a partial success; the rest of the request is stored, and they are not sent again."),
		Splits:        counter("write_splits_total", "Writes refused for good (or for their size) that were split in halves to isolate the refused messages."),
		Abandoned:     counter("abandoned_total", "Messages left unfinished at shutdown or rebalance; they are read again, not lost."),
		RecordsLost:   counter("records_lost_total", "Records the broker deleted (retention) before they were read: they cannot be read."),
		Processing:    prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "processing_duration_seconds", Help: "Time from handing a delivery (a run of a partition's messages) over to finishing it: written, dead-lettered or skipped (retries and the wait for others to join its write included).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		Deliveries:    prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "delivery_messages", Help: "Messages per delivery: the runs of a partition's messages written in one storage request.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		GroupJoins:    counter("group_joins_total", "Generations of the consumer group this member joined: one per rebalance."),
		TopicMissing:  gauge("topic_missing", "1 while the configured topic does not exist on the brokers."),
		Parallelism:   gauge("parallelism", "Deliveries processed at once (storage writes in flight at most), as in effect."),
		InFlightMsgs:  gauge("in_flight_messages", "Messages being processed."),
		InFlightBytes: gauge("in_flight_bytes", "Bytes of the messages being processed."),
		Commits:       prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "commits_total", Help: "Offset commits to the consumer group, by result."}, []string{"result"}),
		Partitions:    gauge("partitions_assigned", "Partitions assigned to this member of the consumer group."),

		committedOffset: partitionGauge("committed_offset", "Offset last committed for the partition (the next one to read)."),
		lagRecords:      partitionGauge("lag_records", "Records in the partition after the consumer group's committed offset (its lag, as kafka-consumer-groups shows it), to the partition's end as the last fetch saw it, or as listed every 5 s while it is not fetched (held, or waiting for a slot): it grows while the partition is held."),
		lagSeconds:      partitionGauge("lag_seconds", "Age of the oldest record the consumer group has not committed — the first of the earliest delivery in flight, ageing while storage holds it — and 0 once the end is committed."),
		paused:          partitionGauge("partition_paused", "1 while the partition is held: storage keeps failing, or a message can be neither written nor dead-lettered."),
		openTransaction: partitionGauge("open_transaction_records", "Reading read_committed: records past the partition's last stable offset, which wait for a transaction still open to end (its producer's transaction.timeout.ms bounds the wait); lag_records does not count them."),
		fromFollower:    partitionGauge("partition_read_from_follower", "1 while the partition is read from the replica its leader named in the pod's rack (kafka.rack: KIP-392 follower fetching), 0 while from its leader."),
	}
	reg.MustRegister(m.Messages, m.Bytes, m.Spans, m.DecodeErrors, m.WriteErrors, m.WriteRequests, m.Retries, m.DeadLettered,
		m.Skipped, m.Empty, m.RejectedSpans, m.Splits, m.Abandoned, m.RecordsLost, m.Processing, m.Deliveries, m.TopicMissing, m.GroupJoins, m.Parallelism,
		m.InFlightMsgs, m.InFlightBytes, m.Commits, m.Partitions,
		m.committedOffset, m.lagRecords, m.lagSeconds, m.paused, m.openTransaction, m.fromFollower)
	return m
}

// RegisterLibraryDecodes registers the count of messages decoded through the encoding's
// library rather than spanflow's own reading, which count reads.
func RegisterLibraryDecodes(reg prometheus.Registerer, count func() uint64) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "decode_library_total",
		Help: "Messages decoded through the encoding's library (pdata, the OpenTelemetry translators) rather than spanflow's own reading: none on otlp_proto, every one on the Zipkin encodings; on jaeger_proto, jaeger_json and otlp_json, the shapes their fast path does not read exactly as the library would, and malformed ones. Far more than decode_errors_total there means producers write a shape the fast path does not take, at several times its CPU."},
		func() float64 { return float64(count()) }))
}

// Partition holds the gauges of one partition.
type Partition struct {
	CommittedOffset prometheus.Gauge
	LagRecords      prometheus.Gauge
	LagSeconds      prometheus.Gauge
	Paused          prometheus.Gauge
	OpenTransaction prometheus.Gauge
	FromFollower    prometheus.Gauge
}

// ForPartition returns the gauges of partition p.
func (m *Metrics) ForPartition(p int) Partition {
	label := strconv.Itoa(p)
	return Partition{
		CommittedOffset: m.committedOffset.WithLabelValues(label),
		LagRecords:      m.lagRecords.WithLabelValues(label),
		LagSeconds:      m.lagSeconds.WithLabelValues(label),
		Paused:          m.paused.WithLabelValues(label),
		OpenTransaction: m.openTransaction.WithLabelValues(label),
		FromFollower:    m.fromFollower.WithLabelValues(label),
	}
}

// ForgetPartition removes the gauges of a partition this member no longer holds, so that
// two members never both report it.
func (m *Metrics) ForgetPartition(p int) {
	label := strconv.Itoa(p)
	m.committedOffset.DeleteLabelValues(label)
	m.lagRecords.DeleteLabelValues(label)
	m.lagSeconds.DeleteLabelValues(label)
	m.paused.DeleteLabelValues(label)
	m.openTransaction.DeleteLabelValues(label)
	m.fromFollower.DeleteLabelValues(label)
}
