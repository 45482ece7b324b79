package autoscale

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestAutoscalingSimulation holds the policy to its promise against the KEDA/HPA
// reference in every cell of the matrix (world × scenario):
//   - no more time over the lag target, within one poll interval (10 s: the reference
//     acts on the second, the policy on its polls), except in the cells of
//     overTargetNotMet;
//   - fewer replica changes (each one pauses the group);
//   - no replica change reversed within the down window, never more pods consuming
//     than partitions, no raise of parallelism alone by less than a tenth;
//   - on steady and diurnal load, at most half the reference's replica-seconds, or
//     where the fewest pods that keep up already take more than half (a lower bound for
//     any policy), no more than the reference's.
func TestAutoscalingSimulation(t *testing.T) {
	t.Log("\n" + simMatrix())
	for _, w := range simWorlds() {
		t.Run(w.name, func(t *testing.T) {
			table, cells := simTable(w)
			t.Log("\n" + table)
			for _, sc := range simScenarios() {
				cell := cells[sc.name]
				sf, ref := cell.spanflow, cell.reference
				if limit, short := overTargetNotMet[w.name+" / "+sc.name]; short {
					// Not met (the README says so): held where it is, so that it gets no worse.
					if sf.overTarget > limit {
						t.Errorf("%s: %d s over target, the reference %d s (not met; was at most %d s)", sc.name, sf.overTarget, ref.overTarget, limit)
					}
				} else if sf.overTarget > ref.overTarget+10 {
					t.Errorf("%s: %d s over target, the reference %d s", sc.name, sf.overTarget, ref.overTarget)
				}
				if sf.replicaChanges >= ref.replicaChanges {
					t.Errorf("%s: %d replica changes, the reference %d", sc.name, sf.replicaChanges, ref.replicaChanges)
				}
				if sf.smallRaises > 0 {
					t.Errorf("%s: %d raises of parallelism alone by less than a tenth", sc.name, sf.smallRaises)
				}
				if sf.reversals > 0 || sf.consumersOverPartitions > 0 {
					t.Errorf("%s: %d replica changes reversed within the down window, %d s with more consumers than partitions",
						sc.name, sf.reversals, sf.consumersOverPartitions)
				}
				if sc.name == "steady" || sc.name == "diurnal" {
					// Half, unless no policy that keeps up could use half: then no more than
					// the reference.
					bound := 0.5
					policy, least := cell.replicaShare()
					if least > bound {
						bound = 1
					}
					if policy > bound {
						t.Errorf("%s: %.2f of the reference's replica-seconds (the fewest pods keeping up: %.2f), at most %.2f here",
							sc.name, policy, least, bound)
					}
				}
			}
		})
	}
}

// overTargetNotMet are the cells where the goal of no more time over target than the
// reference is not met, with the most the policy reached there. A hot partition stepping
// ×5: both go over target 33 s after the step and stay there (the hot partition is at its
// cap from the step on), so the difference is the start: the first pod, short of the
// load, gets more parallelism, which reaches it 40 s later, and its hot partition is over
// target for 41 s (t = 35–75); the reference's pods, added at its first look at the lag,
// bring it back in 30 (t = 35–64). Choosing pods over a parallelism that would arrive
// after the lag passes its target was tried: it fixed this cell and cost more replica
// changes and time over target in seven other worlds.
var overTargetNotMet = map[string]int{"hot partition / step ×5": 1508}

// BenchmarkAutoscalingSimulation prints the comparison tables (make bench); the figures
// are deterministic, the time per op is the cost of simulating the whole matrix.
func BenchmarkAutoscalingSimulation(b *testing.B) {
	var out strings.Builder
	out.WriteString("\n" + simMatrix())
	for i := range b.N {
		for _, w := range simWorlds() {
			table, _ := simTable(w)
			if i == 0 {
				out.WriteString("\n" + w.name + ":\n" + table)
			}
		}
	}
	fmt.Print(out.String())
}

// TestSimulationTrace prints the decisions of one cell of the matrix, to see why the
// policy did what it did: SIM_WORLD="3 s in flight" SIM_SCENARIO=diurnal go test -run
// TestSimulationTrace -v ./controllers/autoscale/. Skipped without them.
func TestSimulationTrace(t *testing.T) {
	world, scenario := os.Getenv("SIM_WORLD"), os.Getenv("SIM_SCENARIO")
	if world == "" || scenario == "" {
		t.Skip("SIM_WORLD and SIM_SCENARIO name the cell to trace")
	}
	for _, w := range simWorlds() {
		for _, sc := range simScenarios() {
			if w.name == world && sc.name == scenario {
				sf, _ := simPolicies(w, sc)
				sf.log = func(at int, reason string) { t.Logf("t=%d %s", at, reason) }
				t.Logf("%+v", simulate(w, sc, sf))
				return
			}
		}
	}
	t.Fatalf("no cell %q × %q", world, scenario)
}
