package controllers

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// A deterministic simulation of a topic and an ingester Deployment, to compare the
// autoscaling policy with a reference that reproduces KEDA's Kafka scaler driving an HPA
// with its default behaviour. One tick is one second.

// simWorld is what does not change between scenarios.
type simWorld struct {
	name       string
	partitions int
	// workerRate is what one unit of parallelism consumes per second; podCeiling caps a
	// pod (its CPU), whatever its parallelism.
	workerRate, podCeiling float64
	// startup is how long a new pod takes to become ready; rebalance how long the whole
	// group stops consuming when a member joins or leaves.
	startup, rebalance int
	// targetSeconds is the freshness the user wants: the oldest unconsumed record younger
	// than this. It is what "over target" measures for both policies.
	targetSeconds int
}

// simWorlds are the consumers the policies are tried on: pods whose throughput grows with
// parallelism up to 2.5 times the start, and pods already near their CPU limit, where
// parallelism barely helps and only pods do.
func simWorlds() []simWorld {
	return []simWorld{
		{name: "parallelism helps", partitions: 12, workerRate: 10, podCeiling: 2500, startup: 15, rebalance: 3, targetSeconds: 30},
		{name: "CPU-bound pods", partitions: 12, workerRate: 10, podCeiling: 1150, startup: 15, rebalance: 3, targetSeconds: 30},
	}
}

// simScenario is a production pattern.
type simScenario struct {
	name        string
	seconds     int
	rate        func(t int) float64 // records per second produced at second t
	minReplicas int32
}

func simScenarios() []simScenario {
	return []simScenario{
		{name: "steady", seconds: 1800, minReplicas: 1, rate: func(int) float64 { return 3000 }},
		{name: "step ×5", seconds: 1800, minReplicas: 1, rate: func(t int) float64 {
			if t < 300 {
				return 1500
			}
			return 7500
		}},
		{name: "spike", seconds: 1800, minReplicas: 1, rate: func(t int) float64 {
			if t >= 600 && t < 660 {
				return 20000
			}
			return 2000
		}},
		{name: "diurnal", seconds: 3600, minReplicas: 1, rate: func(t int) float64 {
			return 4250 - 3750*math.Cos(2*math.Pi*float64(t)/1800)
		}},
		{name: "drop to zero", seconds: 1800, minReplicas: 0, rate: func(t int) float64 {
			if t < 600 || (t >= 1500 && t < 1560) {
				return 4000
			}
			return 0
		}},
	}
}

// simScaler is a policy under test: every second it may return a new size.
type simScaler interface {
	name() string
	// tick sees the offsets at second t and the Deployment, and returns the size to set.
	tick(t int, s offsetSample, dep simDeploymentView) (replicas, parallelism int32)
}

type simDeploymentView struct {
	replicas, parallelism int32
	settled               bool
}

type simPod struct {
	readyAt     int
	parallelism int32
}

// simResult is what the table reports.
type simResult struct {
	peakLag         int64
	overTarget      int // seconds with the oldest unconsumed record older than the target
	drain           int // seconds from the peak of the lag to it being under 5 s of age
	replicaSeconds  int // pods existing (starting or ready), summed over seconds
	changes         int // sizes set that differ from the previous one
	maxParallelism  int32
	maxReplicasUsed int32
}

// simulate runs one scenario under one policy.
func simulate(w simWorld, sc simScenario, scaler simScaler, startParallelism int32) simResult {
	parts := w.partitions
	produced := make([]float64, parts)
	consumed := make([]float64, parts)
	history := make([][]float64, parts) // cumulative produced at the end of each second
	wantR, wantP := max(sc.minReplicas, 1), startParallelism
	pods := []simPod{}
	for range wantR {
		pods = append(pods, simPod{readyAt: 0, parallelism: wantP})
	}
	members := ""
	pausedUntil := 0
	var res simResult
	peakAt := 0
	drained := -1

	for t := 0; t < sc.seconds; t++ {
		// Production, spread evenly over the partitions.
		r := sc.rate(t)
		for i := range parts {
			produced[i] += r / float64(parts)
			history[i] = append(history[i], produced[i])
		}

		// The Deployment controller: maxSurge 1, maxUnavailable 0.
		pods = rollDeployment(pods, t, wantR, wantP, w.startup)
		var ready []simPod
		for _, p := range pods {
			if p.readyAt <= t {
				ready = append(ready, p)
			}
		}
		// A change of members rebalances the group.
		if m := fmt.Sprint(ready); m != members {
			members = m
			pausedUntil = t + w.rebalance
		}
		// Consumption: partition i goes to ready pod i mod n; a pod shares its capacity
		// among its partitions, giving what one cannot use to the others.
		if t >= pausedUntil && len(ready) > 0 {
			for pi, pod := range ready {
				var mine []int
				for i := pi; i < parts; i += len(ready) {
					mine = append(mine, i)
				}
				capacity := min(float64(pod.parallelism)*w.workerRate, w.podCeiling)
				fill(mine, produced, consumed, capacity)
			}
		}

		// Measurements.
		var lag int64
		age := 0
		for i := range parts {
			backlog := int64(produced[i]) - int64(consumed[i])
			lag += backlog
			if backlog > 0 {
				// The oldest unconsumed record was produced in the first second whose
				// cumulative production passed the consumed offset.
				k := sort.SearchFloat64s(history[i], consumed[i]+1e-9)
				age = max(age, t-k)
			}
		}
		if lag > res.peakLag {
			res.peakLag, peakAt, drained = lag, t, -1
		}
		if drained < 0 && t > peakAt && age <= 5 {
			drained = t
		}
		if age > w.targetSeconds {
			res.overTarget++
		}
		res.replicaSeconds += len(pods)
		res.maxReplicasUsed = max(res.maxReplicasUsed, int32(len(pods)))
		res.maxParallelism = max(res.maxParallelism, wantP)

		// The policy looks.
		sample := offsetSample{at: time.Unix(int64(t), 0), partitions: map[int]partitionOffsets{}}
		for i := range parts {
			sample.partitions[i] = partitionOffsets{start: 0, end: int64(produced[i]), committed: int64(consumed[i])}
		}
		settled := len(pods) == int(wantR) && len(ready) == len(pods)
		for _, p := range pods {
			settled = settled && p.parallelism == wantP
		}
		nr, np := scaler.tick(t, sample, simDeploymentView{replicas: wantR, parallelism: wantP, settled: settled})
		if nr != wantR || np != wantP {
			res.changes++
			wantR, wantP = nr, np
		}
	}
	if drained >= 0 {
		res.drain = drained - peakAt
	} else {
		res.drain = sc.seconds - peakAt
	}
	return res
}

// fill consumes up to capacity from the partitions, evenly, passing on what a drained
// partition leaves unused.
func fill(mine []int, produced, consumed []float64, capacity float64) {
	for len(mine) > 0 && capacity > 1e-9 {
		share := capacity / float64(len(mine))
		var left []int
		for _, i := range mine {
			backlog := math.Floor(produced[i]) - consumed[i]
			take := min(share, max(backlog, 0))
			consumed[i] += take
			capacity -= take
			if backlog > take {
				left = append(left, i)
			}
		}
		if len(left) == len(mine) {
			return
		}
		mine = left
	}
}

// rollDeployment moves the pods one second towards replicas pods of parallelism p, the
// way a Deployment with maxSurge 1 and maxUnavailable 0 does.
func rollDeployment(pods []simPod, t int, replicas, p int32, startup int) []simPod {
	var current, old []simPod
	for _, pod := range pods {
		if pod.parallelism == p {
			current = append(current, pod)
		} else {
			old = append(old, pod)
		}
	}
	readyCount := func() int {
		n := 0
		for _, pod := range current {
			if pod.readyAt <= t {
				n++
			}
		}
		for _, pod := range old {
			if pod.readyAt <= t {
				n++
			}
		}
		return n
	}
	// Old pods go as soon as enough ready pods remain without them.
	for len(old) > 0 && (readyCount()-1 >= int(replicas) || len(old)+len(current) > int(replicas)+1) {
		old = old[:len(old)-1]
	}
	// Surplus current pods go, those not ready first (the newest).
	for len(current) > int(replicas) {
		current = current[:len(current)-1]
	}
	// New pods come, one beyond the replicas while old ones remain.
	limit := int(replicas)
	if len(old) > 0 {
		limit++
	}
	for len(current) < int(replicas) && len(current)+len(old) < limit {
		current = append(current, simPod{readyAt: t + startup, parallelism: p})
	}
	return append(current, old...)
}

// spanflowSim runs the policy the operator runs: polls every interval into the lag
// observer's window, decides on every poll.
type spanflowSim struct {
	bounds   scaleBounds
	interval int
	window   []offsetSample
	state    scaleState
}

func (s *spanflowSim) name() string { return "spanflow" }

func (s *spanflowSim) tick(t int, sample offsetSample, dep simDeploymentView) (int32, int32) {
	if t%s.interval != 0 {
		return dep.replicas, dep.parallelism
	}
	s.window = append(s.window, sample)
	if len(s.window) > 30 {
		s.window = s.window[1:]
	}
	snap := computeLag(s.window, true)
	d, st := decideScale(s.bounds, s.state, scaleInput{now: sample.at, lag: snap, known: true,
		replicas: dep.replicas, parallelism: dep.parallelism, settled: dep.settled})
	s.state = st
	return d.replicas, d.parallelism
}

// kedaSim reproduces KEDA's Kafka scaler under an HPA with default behaviour: the lag is
// read every pollingInterval (30 s); every 15 s the HPA wants ceil(lag / lagThreshold)
// pods (within 10% tolerance, capped at the partitions), scales up by at most
// max(100%, 4 pods) per 15 s, and down to the highest recommendation of the last 300 s.
// KEDA itself takes the group from 0 to 1 pod when lag appears, and back to 0 after the
// cooldown period (300 s) without lag.
type kedaSim struct {
	lagThreshold   float64
	minReplicas    int32
	maxReplicas    int32
	lag            int64
	lastActive     int
	recommendation []scaleRecommendation
}

func (k *kedaSim) name() string { return "KEDA+HPA" }

func (k *kedaSim) tick(t int, sample offsetSample, dep simDeploymentView) (int32, int32) {
	if t%30 == 0 {
		k.lag = 0
		for _, p := range sample.partitions {
			k.lag += partitionLag(p, true)
		}
	}
	if k.lag > 0 {
		k.lastActive = t
	}
	cur := dep.replicas
	if cur == 0 {
		if k.lag > 0 {
			return 1, dep.parallelism
		}
		return 0, dep.parallelism
	}
	if k.minReplicas == 0 && t-k.lastActive >= 300 {
		return 0, dep.parallelism
	}
	if t%15 != 0 {
		return cur, dep.parallelism
	}
	desired := cur
	ratio := float64(k.lag) / (k.lagThreshold * float64(cur))
	if math.Abs(ratio-1) > 0.1 {
		desired = int32(math.Ceil(float64(k.lag) / k.lagThreshold))
	}
	desired = min(max(desired, max(k.minReplicas, 1)), k.maxReplicas)
	now := time.Unix(int64(t), 0)
	k.recommendation = append(since(k.recommendation, now.Add(-300*time.Second), func(r scaleRecommendation) time.Time { return r.at }),
		scaleRecommendation{at: now, replicas: desired})
	if desired < cur {
		for _, r := range k.recommendation {
			desired = max(desired, r.replicas)
		}
		desired = min(desired, cur)
	}
	if desired > cur {
		desired = min(desired, max(2*cur, cur+4))
	}
	return desired, dep.parallelism
}

// simPolicies returns the two policies set up alike for a scenario.
func simPolicies(w simWorld, sc simScenario) (*spanflowSim, *kedaSim) {
	const lagThreshold = 5000
	sf := &spanflowSim{interval: 10, bounds: scaleBounds{
		minReplicas: sc.minReplicas, maxReplicas: int32(w.partitions),
		minParallelism: 100, maxParallelism: 400,
		targetRecords: lagThreshold, targetSeconds: float64(w.targetSeconds),
		up:       scaleRules{period: defaultScalePeriod},
		down:     scaleRules{window: defaultScaleDownWindow, period: defaultScalePeriod},
		cooldown: defaultCooldown,
	}}
	keda := &kedaSim{lagThreshold: lagThreshold, minReplicas: sc.minReplicas, maxReplicas: int32(w.partitions)}
	return sf, keda
}

// simTable runs every scenario under both policies and renders the comparison.
func simTable(w simWorld) (string, map[string][2]simResult) {
	var b strings.Builder
	results := map[string][2]simResult{}
	fmt.Fprintf(&b, "| scenario | policy | peak lag (records) | s over %ds target | drain (s) | replica-s | changes | max pods × parallelism |\n", w.targetSeconds)
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---|\n")
	for _, sc := range simScenarios() {
		sf, keda := simPolicies(w, sc)
		var pair [2]simResult
		for i, pol := range []simScaler{sf, keda} {
			r := simulate(w, sc, pol, 100)
			pair[i] = r
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %d × %d |\n", sc.name, pol.name(), r.peakLag, r.overTarget, r.drain,
				r.replicaSeconds, r.changes, r.maxReplicasUsed, r.maxParallelism)
		}
		results[sc.name] = pair
	}
	return b.String(), results
}
