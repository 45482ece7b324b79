package autoscale

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Slow pods. The capacity model is of a typical pod, an average of what the pods report;
// but a pod on a bad node, or beside a noisy neighbour, can do much less than the others,
// and then it sets the group's pace: its partitions back up while the others idle, and an
// average that sizes the group for the others never drains them. Each pod's report says
// what that pod does at its parallelism — its rate over the share of its slots it used,
// at most what its CPU allows — which does not depend on how much work its partitions
// bring: a pod holding a hot partition is busier, not slower, and a partition consumed at
// its ceiling leaves its pod's slots waiting, not slower (see ceilings.go). A pod that does
// clearly less than the others is sized for: its own capacity, as if it held the busiest
// pod's partitions (whichever of them it gets after a rebalance), so that the group grows
// until its share is one it can carry. Each measurement moves what is remembered of a pod
// a quarter of the way (speedWeight): a pod that recovers is forgotten within a few
// reports, one that goes at once.

// Thresholds of the slow pods.
const (
	// slowShare: a pod that does less than this share of what the other pods do (their
	// median), as remembered, is slow: the others do half as much again or more.
	slowShare = 2.0 / 3
	// speedWeight is the weight of a new measurement in what is remembered of a pod's
	// share (a new pod starts as doing what the others do). Reports vary from one to the
	// next — the noise of a ten-second sample, and with two or three pods the median of
	// the others is one of them, as noisy — so one report, however far off, moves a pod
	// by a quarter of the way: a pod 5× slower than the others is slow at its second
	// report, one 2× slower at its fourth, and one that recovers is forgotten after four.
	speedWeight = 0.25
	// slowMemory: a pod not measured for this long (its reports too idle to say what it can
	// do, or no other pod's to compare with) is forgotten.
	slowMemory = 10 * time.Minute
)

// podSpeed is what is known of one pod's speed against the others'.
type podSpeed struct {
	pod string
	// share is what the pod does at the parallelism all ran, as a share of the median of
	// what the others did at the same polls (at most 1), moved by speedWeight to each
	// measurement; model is its own capacity (blended as the typical pod's is).
	share float64
	model capacityModel
	// at is its last measurement.
	at time.Time
}

// slow is true when the pod does clearly less than the others.
func (s podSpeed) slow() bool { return s.share < slowShare && s.model.known() }

// reportedCapacity is what a pod's report says it does at its parallelism: its rate with
// all of its slots busy, at most usableCPU of its CPU. exact is false when the report is
// too idle to say (its slots or CPU under the measurable shares, no rate): then it is a
// lower bound, and says nothing about how slow the pod is.
func reportedCapacity(pl podLoad) (capacity float64, exact bool) {
	if pl.Rate <= 0 || pl.slots() <= 0 {
		return 0, false
	}
	capacity = pl.Rate / max(pl.Busy, measurableBusy)
	if pl.CPU >= 0 {
		capacity = min(capacity, usableCPU*pl.Rate/max(pl.CPU, measurableCPU))
	}
	return capacity, pl.Busy >= measurableBusy && (pl.CPU < 0 || pl.CPU >= measurableCPU)
}

// learnSpeeds updates what is known of the pods' speeds with their fresh reports, at now.
// Pods without a fresh report are gone and forgotten; so are those not measured for
// slowMemory. A poll measures when every report shows the same parallelism, run through
// its whole interval (pods at different parallelisms do different amounts for the same
// speed); then each pod whose report is exact is compared with the median of the others
// whose reports are exact, or, when none is (the others nearly idle: a group grown for a
// slow pod), with typical, the typical pod's model (which leaves out the pods known to be
// slow, and which idle reports do not lower). The result is replaced, never changed in
// place: states are copied.
func learnSpeeds(speeds []podSpeed, pods []podLoad, typical capacityModel, now time.Time) []podSpeed {
	var out []podSpeed
	for _, s := range speeds {
		if _, ok := podNamed(pods, s.pod); ok && now.Sub(s.at) < slowMemory {
			out = append(out, s)
		}
	}
	if _, ok := runningParallelism(pods); !ok || !ranThroughout(pods) {
		return out
	}
	capacities := make([]float64, len(pods))
	exact := make([]bool, len(pods))
	for i, pl := range pods {
		capacities[i], exact[i] = reportedCapacity(pl)
	}
	for i, pl := range pods {
		if !exact[i] || pl.Pod == "" {
			continue
		}
		var others []float64
		for j := range pods {
			if j != i && exact[j] {
				others = append(others, capacities[j])
			}
		}
		var median float64
		switch {
		case len(others) > 0:
			slices.Sort(others)
			median = others[len(others)/2]
			if len(others)%2 == 0 {
				median = (others[len(others)/2-1] + median) / 2
			}
		case typical.known():
			median = typical.podRate(pl.Parallelism)
		default:
			continue
		}
		share := min(capacities[i]/median, 1)
		own, _ := fromReports([]podLoad{pl})
		k := slices.IndexFunc(out, func(s podSpeed) bool { return s.pod == pl.Pod })
		if k < 0 {
			out = append(out, podSpeed{pod: pl.Pod, share: 1 + speedWeight*(share-1), model: own, at: now})
			continue
		}
		out[k] = podSpeed{pod: pl.Pod, share: out[k].share + speedWeight*(share-out[k].share), model: out[k].model.blend(own), at: now}
	}
	return out
}

// slowest is the slowest of the slow pods; ok is false when none is.
func slowest(speeds []podSpeed) (podSpeed, bool) {
	var found podSpeed
	ok := false
	for _, s := range speeds {
		if s.slow() && (!ok || s.share < found.share) {
			found, ok = s, true
		}
	}
	return found, ok
}

// withoutSlowPods is the reports of the pods not known to be slow: what a typical pod
// does. None when only slow pods report (the group down to them).
func withoutSlowPods(pods []podLoad, speeds []podSpeed) []podLoad {
	return slices.DeleteFunc(slices.Clone(pods), func(pl podLoad) bool {
		return slices.ContainsFunc(speeds, func(s podSpeed) bool { return s.pod == pl.Pod && s.slow() })
	})
}

// pacedBy is the capacity of the pod that sets the group's pace when a slow pod s may
// hold the busiest pod's partitions: at each parallelism the lesser of the typical pod's
// rate and s's. Both rise in proportion to the parallelism up to a ceiling, and so does
// the lesser of them: in proportion to the lesser rate a slot, up to the lesser ceiling;
// trusted as far beyond the highest parallelism measured as the less measured of them.
func (c capacityModel) pacedBy(s capacityModel) capacityModel {
	if !c.known() || !s.known() {
		return c
	}
	out := c
	out.perWorker = min(c.perWorker, s.perWorker)
	out.ceiling = c.ceiling
	if s.ceiling > 0 && (out.ceiling <= 0 || s.ceiling < out.ceiling) {
		out.ceiling = s.ceiling
	}
	if out.ceiling > 0 {
		out.ceilingParallelism = int32(math.Ceil(out.ceiling / out.perWorker))
	}
	out.highest = min(c.highest, s.highest)
	return out
}

// sizingCapacity is the capacity the group is sized with: the typical pod's, paced by the
// slowest pod when one is slow.
func (st scaleState) sizingCapacity() capacityModel {
	if s, ok := slowest(st.speeds); ok {
		return st.capacity.pacedBy(s.model)
	}
	return st.capacity
}

// slowText describes the slowest pod for a decision's reason.
func slowText(speeds []podSpeed) string {
	s, ok := slowest(speeds)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%s does %.0f%% of what the other pods do: sized as if it held the busiest pod's partitions", s.pod, 100*s.share)
}

// meanPodRate is what consumers pods at parallelism p do on average by the models: the
// slow pods (those that report) their own, the others the typical pod's.
func (st scaleState) meanPodRate(p, consumers int32) float64 {
	n := max(consumers, 1)
	total, counted := 0.0, int32(0)
	for _, s := range st.speeds {
		if s.slow() && counted < n {
			total += s.model.podRate(p)
			counted++
		}
	}
	return (total + float64(n-counted)*st.capacity.podRate(p)) / float64(n)
}

// slowerBy is the state with every pod's model — the typical pod's and the slow pods' —
// scaled by scale: the group was measured doing less than they say, and the measurement,
// of the whole group, does not say which pod.
func (st scaleState) slowerBy(scale float64) scaleState {
	st.capacity.perWorker *= scale
	st.capacity.ceiling *= scale
	speeds := slices.Clone(st.speeds)
	for i := range speeds {
		speeds[i].model.perWorker *= scale
		speeds[i].model.ceiling *= scale
	}
	st.speeds = speeds
	return st
}
