package autoscale

import "testing"

func TestScratchTraceNoise(t *testing.T) {
	w := simWorlds()[11]
	sc := simScenario{name: "sq", seconds: 1000, minReplicas: 1, rate: func(t int) float64 {
		if (t/120)%2 == 1 {
			return 8000
		}
		return 1000
	}}
	sf, _ := simPolicies(w, sc)
	sf.log = func(at int, reason string) {
		if at >= 820 && at <= 870 {
			t.Logf("t=%d (%d) %s", at, at%240, reason)
		}
	}
	simulate(w, sc, sf)
}
