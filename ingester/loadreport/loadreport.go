// Package loadreport is how an ingester pod tells the operator how busy it is without the
// operator reaching the pod: the pod writes a short report into the metadata of every
// offset it commits, and the operator, which already reads the group's committed offsets
// to measure lag, reads the reports back. Both sides use this package, so the format has
// one definition.
package loadreport

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// prefix marks a report of this format; metadata without it (other clients, older
// ingesters) is not a report.
const prefix = "spanflow/1"

// Report is how busy one ingester pod was over its last report interval.
type Report struct {
	// Pod names the pod (its hostname), so that the partitions of one pod count once.
	Pod string
	// At is when the interval ended.
	At time.Time
	// Parallelism is the number of deliveries the pod allowed in flight.
	Parallelism int32
	// Slots is how many it allowed on average over the interval: the parallelism, unless
	// that changed within the interval (what Busy is a share of). 0: not said (a report
	// of an earlier version), the parallelism.
	Slots float64
	// Busy is the share of those delivery slots that were occupied, 0 to 1: how much of
	// what the parallelism allows the pod used.
	Busy float64
	// CPU is the share of the CPU the process may use (GOMAXPROCS, which follows the
	// container's CPU limit) that it used, 0 to 1; negative when unknown.
	CPU float64
	// Rate is the records the pod finished (stored, dead-lettered or skipped) per second.
	Rate float64
	// Blocked is true when, in the interval, writes failed and were tried again, or a
	// partition is held because storage (or the dead-letter topic) failed: consumption was
	// limited downstream, not by the pod.
	Blocked bool
	// Held says why partitions of the pod are held, when some are: HeldStorage,
	// HeldUndecodable, HeldRefused, sorted. Empty while none is (or from an earlier
	// version, which said only Blocked).
	Held []string
	// Pause is how long the pod's latest rebalance stopped its consumption (from the end
	// of one group generation to the start of the next); zero before it saw one.
	Pause time.Duration
	// Partitions are the partitions the pod holds: one of them carries the report.
	Partitions []int
}

// Why a partition is held, as Report.Held says it.
const (
	// HeldStorage: writes fail (storage, or the dead-letter topic) and are tried again.
	HeldStorage = "storage"
	// HeldUndecodable: a message cannot be decoded, and the policy puts it nowhere else.
	HeldUndecodable = "undecodable"
	// HeldRefused: storage refuses a message for good, and no dead-letter topic takes it.
	HeldRefused = "refused"
)

// MaxBytes bounds a report. Brokers refuse metadata over offset.metadata.max.bytes (4 KiB
// by default, and some set less) and then refuse the whole commit; a report listing more
// partitions than fit leaves them out (the operator then counts the partitions that carry
// the pod's reports).
const MaxBytes = 1024

// String renders the report as commit metadata: about a hundred bytes and a few for each
// partition, at most MaxBytes.
func (r Report) String() string {
	blocked := 0
	if r.Blocked {
		blocked = 1
	}
	s := fmt.Sprintf("%s pod=%s at=%d p=%d busy=%.3f cpu=%.3f rate=%.1f blocked=%d pause=%.1f",
		prefix, r.Pod, r.At.UnixMilli(), r.Parallelism, r.Busy, r.CPU, r.Rate, blocked, r.Pause.Seconds())
	if r.Slots > 0 {
		s += fmt.Sprintf(" slots=%.1f", r.Slots)
	}
	if len(r.Held) > 0 {
		s += " held=" + strings.Join(r.Held, ",")
	}
	parts := make([]string, len(r.Partitions))
	for i, p := range r.Partitions {
		parts[i] = strconv.Itoa(p)
	}
	if withParts := s + " parts=" + strings.Join(parts, ","); len(withParts) <= MaxBytes {
		return withParts
	}
	return s
}

// Parse reads a report from commit metadata; ok is false when the metadata is not a
// well-formed report (then it says nothing about the pod).
func Parse(s string) (r Report, ok bool) {
	fields := strings.Fields(s)
	if len(fields) == 0 || fields[0] != prefix {
		return Report{}, false
	}
	seen := 0
	for _, f := range fields[1:] {
		key, value, found := strings.Cut(f, "=")
		if !found {
			return Report{}, false
		}
		var err error
		switch key {
		case "pod":
			r.Pod = value
		case "at":
			var ms int64
			ms, err = strconv.ParseInt(value, 10, 64)
			r.At = time.UnixMilli(ms)
		case "p":
			var p int64
			p, err = strconv.ParseInt(value, 10, 32)
			r.Parallelism = int32(p)
		case "busy":
			r.Busy, err = strconv.ParseFloat(value, 64)
		case "slots":
			// Optional: what is not a number of slots (at least one, finite) is not said.
			if v, err := strconv.ParseFloat(value, 64); err == nil && v >= 1 && !math.IsInf(v, 0) {
				r.Slots = v
			}
			continue // not one of the fields every version has
		case "held":
			// Optional: the kinds this version knows; others are a later version's.
			for _, kind := range strings.Split(value, ",") {
				if kind == HeldStorage || kind == HeldUndecodable || kind == HeldRefused {
					r.Held = append(r.Held, kind)
				}
			}
			continue // not one of the fields every version has
		case "cpu":
			r.CPU, err = strconv.ParseFloat(value, 64)
		case "rate":
			r.Rate, err = strconv.ParseFloat(value, 64)
		case "blocked":
			r.Blocked = value == "1"
		case "pause":
			var sec float64
			sec, err = strconv.ParseFloat(value, 64)
			r.Pause = time.Duration(sec * float64(time.Second))
		case "parts":
			for _, v := range strings.Split(value, ",") {
				if v == "" {
					continue
				}
				var id int
				if id, err = strconv.Atoi(v); err != nil {
					break
				}
				r.Partitions = append(r.Partitions, id)
			}
		default:
			continue // a field a later version added
		}
		if err != nil {
			return Report{}, false
		}
		seen++
	}
	// The fields every version has; a report without them cannot be used.
	if r.Pod == "" || r.At.IsZero() || r.Parallelism <= 0 || seen < 6 ||
		r.Busy < 0 || r.Busy > 1.5 || r.Rate < 0 {
		return Report{}, false
	}
	return r, true
}
