package autoscale

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spanflow/spanflow/ingester/loadreport"
)

// A deterministic simulation of a topic and an ingester Deployment, to compare the
// autoscaling policy with a reference that reproduces KEDA's Kafka scaler driving an HPA
// with its default behaviour. One tick is one second. The worlds vary what the policy
// cannot know in advance: how long records take to reach storage, how long a rebalance
// stops the group, how long a pod takes to start, what a pod, a partition and a unit of
// parallelism can do, and whether one partition gets much more than its share.

// simWorld is what does not change between scenarios.
type simWorld struct {
	name       string
	partitions int
	// workerRate is what one unit of parallelism consumes per second (a storage write's
	// latency bounds it); podCeiling caps a pod (its CPU), whatever its parallelism;
	// partitionCap caps one partition (0: none).
	workerRate, podCeiling, partitionCap float64
	// startup is how long a new pod takes to become ready; rebalance how long the whole
	// group stops consuming when a member joins or leaves; delay how long a record is in
	// flight to storage before its offset is committed; propagation how long a new
	// parallelism takes to reach the running pods (the kubelet's ConfigMap refresh).
	startup, rebalance, delay, propagation int
	// hotShare is the share of production that goes to each hot partition (0: an even
	// share): partition 0, or those hot lists.
	hotShare float64
	hot      []int
	// rangeDealt deals the partitions to the pods as kafka-go's range balancer does (the
	// ingester's): contiguous runs. Otherwise round-robin.
	rangeDealt bool
	// targetSeconds and targetRecords are the user's targets (0: not set): the oldest
	// unconsumed record younger than targetSeconds, fewer than targetRecords a consuming pod.
	// "Over target" is measured against targetSeconds, or against 60 s without it.
	targetSeconds, targetRecords int
	// minParallelism, maxParallelism bound the policy's lever; KEDA runs at the start.
	startParallelism, minParallelism, maxParallelism int32
	// jitter varies production by up to that share either way, at random every 20 s, and
	// reportNoise each load report's busy and CPU shares: what a real topic and a real
	// pod's measurement do, which a policy must not take for a change of load.
	jitter, reportNoise float64
	// slowPod is the speed of the Deployment's first pod against the others', in slots and
	// CPU alike — a bad node, a noisy neighbour — until slowUntil (0: for good); 0 or 1:
	// every pod alike. The first pod is the oldest (a scale-down never removes it; after a
	// scale to zero, the first to start again, as on the same node). Its load reports say
	// so as the ingester's would: its own busy and CPU shares and its rate.
	slowPod   float64
	slowUntil int
}

// speedOf is the speed of the i-th pod of the Deployment (0: the first) at second t.
func (w simWorld) speedOf(i, t int) float64 {
	if i == 0 && w.slowPod > 0 && (w.slowUntil == 0 || t < w.slowUntil) {
		return w.slowPod
	}
	return 1
}

// simWorlds are the worlds every policy is judged in.
func simWorlds() []simWorld {
	base := simWorld{partitions: 12, workerRate: 10, podCeiling: 2500, startup: 15, rebalance: 3, propagation: 40,
		targetSeconds: 30, targetRecords: 5000, startParallelism: 100, minParallelism: 100, maxParallelism: 400}
	vary := func(name string, f func(*simWorld)) simWorld {
		w := base
		w.name = name
		f(&w)
		return w
	}
	return []simWorld{
		vary("parallelism helps", func(*simWorld) {}),
		vary("CPU-bound pods", func(w *simWorld) { w.podCeiling = 1150 }),
		vary("latency-bound storage, 24 partitions", func(w *simWorld) {
			w.partitions, w.workerRate, w.podCeiling, w.minParallelism, w.maxParallelism, w.startParallelism = 24, 5, 20000, 50, 800, 100
		}),
		vary("3 s in flight", func(w *simWorld) { w.delay = 3 }),
		vary("slow rebalance and start", func(w *simWorld) { w.rebalance, w.startup = 10, 60 }),
		vary("20 s rebalances, 90 s starts", func(w *simWorld) { w.rebalance, w.startup, w.propagation = 20, 90, 60 }),
		vary("fast pods, slow start", func(w *simWorld) { w.workerRate, w.podCeiling, w.startup, w.delay = 30, 6000, 45, 1 }),
		vary("hot partition", func(w *simWorld) { w.partitions, w.hotShare, w.partitionCap = 24, 0.2, 1500 }),
		vary("records target only", func(w *simWorld) { w.targetSeconds = 0 }),
		vary("seconds target only", func(w *simWorld) { w.targetRecords = 0 }),
		vary("fixed parallelism", func(w *simWorld) { w.minParallelism, w.maxParallelism = 100, 100 }),
		vary("noisy production and reports", func(w *simWorld) { w.jitter, w.reportNoise = 0.3, 0.25 }),
	}
}

// simMatrixSpec is a matrix of worlds and scenarios.
type simMatrixSpec struct {
	name      string
	worlds    []simWorld
	scenarios []simScenario
}

// simMatrices are the matrices the policy is judged on: the worlds above on their own
// partitions with the scenarios' own lengths (diurnal load an hour, the others half an
// hour), and each of them on 24 partitions with every scenario an hour (the shape of the
// independent simulation the policy was first tried in), all dealt round-robin; and the
// worlds again with the partitions dealt as the ingester's balancer deals them (the
// policy sizes for whichever of the common dealings makes the busiest pod). The hot
// partition's world has 24 partitions already: its diurnal cell is the same in the first
// two.
func simMatrices() []simMatrixSpec {
	var wide []simWorld
	for _, w := range simWorlds() {
		w.partitions = max(w.partitions, 24)
		wide = append(wide, w)
	}
	var hour []simScenario
	for _, sc := range simScenarios() {
		sc.seconds = 3600
		hour = append(hour, sc)
	}
	var ranged []simWorld
	for _, w := range simWorlds() {
		w.rangeDealt = true
		ranged = append(ranged, w)
	}
	return []simMatrixSpec{
		{name: "matrix", worlds: simWorlds(), scenarios: simScenarios()},
		{name: "24 partitions, an hour", worlds: wide, scenarios: hour},
		{name: "dealt as kafka-go's range balancer", worlds: ranged, scenarios: simScenarios()},
	}
}

// simSlowPodMatrices are the worlds of one pod slower than the others (a bad node, a noisy
// neighbour), judged apart from the matrices: there the reference never catches up (at its
// fixed parallelism the slow pod falls behind even on a partition of its own), so fewer
// changes and half its replica-seconds say little; their goals are in TestSlowPod. A pod
// 5× slower on 24 partitions, for good or for the first 10 minutes (then as fast as the
// others; on 12 partitions a pod 5× slower cannot keep up with one partition at the
// step's or the diurnal peak's production, whatever the size), and 2× slower on 12, also
// with the noisy world's production and reports.
func simSlowPodMatrices() []simMatrixSpec {
	worlds := simWorlds()
	vary := func(w simWorld, name string, f func(*simWorld)) simWorld {
		w.name = name
		f(&w)
		return w
	}
	var hour []simScenario
	for _, sc := range simScenarios() {
		sc.seconds = 3600
		hour = append(hour, sc)
	}
	return []simMatrixSpec{
		{name: "one slow pod, 24 partitions, an hour", scenarios: hour, worlds: []simWorld{
			vary(worlds[0], "one pod 5× slower", func(w *simWorld) { w.partitions, w.slowPod = 24, 0.2 }),
			vary(worlds[0], "one pod 5× slower for 10 minutes", func(w *simWorld) { w.partitions, w.slowPod, w.slowUntil = 24, 0.2, 600 }),
		}},
		{name: "one slow pod", scenarios: simScenarios(), worlds: []simWorld{
			vary(worlds[0], "one pod 2× slower", func(w *simWorld) { w.slowPod = 0.5 }),
			vary(worlds[11], "one pod 2× slower, noisy production and reports", func(w *simWorld) { w.slowPod = 0.5 }),
		}},
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
	name    string
	readyAt int
	// consumed is what the pod consumed in each of the last seconds, slots what it could
	// have at the parallelism it ran then, ceiling what its CPU allowed, and parallelism
	// that parallelism, for its report (which, as the ingester does, counts slot-time at
	// the parallelism in effect).
	consumed, slots, ceiling, parallelism []float64
}

// reversalLoadChange is how much the load must change between two replica changes for
// the second to reverse the first without counting as a reversal.
const reversalLoadChange = 1.5

// reversalSeen is how long before a change the load it was made on goes back: the
// policy's poll interval.
const reversalSeen = 10

// simResult is what the table reports.
type simResult struct {
	peakLag        int64
	overTarget     int // seconds with the oldest unconsumed record older than the target
	drain          int // seconds from the peak of the lag to it being under 5 s of age
	replicaSeconds int // pods existing (starting or ready), summed over seconds
	workerSeconds  int // parallelism of the existing pods, summed over seconds
	changes        int // sizes set that differ from the previous one
	replicaChanges int
	// reversals are replica changes against the direction of one within the down window
	// without the load having moved that way by reversalLoadChange: flapping. (Pods
	// removed and needed back for a burst are not: held back for the window, a group left
	// at 1 pod where 6 were called for stayed so for 100 s of the burst.)
	reversals       int
	maxParallelism  int32
	maxReplicasUsed int32
	// consumersOverPartitions is the seconds with more consuming pods than partitions.
	consumersOverPartitions int
	// smallRaises are parallelism changes alone by less than a tenth: noise.
	smallRaises int
	// cutsBehind are parallelism cuts in running pods with the oldest record over the
	// target: capacity taken away when it is needed most.
	cutsBehind int
}

// share is partition i's share of the production.
func (w simWorld) share(i int) float64 {
	if w.hotShare == 0 {
		return 1 / float64(w.partitions)
	}
	hot := w.hot
	if len(hot) == 0 {
		hot = []int{0}
	}
	if slices.Contains(hot, i) {
		return w.hotShare
	}
	return (1 - w.hotShare*float64(len(hot))) / float64(w.partitions-len(hot))
}

// partitionsOf is the partitions the k-th of n ready pods consumes: dealt round-robin, or
// as kafka-go's range balancer (the ingester's) deals them when rangeDealt.
func (w simWorld) partitionsOf(k, n int) []int {
	var mine []int
	if w.rangeDealt {
		for p := k * w.partitions / n; p < (k+1)*w.partitions/n; p++ {
			mine = append(mine, p)
		}
		return mine
	}
	for p := k; p < w.partitions; p += n {
		mine = append(mine, p)
	}
	return mine
}

// overTargetSeconds is the age over which a second counts as over target.
func (w simWorld) overTargetSeconds() int {
	if w.targetSeconds > 0 {
		return w.targetSeconds
	}
	return 60
}

// simulate runs one scenario under one policy.
func simulate(w simWorld, sc simScenario, scaler simScaler) simResult {
	parts := w.partitions
	produced := make([]float64, parts)
	consumed := make([]float64, parts)
	history := make([][]float64, parts)    // cumulative produced at the end of each second
	consumedAt := make([][]float64, parts) // cumulative consumed at the end of each second
	wantR, wantP := max(sc.minReplicas, 1), w.startParallelism
	runningP := wantP // the parallelism the pods run
	pendingP, pendingAt := wantP, 0
	nextPod := 0
	newPod := func(readyAt int) simPod {
		nextPod++
		return simPod{name: fmt.Sprintf("pod-%d", nextPod), readyAt: readyAt}
	}
	pods := []simPod{}
	for range wantR {
		pods = append(pods, newPod(0))
	}
	members := ""
	pausedUntil := 0
	rebalanced := false
	var res simResult
	peakAt := 0
	drained := -1
	lastUp, lastDown := -1_000_000, -1_000_000
	reports := map[string]*loadreport.Report{}
	owner := make([]string, parts)

	// The same production for every policy; the reports' noise from a source of its own.
	jitter := rand.New(rand.NewPCG(1, uint64(sc.seconds)))
	noise := rand.New(rand.NewPCG(2, 0))
	swing := 1.0
	for t := 0; t < sc.seconds; t++ {
		// Production: the hot partitions take hotShare each, the rest an even share of
		// what is left.
		if t%20 == 0 {
			swing = 1 + w.jitter*(2*jitter.Float64()-1)
		}
		r := sc.rate(t) * swing
		for i := range parts {
			produced[i] += r * w.share(i)
			history[i] = append(history[i], produced[i])
		}
		// A new parallelism reaches the running pods after the propagation delay.
		if pendingP != runningP && t >= pendingAt+w.propagation {
			runningP = pendingP
		}

		// The Deployment controller adds and removes pods.
		pods = scaleDeployment(pods, wantR, func() simPod { return newPod(t + w.startup) })
		var ready []int
		for i, p := range pods {
			if p.readyAt <= t {
				ready = append(ready, i)
			}
		}
		// A change of members rebalances the group.
		names := make([]string, len(ready))
		for k, i := range ready {
			names[k] = pods[i].name
		}
		if m := strings.Join(names, ","); m != members {
			if members != "" || len(ready) > 0 {
				rebalanced = rebalanced || members != ""
			}
			members = m
			pausedUntil = t + w.rebalance
		}
		if len(ready) > parts {
			res.consumersOverPartitions++
		}
		// Consumption: the partitions dealt to the ready pods (partitionsOf); a pod shares
		// its capacity among its partitions, giving what one cannot use to the others.
		capacity := min(float64(runningP)*w.workerRate, w.podCeiling)
		for _, i := range ready {
			pods[i].consumed = append(pods[i].consumed, 0)
			pods[i].slots = append(pods[i].slots, capacity*w.speedOf(i, t))
			pods[i].ceiling = append(pods[i].ceiling, w.podCeiling*w.speedOf(i, t))
			pods[i].parallelism = append(pods[i].parallelism, float64(runningP))
		}
		if t >= pausedUntil && len(ready) > 0 {
			for k, i := range ready {
				mine := w.partitionsOf(k, len(ready))
				for _, p := range mine {
					owner[p] = pods[i].name
				}
				pods[i].consumed[len(pods[i].consumed)-1] = fill(mine, produced, consumed, capacity*w.speedOf(i, t), w.partitionCap)
			}
		}
		for i := range parts {
			consumedAt[i] = append(consumedAt[i], consumed[i])
		}

		// Measurements, of what is consumed (not what is committed).
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
		if age > w.overTargetSeconds() {
			res.overTarget++
		}
		res.replicaSeconds += len(pods)
		res.workerSeconds += len(pods) * int(runningP)
		res.maxReplicasUsed = max(res.maxReplicasUsed, int32(len(pods)))
		res.maxParallelism = max(res.maxParallelism, runningP)

		// Every 10 s each ready pod reports its load, as the ingester does in its commits.
		if t%10 == 0 {
			for _, i := range ready {
				p := &pods[i]
				from := max(len(p.consumed)-10, 0)
				if from == len(p.consumed) {
					continue
				}
				total, slots, parallelism, ceiling := 0.0, 0.0, 0.0, 0.0
				for k := from; k < len(p.consumed); k++ {
					total, slots, parallelism, ceiling = total+p.consumed[k], slots+p.slots[k], parallelism+p.parallelism[k], ceiling+p.ceiling[k]
				}
				seconds := float64(len(p.consumed) - from)
				rate := total / seconds
				off := 1 + w.reportNoise*(2*noise.Float64()-1)
				rep := &loadreport.Report{Pod: p.name, At: time.Unix(int64(t), 0), Parallelism: runningP, Slots: parallelism / seconds,
					Busy: min(total/slots*off, 1), CPU: min(rate/(ceiling/seconds)*off, 1), Rate: rate}
				if rebalanced {
					rep.Pause = time.Duration(w.rebalance) * time.Second
				}
				for id, name := range owner { // as the ingester does, the partitions it holds
					if name == p.name {
						rep.Partitions = append(rep.Partitions, id)
					}
				}
				reports[p.name] = rep
			}
		}

		// The policy looks at committed offsets: consumption delay seconds ago.
		sample := offsetSample{at: time.Unix(int64(t), 0), partitions: map[int]partitionOffsets{}}
		for i := range parts {
			committed := 0.0
			if k := t - w.delay; k >= 0 {
				committed = consumedAt[i][k]
			}
			sample.partitions[i] = partitionOffsets{start: 0, end: int64(produced[i]), committed: int64(committed), report: reports[owner[i]]}
		}
		settled := len(pods) == int(wantR) && len(ready) == len(pods)
		nr, np := scaler.tick(t, sample, simDeploymentView{replicas: wantR, parallelism: wantP, settled: settled})
		if nr != wantR || np != wantP {
			res.changes++
		}
		if nr == wantR && np > wantP && float64(np) < 1.1*float64(wantP) {
			res.smallRaises++
		}
		if np < wantP && wantR > 0 && age > w.overTargetSeconds() {
			res.cutsBehind++
		}
		if nr != wantR {
			res.replicaChanges++
			const downWindow = int(defaultScaleDownWindow / time.Second)
			// The load is the scenario's, before jitter: a change of it is the world's,
			// which a policy follows; without it, the policy undid its own decision. Each
			// change was made on the poll interval before it, and is judged by the most
			// load that interval held: pods come back for a load that rose by half since
			// they went, and go for one that fell by half since they came.
			peak := func(at int) float64 {
				most := 0.0
				for s := max(at-reversalSeen, 0); s <= at; s++ {
					most = max(most, sc.rate(s))
				}
				return most
			}
			switch {
			case nr > wantR && t-lastDown < downWindow && peak(t) <= reversalLoadChange*peak(lastDown):
				res.reversals++
			case nr < wantR && t-lastUp < downWindow && reversalLoadChange*peak(t) >= peak(lastUp):
				res.reversals++
			}
			if nr > wantR {
				lastUp = t
			} else {
				lastDown = t
			}
			wantR = nr
		}
		if np != wantP {
			wantP, pendingP, pendingAt = np, np, t
		}
	}
	if drained >= 0 {
		res.drain = drained - peakAt
	} else {
		res.drain = sc.seconds - peakAt
	}
	return res
}

// fill consumes up to capacity from the partitions, evenly, each at most partitionCap (0:
// no cap), passing on what a drained partition leaves unused. It returns what it consumed.
func fill(mine []int, produced, consumed []float64, capacity, partitionCap float64) float64 {
	took := make(map[int]float64, len(mine))
	total := 0.0
	for len(mine) > 0 && capacity > 1e-9 {
		share := capacity / float64(len(mine))
		var left []int
		for _, i := range mine {
			backlog := math.Floor(produced[i]) - consumed[i]
			room := backlog
			if partitionCap > 0 {
				room = min(room, partitionCap-took[i])
			}
			take := min(share, max(room, 0))
			consumed[i] += take
			took[i] += take
			capacity -= take
			total += take
			if room > take {
				left = append(left, i)
			}
		}
		if len(left) == len(mine) {
			break
		}
		mine = left
	}
	return total
}

// leastReplicaSeconds is a lower bound of the replica-seconds of any policy that keeps
// up: every second, the fewest pods each of which (partitions assigned as the
// simulation assigns them, each capped) consumes its share of that second's production
// at the most the world lets that pod do — no headroom, no backlog, no start or rebalance.
// Where it is over half the reference's, no policy uses half of the reference's pods and
// keeps up.
func leastReplicaSeconds(w simWorld, sc simScenario) int {
	podMost := min(float64(w.maxParallelism)*w.workerRate, w.podCeiling)
	total := 0
	for t := 0; t < sc.seconds; t++ {
		r := sc.rate(t)
		if r <= 0 {
			continue
		}
		n := 1
		for ; n < w.partitions; n++ {
			keeps := true
			for k := range n {
				load := 0.0
				for _, p := range w.partitionsOf(k, n) {
					share := w.share(p)
					if w.partitionCap > 0 {
						load += min(share*r, w.partitionCap)
					} else {
						load += share * r
					}
				}
				keeps = keeps && load <= podMost*w.speedOf(k, t)
			}
			if keeps {
				break
			}
		}
		total += n
	}
	return total
}

// scaleDeployment moves the pods to replicas: new ones start, surplus ones go (those not
// ready first, the newest). The parallelism is not in the pod template: it never rolls them.
func scaleDeployment(pods []simPod, replicas int32, start func() simPod) []simPod {
	for len(pods) > int(replicas) {
		pods = pods[:len(pods)-1]
	}
	for len(pods) < int(replicas) {
		pods = append(pods, start())
	}
	return pods
}

// spanflowSim runs the policy the operator runs: polls every interval into the lag
// observer's window, decides on every poll.
type spanflowSim struct {
	bounds   scaleBounds
	interval int
	window   []offsetSample
	oldest   oldestRecords // as the lag observer remembers them
	state    scaleState
	// log, if set, is told every decision that changes the size.
	log func(t int, reason string)
	// slowPolls counts the polls after which the policy took a pod for slow.
	slowPolls int
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
	if s.oldest == nil {
		s.oldest = oldestRecords{}
	}
	snap := computeLagRemembering(s.window, true, s.oldest)
	d, st := decideScale(s.bounds, s.state, scaleInput{now: sample.at, lag: snap, known: true,
		replicas: dep.replicas, parallelism: dep.parallelism, settled: dep.settled})
	s.state = st
	if _, ok := slowest(st.speeds); ok {
		s.slowPolls++
	}
	if s.log != nil && (d.replicas != dep.replicas || d.parallelism != dep.parallelism || strings.Contains(d.reason, "holding")) {
		s.log(t, d.reason)
	}
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

// simPolicies returns the two policies set up alike for a world and a scenario: KEDA's
// lag threshold is the records target (5,000 without one, its documented default is 10).
func simPolicies(w simWorld, sc simScenario) (*spanflowSim, *kedaSim) {
	threshold := w.targetRecords
	if threshold == 0 {
		threshold = 5000
	}
	sf := &spanflowSim{interval: 10, bounds: scaleBounds{
		minReplicas: sc.minReplicas, maxReplicas: int32(w.partitions),
		minParallelism: w.minParallelism, maxParallelism: w.maxParallelism,
		targetRecords: int64(w.targetRecords), targetSeconds: float64(w.targetSeconds),
		up:       scaleRules{period: defaultScalePeriod},
		down:     scaleRules{window: defaultScaleDownWindow, period: defaultScalePeriod},
		cooldown: defaultCooldown,
	}}
	keda := &kedaSim{lagThreshold: float64(threshold), minReplicas: sc.minReplicas, maxReplicas: int32(w.partitions)}
	return sf, keda
}

// simCell is one scenario in one world: the policy's result, the reference's, and the
// lower bound of the replica-seconds of any policy that keeps up.
type simCell struct {
	spanflow, reference simResult
	leastReplicaSeconds int
	// slowPolls is the polls after which the policy took a pod for slow.
	slowPolls int
}

// replicaShare is the policy's replica-seconds as a share of the reference's, and the
// lower bound's.
func (c simCell) replicaShare() (policy, least float64) {
	ref := float64(c.reference.replicaSeconds)
	return float64(c.spanflow.replicaSeconds) / ref, float64(c.leastReplicaSeconds) / ref
}

// simTable runs every scenario under both policies and renders the comparison.
func simTable(w simWorld, scenarios []simScenario) (string, map[string]simCell) {
	var b strings.Builder
	cells := map[string]simCell{}
	fmt.Fprintf(&b, "| scenario | policy | peak lag | s over %ds | drain (s) | replica-s | worker-s | changes (replicas) | max pods × parallelism |\n", w.overTargetSeconds())
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, sc := range scenarios {
		sf, keda := simPolicies(w, sc)
		var pair [2]simResult
		for i, pol := range []simScaler{sf, keda} {
			r := simulate(w, sc, pol)
			pair[i] = r
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %d (%d) | %d × %d |\n", sc.name, pol.name(), r.peakLag, r.overTarget, r.drain,
				r.replicaSeconds, r.workerSeconds, r.changes, r.replicaChanges, r.maxReplicasUsed, r.maxParallelism)
		}
		least := leastReplicaSeconds(w, sc)
		fmt.Fprintf(&b, "| %s | fewest pods keeping up | | | | %d | | | |\n", sc.name, least)
		cells[sc.name] = simCell{spanflow: pair[0], reference: pair[1], leastReplicaSeconds: least, slowPolls: sf.slowPolls}
	}
	return b.String(), cells
}

// simMatrix renders the whole matrix in one table, a row a world: each goal summed over
// the scenarios (spanflow / the reference), and the replica-seconds on steady and
// diurnal load as shares of the reference's, with the lower bound's share beside them.
func simMatrix(m simMatrixSpec) string {
	var b strings.Builder
	b.WriteString("| world | s over target | replica changes | parallelism changes | replica-s, steady (least) | replica-s, diurnal (least) |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	for _, w := range m.worlds {
		_, cells := simTable(w, m.scenarios)
		var over, refOver, changes, refChanges, pchanges int
		for _, sc := range m.scenarios {
			sf, ref := cells[sc.name].spanflow, cells[sc.name].reference
			over, refOver = over+sf.overTarget, refOver+ref.overTarget
			changes, refChanges = changes+sf.replicaChanges, refChanges+ref.replicaChanges
			pchanges += sf.changes - sf.replicaChanges
		}
		share := func(name string) string {
			policy, least := cells[name].replicaShare()
			return fmt.Sprintf("%.2f (%.2f)", policy, least)
		}
		fmt.Fprintf(&b, "| %s | %d / %d | %d / %d | %d | %s | %s |\n", w.name, over, refOver, changes, refChanges, pchanges,
			share("steady"), share("diurnal"))
	}
	return b.String()
}
