package autoscale

import (
	"fmt"
	"math"
	"strings"
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

// The down window's stretch after pods removed were soon needed back (see downWindow).
const (
	// burstGap: pods added within this many down windows of a removal.
	burstGap = 3
	// burstStretch: the window is this many times as long...
	burstStretch = 4
	// burstMemory: ...for this long after the pods came back.
	burstMemory = 30 * time.Minute
)

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

// boundsOf resolves an Ingester's autoscaling settings; parallelism is its spec's.
func boundsOf(a *spanflowv1alpha1.AutoscalingSpec, parallelism int32) scaleBounds {
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
	p := parallelism
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
	// settled is true when every pod of the Deployment runs its current template and is
	// ready (parallelism is not in the template: it changes in the running pods).
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
	// lastUp and lastDown are when the replicas last rose and fell: a scale-up is not
	// reversed within the down window, nor a scale-down unless the pods are needed back
	// (neededBack). parallelismAt is when the parallelism last
	// changed, parallelismSeenAt when every pod's report first showed it (a report sent
	// a report interval after that was measured wholly at it).
	lastUp, lastDown, parallelismAt, parallelismSeenAt time.Time
	// downFor is the production the last scale-down was made at: pods come back within
	// the down window only for a load that has risen since (see neededBack).
	downFor float64
	// parallelismUnwatched is set when a poll while the pods had not shown the last
	// parallelism had no load reports (no pod running, or none reporting): the wait until
	// they show it says nothing of how long a change takes to reach them.
	parallelismUnwatched bool
	// lastSample is the time of the last snapshot decided on, firstSample of the first:
	// nothing is scaled down before the down window has been watched whole (after an
	// operator restart, too).
	lastSample, firstSample time.Time
	// capacity is what a typical pod was measured to consume; speeds what is known of
	// each pod's speed against the others' (see learnSpeeds). Replaced, never changed in
	// place: states are copied.
	capacity capacityModel
	speeds   []podSpeed
	// pause is how long a rebalance stops the group, as the pods reported it; startup how
	// long new pods took to be ready; propagation how long a new parallelism took to show
	// in every running pod's report. Zero: not seen yet (the defaults apply).
	pause, startup, propagation time.Duration
	// ceilings are the partitions' ceilings by partition ID (see learnCeilings); nil:
	// none known or coming. Replaced, never changed in place: states are copied.
	ceilings []partitionCeiling
	// keptCeilings are the ceilings an Ingester's status kept, taken into ceilings at the
	// first poll that knows the partitions (after an operator restart).
	keptCeilings []spanflowv1alpha1.PartitionCeiling
	// uneven is set when the pods showed the production uneven enough to set their pace
	// though no partition stood out as hot (see unevenShown): the group is sized with the
	// shares told apart by their spread alone, until the window shows none stand out.
	uneven bool
}

// downWindow is the scale-down window in effect, and whether it is stretched. Pods
// removed and needed back within a few windows show a load that comes in bursts farther
// apart than the window sees: each burst would cost two replica changes, each a rebalance
// that pauses the whole group, and the first minutes of each burst would find too few
// pods. So until the next removal, or for burstMemory after the return, the window is
// burstStretch times the user's. A window of zero (scale down at once) stays zero.
func (st *scaleState) downWindow(b scaleBounds, now time.Time) (time.Duration, bool) {
	w := b.down.window
	if w > 0 && !st.lastDown.IsZero() && st.lastUp.After(st.lastDown) && st.lastUp.Sub(st.lastDown) < burstGap*w &&
		now.Sub(st.lastUp) < burstMemory {
		return burstStretch * w, true
	}
	return w, false
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
	// perWorkerAtLeast and ceilingAtLeast mark a measurement's figures as lower bounds:
	// the pods used too little of their slots or CPU to tell more (see fromReports).
	perWorkerAtLeast, ceilingAtLeast bool
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

// usefulParallelism is the most parallelism that can add to a pod's rate within hi:
// beyond the ceiling more deliveries in flight only wait for the CPU.
func (c capacityModel) usefulParallelism(hi int32) int32 {
	if c.ceiling > 0 && c.ceilingParallelism > 0 {
		return min(hi, c.ceilingParallelism)
	}
	return hi
}

// topicShape is what of a topic decides how its load spreads over the pods: its
// partitions, and each one's share of the production (nil: all alike).
type topicShape struct {
	partitions int32
	shares     []float64
}

// busiestShare is the share of the production the busiest of r pods carries. Kafka gives
// every partition to one pod: with an even production a pod with the most partitions
// (ceil(partitions / r)) sets the pace; with uneven shares, the heaviest pod as kafka-go
// deals the partitions out: its range balancer, which every pod offers first (and so the
// group uses), or round-robin, its second, whichever makes it heavier. Kafka's own range
// assignor is left out: no pod offers it, and it keeps two hot neighbours together up to
// twice the pods kafka-go's does (100 pods sized for 100 partitions, 0 and 1 hot).
func (t topicShape) busiestShare(r int32) float64 {
	n := int(t.partitions)
	k := int(min(r, t.partitions))
	if len(t.shares) != n {
		return float64((n+k-1)/k) / float64(n)
	}
	busiest := 0.0
	sum := func(from, to int) float64 {
		load := 0.0
		for _, s := range t.shares[from:to] {
			load += s
		}
		return load
	}
	for m := range k {
		busiest = max(busiest, sum(m*n/k, (m+1)*n/k)) // kafka-go: [m·n/k, (m+1)·n/k)
		load := 0.0                                   // round-robin: m, m+k, m+2k, …
		for i := m; i < n; i += k {
			load += t.shares[i]
		}
		busiest = max(busiest, load)
	}
	return busiest
}

// groupRate is the estimated records per second of r pods at parallelism p on topic t:
// the rate at which the busiest pod keeps up with its share. 5 pods on 12 even partitions
// do no more than 4, since two of them carry 3 partitions each; with a partition taking
// a fifth of the production, its pod sets the pace.
func (c capacityModel) groupRate(r, p int32, t topicShape) float64 {
	if r <= 0 || t.partitions <= 0 {
		return 0
	}
	return c.podRate(p) / t.busiestShare(r)
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

// Below these shares of its slots and CPU in use, a pod's report is read as if it used
// this much: its rate then says what it can do at least, not exactly (an idle pod's
// tiny shares are mostly noise). Sizing from a lower bound errs on the side of capacity.
const (
	measurableBusy = 0.05
	measurableCPU  = 0.1
	// usableCPU is the share of its CPU a pod turns into consumption at best (the rest is
	// the runtime, the garbage collector, the client's own work).
	usableCPU = 0.9
)

// fromReports is the capacity the pods' load reports imply: a pod that finished rate
// records per second with busy of its p delivery slots occupied and cpu of its CPU used
// does rate/(busy·p) per slot and at most rate/cpu in all. ok is false when no pod
// finished anything.
func fromReports(pods []podLoad) (capacityModel, bool) {
	var rate, slots, cpu float64
	var highest int32
	var slotsFloored, cpuFloored bool
	for _, pl := range pods {
		if pl.Rate <= 0 {
			continue
		}
		rate += pl.Rate
		slots += max(pl.Busy, measurableBusy) * pl.slots()
		highest = max(highest, pl.Parallelism)
		cpu += max(pl.CPU, measurableCPU) // unknown (negative) counts as little used
		slotsFloored = slotsFloored || pl.Busy < measurableBusy
		cpuFloored = cpuFloored || pl.CPU < measurableCPU
	}
	if slots == 0 {
		return capacityModel{}, false
	}
	c := capacityModel{perWorker: rate / slots, measuredParallelism: highest, highest: highest,
		perWorkerAtLeast: slotsFloored, ceilingAtLeast: cpuFloored}
	c.ceiling = usableCPU * rate / cpu
	c.ceilingParallelism = int32(math.Ceil(c.ceiling / c.perWorker))
	return c, true
}

// blend moves a model halfway to a new measurement: reports are ten-second averages,
// and one of them should not swing the size. A figure the measurement gives only as a
// lower bound (pods nearly idle) does not lower what was measured under load: after a
// spike, the many idle pods must not make one pod look too small to carry the load.
func (c capacityModel) blend(m capacityModel) capacityModel {
	if !c.known() {
		return m
	}
	out := m
	out.perWorker = (c.perWorker + m.perWorker) / 2
	if m.perWorkerAtLeast && c.perWorker > m.perWorker {
		out.perWorker = c.perWorker
	}
	if c.ceiling > 0 && m.ceiling > 0 {
		out.ceiling = (c.ceiling + m.ceiling) / 2
		if m.ceilingAtLeast && c.ceiling > m.ceiling {
			out.ceiling = c.ceiling
		}
		out.ceilingParallelism = int32(math.Ceil(out.ceiling / out.perWorker))
	}
	out.highest = max(c.highest, m.highest)
	return out
}

// Defaults of what the pods have not shown yet.
const (
	// reportInterval is how long an ingester's load report measures.
	reportInterval = 10 * time.Second
	defaultPause   = 10 * time.Second
	defaultStartup = 30 * time.Second
	// parallelismPropagation bounds the wait for the pods to run a new parallelism (the
	// kubelet refreshes a mounted ConfigMap about once a minute) when no report says so.
	parallelismPropagation = 2 * time.Minute
	// defaultPropagation is how long a new parallelism is expected to take to reach the
	// pods before one was seen to: half of the kubelet's minute between refreshes.
	defaultPropagation = 30 * time.Second
	// maxPropagation is the longest a new parallelism is expected to take to reach the
	// pods (the kubelet's refresh, its cache, a slow API server): a pod that shows it no
	// later is not waiting for it (it crash-loops, or never reads it).
	maxPropagation = 10 * time.Minute
)

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ewma moves a learnt duration halfway to a new observation.
func ewma(old, seen time.Duration) time.Duration {
	if old <= 0 {
		return seen
	}
	return (old + seen) / 2
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
//     holds; nothing is added while a pod reports its consumption blocked downstream
//     (storage failing: more consumers would only rebalance).
//  2. Capacity comes from the pods' load reports (in their commit metadata): the rate each
//     achieved over the share of its delivery slots and of its CPU it used. Without
//     reports, the consumption between two polls with work waiting in every partition
//     counts as capacity; with them, it only corrects an estimate that was too high. A
//     pod that does clearly less than the others (a bad node; see learnSpeeds) has a
//     model of its own, and the group is sized as if it held the busiest pod's partitions.
//  3. The rate needed is the production rate with headroom plus the backlog above half
//     the allowed lag, drained within targetLagSeconds (60 s without it).
//     A partition seen to go no faster while its pod had room (at its ceiling; see
//     learnCeilings) counts as producing what it takes, and its lag, which no size
//     drains sooner, is not held against the targets (see withinCeilings).
//  4. Parallelism changes in the running pods and is the cheap lever: short of the need,
//     it rises first. A replica change pauses the whole group for a rebalance, so pods
//     are added only when parallelism cannot reach the need and the drain they win is
//     longer than the pause they cost, and removed only when the smaller group reaches
//     the need with 15% to spare and keeps the lag clearly under target: its age, the
//     pause's included, under 0.8 of the seconds target, and its records under half of
//     what the smaller group is allowed (within it, while they are records in flight). A
//     scale-up is not reversed within the down window, nor a scale-down unless the load
//     rose past what the pods that stayed can do and the lag went over its target
//     (neededBack). Behind the target, when
//     the pod holding most of the lag has its slots full and CPU to spare (a hot
//     partition), parallelism rises, and it is not lowered while a pod's slots are full.
//  5. Without capacity figures, pods grow in proportion to the lag over target and shrink
//     one at a time only while one pod fewer would keep the lag under half the target.
//  6. Scaling up follows the lowest recommendation of scaleUp's window, scaling down the
//     highest of scaleDown's once a whole window was watched, each by at most the step
//     per period. Pods removed and soon needed back mean bursts farther apart than that
//     window: it is stretched for a while (see downWindow). With minReplicas 0, no
//     production and no lag mean zero pods; lag above activationLagRecords wakes them.
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
		if !st.lastUp.IsZero() && st.lastUp.Equal(st.lastChange) {
			st.startup = ewma(st.startup, in.now.Sub(st.lastUp))
		}
	}
	pending := !st.parallelismAt.IsZero() && !st.parallelismSeenAt.After(st.parallelismAt)
	if pending && len(in.lag.pods) == 0 {
		st.parallelismUnwatched = true
	}
	if parallelismApplied(in.lag.pods, in.parallelism) && !st.parallelismSeenAt.After(st.parallelismAt) {
		st.parallelismSeenAt = in.now
		// Pods started since the change may have read it as they started, and have shown
		// it only once ready: where they start slower than it propagates, this learns their
		// start, which charges a wait no longer than theirs. A wait with polls of no
		// reports, or longer than any propagation, is not learnt: the group was at zero,
		// or its pods crash-looped (learnt, a 3 h gap had every later raise expected to
		// take hours, and pods added for it).
		if waited := in.now.Sub(st.parallelismAt); pending && !st.parallelismUnwatched && waited <= maxPropagation {
			st.propagation = ewma(st.propagation, waited)
		}
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

	blocked := false
	if newSample {
		for _, pl := range lag.pods {
			blocked = blocked || pl.Blocked
			if pl.Pause > 0 {
				st.pause = ewma(st.pause, pl.Pause)
			}
		}
		st.speeds = learnSpeeds(st.speeds, lag.pods, st.capacity, in.now)
		_, ok := fromReports(lag.pods)
		if typical, reported := fromReports(withoutSlowPods(lag.pods, st.speeds)); reported {
			// The typical pod: only the slow ones reporting (the group down to them) say
			// nothing of it.
			st.capacity = st.capacity.blend(typical)
		}
		if st.keptCeilings != nil {
			st.ceilings, st.keptCeilings = ceilingsFromStatus(st.keptCeilings, lag.partitions), nil
		}
		st.ceilings = learnCeilings(st.ceilings, lag, b, st.quietSince())
		// Between two polls with the pods settled and work waiting in every partition at
		// both, what they consumed is what they can: the capacity without reports, a
		// check on them with.
		if iv := lag.lastPoll; !st.settledAt.IsZero() && !iv.since.Before(st.settledAt) && consumers > 0 && iv.consumeRate > 0 &&
			iv.leastBacklog >= int64(iv.consumeRate/float64(partitions)*saturatedSeconds) {
			perPod := iv.consumeRate / float64(consumers)
			running, applied := runningParallelism(lag.pods)
			switch {
			case !ok && in.now.Sub(st.parallelismAt) >= parallelismPropagation:
				// Without reports, only once a new parallelism has surely reached the pods.
				st.capacity = st.capacity.learn(in.parallelism, perPod)
			case ok && applied && !st.parallelismSeenAt.After(iv.since) && ranThroughout(lag.pods) && allBusy(lag.pods) &&
				perPod < 0.8*st.meanPodRate(running, consumers):
				// Busy by their own account and slower than the reports imply: believe the
				// rate. (Work waiting is not enough: records in flight to storage wait too.
				// Nor is a rate measured while the parallelism changed: the pods ran it, by
				// their reports, before the poll began and through their reports' interval.)
				st = st.slowerBy(perPod / st.meanPodRate(running, consumers))
			}
		}
	} else {
		for _, pl := range lag.pods {
			blocked = blocked || pl.Blocked
		}
	}

	figures := lagFigures(b, lag, consumers)
	if slow := slowText(st.speeds); slow != "" {
		figures += "; " + slow
	}
	if newSample {
		if pod, ok := unevenShown(b, lag, consumers, st.settledAt); ok && lag.looseShares != nil {
			st.uneven = true
			figures += "; " + pod
		} else if lag.skewKnown && lag.looseShares == nil {
			st.uneven = false
		}
	}
	if st.uneven && lag.looseShares != nil {
		lag.shares = lag.looseShares
		figures += "; " + unevenText(lag.shares)
	}
	lag, capped := lag.withinCeilings(st.ceilings, b, st.quietSince(), in.replicas > 0)
	if len(capped) > 0 {
		figures += "; " + cappedText(capped, st.ceilings)
	}
	sizing := b
	if note, out := recordsTargetOutOfReach(b, lag, maxR); out {
		sizing = b.sizedByAge()
		figures += "; " + note
	}
	rec := recommend(sizing, st, lag, in, minR, maxR, consumers)
	rec.reason = figures + ": " + rec.reason
	st.recommendations = append(st.recommendations, scaleRecommendation{at: in.now, replicas: rec.replicas, parallelism: rec.parallelism})
	downWindow, stretched := st.downWindow(b, in.now)
	st.recommendations = since(st.recommendations, in.now.Add(-max(b.up.window, burstStretch*b.down.window)), func(r scaleRecommendation) time.Time { return r.at })
	st.changes = since(st.changes, in.now.Add(-max(b.up.period, b.down.period)), func(c scaleChange) time.Time { return c.at })

	// Stabilize: up to the least of the up window, down to the most of the down window,
	// sizes ordered by pods, then parallelism.
	target := current
	if up, ok := extreme(st.recommendations, in.now.Add(-b.up.window), false); ok && larger(up, current) {
		target = up
	} else if down, ok := extreme(st.recommendations, in.now.Add(-downWindow), true); ok && larger(current, down) &&
		!st.firstSample.After(lag.at.Add(-b.down.window)) {
		target = down
	}
	runs := current.parallelism
	if q, ok := lowestRunning(lag.pods); ok {
		runs = min(runs, q)
	}
	consolidating := target.replicas < current.replicas && target.parallelism > runs &&
		st.sizingCapacity().groupRate(min(target.replicas, partitions), runs, lag.shape()) < lag.produceRate*headroom
	if consolidating {
		// Fewer pods with more parallelism each, and the fewer pods would not keep up
		// before their parallelism rises: raise it first, and wait for the pods to run it.
		// (Sized on the parallelism asked for, 2 pods went to 1 at parallelism 100 while a
		// raise to 225 took 300 s to reach them, as a step began: 121 s over target.)
		target.replicas = current.replicas
	}
	stabilized := target.replicas
	target.replicas = stepBounded(b, st.changes, in.now, current.replicas, target.replicas)
	target.parallelism = min(max(target.parallelism, b.minParallelism), b.maxParallelism)
	target.replicas = min(max(target.replicas, minR), maxR)
	if in.replicas == 0 && target.replicas == 0 {
		target.parallelism = in.parallelism // nothing runs: a parallelism change would be noise
	}
	var waits []string
	// Pods that go in two steps cost two rebalances: when only older recommendations keep
	// the stabilized size above the latest one, and they leave the window before the
	// cooldown would allow the second step, wait for them and go in one.
	if target.replicas < current.replicas && rec.replicas < target.replicas && b.cooldown > 0 && current.replicas <= maxR {
		if until, ok := aboveUntil(st.recommendations, rec.replicas, downWindow); ok && until.Sub(in.now) <= b.cooldown {
			target.replicas = current.replicas
			waits = append(waits, fmt.Sprintf("%d pods may go at %s, in one step instead of two", rec.replicas, until.UTC().Format(time.TimeOnly)))
		}
	}
	// Likewise a parallelism that comes down a step at a poll as the recommendations of a
	// burst leave the window: when only older ones keep it above the latest, and they
	// leave the window within the cooldown, it comes down once, to the latest.
	if target.replicas == current.replicas && rec.replicas == current.replicas && target.parallelism < current.parallelism &&
		rec.parallelism < target.parallelism && b.cooldown > 0 {
		if until, ok := parallelismAboveUntil(st.recommendations, current.replicas, rec.parallelism, downWindow); ok && until.Sub(in.now) <= b.cooldown {
			waits = append(waits, fmt.Sprintf("parallelism %d may come at %s, in one step instead of several", rec.parallelism, until.UTC().Format(time.TimeOnly)))
			target.parallelism = current.parallelism
		}
	}
	// A step down by less than a quarter of the pods while the latest recommendation is
	// lower still (the load still falling) would be followed by another soon: it saves
	// little and costs a rebalance. Wait for one that matters. (At a steady load the
	// window comes down to the latest recommendation, and the small step is taken; a step
	// the user's maxReplicaStep made small is taken as it is, and so is one to a lowered
	// maxReplicas.)
	if target.replicas < current.replicas && target.replicas == stabilized && rec.replicas < stabilized && current.replicas <= maxR &&
		float64(current.replicas-target.replicas) <= smallestStepDown*float64(current.replicas) {
		waits = append(waits, fmt.Sprintf("%d pods could go, but with the load still falling (%d pods called for now) a step of a quarter or less would be followed by another",
			current.replicas-target.replicas, rec.replicas))
		target.replicas = current.replicas
	}
	// A replica change is not reversed within the down window, unless pods removed are
	// needed back.
	if target.replicas < current.replicas && target.replicas > 0 && in.now.Sub(st.lastUp) < b.down.window {
		target.replicas = current.replicas
		waits = append(waits, "pods were added at "+st.lastUp.UTC().Format(time.TimeOnly))
	}
	if target.replicas > current.replicas && current.replicas > 0 && in.now.Sub(st.lastDown) < b.down.window && !neededBack(sizing, st, lag, in, consumers) {
		target.replicas = current.replicas
		waits = append(waits, "pods were removed at "+st.lastDown.UTC().Format(time.TimeOnly))
	}
	if blocked && larger(target, current) && current.replicas > 0 {
		target = current
		waits = append(waits, "a pod reports its consumption blocked downstream (storage failing); more consumers would not help")
	}

	// Pacing. More pods only add capacity: they need not wait. Fewer pods wait for the last
	// change to settle and for the cooldown. A new parallelism waits only for the pods
	// that report to run the last one (pods that start read the newest). What waits is
	// held while the rest goes ahead.
	if target.replicas < current.replicas {
		lastReplicaChange := st.lastUp
		if st.lastDown.After(lastReplicaChange) {
			lastReplicaChange = st.lastDown
		}
		switch {
		case !in.settled:
			waits = append(waits, "waiting for the rollout of "+sizeText(current)+" to finish")
			target.replicas = current.replicas
		case in.now.Sub(lastReplicaChange) < b.cooldown:
			waits = append(waits, "cooling down after the change at "+lastReplicaChange.UTC().Format(time.TimeOnly))
			target.replicas = current.replicas
		}
	}
	switch {
	case target.replicas < current.replicas:
		// The pods that stay keep at least their parallelism: the group loses capacity
		// once, not twice.
		target.parallelism = max(target.parallelism, current.parallelism)
	case target.replicas > current.replicas && overTarget(sizing, lag, consumers) >= 1:
		// Behind the targets, the pods that run keep their parallelism while the new ones
		// start: a cut would take capacity away before any comes.
		target.parallelism = max(target.parallelism, current.parallelism)
	case target.replicas == current.replicas && target.parallelism < current.parallelism &&
		(float64(target.parallelism) > float64(current.parallelism)/1.5 || rec.replicas < current.replicas || stabilized > current.replicas):
		// Less parallelism is worth a change only when it is much less, not while pods
		// are about to go (those that stay would need it back), and not when it was sized
		// for more pods than a step limit, the cooldown or a guard lets come.
		target.parallelism = current.parallelism
	case target.replicas == current.replicas && target.parallelism > current.parallelism &&
		float64(target.parallelism) < float64(current.parallelism)*1.1:
		// A raise by a few slots is noise (one that matters, to catch up, is at least a
		// quarter).
		target.parallelism = current.parallelism
	}
	if target.parallelism != current.parallelism && len(lag.pods) > 0 && !parallelismApplied(lag.pods, in.parallelism) &&
		in.now.Sub(st.parallelismAt) < parallelismPropagation {
		waits = append(waits, fmt.Sprintf("waiting for the pods to run parallelism %d", in.parallelism))
		target.parallelism = current.parallelism
	}
	replicasChange := target.replicas != current.replicas
	parallelismChange := target.parallelism != current.parallelism
	if !replicasChange && !parallelismChange {
		if len(waits) > 0 {
			return hold("%s; holding at %s: %s", rec.reason, sizeText(current), strings.Join(waits, "; "))
		}
		if rec.replicas != current.replicas || rec.parallelism != current.parallelism {
			if stretched && rec.replicas < current.replicas {
				return hold("%s; holding at %s within the stabilization window, %s long since pods removed at %s were needed back at %s",
					rec.reason, sizeText(current), downWindow, st.lastDown.UTC().Format(time.TimeOnly), st.lastUp.UTC().Format(time.TimeOnly))
			}
			return hold("%s; holding at %s within the stabilization window", rec.reason, sizeText(current))
		}
		return hold("%s", rec.reason)
	}
	if d := target.replicas - current.replicas; d != 0 {
		st.changes = append(st.changes, scaleChange{at: in.now, delta: d})
		if d > 0 {
			st.lastUp = in.now
		} else {
			st.lastDown, st.downFor = in.now, max(in.lag.produceRate, in.lag.risenRate())
		}
	}
	if parallelismChange {
		st.parallelismAt, st.parallelismUnwatched = in.now, false
	}
	st.lastChange = in.now
	if replicasChange {
		st.settledAt = time.Time{}
	}
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

// quietSince is when the pods last settled, their rebalance over and the parallelism asked
// for running in all of them; zero while they are not (a rollout, a new parallelism on its
// way).
func (st scaleState) quietSince() time.Time {
	// Seen at the poll it was changed again (the hold lifts as the reports show the last
	// one): the new one is on its way.
	pending := !st.parallelismAt.IsZero() && !st.parallelismSeenAt.After(st.parallelismAt)
	if st.settledAt.IsZero() || pending {
		return time.Time{}
	}
	return latest(st.settledAt.Add(orDefault(st.pause, defaultPause)), st.parallelismSeenAt)
}

// parallelismWait is how many more seconds the running pods are expected to take to run
// the parallelism last asked for: the propagation learnt (30 s before any) less the
// time since it was asked; 0 once every pod's report shows it, and once it was asked
// longer ago than any propagation takes (maxPropagation: a pod that has not shown it
// by then is not waiting for it). A change later than expected by more than a report
// interval says the time learnt is short, by how much is unknown: it is expected as
// late again as it is.
func (st scaleState) parallelismWait(now time.Time) float64 {
	waited := now.Sub(st.parallelismAt)
	if st.parallelismAt.IsZero() || st.parallelismSeenAt.After(st.parallelismAt) || waited >= maxPropagation {
		return 0
	}
	expected := min(orDefault(st.propagation, defaultPropagation), maxPropagation)
	if waited > expected+reportInterval {
		return min(waited-expected, maxPropagation-waited).Seconds()
	}
	return max(expected-waited, reportInterval).Seconds()
}

// lowestRunning is the lowest parallelism a fresh load report shows; ok is false without
// reports.
func lowestRunning(pods []podLoad) (p int32, ok bool) {
	for i, pl := range pods {
		if i == 0 || pl.Parallelism < p {
			p = pl.Parallelism
		}
	}
	return p, len(pods) > 0
}

// allBusy is true when every pod reports nearly all of its delivery slots or its CPU in use.
func allBusy(pods []podLoad) bool {
	for _, pl := range pods {
		if pl.Busy < 0.9 && pl.CPU < 0.9 {
			return false
		}
	}
	return len(pods) > 0
}

// runningParallelism is the parallelism every fresh load report shows; ok is false when
// they differ or there are none.
func runningParallelism(pods []podLoad) (p int32, ok bool) {
	for i, pl := range pods {
		if i > 0 && pl.Parallelism != p {
			return 0, false
		}
		p = pl.Parallelism
	}
	return p, len(pods) > 0
}

// ranThroughout is true when every fresh load report's pod ran its parallelism through
// the report's whole interval: the slots it allowed on average are that parallelism,
// within 2% (and the report's rounding to a tenth).
func ranThroughout(pods []podLoad) bool {
	for _, pl := range pods {
		p := float64(pl.Parallelism)
		if math.Abs(pl.slots()-p) > max(0.02*p, 0.06) {
			return false
		}
	}
	return true
}

// parallelismApplied is true when every fresh load report shows parallelism p.
func parallelismApplied(pods []podLoad, p int32) bool {
	running, ok := runningParallelism(pods)
	return ok && running == p
}

// recommend is the size the current figures call for, before stabilization and pacing.
func recommend(b scaleBounds, st scaleState, lag lagSnapshot, in scaleInput, minR, maxR, consumers int32) scaleDecision {
	partitions := int32(lag.partitions)
	topic := lag.shape()
	p := min(max(in.parallelism, b.minParallelism), b.maxParallelism)
	switch {
	case in.replicas == 0 && lag.records <= b.activationRecords:
		return scaleDecision{replicas: 0, parallelism: p, reason: fmt.Sprintf("no pods while the lag stays at or below %d records", b.activationRecords)}
	case minR == 0 && lag.records == 0 && lag.produceRate == 0:
		return scaleDecision{replicas: 0, parallelism: p, reason: "nothing produced and nothing left to consume"}
	}
	least := max(minR, 1)
	ratio := overTarget(b, lag, consumers)
	c := st.sizingCapacity()
	if !c.known() {
		return unmeasured(b, lag, in, p, least, maxR, consumers, ratio)
	}
	need := neededRate(b, lag, consumers)
	explain := func(r, p int32, why string) scaleDecision {
		return scaleDecision{replicas: r, parallelism: p, reason: fmt.Sprintf("%s/s needed, %s %s/s at parallelism %d%s",
			count(need), podsDo(r), count(c.groupRate(r, p, topic)), p, why)}
	}
	current := c.groupRate(consumers, p, topic)
	useful := max(c.usefulParallelism(b.maxParallelism), b.minParallelism)
	// least is the least parallelism within bounds with which r pods reach rate, if any.
	leastFor := func(r int32, rate float64) (int32, bool) {
		q := leastParallelism(c, b.minParallelism, useful, func(q int32) bool { return c.groupRate(r, q, topic) >= rate })
		return q, c.groupRate(r, q, topic) >= rate
	}
	// fewest is the fewest pods that reach rate at the most useful parallelism, if any do;
	// if none does, the fewest that come within 5% of what the most pods do (the pod of a
	// hot partition sets a pace that more pods hardly raise).
	fewest := func(rate float64) (int32, bool) {
		for r := least; r <= maxR; r++ {
			if c.groupRate(r, useful, topic) >= rate {
				return r, true
			}
		}
		most := c.groupRate(maxR, useful, topic)
		for r := least; r < maxR; r++ {
			if c.groupRate(r, useful, topic) >= 0.95*most {
				return r, false
			}
		}
		return maxR, false
	}
	pause := orDefault(st.pause, defaultPause).Seconds()

	// Over target, and the pods that hold the lag are neither busy nor short of CPU: they
	// are not what limits consumption (a hot partition, records in flight to storage), and
	// more of anything would not help.
	if idle, ok := lagWithoutBusyPods(lag.pods, st.settledAt); ok && ratio > 1 && in.replicas > 0 {
		return explain(in.replicas, p, "; the pods holding the lag are not busy ("+idle+"): more pods or parallelism would not help")
	}
	// A raise of parallelism on its way has not reached the pods yet, and until it does they
	// do what they run. When the records they leave meanwhile would be older than the
	// target by the time it arrives, and pods would start and join sooner, pods come now:
	// the fewest that hold the lag to half its target until then, charged the wait for
	// their start and the rebalance as the raise is charged its propagation. (Sized on the
	// parallelism asked for, a group whose pods took 180 s to run a raise added no pod
	// while the lag built: 90 s over target on diurnal load, the reference 6 s.) Only age
	// counts: the records a wait leaves over the records target drain once the raise runs.
	if running, wait := p, 0.0; lag.consumeRate > 0 && lag.produceRate > 0 && in.replicas > 0 && in.replicas < maxR {
		if q, ok := lowestRunning(lag.pods); ok && q < p {
			running, wait = q, st.parallelismWait(in.now)
		}
		startup := orDefault(st.startup, defaultStartup).Seconds()
		if wait > startup+pause && c.groupRate(consumers, running, topic)*headroom < need {
			produce := lag.produceRate
			// Pods still starting consume nothing yet.
			ready := 0.0
			if !in.settled && !st.lastUp.IsZero() {
				ready = max(startup-in.now.Sub(st.lastUp).Seconds(), 0)
			}
			// lagAt is the lag when the raise arrives with r pods, those added now joining
			// after their start and a rebalance.
			lagAt := func(r int32) float64 {
				left, at := float64(lag.records), 0.0
				consume := func(until, rate float64) {
					until = min(until, wait)
					left, at = max(left+(produce-rate)*max(until-at, 0), 0), max(at, until)
				}
				consume(ready, lag.consumeRate)
				if r > in.replicas {
					consume(startup, c.groupRate(consumers, running, topic))
					consume(startup+pause, 0)
				}
				consume(wait, c.groupRate(min(r, partitions), running, topic))
				return left
			}
			// Up to the fewest that come within 5% of what the most pods do (the pod of a hot
			// partition sets a pace that more pods hardly raise).
			most := c.groupRate(min(maxR, partitions), running, topic)
			// ageAt is the age of the oldest record then, the lag being that many seconds of
			// production.
			ageAt := func(r int32) float64 { return lagAt(r) / produce }
			if allowed := b.drainTime(); ageAt(in.replicas) > allowed {
				r := in.replicas
				for r < maxR && ageAt(r) > allowed/2 && c.groupRate(min(r, partitions), running, topic) < min(need, 0.95*most) {
					r++
				}
				if r > in.replicas {
					return explain(r, p, fmt.Sprintf("; the pods run parallelism %d, %d is expected in %.0f s, when the lag would be %.0f s old: %d pods hold it until then",
						running, p, wait, ageAt(in.replicas), r))
				}
			}
		}
	}
	if current*headroom < need {
		// Parallelism first: it changes in the running pods. Sized with a margin, so that
		// a load still growing does not call for another step at once.
		if q, ok := leastFor(in.replicas, need); ok {
			if more, ok := leastFor(in.replicas, need*raiseMargin); ok {
				q = more
			}
			return explain(in.replicas, max(q, raise(p, useful)), "")
		}
		best := c.groupRate(consumers, useful, topic)
		r, ok := fewest(need)
		if r <= in.replicas {
			return explain(in.replicas, useful, "")
		}
		startup := orDefault(st.startup, defaultStartup).Seconds()
		q, _ := leastFor(r, need)
		if !ok {
			q = useful
		}
		// More pods pay when the current ones cannot keep up at all, or when they drain the
		// backlog later than the bigger group does by more than a pause. The bigger group
		// drains after the new pods have started (the current ones consume meanwhile) and
		// after the pause their joining costs. While nothing consumes yet (the first pods
		// still starting), pods added now join in the same rebalance: no price to weigh.
		if lag.consumeRate > 0 && best > lag.produceRate*1.05 {
			// Pods still starting consume nothing yet: until they are ready the group does
			// what it does now, and the backlog grows meanwhile.
			ready := 0.0
			if !in.settled && !st.lastUp.IsZero() {
				ready = max(startup-in.now.Sub(st.lastUp).Seconds(), 0)
			}
			backlogIn := func(s float64) float64 {
				behind := (lag.produceRate - lag.consumeRate) * min(s, ready)
				drained := (best - lag.produceRate) * max(s-ready, 0)
				return float64(lag.records) + behind - drained
			}
			keep := ready + drainSeconds(max(backlogIn(ready), 0), best, lag.produceRate)
			if keep > startup {
				left := backlogIn(startup) + lag.produceRate*pause
				grow := startup + pause + drainSeconds(left, c.groupRate(min(r, partitions), q, topic), lag.produceRate)
				if keep-grow < pause {
					return explain(in.replicas, useful, fmt.Sprintf("; %d pods would drain the backlog in %.0f s, these in %.0f s: not a %.0f s rebalance sooner",
						r, grow, keep, pause))
				}
			} else {
				return explain(in.replicas, useful, fmt.Sprintf("; these drain the backlog in %.0f s, before new pods would start (%.0f s)", keep, startup))
			}
		}
		return explain(r, q, "")
	}
	// Behind, though the group should be draining, and the pod holding most of the lag has
	// its slots full with CPU to spare: its partitions carry more than the share the model
	// gives them (several hot partitions on one pod, or a production that shifted within
	// the rate window), and more parallelism is what helps that pod — more pods would not
	// split its partitions.
	if ratio > 1 && p < useful {
		if pod, ok := lagOnFullSlots(lag, c, in.parallelism, latest(st.settledAt, st.parallelismSeenAt)); ok {
			return explain(in.replicas, raise(p, useful), "; "+pod+" holds most of the lag with its slots full and CPU to spare")
		}
	}
	// Draining a backlog fast enough, or keeping up with the need without the headroom
	// (the headroom is for sizing, not a reason to move): the current size stays.
	if in.replicas >= least && (ratio > 1 || current >= need/headroom && current < need*downMargin) {
		return explain(in.replicas, p, "")
	}
	// Spare capacity. Fewer pods, when a smaller group reaches the need with a margin
	// and the pause of removing them keeps the lag within the targets; while they could
	// go but the pause would not fit, nothing changes (less parallelism now would only
	// be raised again when they go).
	// Sized down for the window's rate while the latest poll saw much more (a burst that has
	// just begun), the smaller group would be too small at once: the latest poll's
	// production bounds the need.
	down := need
	if risen := lag.risenRate(); risen > burstRise*lag.produceRate {
		down = max(need, risen*headroom)
	}
	if r, ok := fewest(down * downMargin); ok && r < in.replicas {
		// Records in flight count against what fewer pods are allowed and stay, however long
		// the wait (a backlog drains: waiting, fewer pods go): the fewest pods that hold them
		// go, though the need calls for fewer. (Held for the fewest the need calls for, 49
		// pods stayed for 40 minutes where 3 hold the records a 4 s write keeps in flight.)
		// A pause that alone takes the lag past the target would hold the size for good:
		// once no replica has changed for a stretched down window, at most half the
		// limit of it counts (one short breach, rather than the largest size forever).
		downPause := pause
		if in.now.Sub(latest(st.lastUp, st.lastDown)) >= burstStretch*b.down.window {
			downPause = min(pause, 0.5*b.drainTime())
		}
		fits := r
		for fits < in.replicas && !pauseFits(b, lag, fits, downPause) && float64(lag.seconds) <= b.inFlightAge() {
			fits++
		}
		if !pauseFits(b, lag, fits, downPause) {
			fits = in.replicas
		}
		if fits == in.replicas {
			return explain(in.replicas, p, fmt.Sprintf("; %d pods would do, but a %.0f s rebalance now would take the lag over its target", r, pause))
		}
		r = fits
		q, _ := leastFor(r, down*downMargin)
		return explain(r, max(q, min(p, useful)), "")
	}
	// At the fewest pods: less parallelism, when much less reaches the need.
	if q, ok := leastFor(in.replicas, down*downMargin); ok && float64(q) < float64(p)/1.5 && !slotsFull(lag.pods, p) {
		return explain(in.replicas, q, "")
	}
	return explain(in.replicas, p, "")
}

// neededBack is true when pods removed are needed back within the down window: the
// load has risen by half since they went (burstRise), past what the pods that stayed
// can do (by the capacity model, at the parallelism they run), and the lag is over its
// targets. (Held to the window, a group scaled down to 1 pod ten seconds before each
// burst of 8,000 records a second stayed at 1 pod, where 6 were called for, for 100 s
// of it: 50 s over a 30 s target each time, where the reference, which adds pods at
// once, was 10 s over.) At the load they went at, nothing brings them back: not the lag
// the scale-down's own rebalance leaves, nor jitter, nor a capacity learnt low from the
// minutes after it (a group draining a backlog went 17 → 5 → 9 → 5 → 9 pods on that).
// Nor does a lag that is not over its target yet: a burst that ends before new pods
// could join would have them held by the burst memory for nothing.
func neededBack(b scaleBounds, st scaleState, lag lagSnapshot, in scaleInput, consumers int32) bool {
	c := st.sizingCapacity()
	produce := in.lag.risenRate() // as produced: the lag within the ceilings sizes capped partitions at them
	if !c.known() || consumers == 0 || produce <= burstRise*st.downFor {
		return false
	}
	running := in.parallelism
	if q, ok := lowestRunning(lag.pods); ok {
		running = min(running, q)
	}
	if produce <= c.groupRate(consumers, running, lag.shape()) {
		return false
	}
	return overTarget(b, lag, consumers) >= 1
}

// burstRise: a latest poll's production this many times the window's is a burst
// beginning, not jitter.
const burstRise = 1.5

// downMargin is the spare capacity a smaller size must keep, on top of the headroom, for
// a scale-down: without it, ordinary jitter turns a scale-down into a scale-up.
const downMargin = 1.15

// smallestStepDown is the least share of the pods a scale-down removes while the load is
// still falling.
const smallestStepDown = 0.25

// raiseMargin is the spare capacity a raise of parallelism aims for.
const raiseMargin = 1.2

// raise is p raised by at least a quarter (within hi): a creep of small steps would count
// as many changes.
func raise(p, hi int32) int32 {
	return min(max(p+1, int32(math.Ceil(float64(p)*1.25))), hi)
}

// drainSeconds is how long a backlog takes to drain at rate while produce keeps coming.
func drainSeconds(backlog, rate, produce float64) float64 {
	if rate <= produce {
		return math.Inf(1)
	}
	return backlog / (rate - produce)
}

// pauseFits is true when r pods instead of the current ones leave the lag clearly within
// the targets: its age, with the rebalance pause added, under 0.8 of the seconds target
// (60 s without one), and the records waiting under half of what r pods are allowed —
// within it when they are records in flight: a lag whose oldest record is younger than a
// fifth of the seconds target (12 s without one) is what the pods have fetched and are
// writing, the same with any number of pods, so it needs no hysteresis against growing
// (held to half, it kept a group with seconds of records in flight at its largest size).
// The records a pause adds are not held against the records target: every change of
// members adds them for a few seconds, whatever the size. (Half the seconds target held a
// group whose rebalances take more than half of it at its largest size for good.) The
// age is the observer's estimate, which may be short by up to a poll interval.
func pauseFits(b scaleBounds, lag lagSnapshot, r int32, pause float64) bool {
	limit := b.drainTime()
	// Records in flight still count against what r pods are allowed, without the margin
	// a backlog needs: they stay, but do not grow.
	share := 1.0
	if float64(lag.seconds) > b.inFlightAge() {
		share = 0.5
	}
	if b.targetRecords > 0 && float64(lag.records) > share*float64(b.targetRecords)*float64(max(r, 1)) {
		return false
	}
	return float64(lag.seconds)+pause <= 0.8*limit
}

// lagOnFullSlots names the pod holding at least half of the lag when its report, measured
// wholly at parallelism p after since, shows its delivery slots full (90%), each doing
// what the model says a slot does (slots counted busy while the pod waits for bytes, not
// slots, would do less), and CPU enough for a quarter more (under 72%, known): a pod that
// more parallelism would speed up.
func lagOnFullSlots(lag lagSnapshot, c capacityModel, p int32, since time.Time) (string, bool) {
	if since.IsZero() || len(lag.pods) == 0 || lag.records == 0 {
		return "", false
	}
	top := 0
	for i, pl := range lag.pods {
		if pl.At.Before(since.Add(reportInterval)) {
			return "", false
		}
		if pl.lag > lag.pods[top].lag {
			top = i
		}
	}
	pl := lag.pods[top]
	perSlot := pl.Rate / (max(pl.Busy, 0.05) * max(pl.slots(), 1))
	if pl.Parallelism != p || pl.lag*2 < lag.records || pl.Busy < 0.9 || pl.CPU < 0 || pl.CPU*1.25 >= 0.9 ||
		perSlot < 0.7*c.perWorker {
		return "", false
	}
	return fmt.Sprintf("%s (%.0f%% of its slots, %.0f%% CPU)", pl.Pod, 100*pl.Busy, 100*pl.CPU), true
}

// unevenShown names the pod that holds at least half of the lag, over its target, with
// its delivery slots or its CPU full (90%), while its partitions received more of the
// production over the rate window than the shares give the busiest of consumers pods:
// the production is more uneven than the partitions that stand out as hot say, and a pod
// it weighs on sets the group's pace. (A partition with 2.9 times the others' share is not
// hot; with two others of its pod's, the pod carried 12% of a topic the model gave at
// most 7.7% a pod: 13 pods held at 8,000/s, sized for 12,000/s, 1,100 s over target.) Only
// reports measured wholly after the group settled count.
func unevenShown(b scaleBounds, lag lagSnapshot, consumers int32, settledAt time.Time) (string, bool) {
	if settledAt.IsZero() || consumers <= 0 || len(lag.flows) != lag.partitions || lag.records == 0 || overTarget(b, lag, consumers) <= 1 {
		return "", false
	}
	total := 0.0
	for _, f := range lag.flows {
		total += f.produceRate
	}
	if total <= 0 {
		return "", false
	}
	for _, pl := range lag.pods {
		if pl.At.Before(settledAt.Add(reportInterval)) {
			return "", false
		}
	}
	busiest := lag.shape().busiestShare(consumers)
	for _, pl := range lag.pods {
		if pl.lag*2 < lag.records || (pl.Busy < 0.9 && pl.CPU < 0.9) {
			continue
		}
		share := 0.0
		for _, id := range pl.ids {
			if id >= 0 && id < len(lag.flows) {
				share += lag.flows[id].produceRate / total
			}
		}
		if share > busiest {
			return fmt.Sprintf("%s holds the lag with %.0f%% of its slots, %.0f%% CPU, its partitions receiving %.1f%% of the production where the busiest of %s was expected to receive %.1f%%",
				pl.Pod, 100*pl.Busy, 100*max(pl.CPU, 0), 100*share, podCount(consumers), 100*busiest), true
		}
	}
	return "", false
}

// unevenText describes the shares sizing uses once the production was shown uneven.
func unevenText(shares []float64) string {
	least := 1.0
	for _, s := range shares {
		least = min(least, s)
	}
	var hot []string
	for id, s := range shares {
		if s > least {
			hot = append(hot, fmt.Sprintf("%d (%.1f%%)", id, 100*s))
		}
	}
	return "the production is uneven: sized with partitions " + strings.Join(hot, ", ") + " at their measured shares"
}

// latest is the later of two times.
func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// slotsFull reports whether a pod running parallelism p uses nearly all of its slots
// (90%): with less parallelism it would fall behind, whatever the share of the
// production the model gives its partitions says.
func slotsFull(pods []podLoad, p int32) bool {
	for _, pl := range pods {
		if pl.Parallelism == p && pl.Busy >= 0.9 {
			return true
		}
	}
	return false
}

// lagWithoutBusyPods says, when the reports show it, that the pods holding most of the
// lag use less than half of their delivery slots and of their CPU. Only reports measured
// wholly after the group settled count: one that spans a start or a rebalance shows a
// pod less busy than it is.
func lagWithoutBusyPods(pods []podLoad, settledAt time.Time) (string, bool) {
	if settledAt.IsZero() {
		return "", false
	}
	for _, pl := range pods {
		if pl.At.Before(settledAt.Add(reportInterval)) {
			return "", false
		}
	}
	var total int64
	for _, pl := range pods {
		total += pl.lag
	}
	if total == 0 {
		return "", false
	}
	var idle []string
	var idleLag int64
	for _, pl := range pods {
		if pl.lag*int64(len(pods)) < total { // holds less than its share
			continue
		}
		if pl.Busy >= 0.5 || pl.CPU >= 0.5 {
			return "", false
		}
		idle = append(idle, fmt.Sprintf("%s: %.0f%% of its slots, %.0f%% CPU", pl.Pod, 100*pl.Busy, 100*max(pl.CPU, 0)))
		idleLag += pl.lag
	}
	return strings.Join(idle, ", "), len(idle) > 0 && idleLag*2 >= total
}

// unmeasured is the recommendation while nothing says what a pod can consume: grow in
// proportion to the lag over target, pods first, then, with every pod there can be,
// parallelism; shrink one pod at a time, and only while one pod fewer would keep the lag
// under half its target (the lag in flight to storage does not shrink with more pods,
// so sizing on it alone would cycle between n and n−1).
func unmeasured(b scaleBounds, lag lagSnapshot, in scaleInput, p, least, maxR, consumers int32, ratio float64) scaleDecision {
	r := in.replicas
	switch {
	case ratio > 1:
		r = int32(math.Ceil(float64(max(consumers, 1)) * ratio))
		if in.replicas >= maxR && in.replicas > 0 {
			p = min(max(int32(math.Ceil(float64(p)*min(ratio, 2))), p), b.maxParallelism)
		}
	case in.replicas > least && overTarget(b, lag, consumers-1) < 0.5:
		r = in.replicas - 1
	}
	r = min(max(r, least), maxR)
	return scaleDecision{replicas: r, parallelism: p, reason: fmt.Sprintf("%.1f× the target, pod capacity not measured yet: %s at parallelism %d", ratio, podCount(r), p)}
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

// drainTime is how soon a backlog is to be drained, in seconds: the seconds target, or
// defaultDrainSeconds without one.
func (b scaleBounds) drainTime() float64 {
	if b.targetSeconds > 0 {
		return b.targetSeconds
	}
	return defaultDrainSeconds
}

// inFlightAge is the age up to which a lag is taken for records the pods have fetched and
// are writing (the same with any number of pods), not for a backlog: a fifth of the
// drain time.
func (b scaleBounds) inFlightAge() float64 { return 0.2 * b.drainTime() }

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

// recordsTargetOutOfReach says when the records target is below the records the pods
// keep in flight to storage (a lag younger than inFlightAge) even with as many consuming
// pods as the bounds allow: those records are the write latency times the rate, the same
// with any number of pods, so no size meets the target and every size is as far from it.
// (Sized for it, a group of 12 stayed at 12 for a load 2 keep up with, its reason saying
// the pods holding the lag were not busy.) A records target some size within the bounds
// meets is kept, however many pods that takes: the user asked for it.
func recordsTargetOutOfReach(b scaleBounds, lag lagSnapshot, maxR int32) (string, bool) {
	most := float64(b.targetRecords) * float64(max(min(maxR, int32(lag.partitions)), 1))
	if b.targetRecords == 0 || float64(lag.seconds) > b.inFlightAge() || float64(lag.records) <= outOfReachMargin*most {
		return "", false
	}
	// Young records come fast at the start of a burst too: in flight only while the group
	// keeps up with what comes.
	if iv := lag.lastPoll; iv.since.IsZero() || iv.produceRate > headroom*iv.consumeRate || lag.produceRate > headroom*lag.consumeRate {
		return "", false
	}
	return fmt.Sprintf("the records target is out of reach: %s records in flight to storage, over the %s that %s are allowed; sized for the lag's age (%.0f s)",
		count(float64(lag.records)), count(most), podCount(max(min(maxR, int32(lag.partitions)), 1)), b.drainTime()), true
}

// outOfReachMargin is how far the records in flight must be over what the most pods are
// allowed for the records target to be out of reach: at about the limit, as many as the
// bounds allow come near it, and jitter would flip the sizing from one poll to the next.
const outOfReachMargin = 1.25

// sizedByAge are the bounds without the records target, the lag's age held to the
// seconds target, or to the drain time without one.
func (b scaleBounds) sizedByAge() scaleBounds {
	b.targetSeconds = b.drainTime()
	b.targetRecords = 0
	return b
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
	drain := b.drainTime()
	// Behind, or falling behind (more produced over the last poll interval than consumed,
	// by more than the headroom), production that grew shows first in the last poll
	// interval: follow it at once. Otherwise the window's rate, which is steadier. (Only
	// behind the target once: after a step, the window's rate, a minute's average, called
	// for one pod more at each poll, each a rebalance, until the lag was over its target.)
	produce := lag.produceRate
	if overTarget(b, lag, consumers) > 1 || lag.lastPoll.produceRate > headroom*lag.lastPoll.consumeRate {
		produce = max(produce, lag.risenRate())
	}
	return produce*headroom + backlogAboveTargets(b, lag, consumers)/drain
}

// backlogAboveTargets is the lag above half of what the targets allow: of the records
// target, half of it for every consuming pod; of the seconds target, half of what each
// partition receives in that time, partition by partition where the window shows them.
// The seconds target holds for every record: a backlog on a few partitions is as old as
// it is long against what those partitions receive, not against what the topic receives
// (counted against the whole topic's production, the backlog of one slow pod's
// partitions was allowed to grow to five times the seconds target, never called a
// backlog to drain).
func backlogAboveTargets(b scaleBounds, lag lagSnapshot, consumers int32) float64 {
	keep := 0.0
	if allowed, ok := allowedRecords(b, lag, consumers); ok {
		keep = allowed / 2
	}
	above := max(float64(lag.records)-keep, 0)
	if b.targetSeconds > 0 && lag.produceRate > 0 && len(lag.flows) == lag.partitions && float64(lag.seconds) > b.targetSeconds {
		seconds := 0.0
		for _, f := range lag.flows {
			seconds += max(float64(f.records)-b.targetSeconds*f.produceRate/2, 0)
		}
		above = max(above, min(seconds, float64(lag.records)))
	}
	return above
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

// aboveUntil is when the last recommendation of more than replicas pods leaves a
// window of the given length; ok is false when there is none.
func aboveUntil(recs []scaleRecommendation, replicas int32, window time.Duration) (time.Time, bool) {
	var last time.Time
	for _, r := range recs {
		if r.replicas > replicas && r.at.After(last) {
			last = r.at
		}
	}
	return last.Add(window), !last.IsZero()
}

// parallelismAboveUntil is when the last recommendation of replicas pods at more than
// parallelism p leaves a window of the given length; ok is false when there is none.
func parallelismAboveUntil(recs []scaleRecommendation, replicas, p int32, window time.Duration) (time.Time, bool) {
	var last time.Time
	for _, r := range recs {
		if r.replicas == replicas && r.parallelism > p && r.at.After(last) {
			last = r.at
		}
	}
	return last.Add(window), !last.IsZero()
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

// podCount is "1 pod" or "n pods"; podsDo "1 pod does" or "n pods do".
func podCount(n int32) string {
	if n == 1 {
		return "1 pod"
	}
	return fmt.Sprintf("%d pods", n)
}

func podsDo(n int32) string {
	if n == 1 {
		return "1 pod does"
	}
	return fmt.Sprintf("%d pods do", n)
}
