package autoscale

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/ingester/loadreport"
)

// ceilingSnapshot is a poll at second at of 4 partitions: pod-a holds partition 0, pod-b
// the other three. Partition 0 receives 500/s and is consumed at 300/s with 20k records
// behind, 40 s old; the others keep up at 100/s. The window began 60 s earlier; pod-a
// uses busy of its slots, and 30% of its CPU.
func ceilingSnapshot(at int, busy float64) lagSnapshot {
	now := time.Unix(int64(at), 0)
	s := lagSnapshot{partitions: 4, at: now, rateSince: now.Add(-60 * time.Second), produceRate: 800, consumeRate: 600,
		records: 20000, seconds: 40}
	s.flows = []partitionFlow{
		{produceRate: 500, consumeRate: 300, leastBacklog: 8000, records: 20000, seconds: 40, pod: "pod-a"},
		{produceRate: 100, consumeRate: 100, pod: "pod-b"},
		{produceRate: 100, consumeRate: 100, pod: "pod-b"},
		{produceRate: 100, consumeRate: 100, pod: "pod-b"},
	}
	s.pods = []podLoad{
		{Report: loadreport.Report{Pod: "pod-a", At: now, Parallelism: 100, Busy: busy, CPU: 0.3, Rate: 300}, ids: []int{0}, listed: true, lag: 20000},
		{Report: loadreport.Report{Pod: "pod-b", At: now, Parallelism: 100, Busy: 0.3, CPU: 0.3, Rate: 300}, ids: []int{1, 2, 3}, listed: true},
	}
	return s
}

// learnFor feeds polls 10 s apart to learnCeilings, the pods quiet since quiet.
func learnFor(polls int, quiet time.Time, poll func(at int) lagSnapshot) []partitionCeiling {
	var c []partitionCeiling
	for i := range polls {
		c = learnCeilings(c, poll(1000+10*i), policyBounds(), quiet)
	}
	return c
}

func ceilingRates(c []partitionCeiling) []float64 {
	out := make([]float64, len(c))
	for i, pc := range c {
		out[i] = pc.rate
	}
	return out
}

func TestLearnCeilings(t *testing.T) {
	quiet := time.Unix(900, 0)
	with := func(f func(*lagSnapshot)) func(int) lagSnapshot {
		return func(at int) lagSnapshot {
			s := ceilingSnapshot(at, 0.5)
			f(&s)
			return s
		}
	}
	cases := []struct {
		name  string
		polls int
		quiet time.Time
		poll  func(int) lagSnapshot
		want  []float64 // nil: none
	}{
		{name: "behind while its pod has room, three polls in a row: its ceiling", polls: 3, quiet: quiet,
			poll: with(func(*lagSnapshot) {}), want: []float64{300, 0, 0, 0}},
		{name: "two polls: not yet", polls: 2, quiet: quiet, poll: with(func(*lagSnapshot) {})},
		{name: "its pod's slots nearly full: the pod is what limits", polls: 5, quiet: quiet,
			poll: func(at int) lagSnapshot { return ceilingSnapshot(at, 0.85) }},
		{name: "its pod short of CPU", polls: 5, quiet: quiet,
			poll: with(func(s *lagSnapshot) { s.pods[0].CPU = 0.85 })},
		{name: "its pod's writes failing", polls: 5, quiet: quiet,
			poll: with(func(s *lagSnapshot) { s.pods[0].Blocked = true })},
		{name: "its pod holds another partition, keeping up: a limit of the pod its report does not show would look the same", polls: 5,
			quiet: quiet, poll: with(func(s *lagSnapshot) { s.flows[2].pod, s.pods[0].ids = "pod-a", []int{0, 2} })},
		{name: "its pod's report does not list its partitions: not known to hold it alone", polls: 5,
			quiet: quiet, poll: with(func(s *lagSnapshot) { s.pods[0].listed = false })},
		{name: "behind on a pod with room that holds others: not a ceiling", polls: 5, quiet: quiet,
			poll: with(func(s *lagSnapshot) {
				s.flows[1] = partitionFlow{produceRate: 200, consumeRate: 100, leastBacklog: 3000, records: 6000, seconds: 30, pod: "pod-b"}
			}), want: []float64{300, 0, 0, 0}},
		{name: "draining its backlog at its ceiling while its pod has room (after a spike): its ceiling", polls: 3, quiet: quiet,
			poll: with(func(s *lagSnapshot) { s.flows[0].produceRate = 200 }), want: []float64{300, 0, 0, 0}},
		{name: "keeping up (records in flight, not a backlog)", polls: 5, quiet: quiet,
			poll: with(func(s *lagSnapshot) { s.flows[0].produceRate = 310 })},
		{name: "a lag as young as records in flight", polls: 5, quiet: quiet,
			poll: with(func(s *lagSnapshot) { s.flows[0].seconds = 5 })},
		{name: "draining, but caught up within the window", polls: 5, quiet: quiet,
			poll: with(func(s *lagSnapshot) { s.flows[0].produceRate, s.flows[0].leastBacklog = 200, 0 })},
		{name: "caught up within the window", polls: 5, quiet: quiet,
			poll: with(func(s *lagSnapshot) { s.flows[0].leastBacklog = 0 })},
		{name: "the window began before the pods were quiet", polls: 5, quiet: time.Unix(1000, 0),
			poll: with(func(*lagSnapshot) {})},
		{name: "the window too short to tell", polls: 5, quiet: quiet,
			poll: with(func(s *lagSnapshot) { s.rateSince = s.at.Add(-20 * time.Second) })},
		{name: "the pods never settled", polls: 5, poll: with(func(*lagSnapshot) {})},
		{name: "the pod's report older than quiet and an interval", polls: 5, quiet: quiet,
			poll: with(func(s *lagSnapshot) { s.pods[0].At = quiet.Add(5 * time.Second) })},
		{name: "no report names the partition's pod", polls: 5, quiet: quiet,
			poll: with(func(s *lagSnapshot) { s.flows[0].pod = "" })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := learnFor(tc.polls, tc.quiet, tc.poll)
			var rates []float64
			if got != nil {
				rates = ceilingRates(got)
			}
			if tc.want == nil {
				if slices.ContainsFunc(rates, func(r float64) bool { return r > 0 }) {
					t.Errorf("ceilings %v, want none", rates)
				}
				return
			}
			if !slices.Equal(rates, tc.want) {
				t.Errorf("ceilings %v, want %v", rates, tc.want)
			}
		})
	}
}

func TestCeilingsGo(t *testing.T) {
	quiet := time.Unix(900, 0)
	known := learnFor(3, quiet, func(at int) lagSnapshot { return ceilingSnapshot(at, 0.5) })
	if known[0].rate != 300 {
		t.Fatalf("ceilings %v", ceilingRates(known))
	}
	// A poll that does not show it again keeps it (a ceiling stays) ...
	busy := learnCeilings(known, ceilingSnapshot(1100, 0.9), policyBounds(), quiet)
	if busy[0].rate != 300 || busy[0].polls != 0 {
		t.Errorf("after a busy poll: %+v", busy[0])
	}
	// ... until the partition goes faster than it by more than a tenth.
	faster := ceilingSnapshot(1110, 0.5)
	faster.flows[0].consumeRate = 340
	if got := learnCeilings(known, faster, policyBounds(), quiet); got != nil {
		t.Errorf("consumed at 340/s, over its ceiling of 300: %v", ceilingRates(got))
	}
	faster.flows[0].consumeRate = 320
	if got := learnCeilings(known, faster, policyBounds(), quiet); got == nil || got[0].rate != 320 {
		t.Errorf("consumed at 320/s, still behind with room: the ceiling measured again, got %v", got)
	}
	// Partitions added: every ceiling goes.
	grown := ceilingSnapshot(1110, 0.9)
	grown.partitions, grown.flows = 6, nil
	if got := learnCeilings(known, grown, policyBounds(), quiet); got != nil {
		t.Errorf("partitions added: %v", ceilingRates(got))
	}
	// A poll without flows (the partitions changing within the window) keeps them.
	blind := ceilingSnapshot(1110, 0.5)
	blind.flows = nil
	if got := learnCeilings(known, blind, policyBounds(), quiet); got == nil || got[0].rate != 300 {
		t.Errorf("a poll without flows: %v", got)
	}
	// Learning never changes the state it was given (states are copied by value).
	if known[0].polls != 3 {
		t.Errorf("the earlier state changed: %+v", known[0])
	}
}

func TestWithinCeilings(t *testing.T) {
	b := policyBounds() // drained within 30 s
	s := ceilingSnapshot(1000, 0.5)
	s.flows[2].records, s.flows[2].seconds = 500, 3 // in flight on one of pod-b's
	s.lastPoll.produceRate = 1000
	ceilings := []partitionCeiling{{rate: 300}, {}, {}, {}}

	// Partition 0 asks for 500/s and 20k within 30 s, more than its 300/s: sized at 300/s,
	// its lag left out.
	quiet := time.Unix(900, 0) // before the window began (at 940)
	got, capped := s.withinCeilings(ceilings, b, quiet, true)
	if !slices.Equal(capped, []int{0}) {
		t.Fatalf("capped %v, want [0]", capped)
	}
	if got.records != 500 || got.seconds != 3 || got.produceRate != 300+3*100 {
		t.Errorf("records %d seconds %d produce %.0f, want 500, 3, 600 (300 + what the others receive)", got.records, got.seconds, got.produceRate)
	}
	if got.lastPoll.produceRate != s.lastPoll.produceRate*600/800 {
		t.Errorf("the last poll's production %.0f, want %.0f as the window's", got.lastPoll.produceRate, s.lastPoll.produceRate*600/800)
	}
	wantShares := []float64{0.5, 1.0 / 6, 1.0 / 6, 1.0 / 6}
	for i := range wantShares {
		if d := got.shares[i] - wantShares[i]; d > 1e-9 || d < -1e-9 {
			t.Errorf("shares %v, want %v", got.shares, wantShares)
			break
		}
	}
	if got.flows[0].records != 0 || got.flows[0].produceRate != 500 || got.flows[2].records != 500 || s.flows[0].records != 20000 {
		t.Errorf("flows %+v (the snapshot's partition 0 %d records), want partition 0's lag left out, what it receives kept, the others as they were",
			got.flows, s.flows[0].records)
	}
	if got.pods[0].lag != 0 || got.pods[1].lag != 500 || s.pods[0].lag != 20000 {
		t.Errorf("pods' lag %d and %d (the snapshot's pod-a %d), want 0 and 500 (20000 untouched)", got.pods[0].lag, got.pods[1].lag, s.pods[0].lag)
	}

	// Where the model knows the shares, the rest keep theirs.
	hot := s
	hot.shares = []float64{0.625, 0.075, 0.15, 0.15}
	if got, _ := hot.withinCeilings(ceilings, b, quiet, true); got.produceRate != 300+60+120+120 {
		t.Errorf("with the model's shares: produce %.0f, want 600", got.produceRate)
	}
	// Consumed well below its ceiling over a window of quiet, something else holds it back
	// (its pod full): sized as any other, its lag held against the targets. So with no pod
	// at all.
	starved := s
	starved.flows = slices.Clone(s.flows)
	starved.flows[0].consumeRate = 100
	if _, capped := starved.withinCeilings(ceilings, b, quiet, true); capped != nil {
		t.Errorf("consumed at 100/s of its 300 since the pods were quiet: capped %v", capped)
	}
	if _, capped := s.withinCeilings(ceilings, b, quiet, false); capped != nil {
		t.Errorf("no pod runs: capped %v", capped)
	}
	// A window that began before the pods were quiet (a rebalance in it) says nothing of
	// the partition: still at its ceiling. Nor does one while they are not quiet.
	for _, notYet := range []time.Time{time.Unix(950, 0), {}} {
		if _, capped := starved.withinCeilings(ceilings, b, notYet, true); !slices.Equal(capped, []int{0}) {
			t.Errorf("quiet since %v, the window from 940: capped %v, want [0]", notYet, capped)
		}
	}

	// Its lag on top of its production still within its ceiling: as it is.
	light := s
	light.flows = slices.Clone(s.flows)
	light.flows[0] = partitionFlow{produceRate: 200, consumeRate: 200, records: 2000, seconds: 10, pod: "pod-a"}
	if got, capped := light.withinCeilings(ceilings, b, quiet, true); capped != nil || got.produceRate != s.produceRate {
		t.Errorf("200/s and 2k behind against a ceiling of 300/s: capped %v", capped)
	}
	// No ceilings, or ceilings for another partition count: as it is.
	for _, c := range [][]partitionCeiling{nil, {{rate: 300}}} {
		if _, capped := s.withinCeilings(c, b, quiet, true); capped != nil {
			t.Errorf("ceilings %v: capped %v", c, capped)
		}
	}
	if text := cappedText([]int{0}, ceilings); !strings.Contains(text, "partition 0 (300/s) is consumed at its ceiling") {
		t.Errorf("reason %q", text)
	}
}

func TestQuietSince(t *testing.T) {
	t0 := time.Unix(10_000, 0)
	cases := []struct {
		name string
		st   scaleState
		want time.Time
	}{
		{name: "not settled", st: scaleState{pause: 5 * time.Second}},
		{name: "settled: after the rebalance", st: scaleState{settledAt: t0, pause: 5 * time.Second}, want: t0.Add(5 * time.Second)},
		{name: "settled, no rebalance seen yet: the default pause", st: scaleState{settledAt: t0}, want: t0.Add(defaultPause)},
		{name: "a new parallelism on its way", st: scaleState{settledAt: t0, parallelismAt: t0.Add(time.Minute), parallelismSeenAt: t0.Add(-time.Minute)}},
		{name: "a new parallelism running since", st: scaleState{settledAt: t0, parallelismAt: t0.Add(time.Minute), parallelismSeenAt: t0.Add(2 * time.Minute)},
			want: t0.Add(2 * time.Minute)},
		{name: "the last one seen at the poll a new one was asked for: on its way",
			st: scaleState{settledAt: t0, parallelismAt: t0.Add(time.Minute), parallelismSeenAt: t0.Add(time.Minute)}},
	}
	for _, tc := range cases {
		if got := tc.st.quietSince(); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestNoCeilingWhileAParallelismIsOnItsWay: three polls that show partition 0 at its
// ceiling teach it — unless a new parallelism asked for has not reached the pods, whose
// reports then measure another one.
func TestNoCeilingWhileAParallelismIsOnItsWay(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := policyBounds()
	b.minReplicas, b.maxReplicas = 2, 2
	learnt := func(asked int32, changedAt, seenAt time.Time) []partitionCeiling {
		st := measured()
		st.settledAt, st.pause = t0.Add(-10*time.Minute), 5*time.Second
		st.parallelismAt, st.parallelismSeenAt = changedAt, seenAt
		for i := range 3 {
			lag := ceilingSnapshot(1000+10*i, 0.5)
			_, st = decideScale(b, st, scaleInput{now: lag.at, known: true, lag: lag, replicas: 2, parallelism: asked, settled: true})
		}
		return st.ceilings
	}
	if got := learnt(100, t0.Add(-10*time.Minute), t0.Add(-9*time.Minute)); got == nil || got[0].rate != 300 {
		t.Errorf("the pods run what was asked: ceilings %v, want 300/s on partition 0", got)
	}
	if got := learnt(150, t0.Add(-30*time.Second), t0.Add(-9*time.Minute)); got != nil {
		t.Errorf("150 asked, the pods still at 100: ceilings %v, want none", ceilingRates(got))
	}
}

// TestPartitionsAreDealtAsKafkaGoDoes: the simulation's range dealing is kafka-go's range
// balancer's, members in the order of their IDs, more members than partitions included.
func TestPartitionsAreDealtAsKafkaGoDoes(t *testing.T) {
	for _, n := range []int{1, 5, 12, 24} {
		for k := 1; k <= 30; k++ {
			assigned := kafka.RangeGroupBalancer{}.AssignGroups(kafkaGroup(n, k))
			w := simWorld{partitions: n, rangeDealt: true}
			for m := range k {
				want := assigned[fmt.Sprintf("member-%03d", m)]["spans"]
				slices.Sort(want)
				if got := w.partitionsOf(m, k); !slices.Equal(got, want) && len(got)+len(want) > 0 {
					t.Errorf("%d partitions, %d members: member %d gets %v, kafka-go deals %v", n, k, m, got, want)
				}
			}
		}
	}
}

// TestCeilingsOutliveTheOperator: the ceilings go into the status and, after a restart (an
// Autoscaler with no memory), back into the policy at the first poll that knows the
// partitions — those of partitions the topic no longer has dropped.
func TestCeilingsOutliveTheOperator(t *testing.T) {
	known := []partitionCeiling{{rate: 299.6}, {}, {rate: 1500, polls: 1}, {polls: 2, seen: 80}}
	kept := ceilingsStatus(known)
	want := []spanflowv1alpha1.PartitionCeiling{{Partition: 0, RecordsPerSecond: 300}, {Partition: 2, RecordsPerSecond: 1500}}
	if !slices.Equal(kept, want) {
		t.Fatalf("status %+v, want %+v", kept, want)
	}
	if back := ceilingRates(ceilingsFromStatus(kept, 4)); !slices.Equal(back, []float64{300, 0, 1500, 0}) {
		t.Errorf("back from the status on 4 partitions: %v", back)
	}
	if back := ceilingRates(ceilingsFromStatus(kept, 2)); !slices.Equal(back, []float64{300, 0}) {
		t.Errorf("back on 2 partitions: %v", back)
	}
	if ceilingsStatus(nil) != nil || ceilingsFromStatus(nil, 4) != nil ||
		ceilingsFromStatus([]spanflowv1alpha1.PartitionCeiling{{Partition: 7, RecordsPerSecond: 5}}, 4) != nil {
		t.Error("no ceilings kept is none")
	}

	ing := testIngester("ns", "restarted")
	ing.Spec.Autoscaling = &spanflowv1alpha1.AutoscalingSpec{Enabled: true, TargetLagRecords: ptr.To[int64](5000)}
	ing.Status.Autoscaling = &spanflowv1alpha1.AutoscalingStatus{PartitionCeilings: want[:1],
		PodCapacity: &spanflowv1alpha1.PodCapacity{Parallelism: 100, RecordsPerSecond: 1000}}
	a := NewAutoscaler(prometheus.NewRegistry())
	input := Input{Now: time.Unix(1000, 0), SpecReplicas: 2, SpecParallelism: 100}
	// The first reconcile before the first poll: nothing known of the partitions yet.
	if d := a.Decide(ing, input); d.PartitionCeilings != nil {
		t.Errorf("before the first poll: %+v", d.PartitionCeilings)
	}
	// Nor at a poll of a topic that has no partitions yet.
	input.Lag = Observation{have: true, snapshot: lagSnapshot{at: time.Unix(990, 0)}}
	if d := a.Decide(ing, input); d.PartitionCeilings != nil {
		t.Errorf("a topic without partitions: %+v", d.PartitionCeilings)
	}
	input.Lag = Observation{have: true, snapshot: ceilingSnapshot(1000, 0.9)}
	d := a.Decide(ing, input)
	if !strings.Contains(d.Reason, "partition 0 (300/s) is consumed at its ceiling") || !slices.Equal(d.PartitionCeilings, want[:1]) {
		t.Errorf("a restarted operator forgot partition 0's ceiling: %s, %+v", d.Reason, d.PartitionCeilings)
	}
}

// drainingGroup is a poll at second at of 12 pods at parallelism 225 (10/s a slot), one
// partition each: partition 0 receives 400/s and drains a backlog of records at 500/s,
// all its pod takes of it (22% of the slots, 20% of the CPU), the oldest seconds old; the
// others receive and are consumed at 145/s. The rate window is the last minute.
func drainingGroup(at int, records, seconds int64) lagSnapshot {
	now := time.Unix(int64(at), 0)
	s := lagSnapshot{partitions: 12, at: now, rateSince: now.Add(-60 * time.Second), produceRate: 400 + 11*145,
		consumeRate: 500 + 11*145, records: records, seconds: seconds}
	for id := range 12 {
		pod := fmt.Sprintf("pod-%02d", id)
		f := partitionFlow{produceRate: 145, consumeRate: 145, pod: pod}
		rep := loadreport.Report{Pod: pod, At: now, Parallelism: 225, Busy: 145.0 / 2250, CPU: 0.06, Rate: 145}
		if id == 0 {
			f = partitionFlow{produceRate: 400, consumeRate: 500, leastBacklog: records, records: records, seconds: seconds, pod: pod}
			rep.Busy, rep.CPU, rep.Rate = 500.0/2250, 0.2, 500
		}
		s.flows = append(s.flows, f)
		lag := int64(0)
		if id == 0 {
			lag = records
		}
		s.pods = append(s.pods, podLoad{Report: rep, ids: []int{id}, listed: true, lag: lag})
	}
	return s
}

// TestADrainingPartitionAtItsCeilingDoesNotHoldThePods: after a spike, 12 pods hold a
// partition alone each; partition 0 drains its backlog at 500/s, all it can go, while its
// pod has room. The pods holding the lag are idle, so nothing is added — but nor was any
// pod removed: its ceiling was learnt only from a partition falling behind, and its lag
// held the group at 12 pods for the 50 minutes of the drain, where 2 consume as much. A
// partition that drains at a pace its pod does not set is at its ceiling too: the lag it
// holds is not held against the targets, and the pods go.
func TestADrainingPartitionAtItsCeilingDoesNotHoldThePods(t *testing.T) {
	t0 := time.Unix(10_000, 0)
	st := measured()
	st.firstSample, st.settledAt, st.parallelismSeenAt = t0.Add(-10*time.Minute), t0.Add(-5*time.Minute), t0.Add(-5*time.Minute)
	st.lastUp, st.lastChange, st.pause = t0.Add(-5*time.Minute), t0.Add(-5*time.Minute), 3*time.Second
	var d scaleDecision
	for i := range 20 {
		at := int(t0.Unix()) + 10*i
		lag := drainingGroup(at, 190_000-int64(i)*1000, 200+10*int64(i))
		d, st = decideScale(policyBounds(), st, scaleInput{now: lag.at, known: true, lag: lag, replicas: 12, parallelism: 225, settled: true})
		if d.replicas > 12 {
			t.Fatalf("poll %d: %d × %d (%s): pods added for a partition they cannot speed", i, d.replicas, d.parallelism, d.reason)
		}
		if d.replicas < 12 {
			break
		}
	}
	if d.replicas > 3 || !strings.Contains(d.reason, "partition 0 (500/s) is consumed at its ceiling") {
		t.Errorf("got %d × %d (%s), want at most 3 pods, partition 0 at its ceiling", d.replicas, d.parallelism, d.reason)
	}
}
