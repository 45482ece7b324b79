package autoscale

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A randomized sweep of worlds and scenarios beyond the matrices: the policy will be
// judged in worlds it was not tuned on, so worlds are drawn from wide ranges of every
// parameter of simWorld, each with one production pattern, and the policy is compared
// with the reference and with the lower bound. A cell is flagged where the policy is
// clearly worse than the reference:
//   - over: more time over target than the reference by a wide margin (half as much again
//     and a minute);
//   - pods: more than twice the reference's replica-seconds where the reference meets the
//     target (over it at most 2% of the time);
//   - waste: more than 1.25 times the reference's replica-seconds and 3 times the lower
//     bound's, for no less time over target (within a minute);
//   - flap: replica changes reversed within the down window, or more replica changes
//     than twice the reference's and 10; pflap: more than 30 parallelism changes an hour.
//
// SIM_SWEEP=500 go test -run TestSimulationSweep -v ./controllers/autoscale/ draws 500
// cells (SIM_SWEEP_SEED picks another series; each cell has a seed of its own) and prints
// the flagged ones with their worlds (SIM_SWEEP_OUT=file writes every cell's row there, to
// compare two versions of the policy); SIM_SWEEP_CELL=<seed> traces one cell's decisions.
// Without them the cells of sweepCases run (skipped under -short), each flagged for
// nothing but what it is known for, within the bounds that hold what was fixed.

// sweepCell is one drawn world and scenario.
type sweepCell struct {
	seed  uint64
	world simWorld
	sc    simScenario
}

// sweepWorld draws a world from rng: every parameter of simWorld over a wide range.
func sweepWorld(rng *rand.Rand) simWorld {
	pick := func(lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }
	logPick := func(lo, hi float64) float64 { return math.Exp(pick(math.Log(lo), math.Log(hi))) }
	chance := func(p float64) bool { return rng.Float64() < p }
	w := simWorld{
		partitions:  int(math.Round(logPick(3, 64))),
		workerRate:  logPick(2, 40),
		startup:     int(logPick(5, 180)),
		rebalance:   int(logPick(1, 30)),
		propagation: int(pick(5, 90)),
		rangeDealt:  chance(0.5),
	}
	if chance(0.5) {
		w.delay = int(pick(0, 5))
	}
	// Parallelism bounds: fixed, or a range of up to 16 times.
	w.minParallelism = int32(math.Round(logPick(2, 200)))
	w.maxParallelism = w.minParallelism
	if !chance(0.2) {
		w.maxParallelism = int32(math.Round(float64(w.minParallelism) * logPick(1.5, 16)))
	}
	w.startParallelism = w.minParallelism
	if chance(0.2) {
		w.startParallelism = int32(pick(float64(w.minParallelism), float64(w.maxParallelism)))
	}
	// The pod's CPU: from a third of what its most parallelism would do (CPU-bound) to
	// twice it (never reached).
	w.podCeiling = math.Round(w.workerRate * float64(w.maxParallelism) * logPick(0.3, 2))
	switch r := rng.Float64(); {
	case r < 0.35:
		w.targetSeconds = int(logPick(10, 120))
	case r < 0.6:
		w.targetRecords = int(math.Round(logPick(1000, 50000)))
	default:
		w.targetSeconds, w.targetRecords = int(logPick(10, 120)), int(math.Round(logPick(1000, 50000)))
	}
	// Hot partitions: one to three, each a share of up to 35% (at least twice an even
	// share), all of them at most 80%.
	if w.partitions >= 4 && chance(0.4) {
		n := 1 + rng.IntN(min(3, w.partitions/4))
		even := 1 / float64(w.partitions)
		w.hotShare = min(pick(2.5*even, max(0.35, 3*even)), 0.8/float64(n))
		w.hot = nil
		for len(w.hot) < n {
			if p := rng.IntN(w.partitions); !slices.Contains(w.hot, p) {
				w.hot = append(w.hot, p)
			}
		}
		slices.Sort(w.hot)
	}
	if chance(0.3) {
		w.jitter = pick(0, 0.3)
	}
	if chance(0.3) {
		w.reportNoise = pick(0, 0.25)
	}
	if chance(0.15) {
		w.slowPod = pick(0.2, 0.7)
		if chance(0.3) {
			w.slowUntil = int(pick(300, 1200))
		}
	}
	return w
}

// podMost is the most one pod of the world does at its most parallelism, at speed 1.
func (w simWorld) podMost() float64 {
	return min(float64(w.maxParallelism)*w.workerRate, w.podCeiling)
}

// maxShare is the largest partition's share of the production.
func (w simWorld) maxShare() float64 {
	most := 0.0
	for p := range w.partitions {
		most = max(most, w.share(p))
	}
	return most
}

// sweepScenario draws a production pattern for w from rng, its peak a share of what the
// world can carry at its most pods (each with its busiest partition at most at its pod's
// most), and sometimes a partition cap below the busiest partition's share of the peak.
func sweepScenario(rng *rand.Rand, w *simWorld) simScenario {
	pick := func(lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }
	speed := 1.0
	if w.slowPod > 0 {
		speed = w.slowPod
	}
	// The most the world carries: every partition alone on a pod, the busiest at its pod's
	// most (the slow pod's, which may hold it).
	feasible := min(w.podMost()*speed/w.maxShare(), w.podMost()*float64(w.partitions))
	peak := feasible * pick(0.15, 0.85)
	// The simulation moves whole records: a partition that receives a few a second gets
	// them in bursts (every partition in the same second), which a pod of a few records a
	// second cannot absorb. Such worlds say more of the simulation than of the policy:
	// scaled up, every rate alike, to at least 200 records a second a partition at the
	// peak (10 a second at a twentieth of it, the quietest pattern).
	least := peak
	for p := range w.partitions {
		least = min(least, peak*w.share(p))
	}
	if least < 200 {
		f := 200 / least
		w.workerRate, w.podCeiling, peak = w.workerRate*f, math.Round(w.podCeiling*f), peak*f
	}
	if rng.Float64() < 0.15 {
		// A partition capped below its share of the peak: some partition cannot keep up.
		w.partitionCap = math.Round(w.maxShare() * peak * pick(0.5, 0.95))
	}
	minR := int32(1)
	sc := simScenario{seconds: 1800 + 600*rng.IntN(4), minReplicas: minR}
	low := pick(0.1, 0.5)
	switch rng.IntN(10) {
	case 0:
		sc.name = "steady"
		sc.rate = func(int) float64 { return peak }
	case 1:
		at, k := int(pick(200, 900)), pick(2, 6)
		sc.name = fmt.Sprintf("step ×%.1f at %d s", k, at)
		sc.rate = func(t int) float64 {
			if t < at {
				return peak / k
			}
			return peak
		}
	case 2:
		at, k := int(pick(200, 900)), pick(2, 6)
		sc.name = fmt.Sprintf("step ÷%.1f at %d s", k, at)
		sc.rate = func(t int) float64 {
			if t < at {
				return peak
			}
			return peak / k
		}
	case 3:
		at, length, k := int(pick(300, 900)), int(pick(20, 120)), pick(4, 10)
		sc.name = fmt.Sprintf("spike ×%.0f for %d s at %d s", k, length, at)
		sc.rate = func(t int) float64 {
			if t >= at && t < at+length {
				return peak
			}
			return peak / k
		}
	case 4:
		period := 600 * (2 + rng.IntN(5))
		sc.name = fmt.Sprintf("diurnal from %.0f%%, %d min", 100*low, period/60)
		sc.rate = func(t int) float64 {
			return peak * (1 - (1-low)/2*(1+math.Cos(2*math.Pi*float64(t)/float64(period))))
		}
	case 5:
		every, length, k := int(pick(120, 600)), int(pick(10, 60)), pick(4, 20)
		sc.name = fmt.Sprintf("bursts ×%.0f for %d s every %d s", k, length, every)
		sc.rate = func(t int) float64 {
			if t%every < length {
				return peak
			}
			return peak / k
		}
	case 6:
		length := int(pick(600, 1500))
		sc.minReplicas = int32(rng.IntN(2))
		sc.name = fmt.Sprintf("ramp from zero over %d s, min %d", length, sc.minReplicas)
		sc.rate = func(t int) float64 { return peak * min(float64(t)/float64(length), 1) }
	case 7:
		idle, length := int(pick(900, 1500)), int(pick(30, 300))
		sc.minReplicas = int32(rng.IntN(2))
		sc.name = fmt.Sprintf("idle %d s, then %d s at the peak, min %d", idle, length, sc.minReplicas)
		sc.rate = func(t int) float64 {
			if t >= idle && t < idle+length {
				return peak
			}
			if t >= idle+length {
				return peak * low
			}
			return 0
		}
	case 8:
		// A backlog to catch up: minutes of the peak's production in the first 10 s.
		minutes := pick(2, 20)
		sc.name = fmt.Sprintf("catch up %.0f min of backlog", minutes)
		sc.rate = func(t int) float64 {
			if t < 10 {
				return peak*low + peak*minutes*60/10
			}
			return peak * low
		}
	default:
		sc.name = "steady, noisy"
		if w.jitter == 0 {
			w.jitter = pick(0.1, 0.3)
		}
		sc.rate = func(int) float64 { return peak }
	}
	return sc
}

// sweepCellOf draws the cell of a seed.
func sweepCellOf(seed uint64) sweepCell {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	w := sweepWorld(rng)
	sc := sweepScenario(rng, &w)
	w.name = fmt.Sprintf("sweep %d", seed)
	return sweepCell{seed: seed, world: w, sc: sc}
}

// describe is the world in one line.
func (w simWorld) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d partitions, %.1f/s a slot, pod at most %.0f/s (%.0f/s at its most parallelism)", w.partitions, w.workerRate,
		w.podCeiling, w.podMost())
	if w.minParallelism == w.maxParallelism {
		fmt.Fprintf(&b, ", parallelism fixed at %d", w.minParallelism)
	} else {
		fmt.Fprintf(&b, ", parallelism %d–%d from %d", w.minParallelism, w.maxParallelism, w.startParallelism)
	}
	fmt.Fprintf(&b, ", starts %d s, rebalances %d s, %d s in flight, propagation %d s", w.startup, w.rebalance, w.delay, w.propagation)
	if w.hotShare > 0 {
		hot := w.hot
		if len(hot) == 0 {
			hot = []int{0}
		}
		fmt.Fprintf(&b, ", %.0f%% on each of %v", 100*w.hotShare, hot)
	}
	if w.partitionCap > 0 {
		fmt.Fprintf(&b, ", partitions capped at %.0f/s", w.partitionCap)
	}
	if w.rangeDealt {
		b.WriteString(", dealt by range")
	}
	switch {
	case w.targetSeconds > 0 && w.targetRecords > 0:
		fmt.Fprintf(&b, ", targets %d s and %d records", w.targetSeconds, w.targetRecords)
	case w.targetSeconds > 0:
		fmt.Fprintf(&b, ", target %d s", w.targetSeconds)
	default:
		fmt.Fprintf(&b, ", target %d records", w.targetRecords)
	}
	if w.jitter > 0 || w.reportNoise > 0 {
		fmt.Fprintf(&b, ", jitter %.0f%%, report noise %.0f%%", 100*w.jitter, 100*w.reportNoise)
	}
	if w.slowPod > 0 {
		fmt.Fprintf(&b, ", first pod at %.0f%%", 100*w.slowPod)
		if w.slowUntil > 0 {
			fmt.Fprintf(&b, " until %d s", w.slowUntil)
		}
	}
	return b.String()
}

// sweepVerdict is a cell's result and what is flagged in it.
type sweepVerdict struct {
	cell  sweepCell
	sim   simCell
	flags []string
}

// judge flags what the policy does clearly worse than the reference in a cell.
func judge(c sweepCell, cell simCell) []string {
	sf, ref := cell.spanflow, cell.reference
	var flags []string
	if float64(sf.overTarget) > 1.5*float64(ref.overTarget)+60 {
		flags = append(flags, "over")
	}
	if float64(ref.overTarget) <= 0.02*float64(c.sc.seconds) && sf.replicaSeconds > 2*ref.replicaSeconds {
		flags = append(flags, "pods")
	}
	if float64(sf.replicaSeconds) > 1.25*float64(ref.replicaSeconds) && sf.replicaSeconds > 3*cell.leastReplicaSeconds &&
		sf.overTarget >= ref.overTarget-60 {
		flags = append(flags, "waste")
	}
	if sf.reversals > 0 || sf.replicaChanges > max(2*ref.replicaChanges, 10) {
		flags = append(flags, "flap")
	}
	if pchanges := sf.changes - sf.replicaChanges; pchanges*3600 > 30*c.sc.seconds {
		flags = append(flags, "pflap")
	}
	return flags
}

// runSweepCell simulates a cell under both policies.
func runSweepCell(c sweepCell) sweepVerdict {
	sf, keda := simPolicies(c.world, c.sc)
	cell := simCell{spanflow: simulate(c.world, c.sc, sf), reference: simulate(c.world, c.sc, keda),
		leastReplicaSeconds: leastReplicaSeconds(c.world, c.sc), slowPolls: sf.slowPolls}
	return sweepVerdict{cell: c, sim: cell, flags: judge(c, cell)}
}

// row renders a verdict as a table row.
func (v sweepVerdict) row() string {
	sf, ref := v.sim.spanflow, v.sim.reference
	return fmt.Sprintf("| %d | %s | %s | %d / %d | %d / %d (%d) | %d / %d | %d | %d | %s |", v.cell.seed, v.cell.world.describe(), v.cell.sc.name,
		sf.overTarget, ref.overTarget, sf.replicaSeconds, ref.replicaSeconds, v.sim.leastReplicaSeconds,
		sf.replicaChanges, ref.replicaChanges, sf.changes-sf.replicaChanges, sf.reversals, strings.Join(v.flags, ","))
}

const sweepHeader = "| seed | world | scenario | s over target | replica-s (least) | replica changes | parallelism changes | reversals | flags |\n" +
	"|---:|---|---|---:|---:|---:|---:|---:|---|"

// sweepCase is a cell run by default: drawn by the sweep (seed), or a world of its own
// (named), with what it showed and the bounds that hold what was fixed.
type sweepCase struct {
	seed uint64
	cell *sweepCell // nil: the seed's
	why  string
	// known are the flags it still raises (why says why); the others must not be.
	known []string
	// overAtMost, replicaSecondsAtMost, changesAtMost (replicas) and
	// parallelismChangesAtMost bound the policy's figures (0: none); refShare bounds its
	// replica-seconds as a share of the reference's.
	overAtMost, replicaSecondsAtMost, changesAtMost, parallelismChangesAtMost int
	refShare                                                                  float64
}

// sweepCases run by default (a few seconds): cells the sweep flagged for a weakness since
// fixed, bounded so that it stays fixed, and a few never flagged, to keep the judge
// honest. The figures are spanflow's (the reference's) before → after the fix.
var sweepCases = []sweepCase{
	{seed: 700, replicaSecondsAtMost: 13000,
		why: "every partition capped at 78/s, draining a 16-minute backlog alone on its pod: 11 pods for the drain where 3 consume as much (replica-s 32,990 → 10,758; 24,973); a draining partition shows its ceiling"},
	{seed: 1398, replicaSecondsAtMost: 25000,
		why: "a hot partition capped below its share draining a backlog: all 56 pods kept for the drain (143,279 → 20,159; 138,615)"},
	{seed: 1433, known: []string{"over"}, overAtMost: 150,
		why: "a pod at 55% holding a partition with 18% of the production, not singled out as hot: its backlog, held against the whole topic's production, grew to three times the seconds target (s over target 1,340 → 96; the reference 12, with 36 replica changes to the policy's 7)"},
	{seed: 2740, known: []string{"over"}, overAtMost: 150,
		why: "a pod at 69%, not slow enough to be told apart, holding the busiest pod's partitions on a ramp (1,457 → 98 s over target; 0)"},
	{seed: 695, known: []string{"waste"}, replicaSecondsAtMost: 21000,
		why: "4 s of records in flight over what the fewest pods the need calls for are allowed: 49 pods for 40 minutes after a burst (126,972 → 17,078; 13,558 — the reference scales to zero and back, the policy keeps 1–5 pods for what is in flight)"},
	{seed: 59, replicaSecondsAtMost: 25000,
		why: "records in flight held the largest size after a catch-up (109,740 → 20,709; 31,154)"},
	{seed: 2283, replicaSecondsAtMost: 21000,
		why: "records in flight held the largest size between bursts (114,763 → 17,158; 84,941)"},
	{seed: 2354, overAtMost: 250, changesAtMost: 10,
		why: "bursts: the window's average trailed each one, a pod added at each poll (s over target 383 → 195, replica changes 19 → 8; 392, 12)"},
	{seed: 2658, overAtMost: 200,
		why: "diurnal load followed late by the window's average (632 → 140 s over target; 3,285)"},
	{seed: 423, known: []string{"pflap"}, parallelismChangesAtMost: 30,
		why: "bursts on 4 partitions: after each the parallelism came down a step at a poll (42 → 26 parallelism changes in half an hour; still more than 30 an hour)"},
	{seed: 7000289, changesAtMost: 3,
		why: "pods let come back within the down window at the load they went at: after each scale-down the capacity learnt in the rebalance was low, and a group draining a backlog went 17 → 5 → 9 → 5 → 9 pods (replica changes 6 with 2 reversals → 2; 3)"},
	{seed: 9000311, replicaSecondsAtMost: 100000,
		why: "pods that come back within the down window for a burst of 18 s every 288 s (38 s over target; 2,839), and then the burst memory holds them: 3.4× the replica-s of holding them back (98,606 against 28,930; 32,290), kept as the price of pods coming back as a burst takes the lag over its target"},
	{seed: 0, why: "never flagged"},
	{seed: 3, why: "never flagged"},
	{seed: 5, why: "never flagged"},
	{seed: 8, why: "never flagged"},
	{seed: 10, why: "never flagged"},
	{cell: func() *sweepCell {
		w := simWorlds()[0]
		w.name, w.hotShare, w.partitionCap = "a partition capped below its share", 0.2, 500
		sc := simScenarios()[2]
		sc.seconds = 3600
		return &sweepCell{world: w, sc: sc}
	}(), refShare: 0.5,
		why: "the known one: 12 partitions, one with a fifth of the production capped at 500/s, a minute of 10×: 12 pods for the 50 minutes of its drain where 2 consume as much (replica-s 30,279 → 10,779; 33,207); its ceiling was learnt only from falling behind, and it drained alone on its pod"},
}

func TestSimulationSweep(t *testing.T) {
	if seed := os.Getenv("SIM_SWEEP_CELL"); seed != "" {
		n, err := strconv.ParseUint(seed, 10, 64)
		if err != nil {
			t.Fatalf("SIM_SWEEP_CELL=%q: %v", seed, err)
		}
		c := sweepCellOf(n)
		t.Logf("%s; %s", c.world.describe(), c.sc.name)
		sf, _ := simPolicies(c.world, c.sc)
		sf.log = func(at int, reason string) { t.Logf("t=%d %s", at, reason) }
		t.Logf("%+v", simulate(c.world, c.sc, sf))
		v := runSweepCell(c)
		t.Log("\n" + sweepHeader + "\n" + v.row())
		return
	}
	if n := os.Getenv("SIM_SWEEP"); n != "" {
		count, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("SIM_SWEEP=%q: %v", n, err)
		}
		series, _ := strconv.ParseUint(os.Getenv("SIM_SWEEP_SEED"), 10, 64)
		sweepRandom(t, series, count)
		return
	}
	if testing.Short() {
		t.Skip("the sweep's seed list is skipped under -short")
	}
	for _, tc := range sweepCases {
		c := sweepCellOf(tc.seed)
		if tc.cell != nil {
			c = *tc.cell
		}
		v := runSweepCell(c)
		sf, ref := v.sim.spanflow, v.sim.reference
		var wrong []string
		for _, f := range v.flags {
			if !slices.Contains(tc.known, f) {
				wrong = append(wrong, "flagged "+f)
			}
		}
		if tc.overAtMost > 0 && sf.overTarget > tc.overAtMost {
			wrong = append(wrong, fmt.Sprintf("%d s over target, at most %d", sf.overTarget, tc.overAtMost))
		}
		if tc.replicaSecondsAtMost > 0 && sf.replicaSeconds > tc.replicaSecondsAtMost {
			wrong = append(wrong, fmt.Sprintf("%d replica-s, at most %d", sf.replicaSeconds, tc.replicaSecondsAtMost))
		}
		if tc.changesAtMost > 0 && sf.replicaChanges > tc.changesAtMost {
			wrong = append(wrong, fmt.Sprintf("%d replica changes, at most %d", sf.replicaChanges, tc.changesAtMost))
		}
		if pchanges := sf.changes - sf.replicaChanges; tc.parallelismChangesAtMost > 0 && pchanges > tc.parallelismChangesAtMost {
			wrong = append(wrong, fmt.Sprintf("%d parallelism changes, at most %d", pchanges, tc.parallelismChangesAtMost))
		}
		if tc.refShare > 0 && float64(sf.replicaSeconds) > tc.refShare*float64(ref.replicaSeconds) {
			wrong = append(wrong, fmt.Sprintf("%.2f of the reference's replica-s, at most %.2f", float64(sf.replicaSeconds)/float64(ref.replicaSeconds), tc.refShare))
		}
		if len(wrong) > 0 {
			t.Errorf("%s (%s): %s\n%s\n%s", c.world.name, tc.why, strings.Join(wrong, ", "), sweepHeader, v.row())
		}
	}
}

// sweepRandom runs count cells of the series and prints the flagged ones, and a summary.
func sweepRandom(t *testing.T, series uint64, count int) {
	start := time.Now()
	var flagged []sweepVerdict
	byFlag := map[string]int{}
	var over, refOver, rs, refRS, changes, refChanges int
	var all strings.Builder
	for i := range count {
		seed := series*1_000_000 + uint64(i)
		v := runSweepCell(sweepCellOf(seed))
		all.WriteString(v.row() + "\n")
		sf, ref := v.sim.spanflow, v.sim.reference
		over, refOver, rs, refRS = over+sf.overTarget, refOver+ref.overTarget, rs+sf.replicaSeconds, refRS+ref.replicaSeconds
		changes, refChanges = changes+sf.replicaChanges, refChanges+ref.replicaChanges
		if len(v.flags) > 0 {
			flagged = append(flagged, v)
			for _, f := range v.flags {
				byFlag[f]++
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d cells in %s: %d flagged (%v); summed, spanflow / reference: %d / %d s over target, %d / %d replica-s, %d / %d replica changes\n",
		count, time.Since(start).Round(time.Second), len(flagged), byFlag, over, refOver, rs, refRS, changes, refChanges)
	b.WriteString(sweepHeader + "\n")
	for _, v := range flagged {
		b.WriteString(v.row() + "\n")
	}
	t.Log("\n" + b.String())
	if out := os.Getenv("SIM_SWEEP_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(sweepHeader+"\n"+all.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}
