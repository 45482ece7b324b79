package autoscale

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

// Partition ceilings. A partition can be slower to consume than the pod that holds it —
// the fetches that bring one partition's records, a broker slow for that partition — and
// then neither more pods nor more parallelism make it go faster. A partition alone on its
// pod that fell behind over the rate window, or drained a backlog, while the pod had room
// to spare shows its ceiling: what it was consumed at. Sized for such a partition's production, the group buys pods that
// cannot help it; and its lag, which no size drains sooner, would keep the group from
// ever shrinking while it lasts.

// Thresholds of the ceilings.
const (
	// ceilingRoom: a pod with less than this share of its delivery slots and of its CPU in
	// use had room for a quarter more.
	ceilingRoom = 0.8
	// ceilingBehind: a partition that received this much more than it was consumed at fell
	// behind, one consumed this much faster than it received drained a backlog (records in
	// flight to storage delay its commits, they do not change its pace this much).
	ceilingBehind = 1.05
	// ceilingExceeded: a partition consumed this much faster than its ceiling has none
	// there (the pod holding it is sized to let it go faster by the headroom, so that it
	// can show this).
	ceilingExceeded = 1.1
	// ceilingReached: a partition consumed at this share of its ceiling or more is at it;
	// below, something else holds it back (a full pod after a scale-down), and sizing
	// treats it as any other. (A window with a rebalance in it is not judged; see
	// withinCeilings.)
	ceilingReached = 0.75
)

// ceilingWindow is the least length of a rate window that can show a ceiling: several
// load reports, so that one does not decide.
const ceilingWindow = 3 * reportInterval

// ceilingPolls is how many polls in a row must show a partition at a ceiling before it
// counts: a ceiling stays, a pod's report that reads it idler than it is does not.
const ceilingPolls = 3

// partitionCeiling is what is known of one partition's ceiling.
type partitionCeiling struct {
	// rate is the ceiling, records per second (0: none known); polls how many polls in a
	// row showed the partition at one, the latest at rate seen.
	rate, seen float64
	polls      int
}

// learnCeilings updates the partitions' ceilings, by partition ID, with the rate window
// of lag. A poll shows a partition at its ceiling, seen, when all of this holds: the
// window is at least ceilingWindow long and began after quiet (the pods settled, their
// rebalance over, the parallelism asked for running); the partition had work waiting at
// every poll of it and was consumed at a pace its production did not set (see
// heldBack); it is alone on its pod (with others, a limit of the pod that its report
// does not show — a link it shares with them — would look the same, and more pods would
// help); its oldest uncommitted record is older than records in flight are; and its pod,
// by a report measured wholly after quiet, had room (slots and CPU under ceilingRoom, its
// writes not failing). After ceilingPolls such polls in a row, the latest rate is the
// partition's ceiling. A ceiling goes when its partition is consumed faster than
// ceilingExceeded times it, all of them when the partition count changes. nil: none
// known or coming.
func learnCeilings(ceilings []partitionCeiling, lag lagSnapshot, b scaleBounds, quiet time.Time) []partitionCeiling {
	if len(ceilings) != lag.partitions {
		ceilings = nil
	}
	if len(lag.flows) != lag.partitions || lag.partitions == 0 {
		return ceilings // nothing to learn from this poll
	}
	out := slices.Clone(ceilings)
	if out == nil {
		out = make([]partitionCeiling, lag.partitions)
	}
	measured := !quiet.IsZero() && !lag.rateSince.Before(quiet) && lag.at.Sub(lag.rateSince) >= ceilingWindow
	for id, f := range lag.flows {
		c := &out[id]
		if c.rate > 0 && f.consumeRate > ceilingExceeded*c.rate {
			*c = partitionCeiling{}
			continue
		}
		if !measured || f.consumeRate <= 0 || !heldBack(f) || !aloneOnItsPod(lag.pods, f.pod, id) || float64(f.seconds) <= b.inFlightAge() ||
			!podHasRoom(lag.pods, f.pod, quiet) {
			c.polls = 0
			continue
		}
		c.polls++
		c.seen = f.consumeRate
		if c.polls >= ceilingPolls {
			c.rate = c.seen
		}
	}
	if !slices.ContainsFunc(out, func(c partitionCeiling) bool { return c.rate > 0 || c.polls > 0 }) {
		return nil
	}
	return out
}

// heldBack is true when a partition with work waiting at every poll of the rate window
// was consumed at a pace its production did not set: it fell behind (received more than
// ceilingBehind times what it was consumed at) or drained a backlog (consumed at more
// than ceilingBehind times what it received). Records in flight to storage wait too, but
// are consumed as fast as they come. (Only falling behind counted once: a partition whose
// backlog, from a spike or a start behind, drained at its ceiling was never learnt, and
// the pods that could not speed it stayed while it drained — 12 pods for 50 minutes
// where 2 consumed as much.)
func heldBack(f partitionFlow) bool {
	return float64(f.leastBacklog) >= f.consumeRate*saturatedSeconds &&
		(f.produceRate > ceilingBehind*f.consumeRate || f.consumeRate > ceilingBehind*f.produceRate)
}

// aloneOnItsPod is true when the named pod's report lists partition id as the only one it
// holds: then nothing the autoscaler has speeds the partition. A pod whose report does not
// list its partitions (an older ingester, a list too long for the commit metadata) is not
// known to hold only one.
func aloneOnItsPod(pods []podLoad, pod string, id int) bool {
	pl, ok := podNamed(pods, pod)
	return ok && pl.listed && len(pl.ids) == 1 && pl.ids[0] == id
}

// podHasRoom is true when the named pod's fresh report, measured wholly after quiet, shows
// it using under ceilingRoom of its slots and of its CPU (or its CPU unknown), with its
// writes going through.
func podHasRoom(pods []podLoad, pod string, quiet time.Time) bool {
	pl, ok := podNamed(pods, pod)
	return ok && !pl.At.Before(quiet.Add(reportInterval)) && !pl.Blocked && pl.Busy < ceilingRoom && pl.CPU < ceilingRoom
}

// podNamed is the fresh report of the named pod, if there is one.
func podNamed(pods []podLoad, pod string) (podLoad, bool) {
	for _, pl := range pods {
		if pl.Pod == pod && pod != "" {
			return pl, true
		}
	}
	return podLoad{}, false
}

// withinCeilings is the lag as sizing sees it when some partitions are at their
// ceilings: a partition at its ceiling whose production and backlog (drained within the
// drain time) ask for more counts as producing its ceiling, and its lag, which no size
// drains sooner, is left out of the lag held against the targets. At its ceiling means
// consumed at ceilingReached of it or more over a rate window that began after quiet; a
// window that did not (a rebalance in it reads as a slower partition) leaves it at its
// ceiling, unless no pod runs. The pod holding it is still sized, with the headroom, for
// what it can take. capped lists those partitions; none: the lag as it is.
func (s lagSnapshot) withinCeilings(ceilings []partitionCeiling, b scaleBounds, quiet time.Time, running bool) (out lagSnapshot, capped []int) {
	n := s.partitions
	if len(ceilings) != n || len(s.flows) != n {
		return s, nil
	}
	cappedProduce := 0.0
	for id, f := range s.flows {
		c := ceilings[id].rate
		judged := !quiet.IsZero() && !s.rateSince.Before(quiet)
		atIt := running && (!judged || f.consumeRate >= ceilingReached*c)
		if c > 0 && atIt && f.produceRate+float64(f.records)/b.drainTime() > c {
			capped = append(capped, id)
			cappedProduce += f.produceRate
		}
	}
	if len(capped) == 0 {
		return s, nil
	}
	// What each partition is sized for: its ceiling, or its share of the production — the
	// model's where some stand out, else an even share of what the others receive.
	even := 0.0
	if len(capped) < n {
		even = max(s.produceRate-cappedProduce, 0) / float64(n-len(capped))
	}
	sized := make([]float64, n)
	out = s
	out.records, out.seconds, out.produceRate = 0, 0, 0
	for id, f := range s.flows {
		switch {
		case slices.Contains(capped, id):
			sized[id] = ceilings[id].rate
		case s.shares != nil:
			sized[id] = s.shares[id] * s.produceRate
		default:
			sized[id] = even
		}
		if !slices.Contains(capped, id) {
			out.records += f.records
			out.seconds = max(out.seconds, f.seconds)
		}
		out.produceRate += sized[id]
	}
	out.shares = make([]float64, n)
	for id := range sized {
		out.shares[id] = sized[id] / out.produceRate
	}
	if s.produceRate > 0 {
		out.lastPoll.produceRate *= out.produceRate / s.produceRate
	}
	// The flows keep what each partition receives; the capped ones' lag is left out.
	out.flows = slices.Clone(s.flows)
	for _, id := range capped {
		out.flows[id].records, out.flows[id].seconds = 0, 0
	}
	out.pods = slices.Clone(s.pods)
	for i, pl := range out.pods {
		out.pods[i].lag = 0
		for _, id := range pl.ids {
			if id >= 0 && id < n && !slices.Contains(capped, id) {
				out.pods[i].lag += s.flows[id].records
			}
		}
	}
	return out, capped
}

// cappedText describes the partitions at their ceilings for a decision's reason.
func cappedText(capped []int, ceilings []partitionCeiling) string {
	parts := make([]string, len(capped))
	for i, id := range capped {
		parts[i] = fmt.Sprintf("%d (%s/s)", id, count(ceilings[id].rate))
	}
	if len(capped) == 1 {
		return "partition " + parts[0] + " is consumed at its ceiling (its pod had room): sized for what it takes, its lag not held against the targets"
	}
	return "partitions " + strings.Join(parts, ", ") + " are consumed at their ceilings (their pods had room): sized for what they take, their lag not held against the targets"
}

// ceilingsStatus is the known ceilings for the Ingester's status, by partition; nil for
// none.
func ceilingsStatus(ceilings []partitionCeiling) []spanflowv1alpha1.PartitionCeiling {
	var out []spanflowv1alpha1.PartitionCeiling
	for id, c := range ceilings {
		if rate := int64(math.Round(c.rate)); rate > 0 {
			out = append(out, spanflowv1alpha1.PartitionCeiling{Partition: int32(id), RecordsPerSecond: rate})
		}
	}
	return out
}

// ceilingsFromStatus is the ceilings a status kept, on a topic of n partitions (those of
// partitions it no longer has dropped); nil for none.
func ceilingsFromStatus(kept []spanflowv1alpha1.PartitionCeiling, n int) []partitionCeiling {
	var out []partitionCeiling
	for _, k := range kept {
		if k.Partition < 0 || int(k.Partition) >= n || k.RecordsPerSecond <= 0 {
			continue
		}
		if out == nil {
			out = make([]partitionCeiling, n)
		}
		rate := float64(k.RecordsPerSecond)
		out[k.Partition] = partitionCeiling{rate: rate, seen: rate, polls: ceilingPolls}
	}
	return out
}
