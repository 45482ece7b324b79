package autoscale

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/ingester/loadreport"
)

// policyBounds are the bounds the table tests share: up to 12 pods, parallelism 100–400,
// 5,000 records per pod or 30 s of lag.
func policyBounds() scaleBounds {
	return scaleBounds{minReplicas: 1, minParallelism: 100, maxParallelism: 400, targetRecords: 5000, targetSeconds: 30,
		up: scaleRules{period: defaultScalePeriod}, down: scaleRules{window: 120 * time.Second, period: defaultScalePeriod},
		cooldown: 60 * time.Second}
}

// fixedParallelism leaves the policy pods as its only lever.
func fixedParallelism(b *scaleBounds) { b.minParallelism, b.maxParallelism = 100, 100 }

// measured is a policy state that knows a pod does 10 records/s per unit of parallelism.
func measured() scaleState {
	return scaleState{capacity: capacityModel{perWorker: 10, measuredParallelism: 100, highest: 400}}
}

// watchedDown is measured, with five minutes of recommendations watched before now: a
// scale-down is not held for a window not yet watched whole.
func watchedDown(now time.Time) scaleState {
	s := measured()
	s.firstSample = now.Add(-5 * time.Minute)
	return s
}

func snapshot(at int, partitions int, records, seconds int64, produce, consume float64) lagSnapshot {
	return lagSnapshot{partitions: partitions, records: records, seconds: seconds, produceRate: produce, consumeRate: consume,
		at: time.Unix(int64(at), 0)}
}

func TestDecideScale(t *testing.T) {
	t0 := time.Unix(1000, 0)
	// spare is 6 pods at parallelism 144 keeping up with 1,000/s, where 1 would do, with a
	// lag of records the oldest seconds old.
	spare := func(records, seconds int64) scaleInput {
		return scaleInput{now: t0, known: true, lag: snapshot(1000, 12, records, seconds, 1000, 1000), replicas: 6, parallelism: 144, settled: true}
	}
	cases := []struct {
		name       string
		bounds     func(*scaleBounds)
		state      scaleState
		in         scaleInput
		replicas   int32
		par        int32
		reasonHas  string
		changeTime bool
	}{
		{name: "no figures yet: hold", state: measured(),
			in:       scaleInput{now: t0, replicas: 2, parallelism: 100, settled: true},
			replicas: 2, par: 100, reasonHas: "waiting for the first lag figures"},
		{name: "stale figures: hold even far behind", state: measured(),
			in:       scaleInput{now: t0, known: true, stale: true, lag: snapshot(1000, 12, 9_000_000, 900, 5000, 0), replicas: 2, parallelism: 100, settled: true},
			replicas: 2, par: 100, reasonHas: "stale"},
		{name: "behind: parallelism first, in the running pods, with a margin", state: measured(),
			// 3,000/s produced, 60k behind: 3,450/s + (60k - 5k)/30 s ≈ 5.3k/s, 6.3k/s with
			// the margin: 2 pods at parallelism 317.
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 60000, 40, 3000, 2000), replicas: 2, parallelism: 100, settled: true},
			replicas: 2, par: 317, reasonHas: "scaling up from 2 × 100 to 2 × 317", changeTime: true},
		{name: "behind, parallelism fixed: add pods, balanced on the partitions", bounds: fixedParallelism, state: measured(),
			// 5.3k/s needed: 6 pods of 1,000/s.
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 60000, 40, 3000, 2000), replicas: 2, parallelism: 100, settled: true},
			replicas: 6, par: 100, reasonHas: "scaling up from 2 × 100 to 6 × 100", changeTime: true},
		{name: "behind: adding pods does not wait for the cooldown or a rollout", bounds: fixedParallelism,
			state: func() scaleState {
				s := measured()
				s.lastChange, s.lastUp = t0.Add(-5*time.Second), t0.Add(-5*time.Second)
				return s
			}(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 60000, 40, 3000, 2000), replicas: 2, parallelism: 100, settled: false},
			replicas: 6, par: 100, changeTime: true},
		{name: "behind, but the pods drain it before new ones would start: no rebalance", bounds: fixedParallelism,
			// 2 pods of 1,000/s, 1,500/s produced, 40k behind: drained in 80 s; new pods
			// take 100 s to start.
			state:    func() scaleState { s := measured(); s.startup = 100 * time.Second; return s }(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 40000, 25, 1500, 2000), replicas: 2, parallelism: 100, settled: true},
			replicas: 2, par: 100, reasonHas: "these drain the backlog in 80 s, before new pods would start (100 s)"},
		{name: "behind, with the pods asked for still starting: they drain nothing until ready", bounds: fixedParallelism,
			// 4 pods asked for 10 s ago, 1 consuming 1,000/s of the 3,000/s produced, 80k
			// behind. The 4 would drain it in 80 s once running, but they start in 90 s, and
			// by then 260k are behind (350 s to drain); 6 pods are done in about 140 s.
			state: func() scaleState {
				s := measured()
				s.startup, s.lastUp, s.lastChange = 100*time.Second, t0.Add(-10*time.Second), t0.Add(-10*time.Second)
				return s
			}(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 80000, 25, 3000, 1000), replicas: 4, parallelism: 100, settled: false},
			replicas: 6, par: 100, reasonHas: "scaling up from 4 × 100 to 6 × 100", changeTime: true},
		{name: "behind, with a hot partition: pods enough for the pod that holds it", bounds: fixedParallelism, state: measured(),
			// As "behind, parallelism fixed" (5.3k/s needed), but a partition takes a quarter
			// of the production: 6 pods would do 6k/s were the partitions even, yet the one
			// holding the hot partition carries 32% (1,000/s of 3,140); 12 pods do the most,
			// 4k/s.
			in: scaleInput{now: t0, known: true, lag: func() lagSnapshot {
				s := snapshot(1000, 12, 60000, 40, 3000, 2000)
				s.shares = hotShares(12, 0.25)
				return s
			}(), replicas: 2, parallelism: 100, settled: true},
			replicas: 12, par: 100, reasonHas: "12 pods do 4.0k/s at parallelism 100; scaling up from 2 × 100 to 12 × 100", changeTime: true},
		{name: "behind, with a hot partition at its ceiling: pods enough for what it takes, not for what it receives", bounds: fixedParallelism,
			// As above, but partition 0 was seen to go no faster than 600/s with its pod's
			// slots to spare, and holds 55k of the lag: sized for 600/s there and 2,250/s on
			// the rest (2,850/s, 3.3k/s with the headroom; the others' 5k within the
			// target), its pod carries 28% with 6 pods, 3.5k/s. (12 without the ceiling.)
			state: func() scaleState { s := measured(); s.ceilings = ceilingAt(12, 0, 600); return s }(),
			in: scaleInput{now: t0, known: true, lag: func() lagSnapshot {
				s := snapshot(1000, 12, 60000, 40, 3000, 2000)
				s.shares = hotShares(12, 0.25)
				s.flows = flowsOf(12, partitionFlow{produceRate: 750, consumeRate: 600, leastBacklog: 50000, records: 55000, seconds: 40},
					partitionFlow{produceRate: 2250.0 / 11, consumeRate: 2250.0 / 11, records: 5000 / 11, seconds: 5})
				return s
			}(), replicas: 2, parallelism: 100, settled: true},
			replicas: 6, par: 100, reasonHas: "partition 0 (600/s) is consumed at its ceiling", changeTime: true},
		{name: "spare pods, the lag over target only on a partition at its ceiling: they go", bounds: fixedParallelism,
			// 6 pods of 1,000/s; partition 0 receives 150/s and goes no faster than 100/s,
			// 20k behind for 200 s, which no size drains sooner; the rest, 850/s, keep up.
			// 950/s with the headroom and margins is 1.3k/s: 2 pods. (Held at 6 without the
			// ceiling: over target.)
			state: func() scaleState { s := watchedDown(t0); s.ceilings = ceilingAt(12, 0, 100); return s }(),
			in: scaleInput{now: t0, known: true, lag: func() lagSnapshot {
				s := snapshot(1000, 12, 20000, 200, 1000, 950)
				s.flows = flowsOf(12, partitionFlow{produceRate: 150, consumeRate: 100, leastBacklog: 19000, records: 20000, seconds: 200},
					partitionFlow{produceRate: 850.0 / 11, consumeRate: 850.0 / 11})
				return s
			}(), replicas: 6, parallelism: 100, settled: true},
			replicas: 2, par: 100, reasonHas: "scaling down from 6 × 100 to 2 × 100", changeTime: true},
		{name: "at zero pods, a lag on a partition with a ceiling wakes them", bounds: func(b *scaleBounds) { b.minReplicas, b.activationRecords = 0, 500 },
			// Nothing consumes it: the ceiling does not hide its lag.
			state: func() scaleState { s := watchedDown(t0); s.ceilings = ceilingAt(12, 0, 300); return s }(),
			in: scaleInput{now: t0, known: true, lag: func() lagSnapshot {
				s := snapshot(1000, 12, 50000, 250, 200, 0)
				s.flows = flowsOf(12, partitionFlow{produceRate: 200, leastBacklog: 48000, records: 50000, seconds: 250}, partitionFlow{})
				return s
			}(), replicas: 0, parallelism: 100, settled: true},
			replicas: 1, par: 182, reasonHas: "scaling up from 0 × 100", changeTime: true},
		{name: "behind, with nearly all of the production on one partition: no pods that would not raise the pace", bounds: fixedParallelism,
			state: measured(),
			// A partition takes 90%: 12 pods would do 1,111/s, 2 pods 1,058/s (its pod
			// carries 94.5%): within 5% of the most, the 2 stay.
			in: scaleInput{now: t0, known: true, lag: func() lagSnapshot {
				s := snapshot(1000, 12, 60000, 40, 3000, 2000)
				s.shares = hotShares(12, 0.9)
				return s
			}(), replicas: 2, parallelism: 100, settled: true},
			replicas: 2, par: 100, reasonHas: "2 pods do 1.1k/s at parallelism 100"},
		{name: "behind, and more pods would drain it sooner only by less than their rebalance", bounds: fixedParallelism,
			// As above with pods that start in 60 s: 3 pods would be done in 87 s, these in 80.
			state:    func() scaleState { s := measured(); s.startup = 60 * time.Second; return s }(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 40000, 25, 1500, 2000), replicas: 2, parallelism: 100, settled: true},
			replicas: 2, par: 100, reasonHas: "3 pods would drain the backlog in 87 s, these in 80 s: not a 10 s rebalance sooner"},
		{name: "behind while nothing consumes yet: pods added without weighing a rebalance", bounds: fixedParallelism,
			// As above, but the pods are still starting: those added join the same rebalance.
			state:    func() scaleState { s := measured(); s.startup = 100 * time.Second; return s }(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 40000, 25, 1500, 0), replicas: 2, parallelism: 100, settled: false},
			replicas: 3, par: 100, reasonHas: "scaling up from 2 × 100 to 3 × 100", changeTime: true},
		{name: "never more pods than partitions", bounds: fixedParallelism, state: measured(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 4, 400000, 100, 3000, 2000), replicas: 2, parallelism: 100, settled: true},
			replicas: 4, par: 100, changeTime: true},
		{name: "never more than maxReplicas", bounds: func(b *scaleBounds) { fixedParallelism(b); b.maxReplicas = 3 }, state: measured(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 60000, 40, 3000, 2000), replicas: 2, parallelism: 100, settled: true},
			replicas: 3, par: 100, changeTime: true},
		{name: "at the most pods with a long backlog: raise parallelism", bounds: func(b *scaleBounds) { b.maxReplicas = 2 }, state: measured(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 2_000_000, 600, 3000, 2000), replicas: 2, parallelism: 100, settled: true},
			replicas: 2, par: 400, reasonHas: "to 2 × 400", changeTime: true},
		{name: "at the most pods with a short burst: parallelism rises too (it restarts nothing)", bounds: func(b *scaleBounds) { b.maxReplicas = 2 }, state: measured(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 60000, 40, 3000, 2000), replicas: 2, parallelism: 100, settled: true},
			replicas: 2, par: 317, changeTime: true},
		{name: "keeping up with spare: fewer pods, parallelism raised first",
			// 1,000/s on 6 pods of 1,000/s: one pod at parallelism 133 does 1,330/s (with
			// headroom and the margin of a scale-down, 1.15 × 1.15). One pod at 100 would not keep up
			// while its parallelism rises: raise the parallelism of the 6 first.
			state:    watchedDown(t0),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 0, 0, 1000, 1000), replicas: 6, parallelism: 100, settled: true},
			replicas: 6, par: 133, reasonHas: "fewer pods to come; raising their parallelism first from 6 × 100 to 6 × 133", changeTime: true},
		{name: "keeping up with spare, parallelism already raised: fewer pods",
			state:    watchedDown(t0),
			in:       spare(0, 0),
			replicas: 1, par: 144, reasonHas: "scaling down from 6 × 144 to 1 × 144", changeTime: true},
		{name: "pods added within the down window are not removed",
			state: func() scaleState {
				s := measured()
				s.firstSample, s.lastUp, s.lastChange = t0.Add(-5*time.Minute), t0.Add(-90*time.Second), t0.Add(-90*time.Second)
				return s
			}(),
			in:       spare(0, 0),
			replicas: 6, par: 144, reasonHas: "pods were added at"},
		{name: "a rebalance that would take the lag near its target: no fewer pods",
			state: watchedDown(t0),
			// 1 pod would do, but 16 s of lag and a 10 s pause exceed 0.8 of the 30 s target.
			in:       spare(2000, 16),
			replicas: 6, par: 144, reasonHas: "1 pods would do, but a 10 s rebalance now would take the lag over its target"},
		{name: "rebalances longer than half the target: pods still go while the lag is fresh",
			// A 20 s pause with a 30 s target: a margin of half the target would hold 6 pods
			// where 1 does for as long as the load stays — forever at a steady load.
			state:    func() scaleState { s := watchedDown(t0); s.pause = 20 * time.Second; return s }(),
			in:       spare(500, 1),
			replicas: 1, par: 144, reasonHas: "scaling down from 6 × 144 to 1 × 144", changeTime: true},
		{name: "records in flight do not hold pods: a lag 2 s old is what the pods are writing",
			// 3,000 records, over half of what 1 pod is allowed (5,000), but the oldest is 2 s
			// old: the records the pods have fetched and are writing, as many with 1 pod as 6.
			state:    watchedDown(t0),
			in:       spare(3000, 2),
			replicas: 1, par: 144, reasonHas: "scaling down from 6 × 144 to 1 × 144", changeTime: true},
		{name: "records in flight over what the fewest pods are allowed: the fewest that hold them go",
			// 8,000 records 2 s old: over what 1 pod is allowed (5,000), within 2 pods' 10,000.
			// They stay however long the wait: held for 1 pod, the 6 stayed for good.
			state:    watchedDown(t0),
			in:       spare(8000, 2),
			replicas: 2, par: 144, reasonHas: "scaling down from 6 × 144 to 2 × 144", changeTime: true},
		{name: "a backlog holds pods: the same records 10 s old",
			state:    watchedDown(t0),
			in:       spare(3000, 10),
			replicas: 6, par: 144, reasonHas: "would do, but a 10 s rebalance now would take the lag over its target"},
		{name: "no scale-down before the down window was watched whole", state: measured(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 0, 0, 1000, 1000), replicas: 6, parallelism: 100, settled: true},
			replicas: 6, par: 100, reasonHas: "holding at 6 × 100 within the stabilization window"},
		{name: "within the cooldown after removing pods: no more go",
			bounds: func(b *scaleBounds) { b.down.window = 0 },
			state: func() scaleState {
				s := measured()
				s.firstSample, s.lastChange, s.lastDown = t0.Add(-5*time.Minute), t0.Add(-30*time.Second), t0.Add(-30*time.Second)
				return s
			}(),
			in:       spare(0, 0),
			replicas: 6, par: 144, reasonHas: "cooling down"},
		{name: "a recent larger recommendation holds a scale-down",
			state: func() scaleState {
				s := measured()
				s.recommendations = []scaleRecommendation{{at: t0.Add(-60 * time.Second), replicas: 6, parallelism: 100}}
				return s
			}(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 0, 0, 1000, 1000), replicas: 6, parallelism: 100, settled: true},
			replicas: 6, par: 100, reasonHas: "within the stabilization window"},
		{name: "covered without the headroom: stay", state: measured(),
			// 2 pods of 1,000/s, 1,900/s produced: 2,185/s with headroom, but 2,000 covers it.
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 1000, 1, 1900, 1900), replicas: 2, parallelism: 100, settled: true},
			replicas: 2, par: 100},
		{name: "step bound on the way up", bounds: func(b *scaleBounds) { fixedParallelism(b); b.up.step = 2 }, state: measured(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 60000, 40, 3000, 2000), replicas: 2, parallelism: 100, settled: true},
			replicas: 4, par: 100, changeTime: true},
		{name: "scale to zero: nothing produced, nothing to consume", bounds: func(b *scaleBounds) { b.minReplicas = 0 },
			state:    watchedDown(t0),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 0, 0, 0, 0), replicas: 1, parallelism: 100, settled: true},
			replicas: 0, par: 100, reasonHas: "nothing produced", changeTime: true},
		{name: "at zero: stay below the activation lag", bounds: func(b *scaleBounds) { b.minReplicas, b.activationRecords = 0, 500 }, state: measured(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 400, 3, 10, 0), replicas: 0, parallelism: 100, settled: true},
			replicas: 0, par: 100, reasonHas: "at or below 500"},
		{name: "at zero: wake above the activation lag", bounds: func(b *scaleBounds) { b.minReplicas, b.activationRecords = 0, 500 }, state: measured(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 600, 3, 10, 0), replicas: 0, parallelism: 100, settled: true},
			replicas: 1, par: 100, changeTime: true},
		{name: "capacity not measured: in proportion to the lag",
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 30000, 10, 3000, 1000), replicas: 2, parallelism: 100, settled: true},
			replicas: 6, par: 100, reasonHas: "3.0× the target, pod capacity not measured yet", changeTime: true},
		{name: "capacity not measured, every pod there can be: parallelism in proportion, at most doubled",
			bounds:   func(b *scaleBounds) { b.maxReplicas = 2 },
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 30000, 10, 3000, 1000), replicas: 2, parallelism: 100, settled: true},
			replicas: 2, par: 200, reasonHas: "2 pods at parallelism 200", changeTime: true},
		// The README's example, both steps.
		{name: "README example: behind after a step", state: readmeState(),
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 60000, 8, 7500, 3000), replicas: 3, parallelism: 100, settled: true},
			replicas: 12, par: 100, reasonHas: "10k/s needed, 12 pods do 12k/s at parallelism 100", changeTime: true},
		{name: "README example: caught up, no smaller group keeps 15% to spare", state: readmeState(),
			// 6 pods at parallelism 150 (the most trusted after measuring 100) do 9k/s, less
			// than 8.6k/s with 15% to spare (9.9k/s): the 12 stay.
			in:       scaleInput{now: t0, known: true, lag: snapshot(1000, 12, 0, 0, 7500, 7500), replicas: 12, parallelism: 100, settled: true},
			replicas: 12, par: 100, reasonHas: "8.6k/s needed, 12 pods do 12k/s at parallelism 100"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := policyBounds()
			if tc.bounds != nil {
				tc.bounds(&b)
			}
			got, st := decideScale(b, tc.state, tc.in)
			if got.replicas != tc.replicas || got.parallelism != tc.par {
				t.Errorf("got %d × %d (%s), want %d × %d", got.replicas, got.parallelism, got.reason, tc.replicas, tc.par)
			}
			if !strings.Contains(got.reason, tc.reasonHas) {
				t.Errorf("reason %q lacks %q", got.reason, tc.reasonHas)
			}
			if changed := st.lastChange.Equal(tc.in.now); changed != tc.changeTime {
				t.Errorf("lastChange %v, want a change now: %t", st.lastChange, tc.changeTime)
			}
		})
	}
}

// TestDecideScaleDoesNotFlap feeds a lag that swings around the target every poll: the
// size must change at most once up and never back down within the window.
func TestDecideScaleDoesNotFlap(t *testing.T) {
	b := policyBounds()
	st := measured()
	replicas, par := int32(3), int32(100)
	changes := 0
	for i := range 30 {
		at := 1000 + 10*i
		// 2,400/s produced on 3 pods of 1,000/s; the lag alternates between far over and
		// far under the 15,000-record target.
		records := int64(2000)
		if i%2 == 0 {
			records = 40000
		}
		d, next := decideScale(b, st, scaleInput{now: time.Unix(int64(at), 0), known: true,
			lag: snapshot(at, 12, records, 5, 2400, 2400), replicas: replicas, parallelism: par, settled: true})
		st = next
		if d.replicas != replicas || d.parallelism != par {
			t.Logf("t=%d: %s", at, d.reason)
			changes++
			replicas, par = d.replicas, d.parallelism
		}
	}
	if changes > 1 {
		t.Errorf("%d changes in 5 minutes of a lag swinging around the target; want at most 1", changes)
	}
}

func TestCapacityModelLearnsTheCeiling(t *testing.T) {
	var c capacityModel
	c = c.learn(100, 1000) // 10/s per unit
	if got := c.podRate(200); got != 1500 {
		// Not measured beyond 100: trusted up to 1.5× that.
		t.Errorf("podRate(200) before measuring it = %v, want 1500", got)
	}
	c = c.learn(150, 1100) // raised by half, gained a tenth: the pod is at its limit
	if c.ceiling != 1100 || c.podRate(400) != 1100 {
		t.Errorf("ceiling %v, podRate(400) %v; want 1100", c.ceiling, c.podRate(400))
	}
	if got := c.groupRate(5, 150, topicShape{partitions: 12}); got != 4*1100 {
		t.Errorf("5 pods on 12 partitions do %v, want what 4 do (%v)", got, 4*1100)
	}
}

// TestBusiestShare: the busiest pod's share of the production is the heaviest pod's as
// kafka-go's own range and round-robin balancers deal the partitions out (and Kafka's
// range assignor, by hand), wherever the hot partitions are.
func TestBusiestShare(t *testing.T) {
	cases := []struct {
		name     string
		shares   []float64 // a partition's share of the production
		replicas int32
	}{
		{"even, 12 partitions on 5 pods", evenShares(12), 5},
		{"even, 24 partitions on 24 pods", evenShares(24), 24},
		{"a fifth on one of 24 partitions, 6 pods", hotShares(24, 0.2), 6},
		{"a fifth on one of 24 partitions, 7 pods", hotShares(24, 0.2), 7},
		{"a fifth on one of 24 partitions, 24 pods", hotShares(24, 0.2), 24},
		{"a third on one of 12 partitions, 1 pod", hotShares(12, 1.0/3), 1},
		{"a third on one of 12 partitions, 5 pods", hotShares(12, 1.0/3), 5},
		{"a third on one of 12 partitions, more pods than partitions", hotShares(12, 1.0/3), 20},
		{"a fifth on the seventh of 24 partitions, 7 pods", moved(hotShares(24, 0.2), 6), 7},
		{"a fifth on the last of 24 partitions, 5 pods", moved(hotShares(24, 0.2), 23), 5},
		{"a tenth on each of 0, 8 and 16 of 24 partitions, 8 pods", hotAt(24, 0.1, 0, 8, 16), 8},
		{"15% on each of 0 and 1 of 24 partitions, 12 pods", hotAt(24, 0.15, 0, 1), 12},
		{"15% on each of 6 and 9 of 24 partitions, 7 pods: only kafka-go's range puts them together", hotAt(24, 0.15, 6, 9), 7},
		{"a quarter on each of 0 and 1 of 100 partitions, 60 pods: kafka-go's range parts them", hotAt(100, 0.25, 0, 1), 60},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := topicShape{partitions: int32(len(tc.shares)), shares: tc.shares}.busiestShare(tc.replicas)
			n, k := len(tc.shares), min(int(tc.replicas), len(tc.shares))
			members, partitions := kafkaGroup(n, k)
			heaviest := func(assignments kafka.GroupMemberAssignments) float64 {
				busiest := 0.0
				for _, topics := range assignments {
					load := 0.0
					for _, id := range topics["spans"] {
						load += tc.shares[id]
					}
					busiest = max(busiest, load)
				}
				return busiest
			}
			want := 0.0
			for _, b := range []kafka.GroupBalancer{kafka.RangeGroupBalancer{}, kafka.RoundRobinGroupBalancer{}} {
				want = max(want, heaviest(b.AssignGroups(members, partitions)))
			}
			if math.Abs(got-want) > 1e-9 {
				t.Errorf("busiest share %.4f, the assignors' heaviest pod %.4f", got, want)
			}
		})
	}
}

// hotAt puts hot of the production on each of the partitions at, the rest evenly.
func hotAt(n int, hot float64, at ...int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = (1 - hot*float64(len(at))) / float64(n-len(at))
	}
	for _, i := range at {
		s[i] = hot
	}
	return s
}

func evenShares(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = 1 / float64(n)
	}
	return s
}

// moved moves the first partition's share to partition i.
func moved(shares []float64, i int) []float64 {
	shares[0], shares[i] = shares[i], shares[0]
	return shares
}

// hotShares puts hot of the production on the first of n partitions, the rest evenly.
// ceilingAt is n partitions' ceilings with partition id's at rate.
func ceilingAt(n, id int, rate float64) []partitionCeiling {
	c := make([]partitionCeiling, n)
	c[id] = partitionCeiling{rate: rate, seen: rate, polls: ceilingPolls}
	return c
}

// flowsOf is n partitions' flows: partition 0's first, every other one's rest.
func flowsOf(n int, first, rest partitionFlow) []partitionFlow {
	f := make([]partitionFlow, n)
	for i := range f {
		f[i] = rest
	}
	f[0] = first
	return f
}

// kafkaGroup is k members of a group ("member-000" on, in the order of their IDs) on a
// topic "spans" of n partitions, for kafka-go's balancers.
func kafkaGroup(n, k int) ([]kafka.GroupMember, []kafka.Partition) {
	var members []kafka.GroupMember
	var partitions []kafka.Partition
	for m := range k {
		members = append(members, kafka.GroupMember{ID: fmt.Sprintf("member-%03d", m), Topics: []string{"spans"}})
	}
	for i := range n {
		partitions = append(partitions, kafka.Partition{Topic: "spans", ID: i})
	}
	return members, partitions
}

func hotShares(n int, hot float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = (1 - hot) / float64(n-1)
	}
	s[0] = hot
	return s
}

// TestIdlePodsDoNotShrinkTheCapacity: after a spike, twelve nearly idle pods report
// shares under what is measurable; what they say is a lower bound, and it must not pull
// down what the pods were measured to do under load (one pod would look too small to
// carry the load, and the group would come down in two steps instead of one).
func TestIdlePodsDoNotShrinkTheCapacity(t *testing.T) {
	report := func(busy, cpu, rate float64) podLoad {
		return podLoad{Report: loadreport.Report{Parallelism: 100, Busy: busy, CPU: cpu, Rate: rate}}
	}
	loaded, ok := fromReports([]podLoad{report(0.5, 0.4, 1000)}) // 20/s a slot, at most 2,250/s
	if !ok || loaded.perWorkerAtLeast || loaded.ceilingAtLeast {
		t.Fatalf("a busy pod's report: %+v", loaded)
	}
	var idle []podLoad
	for range 12 {
		idle = append(idle, report(0.01, 0.02, 20))
	}
	quiet, _ := fromReports(idle)
	if !quiet.perWorkerAtLeast || !quiet.ceilingAtLeast || quiet.perWorker >= loaded.perWorker {
		t.Fatalf("idle pods' report: %+v", quiet)
	}
	if got := loaded.blend(quiet); got.perWorker != loaded.perWorker || got.ceiling != loaded.ceiling {
		t.Errorf("after idle reports: %v/s a slot, ceiling %v; want %v and %v", got.perWorker, got.ceiling, loaded.perWorker, loaded.ceiling)
	}
	// A measured figure, lower, still counts (half of it: one report does not swing it).
	slower, _ := fromReports([]podLoad{report(0.5, 0.4, 500)})
	if got := loaded.blend(slower); got.perWorker != 15 {
		t.Errorf("after a slower measured report: %v/s a slot, want 15", got.perWorker)
	}
}

// TestPodsGoInOneStep: after a spike, an older recommendation of 2 pods keeps the
// stabilized size above the latest (1 pod) for a few more seconds, well within the
// cooldown a first step to 2 would start: the 12 pods wait for it and go to 1 at once, one
// rebalance instead of two.
func TestPodsGoInOneStep(t *testing.T) {
	t0 := time.Unix(10_000, 0)
	b := policyBounds()
	st := readmeState()
	st.recommendations = []scaleRecommendation{{at: t0.Add(-115 * time.Second), replicas: 2, parallelism: 100}}
	in := scaleInput{now: t0, known: true, lag: snapshot(10_000, 12, 0, 0, 500, 500), replicas: 12, parallelism: 100, settled: true}
	d, st := decideScale(b, st, in)
	if d.replicas != 12 || !strings.Contains(d.reason, "1 pods may go at") {
		t.Fatalf("first poll: %d pods (%s); want the 12 held for the one step", d.replicas, d.reason)
	}
	in.now, in.lag.at = t0.Add(10*time.Second), t0.Add(10*time.Second)
	if d, _ = decideScale(b, st, in); d.replicas != 1 {
		t.Fatalf("once the older recommendation left the window: %d pods (%s); want 1", d.replicas, d.reason)
	}
}

// TestSmallStepsDownWaitWhileTheLoadFalls: the load falling, the stabilized size would take
// 8 pods to 7 and the latest recommendation is 3 already: one pod now and more soon would be
// two rebalances, the first for little; the 8 wait. At a steady load, 7 pods going to 6 (the
// window agreeing) is a step worth taking.
func TestSmallStepsDownWaitWhileTheLoadFalls(t *testing.T) {
	t0 := time.Unix(10_000, 0)
	b := policyBounds()
	fixedParallelism(&b)
	st := watchedDown(t0)
	st.recommendations = []scaleRecommendation{{at: t0.Add(-30 * time.Second), replicas: 7, parallelism: 100}}
	falling := scaleInput{now: t0, known: true, lag: snapshot(10_000, 12, 0, 0, 2000, 2000), replicas: 8, parallelism: 100, settled: true}
	if d, _ := decideScale(b, st, falling); d.replicas != 8 || !strings.Contains(d.reason, "the load still falling (3 pods called for now)") {
		t.Errorf("falling: %d pods (%s); want the 8 held", d.replicas, d.reason)
	}
	st.recommendations = []scaleRecommendation{{at: t0.Add(-30 * time.Second), replicas: 6, parallelism: 100}}
	// 3,500/s: 4,025/s with headroom, 4,629/s with the down margin: 6 pods of 1,000/s (4 do
	// 4,000/s, 3 partitions on the busiest).
	steady := scaleInput{now: t0, known: true, lag: snapshot(10_000, 12, 0, 0, 3500, 3500), replicas: 7, parallelism: 100, settled: true}
	if d, _ := decideScale(b, st, steady); d.replicas != 6 {
		t.Errorf("steady: %d pods (%s); want 6", d.replicas, d.reason)
	}
	// A step the user bounded (scaleDown.maxReplicaStep 1) is taken, however small: held,
	// 10 pods would never go down while the latest recommendation stays lower.
	stepped := b
	stepped.down.step = 1
	st = watchedDown(t0)
	bounded := scaleInput{now: t0, known: true, lag: snapshot(10_000, 12, 0, 0, 1000, 1000), replicas: 10, parallelism: 100, settled: true}
	if d, _ := decideScale(stepped, st, bounded); d.replicas != 9 {
		t.Errorf("down by at most 1 a period: %d pods (%s); want 9", d.replicas, d.reason)
	}
	// Nor is a group above a lowered maxReplicas held there.
	lowered := b
	lowered.maxReplicas, lowered.cooldown = 8, 0
	st = watchedDown(t0)
	st.recommendations = []scaleRecommendation{{at: t0.Add(-30 * time.Second), replicas: 8, parallelism: 100}}
	if d, _ := decideScale(lowered, st, bounded); d.replicas != 8 {
		t.Errorf("maxReplicas lowered to 8 under 10 pods: %d pods (%s); want 8", d.replicas, d.reason)
	}
	// Nor held for the one step instead of two, within the cooldown.
	lowered.cooldown = time.Minute
	st.recommendations = []scaleRecommendation{{at: t0.Add(-100 * time.Second), replicas: 8, parallelism: 100}}
	if d, _ := decideScale(lowered, st, bounded); d.replicas != 8 {
		t.Errorf("maxReplicas lowered to 8 under 10 pods, an older recommendation of 8: %d pods (%s); want 8", d.replicas, d.reason)
	}
}

func TestBoundsOfDefaults(t *testing.T) {
	b := boundsOf(nil, 8)
	if b.minReplicas != 1 || b.maxReplicas != 0 || b.minParallelism != 8 || b.maxParallelism != 8 || b.cooldown != defaultCooldown ||
		b.down.window != defaultScaleDownWindow || b.up.window != 0 {
		t.Errorf("defaults: %+v", b)
	}
}

// readmeState knows pods do 10 records/s per unit of parallelism, measured up to 100, and
// has watched more than a stabilization window.
func readmeState() scaleState {
	return scaleState{capacity: capacityModel{perWorker: 10, measuredParallelism: 100, highest: 100}, firstSample: time.Unix(0, 0)}
}

// TestCapacityOutlivesTheOperator: what the pods were measured to do goes into the status
// and, after a restart (an Autoscaler with no memory), back into the policy.
func TestCapacityOutlivesTheOperator(t *testing.T) {
	var c capacityModel
	c = c.learn(100, 1000)
	c = c.learn(150, 1100) // the ceiling
	back := capacityFromStatus(c.status())
	for _, p := range []int32{50, 100, 149, 150, 400} {
		if got, want := back.podRate(p), c.podRate(p); got != want {
			t.Errorf("podRate(%d) after the status: %v, before %v", p, got, want)
		}
	}
	if capacityFromStatus(nil).known() || (capacityModel{}).status() != nil {
		t.Error("nothing measured is not a measurement")
	}

	ing := testIngester("ns", "restarted")
	ing.Spec.Autoscaling = &spanflowv1alpha1.AutoscalingSpec{Enabled: true, TargetLagRecords: ptr.To[int64](5000)}
	ing.Status.Autoscaling = &spanflowv1alpha1.AutoscalingStatus{PodCapacity: c.status()}
	lag := Observation{have: true, snapshot: snapshot(1000, 12, 60000, 40, 3000, 2000)}
	d := NewAutoscaler(prometheus.NewRegistry()).Decide(ing, Input{Now: time.Unix(1000, 0), Lag: lag, SpecReplicas: 1, SpecParallelism: 100})
	capacity := d.PodCapacity
	// 10 records/s per unit of parallelism, measured last at 150; at most 1,100/s a pod.
	want := spanflowv1alpha1.PodCapacity{Parallelism: 150, RecordsPerSecond: 1500, HighestParallelism: 150,
		CeilingRecordsPerSecond: 1100, CeilingParallelism: 150}
	if strings.Contains(d.Reason, "not measured") || capacity == nil || *capacity != want {
		t.Errorf("a restarted operator forgot the pods' capacity: %s, %+v", d.Reason, capacity)
	}
}

// reporting is a snapshot whose partitions' pods sent load reports: n pods at parallelism
// p, each finishing rate records per second with busy of its slots and cpu of its CPU in
// use, the lag spread over the pods as given.
func reporting(snap lagSnapshot, n int, p int32, rate, busy, cpu float64, lags ...int64) lagSnapshot {
	for i := range n {
		pl := podLoad{Report: loadreport.Report{Pod: fmt.Sprintf("pod-%d", i), At: snap.at, Parallelism: p, Busy: busy, CPU: cpu, Rate: rate,
			Pause: 4 * time.Second}}
		for id := i; id < snap.partitions; id += n {
			pl.ids = append(pl.ids, id)
		}
		if i < len(lags) {
			pl.lag = lags[i]
		}
		snap.pods = append(snap.pods, pl)
	}
	return snap
}

// TestRanThroughout: a report whose average of slots is not its parallelism was measured
// partly at another; within 2% (and the report's rounding) it was not.
func TestRanThroughout(t *testing.T) {
	for _, tc := range []struct {
		p     int32
		slots float64
		want  bool
	}{
		{2, 2, true}, {2, 1.5, false}, {1, 1.5, false}, {200, 198, true}, {200, 190, false},
		{5, 5.04, true}, {8, 0, true}, // 0: not said (an older ingester), taken as the parallelism
	} {
		pods := []podLoad{{Report: loadreport.Report{Parallelism: tc.p, Slots: tc.slots}}}
		if got := ranThroughout(pods); got != tc.want {
			t.Errorf("p=%d slots=%v: ran throughout %t, want %t", tc.p, tc.slots, got, tc.want)
		}
	}
}

// TestNoCapacityFromARateAcrossAParallelismChange: pods busy throughout a poll that
// consumed less than their reports imply lower the capacity — unless their parallelism
// changed within their reports' interval or the poll's (the rate was measured partly at
// the old one): 3 pods raised from 100 to 200 a second before the poll, 10/s a slot,
// consumed 1,010/s each. Taken as a pod at 200 doing 1,010/s, a slot would do 5/s.
func TestNoCapacityFromARateAcrossAParallelismChange(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name   string
		slots  float64
		seenAt time.Time // when the reports first showed parallelism 200
		lowers bool
	}{
		{"raised within the reports' interval", 110, t0, false},
		{"raised within the poll, before the reports' interval", 200, t0, false},
		{"raised a tenth into the reports' interval", 190, t0.Add(-time.Minute), false},
		{"at 200 throughout", 200, t0.Add(-time.Minute), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := scaleState{capacity: capacityModel{perWorker: 10, measuredParallelism: 100, highest: 200},
				firstSample: t0.Add(-5 * time.Minute), settledAt: t0.Add(-time.Minute), lastSample: t0.Add(-10 * time.Second),
				parallelismAt: t0.Add(-2 * time.Minute), parallelismSeenAt: tc.seenAt}
			lag := reporting(snapshot(1000, 12, 90000, 20, 4000, 3030), 3, 200, 1010*tc.slots/110, 1, 0.5)
			for i := range lag.pods {
				lag.pods[i].Slots = tc.slots
			}
			lag.lastPoll = pollInterval{since: t0.Add(-10 * time.Second), produceRate: 4000, consumeRate: 3030, leastBacklog: 5000}
			_, got := decideScale(policyBounds(), st, scaleInput{now: t0, known: true, lag: lag, replicas: 3, parallelism: 200, settled: true})
			if lowered := got.capacity.perWorker < 8; lowered != tc.lowers {
				t.Errorf("a slot does %.1f/s after the poll (lowered: %t, want %t)", got.capacity.perWorker, lowered, tc.lowers)
			}
		})
	}
}

// TestDecideScaleFromLoadReports: the pods' own reports size the group, stop it from
// growing into a storage outage or a lag more consumers cannot help, and pace changes of
// parallelism.
func TestDecideScaleFromLoadReports(t *testing.T) {
	t0 := time.Unix(1000, 0)
	watched := func() scaleState {
		return scaleState{firstSample: t0.Add(-5 * time.Minute), settledAt: t0.Add(-time.Minute)}
	}
	// seen is watched, with the pods seen running their parallelism for a minute.
	seen := func() scaleState { s := watched(); s.parallelismSeenAt = t0.Add(-time.Minute); return s }
	// hotGroup is 3 pods at parallelism 100 on 12 partitions, behind the seconds target
	// (40 s) with little backlog: pod-0 finishes rate records a second with busy of its
	// slots and cpu of its CPU and holds hotLag of the 8,000 records, the others 475/s
	// with half their slots (10/s a slot) and 500 records each.
	hotGroup := func(rate, busy, cpu float64, hotLag int64) scaleInput {
		lag := reporting(snapshot(1000, 12, 8000, 40, 2000, 1900), 3, 100, 475, 0.475, 0.2, hotLag, 500, 500)
		lag.pods[0].Rate, lag.pods[0].Busy, lag.pods[0].CPU = rate, busy, cpu
		return scaleInput{now: t0, known: true, lag: lag, replicas: 3, parallelism: 100, settled: true}
	}
	cases := []struct {
		name      string
		state     scaleState
		in        scaleInput
		replicas  int32
		par       int32
		reasonHas string
	}{
		{name: "capacity from the reports, not from saturation: keeping up and half busy, fewer pods",
			// 4 pods at parallelism 100 each finish 500/s with half their slots busy: 10/s a
			// slot. 2,000/s with headroom and margin is 2,645/s: 2 pods at parallelism 133.
			state: watched(),
			in: scaleInput{now: t0, known: true, lag: reporting(snapshot(1000, 12, 300, 0, 2000, 2000), 4, 100, 500, 0.5, 0.2),
				replicas: 4, parallelism: 100, settled: true},
			replicas: 4, par: 133, reasonHas: "fewer pods to come"},
		{name: "the CPU is the ceiling: pods, not parallelism",
			// 10/s a slot, but at 90% of its CPU a pod does at most 1,000/s: parallelism
			// beyond 100 cannot help, pods can.
			state: watched(),
			in: scaleInput{now: t0, known: true, lag: reporting(snapshot(1000, 12, 60000, 40, 3000, 2000), 2, 100, 1000, 1, 0.9),
				replicas: 2, parallelism: 100, settled: true},
			replicas: 6, par: 100, reasonHas: "scaling up from 2 × 100 to 6 × 100"},
		{name: "storage failing: nothing added",
			state: watched(),
			in: scaleInput{now: t0, known: true, lag: func() lagSnapshot {
				s := reporting(snapshot(1000, 12, 60000, 40, 3000, 0), 2, 100, 0, 0, 0.01)
				s.pods[1].Blocked = true
				return s
			}(), replicas: 2, parallelism: 100, settled: true},
			replicas: 2, par: 100, reasonHas: "blocked downstream"},
		{name: "the pods holding the lag are not busy: more would not help",
			// One pod holds the lag (a hot partition) with a tenth of its slots busy.
			state: scaleState{capacity: capacityModel{perWorker: 10, measuredParallelism: 100, highest: 100}, firstSample: t0.Add(-5 * time.Minute),
				settledAt: t0.Add(-time.Minute)},
			in: scaleInput{now: t0, known: true, lag: reporting(snapshot(1000, 12, 60000, 40, 3000, 2900), 3, 100, 960, 0.1, 0.1, 59000, 500, 500),
				replicas: 3, parallelism: 100, settled: true},
			replicas: 3, par: 100, reasonHas: "the pods holding the lag are not busy (pod-0: 10% of its slots, 10% CPU)"},
		{name: "the pod holding the lag has its slots full and CPU to spare: more parallelism",
			// A hot partition: pod-0 holds most of the lag with 95% of its slots busy, the
			// others half; the even share the model gives each partition says the three
			// drain it, but only more parallelism speeds pod-0 up.
			state: seen(), in: hotGroup(950, 0.95, 0.4, 7000),
			replicas: 3, par: 125, reasonHas: "pod-0 (95% of its slots, 40% CPU) holds most of the lag with its slots full and CPU to spare"},
		{name: "the pod holding the lag has too little CPU for a quarter more: no raise",
			state: seen(), in: hotGroup(950, 0.95, 0.75, 7000), replicas: 3, par: 100},
		{name: "the pod holding the lag does not know its CPU: no raise",
			state: seen(), in: hotGroup(950, 0.95, -1, 7000), replicas: 3, par: 100},
		{name: "the pod with full slots holds less than half of the lag: no raise",
			state: seen(), in: hotGroup(950, 0.95, 0.4, 3000), replicas: 3, par: 100},
		{name: "the full slots do less than slots do (the pod waits for bytes): no raise",
			state: seen(), in: hotGroup(400, 0.95, 0.4, 7000), replicas: 3, par: 100},
		{name: "the reports do not yet show the parallelism wholly: no raise",
			state: watched(), in: hotGroup(950, 0.95, 0.4, 7000), replicas: 3, par: 100},
		{name: "a new parallelism waits for the pods to run the last one",
			state: func() scaleState { s := watched(); s.parallelismAt = t0.Add(-20 * time.Second); return s }(),
			in: scaleInput{now: t0, known: true, lag: reporting(snapshot(1000, 12, 60000, 40, 3000, 2000), 2, 100, 1000, 1, 0.3),
				replicas: 2, parallelism: 150, settled: true},
			replicas: 2, par: 150, reasonHas: "waiting for the pods to run parallelism 150"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := decideScale(policyBounds(), tc.state, tc.in)
			if got.replicas != tc.replicas || got.parallelism != tc.par {
				t.Errorf("got %d × %d (%s), want %d × %d", got.replicas, got.parallelism, got.reason, tc.replicas, tc.par)
			}
			if !strings.Contains(got.reason, tc.reasonHas) {
				t.Errorf("reason %q lacks %q", got.reason, tc.reasonHas)
			}
		})
	}
}

// TestUnmeasuredLagInFlightDoesNotFlap: without capacity figures, a steady lag in flight
// to storage (it does not shrink with more pods) just under the records target of n pods
// keeps n pods: one fewer would be over half its target.
func TestUnmeasuredLagInFlightDoesNotFlap(t *testing.T) {
	b := policyBounds()
	b.targetSeconds = 0
	var st scaleState
	replicas := int32(8)
	for i := range 60 {
		at := 1000 + 10*i
		// 36k records in flight: 0.9 of 8 pods' 40k, 1.03 of 7 pods' 35k.
		d, next := decideScale(b, st, scaleInput{now: time.Unix(int64(at), 0), known: true,
			lag: snapshot(at, 24, 36000, 3, 12000, 12000), replicas: replicas, parallelism: 100, settled: true})
		st = next
		if d.replicas != replicas {
			t.Fatalf("t=%d: %d pods to %d: %s", at, replicas, d.replicas, d.reason)
		}
	}
}

// TestNoLessParallelismWhileSlotsAreFull: a hot partition's pod at 95% of its slots keeps
// the parallelism, though the even share of the production the model gives each partition
// says a half would do for all three pods — the pod would fall behind, and the raise for
// full slots would undo the cut.
func TestNoLessParallelismWhileSlotsAreFull(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := policyBounds()
	b.minReplicas = 3
	st := scaleState{firstSample: t0.Add(-5 * time.Minute), settledAt: t0.Add(-time.Minute), parallelismSeenAt: t0.Add(-time.Minute)}
	// 10 records/s a slot everywhere: pod-0 does 3,800/s at 95% of 400 slots, the others
	// 100/s each.
	lag := reporting(snapshot(1000, 12, 1000, 1, 4000, 4000), 3, 400, 100, 0.025, 0.05, 900, 50, 50)
	lag.pods[0].Rate, lag.pods[0].Busy, lag.pods[0].CPU = 3800, 0.95, 0.5
	got, _ := decideScale(b, st, scaleInput{now: t0, known: true, lag: lag, replicas: 3, parallelism: 400, settled: true})
	if got.replicas != 3 || got.parallelism != 400 {
		t.Errorf("got %d × %d (%s), want 3 × 400", got.replicas, got.parallelism, got.reason)
	}
}

// TestNoParallelismCutSizedForPodsThatDoNotCome: a recommendation of more pods at less
// parallelism each, whose pods a guard holds back (here: maxReplicaStep, one pod a
// period, taken already), must not bring its lower parallelism to the pods that stay:
// they would do less while more is needed.
func TestNoParallelismCutSizedForPodsThatDoNotCome(t *testing.T) {
	t0 := time.Unix(1000, 0)
	st := watchedDown(t0)
	st.lastUp, st.lastChange, st.settledAt = t0.Add(-10*time.Second), t0.Add(-10*time.Second), t0.Add(-5*time.Second)
	st.changes = []scaleChange{{at: st.lastUp, delta: 1}}
	b := policyBounds()
	b.up.step = 1
	// 4 pods × 400 slots do 16,000/s; a burst of 20,000/s is on: 12 pods at about 210
	// would do, but none may come yet.
	lag := snapshot(1000, 12, 89000, 40, 20000, 16000)
	got, _ := decideScale(b, st, scaleInput{now: t0, known: true, lag: lag, replicas: 4, parallelism: 400, settled: true})
	if got.replicas != 4 || got.parallelism != 400 {
		t.Errorf("got %d × %d (%s), want 4 × 400", got.replicas, got.parallelism, got.reason)
	}
}

// TestABacklogOnAFewPartitionsIsDrained: 4 pods at parallelism 100 (10/s a slot) on 12
// partitions receiving 250/s each; the three of one pod hold 20k records each, 80 s old
// against a seconds target of 30 s. Held against what the whole topic receives in 30 s
// (90k, half of it kept), 60k records were hardly a backlog: 3,950/s needed, and 4 pods
// doing 4,000/s looked enough while the lag stayed three times over its target. Each of
// those partitions receives 7.5k in 30 s: most of their 60k is to drain, and the
// parallelism rises.
func TestABacklogOnAFewPartitionsIsDrained(t *testing.T) {
	b := policyBounds()
	b.targetRecords = 0
	t0 := time.Unix(1000, 0)
	lag := snapshot(1000, 12, 60000, 80, 3000, 3000)
	lag.rateSince = t0.Add(-time.Minute)
	for id := range 12 {
		f := partitionFlow{produceRate: 250, consumeRate: 250}
		if id%4 == 0 {
			f.records, f.seconds, f.leastBacklog = 20000, 80, 19000
		}
		lag.flows = append(lag.flows, f)
	}
	st := watchedDown(t0)
	d, _ := decideScale(b, st, scaleInput{now: t0, known: true, lag: lag, replicas: 4, parallelism: 100, settled: true})
	if d.replicas < 4 || d.parallelism <= 100 {
		t.Errorf("got %d × %d (%s), want more than 4 × 100", d.replicas, d.parallelism, d.reason)
	}
	// Spread over every partition alike, the same 60k is what the aggregate said.
	for id := range lag.flows {
		lag.flows[id].records = 5000
	}
	if got, want := backlogAboveTargets(b, lag, 4), 60000-30*3000/2.0; got != want {
		t.Errorf("an even backlog: %.0f above the targets, want %.0f", got, want)
	}
}

// TestProductionThatGrewIsFollowedBeforeTheTarget: 4 pods at parallelism 100 (4,000/s)
// under their targets, 10k records 5 s old; over the window production averaged
// 3,000/s, but over the last poll interval 7,500/s came and 3,000/s were consumed — a
// step. Sized for the window's average, 4 pods looked enough (3,450/s needed) until the
// lag was over its target, and the group then grew a step at a poll; the latest
// production is followed as soon as the lag grows by more than the headroom.
func TestProductionThatGrewIsFollowedBeforeTheTarget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	lag := snapshot(1000, 12, 10000, 5, 3000, 3000)
	lag.lastPoll = pollInterval{since: t0.Add(-10 * time.Second), produceRate: 7500, consumeRate: 3000}
	d, _ := decideScale(policyBounds(), watchedDown(t0), scaleInput{now: t0, known: true, lag: lag, replicas: 4, parallelism: 100, settled: true})
	if d.replicas*d.parallelism < 4*225 || !strings.Contains(d.reason, "8.6k/s needed") {
		t.Errorf("got %d × %d (%s), want room for 7,500/s with the headroom", d.replicas, d.parallelism, d.reason)
	}
	// Production that fell, or grew no faster than the pods consume: the window's rate.
	lag.lastPoll.consumeRate = 7000
	if d, _ := decideScale(policyBounds(), watchedDown(t0), scaleInput{now: t0, known: true, lag: lag, replicas: 4, parallelism: 100, settled: true}); !strings.Contains(d.reason, "3.4k/s needed") {
		t.Errorf("consumed nearly as fast as produced: got %d × %d (%s), want 3,450/s needed", d.replicas, d.parallelism, d.reason)
	}
}

// TestParallelismComesDownOnce: after a burst, 1 pod at parallelism 382; the burst's
// recommendations leave the down window one poll after another (190 until 5 s from now),
// while the latest calls for 100. Cut at each poll as the window's highest falls, the
// parallelism came down in steps (382 → 190 → 117 → 45 after every burst, in a world of
// the sweep); it waits the 5 s and comes down once.
func TestParallelismComesDownOnce(t *testing.T) {
	t0 := time.Unix(10_000, 0)
	st := watchedDown(t0)
	st.recommendations = []scaleRecommendation{{at: t0.Add(-115 * time.Second), replicas: 1, parallelism: 190}}
	poll := func(at time.Time) scaleInput {
		return scaleInput{now: at, known: true, lag: snapshot(int(at.Unix()), 12, 0, 0, 500, 500), replicas: 1, parallelism: 382, settled: true}
	}
	d, st := decideScale(policyBounds(), st, poll(t0))
	if d.parallelism != 382 || !strings.Contains(d.reason, "in one step instead of several") {
		t.Fatalf("got %d × %d (%s), want 1 × 382 waiting for the burst's recommendations to leave", d.replicas, d.parallelism, d.reason)
	}
	if d, _ = decideScale(policyBounds(), st, poll(t0.Add(10*time.Second))); d.parallelism != 100 {
		t.Errorf("got %d × %d (%s), want 1 × 100 in one step", d.replicas, d.parallelism, d.reason)
	}
}

// TestOnlyAPropagationWatchedIsLearnt: the time a new parallelism takes to reach the pods
// is learnt from waits watched through, no longer than any propagation takes. A change
// shown only when reports came back hours later (the group at zero, pods crash-looping),
// or after polls without reports, says nothing of it: learnt, every later raise was
// expected to take hours, and pods were added for it.
func TestOnlyAPropagationWatchedIsLearnt(t *testing.T) {
	t0 := time.Unix(100000, 0)
	shown := func(st scaleState, at time.Time) scaleState {
		st.settledAt, st.lastSample = at.Add(-time.Minute), at.Add(-10*time.Second)
		lag := reporting(snapshot(int(at.Unix()), 12, 1000, 1, 1000, 1000), 3, 200, 333, 0.2, 0.2)
		_, st = decideScale(policyBounds(), st, scaleInput{now: at, known: true, lag: lag, replicas: 3, parallelism: 200, settled: true})
		return st
	}
	asked := watchedDown(t0)
	asked.parallelismAt, asked.parallelismSeenAt = t0.Add(-3*time.Hour), t0.Add(-4*time.Hour)
	if st := shown(asked, t0); st.propagation != 0 {
		t.Errorf("learnt %v from a change shown 3 h after it was asked", st.propagation)
	}

	asked.parallelismAt = t0.Add(-4 * time.Minute)
	unreported := asked
	unreported.lastSample = t0.Add(-2 * time.Minute)
	noPods := snapshot(int(t0.Add(-time.Minute).Unix()), 12, 1000, 1, 1000, 0)
	_, unreported = decideScale(policyBounds(), unreported, scaleInput{now: t0.Add(-time.Minute), known: true, lag: noPods, replicas: 3, parallelism: 200})
	if st := shown(unreported, t0); st.propagation != 0 {
		t.Errorf("learnt %v from a wait with a poll of no reports", st.propagation)
	}
	if st := shown(asked, t0); st.propagation != 4*time.Minute {
		t.Errorf("learnt %v from a change watched until shown after 4 min", st.propagation)
	}
}

// TestNoPodsForAParallelismNotComing: a pod that shows no new parallelism long after it
// was asked for is not waiting for it; the running pods are not sized as if it were
// coming later still (the wait grew without bound, and with it the pods added).
func TestNoPodsForAParallelismNotComing(t *testing.T) {
	t0 := time.Unix(100000, 0)
	st := watchedDown(t0)
	st.parallelismAt, st.parallelismSeenAt = t0.Add(-time.Hour), t0.Add(-2*time.Hour)
	if wait := st.parallelismWait(t0); wait != 0 {
		t.Errorf("a raise asked an hour ago is expected in %.0f s", wait)
	}
	st.parallelismAt = t0.Add(-9 * time.Minute)
	if wait := st.parallelismWait(t0); wait > time.Minute.Seconds() {
		t.Errorf("a raise asked 9 minutes ago is expected in %.0f s, past the longest propagation", wait)
	}
}

// TestRecordsTargetOutOfReach: the records target gives way only to records in flight
// that no size within the bounds holds.
func TestRecordsTargetOutOfReach(t *testing.T) {
	b := policyBounds()
	b.targetRecords, b.targetSeconds = 100, 0 // in flight: 12 s old at most
	keepingUp := func(records, seconds int64, produce, consume float64) lagSnapshot {
		s := snapshot(1000, 24, records, seconds, produce, consume)
		s.lastPoll = pollInterval{since: time.Unix(990, 0), produceRate: produce, consumeRate: consume}
		return s
	}
	burst := keepingUp(6000, 2, 3000, 3000)
	burst.lastPoll.produceRate = 20000
	for _, tc := range []struct {
		name string
		lag  lagSnapshot
		maxR int32
		out  bool
	}{
		{"6,000 in flight, 12 pods allowed 1,200", keepingUp(6000, 2, 3000, 3000), 12, true},
		{"6,000 in flight, 24 pods allowed 2,400", keepingUp(6000, 2, 3000, 3000), 24, true},
		{"2,000 in flight, 24 pods allowed 2,400", keepingUp(2000, 2, 3000, 3000), 24, false},
		{"2,800 in flight, about what 24 pods are allowed", keepingUp(2800, 2, 3000, 3000), 24, false},
		{"a backlog 20 s old", keepingUp(6000, 20, 3000, 3000), 12, false},
		{"falling behind over the window", keepingUp(6000, 2, 3000, 2000), 12, false},
		{"a burst beginning", burst, 12, false},
		{"one poll only", snapshot(1000, 24, 6000, 2, 3000, 3000), 12, false},
	} {
		if note, out := recordsTargetOutOfReach(b, tc.lag, tc.maxR); out != tc.out {
			t.Errorf("%s: out of reach %v (%q), want %v", tc.name, out, note, tc.out)
		}
	}
	withSeconds := b
	withSeconds.targetSeconds = 120
	if _, out := recordsTargetOutOfReach(withSeconds, keepingUp(6000, 20, 3000, 3000), 12); !out {
		t.Errorf("20 s old under a 120 s target (in flight up to 24 s): not taken for in flight")
	}
}

// TestUnevenProductionShownByAPod: 4 pods at parallelism 100 (1,000/s each) on 12
// partitions receiving 3,200/s, partition 0 two and a half times what each other one
// does: not hot (under three times the others), so the model gives each pod a quarter,
// 800/s, and 4 pods look enough while the lag is over its target. But pod-0 holds
// partitions 0, 4 and 8, a third of the production (1,067/s): its slots are full and its
// lag never drains (13 pods held at a load they were sized for with 12,000/s, 1,100 s
// over target). A pod holding the lag with its slots full while its partitions receive
// more than the busiest pod was expected to shows the production uneven: the group is
// sized with the partitions' measured shares, until the window shows none stand out.
func TestUnevenProductionShownByAPod(t *testing.T) {
	b := policyBounds()
	fixedParallelism(&b)
	t0 := time.Unix(1000, 0)
	even := 3200 / 13.5
	shares := make([]float64, 12)
	for id := range shares {
		shares[id] = 1 / 13.5
	}
	shares[0] = 2.5 / 13.5
	lag := snapshot(1000, 12, 25000, 60, 3200, 3200)
	lag.rateSince = t0.Add(-time.Minute)
	lag.flows = flowsOf(12, partitionFlow{produceRate: 2.5 * even, consumeRate: 2.5*even - 67, records: 25000, seconds: 60, leastBacklog: 21000},
		partitionFlow{produceRate: even, consumeRate: even})
	lag.looseShares, lag.skewKnown = shares, true
	lag = reporting(lag, 4, 100, 733, 0.73, 0.45, 25000)
	lag.pods[0].Rate, lag.pods[0].Busy, lag.pods[0].CPU = 1000, 1, 0.6
	st := watchedDown(t0)
	st.settledAt = t0.Add(-5 * time.Minute)
	in := scaleInput{now: t0, known: true, lag: lag, replicas: 4, parallelism: 100, settled: true}

	strict := in
	strict.lag.looseShares = nil
	if d, _ := decideScale(b, st, strict); d.replicas != 4 {
		t.Fatalf("without the measured shares: %d pods (%s), want the 4 the model says keep up", d.replicas, d.reason)
	}
	d, next := decideScale(b, st, in)
	if d.replicas <= 4 || !next.uneven || !strings.Contains(d.reason, "the production is uneven") {
		t.Errorf("got %d × %d, uneven %v (%s), want more than 4 pods, sized with the measured shares", d.replicas, d.parallelism, next.uneven, d.reason)
	}
	// Below the target, the shares stay in use while the window shows partition 0 apart...
	later := in
	later.now, later.replicas = t0.Add(10*time.Second), d.replicas
	later.lag.at, later.lag.records, later.lag.seconds = later.now, 0, 0
	later.lag.pods = nil
	if _, st2 := decideScale(b, next, later); !st2.uneven {
		t.Errorf("the measured shares were dropped while partition 0 still stands out")
	}
	// ...and not once it shows none.
	later.lag.looseShares = nil
	if _, st2 := decideScale(b, next, later); st2.uneven {
		t.Errorf("the measured shares kept with an even production")
	}
}

// TestNeededBack: pods removed come back within the down window only for a load risen by
// half since they went, past what the pods that stayed do, with the lag over its target.
func TestNeededBack(t *testing.T) {
	t0 := time.Unix(1000, 0)
	st := watchedDown(t0) // a pod does 10/s a slot
	st.lastDown, st.downFor = t0.Add(-30*time.Second), 5000
	b := policyBounds() // 5,000 records a pod, 30 s
	poll := func(records, seconds int64, produce float64) lagSnapshot {
		s := snapshot(1000, 12, records, seconds, 1200, 1000)
		s.lastPoll = pollInterval{since: t0.Add(-10 * time.Second), produceRate: produce, consumeRate: 2000}
		return s
	}
	for _, tc := range []struct {
		name      string
		lag       lagSnapshot
		consumers int32
		want      bool
	}{
		{"8,000/s on 1 pod doing 2,000/s, 10k records behind", poll(10000, 5, 8000), 1, true},
		{"7,000/s: not half as much again as the 5,000/s of the scale-down", poll(10000, 5, 7000), 1, false},
		{"8,000/s on 4 pods doing 8,000/s", poll(30000, 5, 8000), 4, false},
		{"8,000/s, the lag still under its target", poll(3000, 1, 8000), 1, false},
	} {
		in := scaleInput{now: t0, lag: tc.lag, replicas: tc.consumers, parallelism: 200}
		if got := neededBack(b, st, tc.lag, in, tc.consumers); got != tc.want {
			t.Errorf("%s: needed back %v, want %v", tc.name, got, tc.want)
		}
	}
}
