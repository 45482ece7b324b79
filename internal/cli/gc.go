package cli

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
)

// cgroupMemoryMax is where cgroup v2 publishes the container's memory limit.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// tuneGC sets a soft memory limit of 80% of the container's, unless the environment sets
// GOMEMLIMIT, so that the heap never drives the pod into its limit: the collector works
// harder instead. GOGC stays Go's default: with the message bytes pooled, the collector
// is a few percent of the ingester's CPU at 100, and a higher value only grew the heap.
func tuneGC(log logr.Logger) {
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
