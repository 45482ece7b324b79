package controllers

import (
	"fmt"
	"strings"
	"testing"
)

// TestAutoscalingSimulation holds the policy to its promise against the KEDA/HPA
// reference. Where parallelism helps (the world the issue describes), in every scenario:
// less time over the lag target (or none for both), no more replica-seconds, fewer
// changes. Where pods are CPU-bound, parallelism is a lever that only costs restarts to
// try: the policy must still keep less time over target, within 10% of the reference's
// replica-seconds.
func TestAutoscalingSimulation(t *testing.T) {
	for i, w := range simWorlds() {
		t.Run(w.name, func(t *testing.T) {
			table, results := simTable(w)
			t.Log("\n" + table)
			strict := i == 0
			for name, r := range results {
				sf, ref := r[0], r[1]
				if sf.overTarget > ref.overTarget || (strict && ref.overTarget > 0 && sf.overTarget == ref.overTarget) {
					t.Errorf("%s: %d s over target, the reference %d s", name, sf.overTarget, ref.overTarget)
				}
				if limit := float64(ref.replicaSeconds) * map[bool]float64{true: 1, false: 1.1}[strict]; float64(sf.replicaSeconds) > limit {
					t.Errorf("%s: %d replica-seconds, the reference %d", name, sf.replicaSeconds, ref.replicaSeconds)
				}
				if strict && sf.changes >= ref.changes {
					t.Errorf("%s: %d changes, the reference %d", name, sf.changes, ref.changes)
				}
			}
		})
	}
}

// BenchmarkAutoscalingSimulation prints the comparison table (make bench); the figures are
// deterministic, the time per op is the cost of simulating every scenario.
func BenchmarkAutoscalingSimulation(b *testing.B) {
	var out strings.Builder
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
