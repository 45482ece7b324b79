package ingester

import (
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/spanflow/spanflow/ingester/loadreport"
	"github.com/spanflow/spanflow/ingester/processor"
)

// loadReportInterval is how long each load report measures, and how often the offsets
// are committed again to carry a fresh one while nothing moves. The operator polls every
// 10 s and sizes from a minute of figures: a report a poll is enough.
const loadReportInterval = 10 * time.Second

// firstReportAfter is how much a pod's first report measures.
const firstReportAfter = time.Second

// PodNameEnv names this pod in its load reports; the operator sets it.
const PodNameEnv = "SPANFLOW_POD_NAME"

// loadMeter measures how busy this pod is, for the report each commit carries: the share
// of its delivery slots in use, the share of its CPU in use, and the records it finished
// per second, each over the latest loadReportInterval.
type loadMeter struct {
	pod      string
	interval time.Duration
	chain    *Chain
	blocked  func() bool
	heldBy   func() []string
	pause    func() time.Duration

	mu sync.Mutex
	// last is the reading at the start of the current interval; report is the report of
	// the last interval (no pod name before one ended).
	last   loadReading
	report loadreport.Report
}

type loadReading struct {
	at      time.Time
	load    processor.Load
	cpu     time.Duration
	retries int64
}

func newLoadMeter(chain *Chain, interval time.Duration, blocked func() bool, heldBy func() []string, pause func() time.Duration) *loadMeter {
	// The operator gives the pod its name (the downward API); the hostname is the pod's
	// name too, unless the pod shares the node's network.
	pod := os.Getenv(PodNameEnv)
	if pod == "" {
		pod, _ = os.Hostname()
	}
	if pod == "" {
		pod = "unknown"
	}
	m := &loadMeter{pod: pod, interval: interval, chain: chain, blocked: blocked, heldBy: heldBy, pause: pause}
	m.last = m.read()
	return m
}

func (m *loadMeter) read() loadReading {
	return loadReading{at: time.Now(), load: m.chain.parallel.Load(), cpu: processCPU(), retries: m.chain.retries.Load()}
}

// Report returns the report of the latest interval, with the partitions this pod holds
// now, starting a new interval when the current one is over.
func (m *loadMeter) Report(partitions []int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.read()
	elapsed := now.at.Sub(m.last.at)
	// A pod's first report comes after a second of figures (a pod that only lives a few
	// seconds still says what it did), the others after a whole interval.
	if elapsed < m.interval && (m.report.Pod != "" || elapsed < firstReportAfter) {
		if m.report.Pod == "" {
			return ""
		}
		r := m.report
		r.Partitions = partitions
		return r.String()
	}
	r := loadreport.Report{Pod: m.pod, At: now.at, Parallelism: int32(m.chain.parallel.Limit()), CPU: -1,
		Rate: float64(now.load.Finished-m.last.load.Finished) / elapsed.Seconds(), Pause: m.pause(),
		// Held partitions now, or writes tried again in the interval: storage failing.
		Blocked: m.blocked() || now.retries > m.last.retries, Held: m.heldBy()}
	if slots := now.load.Slots - m.last.load.Slots; slots > 0 {
		r.Busy = min(float64(now.load.Busy-m.last.load.Busy)/float64(slots), 1)
		// The slots allowed on average: a parallelism changed within the interval makes
		// Busy a share of a mix of the old and the new one.
		r.Slots = float64(slots) / float64(elapsed)
	}
	if cpu := now.cpu - m.last.cpu; now.cpu > 0 {
		// GOMAXPROCS follows the container's CPU limit (or the node's CPUs without one).
		r.CPU = min(float64(cpu)/(float64(elapsed)*float64(runtime.GOMAXPROCS(0))), 1)
	}
	m.last, m.report = now, r
	r.Partitions = partitions
	return r.String()
}

// processCPU is the CPU time the process used so far, user and system; 0 when unknown.
func processCPU() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
