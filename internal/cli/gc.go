package cli

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
)

// ingestGCPercent is the ingester's default GOGC. Its live heap is small and bounded (the
// in-flight limits), so letting the heap grow to several times it costs little memory and
// saves much of the collector's CPU, which otherwise is a third of the ingester's.
const ingestGCPercent = 400

// cgroupMemoryMax is where cgroup v2 publishes the container's memory limit.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// tuneGC applies the ingester's defaults unless the environment sets GOGC or GOMEMLIMIT:
// GOGC=400, and a soft memory limit of 80% of the container's, so that the larger heap
// target never drives the pod into its limit — the collector works harder instead.
func tuneGC(log logr.Logger) {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(ingestGCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return
	}
	data, err := os.ReadFile(cgroupMemoryMax)
	if err != nil {
		return
	}
	limit, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || limit <= 0 {
		return // "max": no limit
	}
	debug.SetMemoryLimit(limit / 10 * 8)
	log.V(1).Info("Go memory limit set from the container's", "containerLimitBytes", limit, "goMemLimitBytes", limit/10*8)
}
