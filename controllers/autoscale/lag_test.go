package autoscale

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spanflow/spanflow/ingester/loadreport"
)

func sample(at int, parts ...partitionOffsets) offsetSample {
	m := map[int]partitionOffsets{}
	for i, p := range parts {
		m[i] = p
	}
	return offsetSample{at: time.Unix(int64(at), 0), partitions: m}
}

func TestPartitionLag(t *testing.T) {
	cases := []struct {
		name         string
		p            partitionOffsets
		fromEarliest bool
		want         int64
	}{
		{"committed behind", partitionOffsets{start: 0, end: 100, committed: 40}, true, 60},
		{"caught up", partitionOffsets{start: 0, end: 100, committed: 100}, true, 0},
		{"nothing committed, earliest", partitionOffsets{start: 10, end: 100, committed: -1}, true, 90},
		{"nothing committed, latest", partitionOffsets{start: 10, end: 100, committed: -1}, false, 0},
		{"retention passed the commit", partitionOffsets{start: 500, end: 600, committed: 200}, true, 100},
		{"empty partition", partitionOffsets{start: 0, end: 0, committed: -1}, true, 0},
	}
	for _, tc := range cases {
		if got := partitionLag(tc.p, tc.fromEarliest); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestProductionShares: the partitions' shares of the production over the rate window,
// when some stand out from the others and enough was produced to tell.
func TestProductionShares(t *testing.T) {
	// each is what partitions 1–n produce in 60 s, hot what partition 0 does.
	window := func(n int, hot, each int64) []offsetSample {
		start, end := []partitionOffsets{{}}, []partitionOffsets{{end: hot}}
		for range n - 1 {
			start, end = append(start, partitionOffsets{}), append(end, partitionOffsets{end: each})
		}
		return []offsetSample{sample(0, start...), sample(60, end...)}
	}
	for _, tc := range []struct {
		name      string
		n         int
		hot, each int64
		want      []float64
	}{
		{"even", 4, 30000, 30000, nil},
		{"a hot partition", 4, 60000, 20000, []float64{0.5, 1.0 / 6, 1.0 / 6, 1.0 / 6}},
		{"twice the others: not enough to tell from chance", 4, 40000, 20000, nil},
		{"too little to tell", 4, 600, 200, nil},
		{"too few partitions to tell", 3, 60000, 20000, nil},
	} {
		if got := computeLag(window(tc.n, tc.hot, tc.each), true).shares; !sharesEqual(got, tc.want) {
			t.Errorf("%s: shares %v, want %v", tc.name, got, tc.want)
		}
	}
	// Told apart by their spread alone, twice the others stands out (sizing uses it once
	// the pods showed such a partition to set their pace); too little says nothing either way.
	if got := computeLag(window(4, 40000, 20000), true); !got.skewKnown || !sharesEqual(got.looseShares, []float64{0.4, 0.2, 0.2, 0.2}) {
		t.Errorf("twice the others, told by its spread: shares %v (known %v), want [0.4 0.2 0.2 0.2]", got.looseShares, got.skewKnown)
	}
	if got := computeLag(window(4, 600, 200), true); got.skewKnown || got.looseShares != nil {
		t.Errorf("too little to tell: shares %v (known %v), want none, unknown", got.looseShares, got.skewKnown)
	}
	// Two hot partitions: the second does not hide the first.
	two := []int64{50000, 2000, 2000, 50000}
	for range 20 {
		two = append(two, 2000)
	}
	got := productionShares(two, false)
	if len(got) != 24 || math.Abs(got[0]-50000.0/144000) > 1e-9 || math.Abs(got[3]-50000.0/144000) > 1e-9 || math.Abs(got[1]-2000.0/144000) > 1e-9 {
		t.Errorf("two hot partitions: shares %v", got)
	}
	// Partitions added within the window: what the old ones produced is not a share of
	// the whole (partition 0 took half of the old ones' production, not of the topic's).
	grown := []offsetSample{
		sample(0, partitionOffsets{}, partitionOffsets{}, partitionOffsets{}, partitionOffsets{}),
		sample(60, partitionOffsets{end: 60000}, partitionOffsets{end: 20000}, partitionOffsets{end: 20000}, partitionOffsets{end: 20000},
			partitionOffsets{end: 40000}, partitionOffsets{end: 40000}, partitionOffsets{end: 40000}, partitionOffsets{end: 40000}),
	}
	if got := computeLag(grown, true).shares; got != nil {
		t.Errorf("partitions added: shares %v, want none", got)
	}
	// A producer filling one partition at a time, 1,000 records a batch, 10 or 40 batches
	// a partition on average: some partition gets twice the mean by chance, and none is
	// hot.
	rng := rand.New(rand.NewPCG(7, 7))
	for _, n := range []int{8, 24, 48} {
		for _, batches := range []int{10, 40} {
			for trial := range 300 {
				produced := make([]int64, n)
				for range n * batches {
					produced[rng.IntN(n)] += 1000
				}
				if got := productionShares(produced, false); got != nil {
					t.Errorf("%d partitions, %d batches each, trial %d: chance %v read as uneven shares %v", n, batches, trial, produced, got)
				}
			}
		}
	}
}

func sharesEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-9 {
			return false
		}
	}
	return true
}

func TestComputeLag(t *testing.T) {
	// Partition 0: produced 100/s, the consumer stuck at offset 1000 since t=10.
	// Partition 1: caught up.
	window := []offsetSample{
		sample(0, partitionOffsets{end: 0, committed: 0}, partitionOffsets{end: 50, committed: 50}),
		sample(10, partitionOffsets{end: 1000, committed: 1000}, partitionOffsets{end: 60, committed: 60}),
		sample(20, partitionOffsets{end: 2000, committed: 1000}, partitionOffsets{end: 70, committed: 70}),
		sample(30, partitionOffsets{end: 3000, committed: 1000}, partitionOffsets{end: 80, committed: 80}),
	}
	snap := computeLag(window, true)
	if snap.partitions != 2 || snap.records != 2000 {
		t.Errorf("partitions %d records %d", snap.partitions, snap.records)
	}
	// Offset 1000 was appended between t=10 (end 1000) and t=20: age about 10–20 s.
	if snap.seconds < 10 || snap.seconds > 20 {
		t.Errorf("seconds %d, want 10–20", snap.seconds)
	}
	if snap.produceRate < 100 || snap.produceRate > 101 {
		t.Errorf("produce rate %.1f", snap.produceRate)
	}
	if want := 1030.0 / 30; snap.consumeRate < want-0.1 || snap.consumeRate > want+0.1 {
		t.Errorf("consume rate %.1f, want %.1f", snap.consumeRate, want)
	}

	// Each partition's flow over the window, and the pod whose report lists it.
	withReport := func(s offsetSample) offsetSample {
		p := s.partitions[1]
		p.report = &loadreport.Report{Pod: "pod-b", At: s.at, Parallelism: 10, Partitions: []int{0, 1}}
		s.partitions[1] = p
		return s
	}
	window[3] = withReport(window[3])
	flows := computeLag(window, true).flows
	if len(flows) != 2 {
		t.Fatalf("flows %+v, want 2", flows)
	}
	stuck, caughtUp := flows[0], flows[1]
	if stuck.produceRate != 100 || stuck.consumeRate != 1000.0/30 || stuck.leastBacklog != 0 || stuck.records != 2000 ||
		stuck.seconds != snap.seconds || stuck.pod != "pod-b" {
		t.Errorf("partition 0: %+v", stuck)
	}
	if caughtUp.produceRate != 1 || caughtUp.consumeRate != 1 || caughtUp.records != 0 || caughtUp.seconds != 0 || caughtUp.pod != "pod-b" {
		t.Errorf("partition 1: %+v", caughtUp)
	}
	if pods := computeLag(window, true).pods; len(pods) != 1 || !pods[0].listed || !slices.Equal(pods[0].ids, []int{0, 1}) {
		t.Errorf("pods %+v, want pod-b listing partitions 0 and 1", pods)
	}
	if least := computeLag(window[1:], true).flows[0].leastBacklog; least != 0 {
		t.Errorf("partition 0 caught up at t=10: least backlog %d", least)
	}
	if least := computeLag(window[2:], true).flows[0].leastBacklog; least != 1000 {
		t.Errorf("partition 0 from t=20: least backlog %d, want 1000", least)
	}
	// Partitions added within the window: no flows (an old partition would look hot).
	grown := []offsetSample{sample(0, partitionOffsets{end: 10}), window[3]}
	if f := computeLag(grown, true).flows; f != nil {
		t.Errorf("partitions added: flows %+v", f)
	}

	// The oldest uncommitted record is older than the window: extrapolated from the rate.
	old := []offsetSample{
		sample(100, partitionOffsets{end: 5000, committed: 1000}),
		sample(110, partitionOffsets{end: 6000, committed: 1000}),
	}
	if s := computeLag(old, true).seconds; s < 45 || s > 55 {
		t.Errorf("extrapolated age %d s, want about 50 (5000 records at 100/s)", s)
	}
	// No history at all: lag, and an age of zero until a second poll.
	if s := computeLag(old[:1], true); s.records != 4000 || s.seconds != 0 {
		t.Errorf("single sample: %+v", s)
	}
}

// An OffsetFetch that fails — for the whole group (the coordinator moving during a broker
// restart) or for a partition (a group the credentials may not describe) — is an error,
// never "nothing committed", which would read as the whole log behind.
func TestOffsetFetchErrorsAreNotNothingCommitted(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "spans"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	target := Target{Brokers: cluster.ListenAddrs(), Topic: "spans", Group: "g", FromEarliest: true}
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(cluster.ListenAddrs()...), Timeout: 5 * time.Second, Transport: transport}
	ctx := context.Background()

	if _, err := pollOffsets(ctx, client, target); err != nil {
		t.Fatalf("healthy cluster: %v", err)
	}
	failWith := func(group bool, code *kerr.Error) {
		cluster.ControlKey(int16(kmsg.OffsetFetch), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
			req := kreq.(*kmsg.OffsetFetchRequest)
			resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
			resp.SetVersion(req.GetVersion())
			if group {
				resp.ErrorCode = code.Code
			}
			for _, rt := range req.Topics {
				topic := kmsg.NewOffsetFetchResponseTopic()
				topic.Topic = rt.Topic
				for _, p := range rt.Partitions {
					part := kmsg.NewOffsetFetchResponseTopicPartition()
					part.Partition, part.Offset = p, -1
					if !group && p == 1 {
						part.ErrorCode = code.Code
					}
					topic.Partitions = append(topic.Partitions, part)
				}
				resp.Topics = append(resp.Topics, topic)
			}
			return resp, nil, true
		})
	}
	for _, tc := range []struct {
		name  string
		group bool
		code  *kerr.Error
	}{
		{"group error", true, kerr.CoordinatorLoadInProgress},
		{"partition error", false, kerr.TopicAuthorizationFailed},
	} {
		failWith(tc.group, tc.code)
		s, err := pollOffsets(ctx, client, target)
		if err == nil {
			t.Errorf("%s: no error; the sample reads %+v", tc.name, s.partitions)
		} else if !strings.Contains(err.Error(), `group "g"`) {
			t.Errorf("%s: %v does not name the group", tc.name, err)
		}
	}
}

// TestLoadReportsComeWithTheCommittedOffsets: the reports pods commit as offset metadata
// reach the snapshot, one per pod (the newest of those its partitions carry, with the
// partitions and the lag they hold); stale reports and other clients' metadata are not
// reports.
func TestLoadReportsComeWithTheCommittedOffsets(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "spans"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(cluster.ListenAddrs()...), Timeout: 5 * time.Second, Transport: transport}
	ctx := context.Background()
	writer := &kafka.Writer{Addr: kafka.TCP(cluster.ListenAddrs()...), Topic: "spans", Transport: transport, Balancer: &kafka.RoundRobin{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	for range 10 {
		if err := writer.WriteMessages(ctx, kafka.Message{Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	writer.Close()

	now := time.Now()
	report := func(pod string, age time.Duration, busy float64) string {
		return loadreport.Report{Pod: pod, At: now.Add(-age), Parallelism: 8, Busy: busy, CPU: 0.3, Rate: 100}.String()
	}
	commits := []kafka.OffsetCommit{
		{Partition: 0, Offset: 1, Metadata: report("pod-a", 12*time.Second, 0.2)},
		{Partition: 1, Offset: 1, Metadata: report("pod-a", 2*time.Second, 0.6)},
		{Partition: 2, Offset: 1, Metadata: report("pod-b", 2*time.Minute, 0.9)}, // stale: pod-b is gone
		{Partition: 3, Offset: 1, Metadata: "another client's note"},
	}
	resp, err := client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: "g", GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{"spans": commits}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Topics["spans"] {
		if p.Error != nil {
			t.Fatal(p.Error)
		}
	}
	target := Target{Brokers: cluster.ListenAddrs(), Topic: "spans", Group: "g", FromEarliest: true}
	s, err := pollOffsets(ctx, client, target)
	if err != nil {
		t.Fatal(err)
	}
	snap := computeLag([]offsetSample{s}, true)
	if len(snap.pods) != 1 {
		t.Fatalf("pods %+v, want pod-a alone", snap.pods)
	}
	a := snap.pods[0]
	wantLag := partitionLag(s.partitions[0], true) + partitionLag(s.partitions[1], true)
	if a.Pod != "pod-a" || a.Busy != 0.6 || len(a.ids) != 2 || a.listed || a.lag != wantLag || a.Parallelism != 8 {
		t.Errorf("pod-a: %+v (%d partitions, lag %d), want its newest report on 2 partitions with lag %d", a.Report, len(a.ids), a.lag, wantLag)
	}
}

// TestTheOldestRecordKeepsAging: a consumer stuck on a quiet topic (nothing produced
// since) leaves samples that no longer date its oldest record once they leave the window;
// its age must still grow with the clock — an alert on the lag's age would otherwise
// wait for good at about the window's length — and start over once it is consumed.
func TestTheOldestRecordKeepsAging(t *testing.T) {
	oldest := oldestRecords{}
	var window []offsetSample
	var seconds int64
	for at := 0; at <= 600; at += 10 {
		end := int64(1000)
		if at == 0 {
			end = 0 // the record at offset 0 was produced between the first two polls
		}
		window = append(window, sample(at, partitionOffsets{end: end, committed: 0}))
		if len(window) > 30 {
			window = window[1:]
		}
		seconds = computeLagRemembering(window, true, oldest).seconds
	}
	if seconds != 590 {
		t.Errorf("after 600 s of a stuck consumer, the oldest record is %d s old by the lag, want 590", seconds)
	}
	if without := computeLag(window, true).seconds; without >= 300 {
		t.Errorf("the window alone says %d s: this test would not show the memory at work", without)
	}
	window = append(window[1:], sample(610, partitionOffsets{end: 1000, committed: 1000}))
	if s := computeLagRemembering(window, true, oldest); s.seconds != 0 || len(oldest) != 0 {
		t.Errorf("consumed: %d s, remembered %v", s.seconds, oldest)
	}
}

// TestALullDoesNotAgeTheOldestRecord: the rate extrapolation for a record older than the
// window reads a lull in production as a much older record; remembered, that would stay
// until the consumer moves (a stuck group reported hours older than it is). Only datings
// that cannot be too old are remembered.
func TestALullDoesNotAgeTheOldestRecord(t *testing.T) {
	oldest := oldestRecords{}
	var window []offsetSample
	end := 0.0
	var seconds int64
	for at := 0; at <= 6000; at += 10 {
		window = append(window, sample(at, partitionOffsets{end: int64(end), committed: 0}))
		if len(window) > 30 {
			window = window[1:]
		}
		seconds = computeLagRemembering(window, true, oldest).seconds
		rate := 100.0
		if at >= 2000 && at < 2600 {
			rate = 10 // a lull of ten minutes
		}
		end += rate * 10
	}
	// The first record came between the polls at 0 and 10 s.
	if seconds < 5990 || seconds > 6000 {
		t.Errorf("the oldest record of a consumer stuck since the start is %d s old at 6,000 s", seconds)
	}
}

func TestBlockedPods(t *testing.T) {
	o := Observation{have: true, snapshot: lagSnapshot{pods: []podLoad{
		{Report: loadreport.Report{Pod: "a", Blocked: true, Held: []string{loadreport.HeldUndecodable}}},
		{Report: loadreport.Report{Pod: "b"}},
		{Report: loadreport.Report{Pod: "c", Blocked: true}},
	}}}
	want := map[string][]string{"a": {loadreport.HeldUndecodable}, "c": nil}
	if got := o.BlockedPods(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := (Observation{}).BlockedPods(); got != nil {
		t.Errorf("nothing known: got %v", got)
	}
	o.err = errors.New("brokers unreachable")
	if got := o.BlockedPods(); got != nil {
		t.Errorf("the latest poll failed, and the last success's reports still count: %v", got)
	}
}

// TestReadCommittedLagEndsAtTheOpenTransaction: for a group reading committed records, a
// transaction still open is no lag (its pods cannot read it until it ends: scaling for it
// would add pods that wait); for one reading uncommitted records it is.
func TestReadCommittedLagEndsAtTheOpenTransaction(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "spans"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	producer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("spans"), kgo.TransactionalID("open"))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	// One record committed (offsets 0 and, its commit marker, 1), then five in a
	// transaction left open (2–6).
	if err := producer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("before")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if err := producer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(cluster.ListenAddrs()...), Timeout: 5 * time.Second, Transport: transport}
	for _, tc := range []struct {
		readCommitted bool
		want          int64
	}{{true, 2}, {false, 7}} {
		target := Target{Brokers: cluster.ListenAddrs(), Topic: "spans", Group: "g", FromEarliest: true, ReadCommitted: tc.readCommitted}
		s, err := pollOffsets(ctx, client, target)
		if err != nil {
			t.Fatal(err)
		}
		if lag := partitionLag(s.partitions[0], true); lag != tc.want {
			t.Errorf("read committed %t: lag %d, want %d", tc.readCommitted, lag, tc.want)
		}
	}
}
