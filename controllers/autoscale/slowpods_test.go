package autoscale

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/spanflow/spanflow/ingester/loadreport"
)

// slowGroup is 6 pods at parallelism 225 on 12 partitions (two each, round-robin), with
// 3,000 records/s produced: pods 1 to 5 each finish their 500/s with 22% of their slots
// (10/s a slot) and 20% of their CPU; pod-0 does 2/s a slot and 500/s at most — on a bad
// node — and finishes 450/s with every slot busy and 90% of its CPU, while its two
// partitions receive 500/s: it holds the whole lag, records of the last `seconds`.
func slowGroup(at int, records, seconds int64, slowRate, slowBusy, slowCPU float64) lagSnapshot {
	snap := reporting(snapshot(at, 12, records, seconds, 3000, 2500+slowRate), 6, 225, 500, 500.0/2250, 0.2, records)
	snap.pods[0].Rate, snap.pods[0].Busy, snap.pods[0].CPU = slowRate, slowBusy, slowCPU
	return snap
}

// TestASlowPodSetsThePace: one pod 5× slower than the others backs up its partitions
// while the others idle. The pods' average says the group has capacity to spare, and
// not every pod is busy, so no measured rate is believed: sized on the average, the
// group stays at 6 pods and the lag is never drained. Sized for the slow pod — as if it
// held the busiest pod's partitions — 12 pods leave it one partition (250/s), which it
// carries. One report is not enough to take a pod for slow; the second is.
func TestASlowPodSetsThePace(t *testing.T) {
	t0 := time.Unix(1000, 0)
	st := scaleState{firstSample: t0.Add(-5 * time.Minute), settledAt: t0.Add(-time.Minute), parallelismSeenAt: t0.Add(-time.Minute)}
	var got scaleDecision
	for i, want := range []int32{6, 12} {
		at := t0.Add(time.Duration(i) * reportInterval)
		in := scaleInput{now: at, known: true, lag: slowGroup(int(at.Unix()), 40000+int64(i)*500, 60+10*int64(i), 450, 1, 0.9),
			replicas: 6, parallelism: 225, settled: true}
		got, st = decideScale(policyBounds(), st, in)
		if got.replicas != want {
			t.Fatalf("report %d: %d × %d (%s), want %d pods", i+1, got.replicas, got.parallelism, got.reason, want)
		}
	}
	if got.parallelism != 225 || !strings.Contains(got.reason, "pod-0 does 65% of what the other pods do") {
		t.Errorf("got %d × %d (%s), want 12 × 225 naming pod-0", got.replicas, got.parallelism, got.reason)
	}
}

// TestASlowPodThatRecoversIsForgotten: 12 pods sized for a slow pod-0 (2/s a slot, one
// partition each, 250/s) with no lag; pod-0 recovers (10/s a slot, as the others). After
// a few reports it is no longer slow, and the group is sized for the typical pod again:
// fewer pods.
func TestASlowPodThatRecoversIsForgotten(t *testing.T) {
	t0 := time.Unix(1000, 0)
	// A fresh memory (an operator restart): nothing goes down before a window is watched.
	st := scaleState{settledAt: t0.Add(-5 * time.Minute), parallelismSeenAt: t0.Add(-5 * time.Minute),
		lastChange: t0.Add(-5 * time.Minute), lastUp: t0.Add(-5 * time.Minute)}
	// 12 pods at parallelism 225, 250/s each: 11% of their slots and 10% of their CPU, pod-0
	// 56% and 50% while slow.
	poll := func(i int, slowBusy, slowCPU float64) scaleInput {
		at := t0.Add(time.Duration(i) * reportInterval)
		lag := reporting(snapshot(int(at.Unix()), 12, 300, 0, 3000, 3000), 12, 225, 250, 250.0/2250, 0.1)
		lag.pods[0].Busy, lag.pods[0].CPU = slowBusy, slowCPU
		return scaleInput{now: at, known: true, lag: lag, replicas: 12, parallelism: 225, settled: true}
	}
	for i := range 4 {
		d, next := decideScale(policyBounds(), st, poll(i, 250.0/450, 0.5))
		st = next
		if d.replicas != 12 {
			t.Fatalf("slow, report %d: %d × %d (%s), want 12 pods", i+1, d.replicas, d.parallelism, d.reason)
		}
	}
	if _, ok := slowest(st.speeds); !ok {
		t.Fatalf("pod-0 not taken for slow: %+v", st.speeds)
	}
	slowFor := 0 // reports after it recovered
	for i := 4; i < 40; i++ {
		_, st = decideScale(policyBounds(), st, poll(i, 250.0/2250, 0.1))
		if hasSlow(st.speeds) {
			slowFor = i - 3
		}
	}
	if slowFor >= 4 {
		t.Fatalf("pod-0 still slow %d reports after it recovered: %+v", slowFor, st.speeds)
	}
	// Recovered, and the window watched: the typical pod's capacity sizes the group.
	var d scaleDecision
	for i := 40; i < 60; i++ {
		d, st = decideScale(policyBounds(), st, poll(i, 250.0/2250, 0.1))
	}
	if d.replicas >= 12 {
		t.Errorf("recovered: %d × %d (%s), want fewer pods", d.replicas, d.parallelism, d.reason)
	}
}

func hasSlow(speeds []podSpeed) bool { _, ok := slowest(speeds); return ok }

// TestLearnSpeeds: what makes a pod slow, and what does not.
func TestLearnSpeeds(t *testing.T) {
	t0 := time.Unix(1000, 0)
	// group is n pods at parallelism 100, each finishing 500/s with half of its slots and
	// 40% of its CPU (10/s a slot, 1,125/s at most).
	group := func(n int) []podLoad {
		var pods []podLoad
		for i := range n {
			pods = append(pods, podLoad{Report: loadreport.Report{Pod: fmt.Sprintf("pod-%d", i), At: t0, Parallelism: 100, Busy: 0.5, CPU: 0.4, Rate: 500}})
		}
		return pods
	}
	// reports runs n reports of the pods as change leaves them, and says how many it took
	// for pod-0 to be slow (0: never), and what is known of it at the end.
	reports := func(n int, pods func(i int) []podLoad, typical capacityModel) (int, []podSpeed) {
		var speeds []podSpeed
		first := 0
		for i := range n {
			speeds = learnSpeeds(speeds, pods(i), typical, t0.Add(time.Duration(i)*reportInterval))
			if s, ok := slowest(speeds); ok && s.pod == "pod-0" && first == 0 {
				first = i + 1
			}
		}
		return first, speeds
	}
	// slowBy is n pods of which pod-0 does factor of what the others do a slot and a
	// CPU-second: it finishes the same 500/s while it can, busier, or all it can.
	slowBy := func(n int, factor float64) func(int) []podLoad {
		return func(int) []podLoad {
			pods := group(n)
			rate := min(500, 1000*factor)
			pods[0].Rate, pods[0].Busy, pods[0].CPU = rate, rate/(1000*factor), rate/(1250*factor)
			return pods
		}
	}
	// typical is what the pods above do: 10/s a slot, 1,125/s at most.
	typical := capacityModel{perWorker: 10, ceiling: 1125, ceilingParallelism: 113, measuredParallelism: 100, highest: 100}
	// othersIdle is pod-0 finishing rate with busy of its slots and cpu of its CPU, the
	// others 10/s with 1% of their slots: too idle to say what they can do.
	othersIdle := func(rate, busy, cpu float64) func(int) []podLoad {
		return func(int) []podLoad {
			pods := group(4)
			for i := 1; i < 4; i++ {
				pods[i].Busy, pods[i].CPU, pods[i].Rate = 0.01, 0.05, 10
			}
			pods[0].Busy, pods[0].CPU, pods[0].Rate = busy, cpu, rate
			return pods
		}
	}
	cases := []struct {
		name     string
		n        int
		pods     func(i int) []podLoad
		typical  capacityModel // zero: nothing known of a typical pod
		slowAt   int           // 0: never slow
		checkOut func(t *testing.T, speeds []podSpeed)
	}{
		{name: "5× slower: slow at its second report", n: 10, pods: slowBy(4, 0.2), slowAt: 2},
		{name: "2× slower: slow at its fourth report", n: 10, pods: slowBy(4, 0.5), slowAt: 4},
		{name: "2× slower, one other pod: slow at its fourth report", n: 10, pods: slowBy(2, 0.5), slowAt: 4},
		{name: "1.3× slower: not slow", n: 30, pods: slowBy(4, 0.75)},
		{name: "a hot partition's pod: busier, not slower", n: 30, pods: func(int) []podLoad {
			pods := group(4)
			pods[0].Busy, pods[0].CPU, pods[0].Rate = 0.95, 0.76, 950
			return pods
		}},
		{name: "a pod waiting for a partition at its ceiling: idler, not slower", n: 30, pods: func(int) []podLoad {
			pods := group(4)
			pods[0].Busy, pods[0].CPU, pods[0].Rate = 0.1, 0.1, 100 // slots wait for bytes, not busy
			return pods
		}},
		{name: "reports off by up to 25% either way, two pods: not slow", n: 200, pods: func(i int) []podLoad {
			pods := group(2)
			off := []float64{1.25, 0.75}
			pods[0].Busy, pods[0].CPU = 0.5*off[i%2], 0.4*off[i%2]
			pods[1].Busy, pods[1].CPU = 0.5*off[(i+1)%2], 0.4*off[(i+1)%2]
			return pods
		}},
		{name: "the others too idle to measure, nothing known of a typical pod: not judged", n: 10, pods: othersIdle(100, 0.5, 0.4)},
		{name: "the others too idle to measure: 5× slower than the typical pod", n: 10, pods: othersIdle(100, 0.5, 0.4), typical: typical, slowAt: 2},
		{name: "the others too idle to measure: a hot partition's pod is as fast as the typical pod", n: 30,
			pods: othersIdle(950, 0.95, 0.76), typical: typical},
		{name: "itself too idle to measure: not judged", n: 10, pods: func(int) []podLoad {
			pods := group(4)
			pods[0].Busy, pods[0].CPU, pods[0].Rate = 0.04, 0.04, 4
			return pods
		}},
		{name: "parallelisms that differ: not compared", n: 10, pods: func(int) []podLoad {
			pods := slowBy(4, 0.2)(0)
			pods[1].Parallelism = 150
			return pods
		}},
		{name: "a parallelism changed within the reports: not compared", n: 10, pods: func(int) []podLoad {
			pods := slowBy(4, 0.2)(0)
			for i := range pods {
				pods[i].Slots = 80
			}
			return pods
		}},
		{name: "recovered: forgotten at its fourth report as fast as the others", n: 10, pods: func(i int) []podLoad {
			if i < 6 {
				return slowBy(4, 0.2)(i)
			}
			return group(4)
		}, slowAt: 2, checkOut: func(t *testing.T, speeds []podSpeed) {
			if hasSlow(speeds) {
				t.Errorf("still slow four reports after it recovered: %+v", speeds)
			}
		}},
		{name: "gone: forgotten", n: 6, pods: func(i int) []podLoad {
			if i < 5 {
				return slowBy(4, 0.2)(i)
			}
			return group(4)[1:]
		}, slowAt: 2, checkOut: func(t *testing.T, speeds []podSpeed) {
			if len(speeds) != 0 && speeds[0].pod == "pod-0" {
				t.Errorf("a pod without a report remembered: %+v", speeds)
			}
		}},
		{name: "unmeasured for the memory's length: forgotten", n: 70, pods: func(i int) []podLoad {
			if i < 5 {
				return slowBy(4, 0.2)(i)
			}
			pods := group(4)
			for k := range pods {
				pods[k].Busy, pods[k].CPU, pods[k].Rate = 0.01, 0.01, 10
			}
			return pods
		}, slowAt: 2, checkOut: func(t *testing.T, speeds []podSpeed) {
			if hasSlow(speeds) {
				t.Errorf("remembered slow after 10 minutes unmeasured: %+v", speeds)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			at, speeds := reports(tc.n, tc.pods, tc.typical)
			if at != tc.slowAt {
				t.Errorf("slow at report %d, want %d (0: never): %+v", at, tc.slowAt, speeds)
			}
			if tc.checkOut != nil {
				tc.checkOut(t, speeds)
			}
		})
	}
}

// TestSlowPodsOwnCapacity: the slow pod's model is its own (2/s a slot, 450/s at most),
// the typical pod's leaves it out (10/s a slot), and the group is paced by the lesser of
// the two at every parallelism.
func TestSlowPodsOwnCapacity(t *testing.T) {
	t0 := time.Unix(1000, 0)
	st := scaleState{firstSample: t0.Add(-5 * time.Minute), settledAt: t0.Add(-time.Minute), parallelismSeenAt: t0.Add(-time.Minute)}
	for i := range 6 {
		at := t0.Add(time.Duration(i) * reportInterval)
		_, st = decideScale(policyBounds(), st, scaleInput{now: at, known: true, lag: slowGroup(int(at.Unix()), 40000, 60, 450, 1, 0.9),
			replicas: 6, parallelism: 225, settled: true})
	}
	s, ok := slowest(st.speeds)
	if !ok || s.pod != "pod-0" {
		t.Fatalf("no slow pod-0: %+v", st.speeds)
	}
	near := func(got, want float64) bool { return math.Abs(got-want) <= 0.02*want }
	if !near(s.model.perWorker, 2) || !near(s.model.ceiling, 450) {
		t.Errorf("slow pod's model %+v, want 2/s a slot and 450/s at most", s.model)
	}
	if !near(st.capacity.perWorker, 10) {
		t.Errorf("typical pod's model %+v, want 10/s a slot", st.capacity)
	}
	paced := st.sizingCapacity()
	for _, p := range []int32{50, 100, 225, 400} {
		if want := min(st.capacity.podRate(p), s.model.podRate(p)); !near(paced.podRate(p), want) {
			t.Errorf("paced at %d: %.0f/s, want %.0f/s", p, paced.podRate(p), want)
		}
	}
}

// TestPacedBy: the lesser of two pods' rates at every parallelism — one slower a slot
// with a higher ceiling, one faster a slot with a lower ceiling, one with no ceiling
// known, the same pod — within 1.5× the highest parallelism both were measured at; beyond
// it, no more than the lesser (neither is trusted further than it was measured).
func TestPacedBy(t *testing.T) {
	typical := capacityModel{perWorker: 10, ceiling: 2000, ceilingParallelism: 200, measuredParallelism: 100, highest: 400}
	for _, s := range []capacityModel{
		{perWorker: 4, ceiling: 3000, ceilingParallelism: 750, measuredParallelism: 100, highest: 400},
		{perWorker: 12, ceiling: 600, ceilingParallelism: 50, measuredParallelism: 100, highest: 400},
		{perWorker: 5, measuredParallelism: 100, highest: 400},
		{perWorker: 2, ceiling: 450, ceilingParallelism: 225, measuredParallelism: 100, highest: 100},
		typical,
	} {
		paced := typical.pacedBy(s)
		for p := int32(10); p <= 800; p += 10 {
			want := min(typical.podRate(p), s.podRate(p))
			got := paced.podRate(p)
			if float64(p) <= exploreFactor*float64(min(s.highest, typical.highest)) && math.Abs(got-want) > 1e-6*want || got > want+1e-6 {
				t.Errorf("%+v at %d: %.1f/s, want %.1f/s", s, p, got, want)
			}
		}
	}
}

// TestTheSlowPodAloneSaysNothingOfTheOthers: a group down to its slow pod (2/s a slot,
// 450/s at most), all of its slots busy catching up after a rebalance, consumes 450/s.
// That is what its own model says: the typical pod's (10/s a slot) stays as it was —
// neither blended with the slow pod's report nor scaled down by a rate measured of the
// slow pod alone. Two pods, the typical one and the slow one, each busy at what its
// model says by its report, but consuming a third less than that between two polls: the
// measurement is of the group, and both models are scaled alike.
func TestTheSlowPodAloneSaysNothingOfTheOthers(t *testing.T) {
	t0 := time.Unix(1000, 0)
	slowModel := capacityModel{perWorker: 2, ceiling: 450, ceilingParallelism: 225, measuredParallelism: 225, highest: 225}
	state := func() scaleState {
		return scaleState{firstSample: t0.Add(-5 * time.Minute), settledAt: t0.Add(-time.Minute), parallelismSeenAt: t0.Add(-time.Minute),
			capacity: capacityModel{perWorker: 10, ceiling: 2250, ceilingParallelism: 225, measuredParallelism: 225, highest: 225},
			speeds:   []podSpeed{{pod: "pod-0", share: 0.2, model: slowModel, at: t0.Add(-10 * time.Second)}}}
	}
	// poll is n pods reporting rates with every slot busy and 90% of their CPU, the group
	// consuming consumed between the last two polls.
	poll := func(n int, consumed float64, rates ...float64) scaleInput {
		lag := reporting(snapshot(int(t0.Unix()), 12, 20000, 20, 3000, 0), n, 225, 0, 1, 0.9, 20000)
		for i, r := range rates {
			lag.pods[i].Rate = r
		}
		total := consumed
		lag.lastPoll = pollInterval{since: t0.Add(-10 * time.Second), produceRate: 3000, consumeRate: total, leastBacklog: 1000}
		lag.consumeRate = total
		return scaleInput{now: t0, known: true, lag: lag, replicas: int32(n), parallelism: 225, settled: true}
	}
	_, st := decideScale(policyBounds(), state(), poll(1, 450, 450))
	if math.Abs(st.capacity.perWorker-10) > 0.01 || math.Abs(st.capacity.ceiling-2250) > 1 {
		t.Errorf("the slow pod alone: typical pod %+v, want 10/s a slot and 2,250/s at most", st.capacity)
	}
	if s, ok := slowest(st.speeds); !ok || math.Abs(s.model.perWorker-2) > 0.01 {
		t.Errorf("the slow pod alone: %+v, want it slow at 2/s a slot", st.speeds)
	}
	// Both busy: the typical pod's model says 2,250/s, the slow one's 450/s, and so do
	// their reports; they consume 1,800/s together, 0.67 of it.
	_, st = decideScale(policyBounds(), state(), poll(2, 1800, 450, 2250))
	if math.Abs(st.capacity.perWorker-6.67) > 0.05 {
		t.Errorf("both slower: typical pod %+v, want 6.67/s a slot", st.capacity)
	}
	if s, ok := slowest(st.speeds); !ok || math.Abs(s.model.perWorker-1.33) > 0.05 {
		t.Errorf("both slower: %+v, want the slow pod at 1.33/s a slot", st.speeds)
	}
}
