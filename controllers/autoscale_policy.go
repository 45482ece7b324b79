package controllers

import (
	"fmt"
	"math"
	"time"

	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

// The autoscaling policy: a pure function from what the lag observer measured, the
// Ingester's bounds and the policy's own memory to a size (replicas × parallelism) and a
// reason. The README's "Autoscaling" section explains it with an example.

// scaleBounds are an Ingester's autoscaling settings with their defaults resolved.
type scaleBounds struct {
	minReplicas, maxReplicas       int32 // maxReplicas 0: the partition count
	activationRecords              int64
	minParallelism, maxParallelism int32
	targetRecords                  int64   // per consuming pod; 0: none
	targetSeconds                  float64 // 0: none
	up, down                       scaleRules
	cooldown                       time.Duration
}

type scaleRules struct {
	window time.Duration
	step   int32 // 0: unbounded
	period time.Duration
}

// Defaults of the pacing fields (the CRD defaults the others).
const (
	defaultScaleDownWindow = 120 * time.Second
	defaultScalePeriod     = 15 * time.Second
	defaultCooldown        = 60 * time.Second
	// defaultDrainSeconds is how soon a backlog is drained when only targetLagRecords is set.
	defaultDrainSeconds = 60
	// headroom is the spare capacity sized above the production rate, so that ordinary
	// jitter does not build lag.
	headroom = 1.15
	// saturatedSeconds is how much work, in seconds of consumption, must wait in every
	// partition at both ends of a poll interval for its consumption to count as the pods'
	// capacity.
	saturatedSeconds = 2
)

// boundsOf resolves the Ingester's autoscaling settings.
func boundsOf(ing *spanflowv1alpha1.Ingester) scaleBounds {
	a := ing.Spec.Autoscaling
	if a == nil {
		a = &spanflowv1alpha1.AutoscalingSpec{}
	}
	b := scaleBounds{
		minReplicas:       ptr.Deref(a.MinReplicas, 1),
		maxReplicas:       ptr.Deref(a.MaxReplicas, 0),
		activationRecords: ptr.Deref(a.ActivationLagRecords, 0),
		targetRecords:     ptr.Deref(a.TargetLagRecords, 0),
		targetSeconds:     float64(ptr.Deref(a.TargetLagSeconds, 0)),
		cooldown:          a.Cooldown.Or(defaultCooldown),
		up:                rulesOf(a.ScaleUp, 0),
		down:              rulesOf(a.ScaleDown, defaultScaleDownWindow),
	}
	p := desiredParallelism(ing)
	b.minParallelism, b.maxParallelism = p, p
	switch {
	case a.MinParallelism != nil && a.MaxParallelism != nil:
		b.minParallelism, b.maxParallelism = *a.MinParallelism, *a.MaxParallelism
	case a.MinParallelism != nil:
		b.minParallelism, b.maxParallelism = *a.MinParallelism, max(p, *a.MinParallelism)
	case a.MaxParallelism != nil:
		b.minParallelism, b.maxParallelism = min(p, *a.MaxParallelism), *a.MaxParallelism
	}
	return b
}

func rulesOf(r *spanflowv1alpha1.ScalingRules, window time.Duration) scaleRules {
	if r == nil {
		return scaleRules{window: window, period: defaultScalePeriod}
	}
	return scaleRules{window: r.StabilizationWindow.Or(window), step: ptr.Deref(r.MaxReplicaStep, 0),
		period: r.Period.Or(defaultScalePeriod)}
}

// scaleInput is what one decision looks at.
type scaleInput struct {
	now time.Time
	// lag is the latest snapshot; known is false before the first poll succeeded, stale
	// when the latest poll failed.
	lag          lagSnapshot
	known, stale bool
	// replicas and parallelism are the current size, as last applied.
	replicas, parallelism int32
	// settled is true when every pod runs the current size and is ready.
	settled bool
}

// scaleState is the policy's memory of one Ingester, kept between decisions.
type scaleState struct {
	// recommendations within the longest stabilization window, oldest first.
	recommendations []scaleRecommendation
	// changes within the longest step period, for the step bounds.
	changes []scaleChange
	// lastChange is when the size last changed; settledAt when the pods were first seen
	// settled after it (zero while they are not).
	lastChange, settledAt time.Time
	// lastSample is the time of the last snapshot decided on, firstSample of the first:
	// nothing is scaled down before the down window has been watched whole (after an
	// operator restart, too).
	lastSample, firstSample time.Time
	// capacity is what the pods were measured to consume.
	capacity capacityModel
}

type scaleRecommendation struct {
	at                    time.Time
	replicas, parallelism int32
}

type scaleChange struct {
	at    time.Time
	delta int32
}

// capacityModel says how many records per second a pod consumes at a parallelism: in
// proportion to it (perWorker each) up to a ceiling where the pod runs out of CPU.
type capacityModel struct {
	perWorker float64 // 0: never measured
	// ceiling is the pod's measured maximum, 0 when none was found, reached from
	// ceilingParallelism on.
	ceiling            float64
	ceilingParallelism int32
	// measuredParallelism is the parallelism of the latest measurement, highest the
	// highest one measured.
	measuredParallelism, highest int32
}

// exploreFactor bounds how far beyond the highest measured parallelism the model is
// trusted: a pod may run out of CPU there, and only a measurement can tell.
const exploreFactor = 1.5

func (c capacityModel) known() bool { return c.perWorker > 0 }

// podRate is the estimated records per second of one pod at parallelism p.
func (c capacityModel) podRate(p int32) float64 {
	if c.ceiling > 0 && p >= c.ceilingParallelism {
		return c.ceiling
	}
	r := c.perWorker * min(float64(p), exploreFactor*float64(c.highest))
	if c.ceiling > 0 {
		r = min(r, c.ceiling)
	}
	return r
}

// groupRate is the estimated records per second of r pods at parallelism p on a topic of
// partitions partitions. Kafka gives every partition to one pod, so the pods with the
// most partitions (ceil(partitions / r)) set the pace: 5 pods on 12 partitions do no
// more than 4, since two of them carry 3 partitions each.
func (c capacityModel) groupRate(r, p, partitions int32) float64 {
	if r <= 0 {
		return 0
	}
	perPod := (partitions + r - 1) / r
	return float64(partitions) / float64(perPod) * c.podRate(p)
}

// status renders the model for the Ingester's status; nil before any measurement.
func (c capacityModel) status() *spanflowv1alpha1.PodCapacity {
	if !c.known() {
		return nil
	}
	return &spanflowv1alpha1.PodCapacity{Parallelism: c.measuredParallelism,
		RecordsPerSecond:        int64(math.Round(c.perWorker * float64(c.measuredParallelism))),
		HighestParallelism:      c.highest,
		CeilingRecordsPerSecond: int64(math.Round(c.ceiling)), CeilingParallelism: c.ceilingParallelism}
}

// capacityFromStatus is the model a status kept; the zero model (nothing measured) for none.
func capacityFromStatus(s *spanflowv1alpha1.PodCapacity) capacityModel {
	if s == nil || s.Parallelism <= 0 || s.RecordsPerSecond <= 0 {
		return capacityModel{}
	}
	c := capacityModel{perWorker: float64(s.RecordsPerSecond) / float64(s.Parallelism),
		measuredParallelism: s.Parallelism, highest: max(s.HighestParallelism, s.Parallelism)}
	if s.CeilingRecordsPerSecond > 0 && s.CeilingParallelism > 0 {
		c.ceiling, c.ceilingParallelism = float64(s.CeilingRecordsPerSecond), s.CeilingParallelism
	}
	return c
}

// learn folds a measurement in: pods at parallelism p consumed perPod records per second
// each while they always had work. A raise of parallelism that did not raise the rate
// nearly in proportion reveals the ceiling.
func (c capacityModel) learn(p int32, perPod float64) capacityModel {
	const weight = 0.5 // of the new measurement
	switch {
	case !c.known():
		c.perWorker = perPod / float64(p)
	case c.ceiling > 0 && p >= c.ceilingParallelism:
		c.ceiling = weight*perPod + (1-weight)*c.ceiling
	case p > c.measuredParallelism && perPod < 0.8*c.perWorker*float64(p):
		c.ceiling, c.ceilingParallelism = perPod, p
	default:
		c.perWorker = weight*perPod/float64(p) + (1-weight)*c.perWorker
		if c.ceiling > 0 && c.podRate(c.ceilingParallelism) > c.ceiling*1.25 {
			// Faster per worker than before: the old ceiling may be gone; measure again.
			c.ceiling, c.ceilingParallelism = 0, 0
		}
	}
	c.measuredParallelism, c.highest = p, max(c.highest, p)
	return c
}

// scaleDecision is the policy's verdict.
type scaleDecision struct {
	replicas, parallelism int32
	reason                string
}

// decideScale is the autoscaling policy. It returns the size to run and the state to
// remember for the next decision.
//
//  1. No decision without fresh figures: before the first poll and on stale figures it
//     holds; while a rollout is under way or within the cooldown after a change, only
//     adding pods (which only adds capacity) goes ahead.
//  2. Between two polls with the pods settled and work waiting in every partition, their
//     consumption is their capacity: learnt per pod and per unit of parallelism, with the
//     ceiling where more parallelism stopped helping.
//  3. The rate needed is the production rate with headroom plus the backlog above half
//     the allowed lag, drained within targetLagSeconds (60 s without it).
//  4. Capacity counts whole partitions: the pods with the most partitions set the pace.
//     Behind: the fewest pods at the current parallelism that reach the need; at the most
//     pods, more parallelism, but only for a backlog longer than restarting every pod.
//     Keeping up: the current size while it covers the need without headroom, else the
//     fewest pods at any parallelism within bounds (raised by at least a fifth, lowered
//     only when it halves), parallelism first when that means fewer pods. Without a
//     measurement, pods grow in proportion to the lag over target (then parallelism, at
//     most doubled, with every pod there can be) and shrink one at a time.
//  5. Scaling up follows the lowest recommendation of scaleUp's window, scaling down the
//     highest of scaleDown's once a whole window was watched, each by at most the step
//     per period. With minReplicas 0, no production and no lag mean zero pods; lag above
//     activationLagRecords wakes them.
func decideScale(b scaleBounds, st scaleState, in scaleInput) (scaleDecision, scaleState) {
	current := scaleDecision{replicas: in.replicas, parallelism: in.parallelism}
	hold := func(format string, args ...any) (scaleDecision, scaleState) {
		current.reason = fmt.Sprintf(format, args...)
		return current, st
	}
	switch {
	case !in.settled:
		st.settledAt = time.Time{}
	case st.settledAt.IsZero():
		st.settledAt = in.now
	}
	newSample := in.lag.at.After(st.lastSample)
	st.lastSample = in.lag.at
	if st.firstSample.IsZero() && in.known {
		st.firstSample = in.lag.at
	}
	lag := in.lag
	switch {
	case !in.known:
		return hold("waiting for the first lag figures from Kafka")
	case in.stale:
		return hold("holding at %s: the lag figures are stale (the latest look at Kafka failed)", sizeText(current))
	case lag.partitions == 0:
		return hold("holding at %s: the topic has no partitions", sizeText(current))
	}
	partitions := int32(lag.partitions)
	maxR := partitions
	if b.maxReplicas > 0 {
		maxR = min(maxR, b.maxReplicas)
	}
	minR := min(b.minReplicas, maxR)
	consumers := min(in.replicas, partitions)

	// Between two polls with the pods settled and work waiting in every partition at
	// both, what they consumed is what they can.
	if iv := lag.lastPoll; newSample && !st.settledAt.IsZero() && !iv.since.Before(st.settledAt) && consumers > 0 && iv.consumeRate > 0 {
		if iv.leastBacklog >= int64(iv.consumeRate/float64(partitions)*saturatedSeconds) {
			st.capacity = st.capacity.learn(in.parallelism, iv.consumeRate/float64(consumers))
		}
	}

	figures := lagFigures(b, lag, consumers)
	rec := recommend(b, st.capacity, lag, in, minR, maxR, consumers)
	rec.reason = figures + ": " + rec.reason
	st.recommendations = append(st.recommendations, scaleRecommendation{at: in.now, replicas: rec.replicas, parallelism: rec.parallelism})
	st.recommendations = since(st.recommendations, in.now.Add(-max(b.up.window, b.down.window)), func(r scaleRecommendation) time.Time { return r.at })
	st.changes = since(st.changes, in.now.Add(-max(b.up.period, b.down.period)), func(c scaleChange) time.Time { return c.at })

	// Stabilize: up to the least of the up window, down to the most of the down window,
	// sizes ordered by pods, then parallelism.
	target := current
	if up, ok := extreme(st.recommendations, in.now.Add(-b.up.window), false); ok && larger(up, current) {
		target = up
	} else if down, ok := extreme(st.recommendations, in.now.Add(-b.down.window), true); ok && larger(current, down) &&
		!st.firstSample.After(lag.at.Add(-b.down.window)) {
		target = down
	}
	consolidating := target.replicas < current.replicas && target.parallelism > current.parallelism
	if consolidating {
		// Fewer pods with more parallelism each: raise the parallelism first, so that
		// while the pods restart the group never has less capacity than now.
		target.replicas = current.replicas
	}
	target.replicas = stepBounded(b, st.changes, in.now, current.replicas, target.replicas)
	target.parallelism = min(max(target.parallelism, b.minParallelism), b.maxParallelism)
	target.replicas = min(max(target.replicas, minR), maxR)
	if in.replicas == 0 && target.replicas == 0 {
		target.parallelism = in.parallelism // nothing runs: a parallelism change would be noise
	}

	if target.replicas == current.replicas && target.parallelism == current.parallelism {
		if rec.replicas != current.replicas || rec.parallelism != current.parallelism {
			return hold("%s; holding at %s within the stabilization window", rec.reason, sizeText(current))
		}
		return hold("%s", rec.reason)
	}
	// More pods at the same parallelism only add capacity: they need not wait. Anything
	// else waits for the last change to settle and be measured.
	addOnly := target.replicas > current.replicas && target.parallelism == current.parallelism
	switch {
	case addOnly:
	case !in.settled:
		return hold("%s; waiting for the rollout of %s to finish", rec.reason, sizeText(current))
	case in.now.Sub(st.lastChange) < b.cooldown:
		return hold("%s; cooling down after the change at %s", rec.reason, st.lastChange.UTC().Format(time.TimeOnly))
	}
	if d := target.replicas - current.replicas; d != 0 {
		st.changes = append(st.changes, scaleChange{at: in.now, delta: d})
	}
	st.lastChange = in.now
	st.settledAt = time.Time{}
	verb := "scaling up"
	switch {
	case consolidating:
		verb = "fewer pods to come; raising their parallelism first"
	case larger(current, target):
		verb = "scaling down"
	}
	target.reason = fmt.Sprintf("%s; %s from %s to %s", rec.reason, verb, sizeText(current), sizeText(target))
	return target, st
}

// recommend is the size the current figures call for, before stabilization and pacing.
func recommend(b scaleBounds, c capacityModel, lag lagSnapshot, in scaleInput, minR, maxR, consumers int32) scaleDecision {
	partitions := int32(lag.partitions)
	p := min(max(in.parallelism, b.minParallelism), b.maxParallelism)
	switch {
	case in.replicas == 0 && lag.records <= b.activationRecords:
		return scaleDecision{replicas: 0, parallelism: p, reason: fmt.Sprintf("no pods while the lag stays at or below %d records", b.activationRecords)}
	case minR == 0 && lag.records == 0 && lag.produceRate == 0:
		return scaleDecision{replicas: 0, parallelism: p, reason: "nothing produced and nothing left to consume"}
	}
	least := max(minR, 1)
	ratio := overTarget(b, lag, consumers)
	if !c.known() {
		// What a pod consumes was not measured yet: grow in proportion to the lag over
		// target, pods first, then, with every pod there can be, parallelism; shrink one
		// pod at a time until the pods are busy enough to be measured.
		r := int32(math.Ceil(float64(max(consumers, 1)) * ratio))
		if ratio < 1 {
			r = in.replicas - 1
		}
		if ratio > 1 && in.replicas >= maxR && in.replicas > 0 {
			p = min(max(int32(math.Ceil(float64(p)*min(ratio, 2))), p), b.maxParallelism)
		}
		r = min(max(r, least), maxR)
		return scaleDecision{replicas: r, parallelism: p, reason: fmt.Sprintf("%.1f× the target, pod capacity not measured yet: %d pods at parallelism %d", ratio, r, p)}
	}
	need := neededRate(b, lag, consumers)
	explain := func(r, p int32) scaleDecision {
		return scaleDecision{replicas: r, parallelism: p, reason: fmt.Sprintf("%s/s needed, %d pods do %s/s at parallelism %d",
			count(need), r, count(c.groupRate(r, p, partitions)), p)}
	}
	// fewest is the fewest pods that reach the need at parallelism p, if any does.
	fewest := func(p int32) (int32, bool) {
		for r := least; r <= maxR; r++ {
			if c.groupRate(r, p, partitions) >= need {
				return r, true
			}
		}
		return maxR, false
	}
	if ratio > 1 && need > c.groupRate(consumers, p, partitions) {
		// Behind: add pods, which start consuming while the others go on; raising the
		// parallelism would restart every pod, one at a time (about a cooldown each).
		// Only at the most pods, and only for a backlog the pods would take longer than
		// that restart to consume at full speed, raise it: a burst is over sooner.
		if r, ok := fewest(p); ok {
			return explain(r, p)
		}
		restart := float64(maxR) * b.cooldown.Seconds()
		if float64(lag.records)/c.groupRate(maxR, p, partitions) < restart {
			return explain(maxR, p)
		}
		return explain(maxR, leastParallelism(c, p, b.maxParallelism, func(q int32) bool {
			return c.groupRate(maxR, q, partitions) >= min(need, c.groupRate(maxR, b.maxParallelism, partitions))
		}))
	}
	// Draining a backlog fast enough, or keeping up with the need without the headroom
	// (the headroom is for sizing, not a reason to move): the current size stays.
	if current := c.groupRate(consumers, p, partitions); in.replicas >= least && (ratio > 1 || current*headroom >= need && current < need) {
		return explain(in.replicas, p)
	}
	// Otherwise the fewest pods that do, with the least parallelism that does, keeping
	// the current one unless it is twice what is needed (a change restarts the pods).
	r, ok := fewest(b.maxParallelism)
	if !ok {
		return scaleDecision{replicas: maxR, parallelism: b.maxParallelism,
			reason: fmt.Sprintf("%s/s needed, more than %d pods do at parallelism %d (%s/s)", count(need), maxR, b.maxParallelism,
				count(c.groupRate(maxR, b.maxParallelism, partitions)))}
	}
	enough := func(p int32) bool { return c.groupRate(r, p, partitions) >= need }
	lp := leastParallelism(c, b.minParallelism, b.maxParallelism, enough)
	switch {
	case enough(p) && lp > p/2:
		lp = p // enough, and not so much more that a restart pays
	case lp > p:
		// A raise restarts the pods: make it worth one, not a creep of small steps.
		lp = min(max(lp, int32(float64(p)*1.2)), b.maxParallelism)
	}
	return explain(r, lp)
}

// leastParallelism is the least parallelism in [lo, hi] that is enough, or hi.
func leastParallelism(c capacityModel, lo, hi int32, enough func(p int32) bool) int32 {
	for lo < hi {
		mid := lo + (hi-lo)/2
		if enough(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// allowedRecords is the lag the targets allow with consumers pods, at the current
// production rate; ok is false when no target bounds it.
func allowedRecords(b scaleBounds, lag lagSnapshot, consumers int32) (allowed float64, ok bool) {
	allowed = math.Inf(1)
	if b.targetRecords > 0 {
		allowed = float64(b.targetRecords) * float64(max(consumers, 1))
	}
	if b.targetSeconds > 0 && lag.produceRate > 0 {
		allowed = min(allowed, b.targetSeconds*lag.produceRate)
	}
	return allowed, !math.IsInf(allowed, 1)
}

// overTarget is how many times over its targets the lag is (below 1: under them).
func overTarget(b scaleBounds, lag lagSnapshot, consumers int32) float64 {
	ratio := 0.0
	if b.targetRecords > 0 {
		ratio = float64(lag.records) / (float64(b.targetRecords) * float64(max(consumers, 1)))
	}
	if b.targetSeconds > 0 {
		ratio = max(ratio, float64(lag.seconds)/b.targetSeconds)
	}
	return ratio
}

// neededRate is the consumption rate that keeps up with production, with headroom, and
// drains the backlog above half the allowed lag within the drain time.
func neededRate(b scaleBounds, lag lagSnapshot, consumers int32) float64 {
	keep := 0.0
	if allowed, ok := allowedRecords(b, lag, consumers); ok {
		keep = allowed / 2
	}
	drain := b.targetSeconds
	if drain == 0 {
		drain = defaultDrainSeconds
	}
	// Behind, production that grew shows first in the last poll interval: follow it at
	// once. Otherwise the window's rate, which is steadier.
	produce := lag.produceRate
	if overTarget(b, lag, consumers) > 1 {
		produce = max(produce, lag.lastPoll.produceRate)
	}
	return produce*headroom + max(float64(lag.records)-keep, 0)/drain
}

// lagFigures describes the lag against the targets.
func lagFigures(b scaleBounds, lag lagSnapshot, consumers int32) string {
	s := fmt.Sprintf("lag %s records", count(float64(lag.records)))
	if b.targetRecords > 0 {
		s += fmt.Sprintf(" (target %s)", count(float64(b.targetRecords)*float64(max(consumers, 1))))
	}
	s += fmt.Sprintf(", %ds", lag.seconds)
	if b.targetSeconds > 0 {
		s += fmt.Sprintf(" (target %ds)", int64(b.targetSeconds))
	}
	return s + fmt.Sprintf("; producing %s/s, consuming %s/s", count(lag.produceRate), count(lag.consumeRate))
}

// larger orders sizes by pods, then parallelism.
func larger(a, b scaleDecision) bool {
	return a.replicas > b.replicas || (a.replicas == b.replicas && a.parallelism > b.parallelism)
}

// extreme is the largest (or smallest) recommendation made since from.
func extreme(recs []scaleRecommendation, from time.Time, largest bool) (scaleDecision, bool) {
	var best scaleDecision
	found := false
	for _, r := range recs {
		if r.at.Before(from) {
			continue
		}
		d := scaleDecision{replicas: r.replicas, parallelism: r.parallelism}
		if !found || (largest && larger(d, best)) || (!largest && larger(best, d)) {
			best, found = d, true
		}
	}
	return best, found
}

// stepBounded limits the replica change to what the step bounds leave in their period.
func stepBounded(b scaleBounds, changes []scaleChange, now time.Time, from, to int32) int32 {
	rules, sign := b.up, int32(1)
	if to < from {
		rules, sign = b.down, -1
	}
	if rules.step == 0 || to == from {
		return to
	}
	used := int32(0)
	for _, c := range changes {
		if !c.at.Before(now.Add(-rules.period)) && c.delta*sign > 0 {
			used += c.delta * sign
		}
	}
	left := max(rules.step-used, 0)
	if sign > 0 {
		return min(to, from+left)
	}
	return max(to, from-left)
}

// since drops the elements older than from (they are kept oldest first).
func since[T any](s []T, from time.Time, at func(T) time.Time) []T {
	i := 0
	for i < len(s) && at(s[i]).Before(from) {
		i++
	}
	return append(s[:0:0], s[i:]...)
}

func sizeText(d scaleDecision) string {
	return fmt.Sprintf("%d × %d", d.replicas, d.parallelism)
}

// count renders a figure for people: 950, 12.3k, 4.5M.
func count(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
