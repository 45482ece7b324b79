package autoscale

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/spanflow/spanflow/ingester/loadreport"
)

// partitionOffsets is one partition as one poll saw it.
type partitionOffsets struct {
	// start and end are the log-start and log-end offsets; committed is the group's
	// committed offset, -1 when it has none.
	start, end, committed int64
	// open is, reading committed records, how many lie past end (the last stable offset)
	// up to the high watermark: behind a transaction still open. 0 otherwise.
	open int64
	// report is the load report committed with the offset by the pod that consumes the
	// partition; nil when the metadata held none.
	report *loadreport.Report
}

// reportFreshness is how old a load report may be and still describe its pod: pods
// renew theirs every 10 s; the margin covers a slow commit and clocks a little apart.
const reportFreshness = 45 * time.Second

// podLoad is one pod's latest load report, with the partitions it holds (the report's
// list, or those that carry it) and their lag.
type podLoad struct {
	loadreport.Report
	ids []int
	// listed is true when ids are the report's own list: every partition the pod holds.
	// (Those that carry it are some: the ingester commits its report with one.)
	listed bool
	lag    int64
}

// slots is the delivery slots the pod allowed on average over its report's interval
// (what Busy is a share of): its parallelism when the report does not say.
func (pl podLoad) slots() float64 {
	if pl.Slots > 0 {
		return pl.Slots
	}
	return float64(pl.Parallelism)
}

// offsetSample is one poll of a topic and group.
type offsetSample struct {
	at         time.Time
	partitions map[int]partitionOffsets
}

// lagSnapshot is what the observer knows of a topic and group.
type lagSnapshot struct {
	partitions int
	// records is the total of records produced and not committed.
	records int64
	// seconds is the age of the oldest uncommitted record, estimated from the history of
	// log-end offsets: the time at which the log end passed the committed offset.
	seconds int64
	// open is, reading committed records, how many wait behind transactions still open
	// (not in records: the pods may not read them yet).
	open int64
	// produceRate and consumeRate are records per second over the last rateSamples polls.
	produceRate, consumeRate float64
	// shares are the partitions' shares of that production, by partition ID, when some
	// stand out from the others (see productionShares); nil when none does: an even topic.
	shares []float64
	// looseShares are the same told apart by their spread alone, without the three times
	// the median (see productionShares): what sizing uses once the pods showed that the
	// production is uneven enough to matter (see unevenShown). skewKnown is true when
	// enough was produced over the window, on the same partitions, to tell either.
	looseShares []float64
	skewKnown   bool
	// flows are the partitions over the rate window, by partition ID; nil when the
	// partitions changed within it or their IDs are not 0 to partitions-1.
	flows []partitionFlow
	// rateSince is the start of the rate window.
	rateSince time.Time
	// lastPoll is the interval since the previous poll, which measures the pods' capacity
	// when they had work throughout it; pollBefore the interval before it (zero with fewer
	// than three polls).
	lastPoll, pollBefore pollInterval
	at                   time.Time
	// pods are the fresh load reports, one per pod, in the order of their names.
	pods []podLoad
}

// risenRate is the production of the last poll interval, unless the interval before it
// had hardly any (under a tenth of the window's rate): then the records came all at once
// after a pause — a transactional producer's at each commit, to a group reading
// committed, or a batch job's — and the window's rate is what they come at (sized for
// each pulse, a group never shrank: 12 pods where 3 keep up with a commit a minute). A
// tenth, not more: between the bursts of a load that has some, the rate is lower than
// the window's without being a pause, and a burst is followed at once.
func (s lagSnapshot) risenRate() float64 {
	if !s.pollBefore.since.IsZero() && s.pollBefore.produceRate < s.produceRate/10 {
		return s.produceRate
	}
	return s.lastPoll.produceRate
}

// partitionFlow is one partition over the rate window.
type partitionFlow struct {
	// produceRate and consumeRate are its records per second (consumeRate from the
	// committed offsets, 0 when either end of the window had none).
	produceRate, consumeRate float64
	// leastBacklog is its smallest lag at any poll of the window; records its lag now
	// and seconds the age of its oldest uncommitted record.
	leastBacklog, records, seconds int64
	// pod is the pod whose fresh load report lists it ("" when none does).
	pod string
}

// pollInterval is the consumption between two polls.
type pollInterval struct {
	// since is the time of the previous poll (zero with a single poll), when the lag was
	// startRecords; consumeRate is records committed per second since.
	since                    time.Time
	produceRate, consumeRate float64
	// leastBacklog is the smallest lag of any partition at either poll: above a few
	// seconds of work, every pod was busy throughout.
	leastBacklog int64
}

// rateSamples is how many polls the rates are measured over: enough to smooth commit
// batching, few enough to follow a change of load within a minute at the operator's
// 10 s interval. The age of the lag uses the whole window.
const rateSamples = 6

// skewRecords is how many records a partition must have had, on average, within the
// rate window for the shares of the partitions to say how uneven the production is.
const skewRecords = 1000

// productionShares are the partitions' shares of the production, given what each
// produced, by partition ID: the measured share of each partition that stands out — three
// times the partitions' median and 8 of their robust standard deviations above it (from
// the median absolute deviation, so that one hot partition does not hide another) — and
// an even share of the rest for the others. Producers that fill one partition at a time
// (Kafka's sticky partitioner, for records without a key) leave the partitions uneven by
// chance, the more so the fewer their batches; sizing for such a partition would buy
// pods for nothing. nil: none stands out, too little was produced to tell, or too few
// partitions (under 4) to tell a hot one from chance. loose drops the three times the
// median: a partition stands out by its spread alone (above the median by 8 robust
// deviations), for a topic whose pods showed a partition a little hotter than the others
// to set their pace (see unevenShown).
func productionShares(produced []int64, loose bool) []float64 {
	n := len(produced)
	if n < 4 {
		return nil
	}
	var total int64
	for _, v := range produced {
		total += v
	}
	if total < skewRecords*int64(n) {
		return nil
	}
	median := medianOf(produced, func(v int64) float64 { return float64(v) })
	spread := 1.4826 * medianOf(produced, func(v int64) float64 { return math.Abs(float64(v) - median) })
	hot := func(v int64) bool { return float64(v) >= 3*median && float64(v) >= median+8*spread }
	if loose {
		hot = func(v int64) bool { return float64(v) > median+8*spread }
	}
	var hotTotal int64
	hotCount := 0
	for _, v := range produced {
		if hot(v) {
			hotTotal, hotCount = hotTotal+v, hotCount+1
		}
	}
	if hotCount == 0 {
		return nil
	}
	shares := make([]float64, n)
	rest := 0.0
	if hotCount < n {
		rest = float64(total-hotTotal) / float64(total) / float64(n-hotCount)
	}
	for i, v := range produced {
		shares[i] = rest
		if hot(v) {
			shares[i] = float64(v) / float64(total)
		}
	}
	return shares
}

// medianOf is the median of f over values.
func medianOf(values []int64, f func(int64) float64) float64 {
	s := make([]float64, len(values))
	for i, v := range values {
		s[i] = f(v)
	}
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// shape is the topic as the policy sizes for it.
func (s lagSnapshot) shape() topicShape {
	return topicShape{partitions: int32(s.partitions), shares: s.shares}
}

// partitionLag is a partition's uncommitted records. A group with nothing committed
// counts from the log start when it starts at the earliest offset, and has no lag when it
// starts at the latest. Retention may have deleted records past the committed offset:
// the lag counts from the log start then.
func partitionLag(p partitionOffsets, fromEarliest bool) int64 {
	from := p.committed
	if from < 0 {
		if !fromEarliest {
			return 0
		}
		from = p.start
	}
	from = max(from, p.start)
	return max(p.end-from, 0)
}

// oldestRecords remembers, by partition ID, when the oldest uncommitted record was
// produced, so that its age keeps growing after the window no longer holds the sample
// that dates it: with no production since (a quiet topic, a stuck consumer) the window
// alone can say no more than its own length, and an alert on the lag's age would wait
// for good.
type oldestRecords map[int]oldestRecord

type oldestRecord struct {
	position   int64 // the record's offset
	producedAt time.Time
}

// computeLag derives the snapshot from the samples of a window, oldest first; the last is
// the current one. Transaction markers take offsets too: they count as records here, as
// they do in Kafka's own lag figures.
func computeLag(window []offsetSample, fromEarliest bool) lagSnapshot {
	return computeLagRemembering(window, fromEarliest, nil)
}

// computeLagRemembering is computeLag dating the oldest records with what oldest (updated
// here; nil: nothing) remembers of them from earlier windows.
func computeLagRemembering(window []offsetSample, fromEarliest bool, oldest oldestRecords) lagSnapshot {
	cur := window[len(window)-1]
	snap := lagSnapshot{partitions: len(cur.partitions), at: cur.at}
	firstIndex := max(len(window)-rateSamples, 0)
	first := window[firstIndex]
	snap.rateSince = first.at
	span := cur.at.Sub(first.at).Seconds()
	var produced, consumed int64
	if len(window) > 1 {
		snap.lastPoll = lastPollInterval(window[len(window)-2], cur, fromEarliest)
	}
	if len(window) > 2 {
		snap.pollBefore = lastPollInterval(window[len(window)-3], window[len(window)-2], fromEarliest)
	}
	snap.pods = podLoads(cur, fromEarliest)
	// Each partition over the rate window, by partition ID, while the partitions stay the
	// same (added ones would make the old ones look hot).
	flows := make([]partitionFlow, len(cur.partitions))
	byID := make([]int64, len(cur.partitions)) // records produced within the window
	samePartitions := len(first.partitions) == len(cur.partitions) && span > 0
	for id, p := range cur.partitions {
		lag := partitionLag(p, fromEarliest)
		snap.records += lag
		snap.open += p.open
		old, ok := first.partitions[id]
		samePartitions = samePartitions && ok && id >= 0 && id < len(flows)
		var seconds int64
		if lag > 0 {
			age, bound := oldestUncommittedAge(window, id, p, fromEarliest)
			if oldest != nil {
				// The same record as before was produced no later than then thought. Only
				// an age that cannot be too old is remembered: one the window brackets, or
				// the window's own length; an extrapolation from the rate (too old after a
				// lull in production) counts for this poll only.
				r := oldestRecord{position: p.end - lag, producedAt: cur.at.Add(-age)}
				known, ok := oldest[id]
				if ok && known.position != r.position {
					ok = false
				}
				switch {
				case bound && (!ok || r.producedAt.Before(known.producedAt)):
					oldest[id] = r
				case !ok:
					delete(oldest, id)
				}
				if ok && known.producedAt.Before(r.producedAt) {
					age = cur.at.Sub(known.producedAt)
				}
			}
			seconds = int64(age.Seconds())
			snap.seconds = max(snap.seconds, seconds)
		} else if oldest != nil {
			delete(oldest, id)
		}
		if !ok || span <= 0 {
			continue
		}
		produced += p.end - old.end
		f := partitionFlow{produceRate: float64(p.end-old.end) / span, leastBacklog: lag, records: lag, seconds: seconds}
		if p.committed >= 0 && old.committed >= 0 {
			consumed += p.committed - old.committed
			f.consumeRate = float64(p.committed-old.committed) / span
		}
		for _, s := range window[firstIndex:] {
			if at, ok := s.partitions[id]; ok {
				f.leastBacklog = min(f.leastBacklog, partitionLag(at, fromEarliest))
			}
		}
		if id >= 0 && id < len(flows) {
			flows[id], byID[id] = f, p.end-old.end
		}
	}
	if span > 0 {
		snap.produceRate = float64(produced) / span
		snap.consumeRate = float64(consumed) / span
	}
	if samePartitions {
		for _, pl := range snap.pods {
			for _, id := range pl.ids {
				if id >= 0 && id < len(flows) {
					flows[id].pod = pl.Pod
				}
			}
		}
		snap.flows = flows
		snap.shares = productionShares(byID, false)
		snap.looseShares = productionShares(byID, true)
		snap.skewKnown = len(byID) >= 4 && produced >= skewRecords*int64(len(byID))
	}
	return snap
}

// podLoads gathers the fresh load reports of a sample, one per pod: the newest any
// partition carries (a pod commits its report with one of its partitions; a partition
// it held before a rebalance may still carry an older one). The partitions a report
// lists are the pod's, with their lag.
func podLoads(s offsetSample, fromEarliest bool) []podLoad {
	newest := map[string]loadreport.Report{}
	carriers := map[string][]int{}
	for id, p := range s.partitions {
		r := p.report
		if r == nil || s.at.Sub(r.At) > reportFreshness {
			continue
		}
		carriers[r.Pod] = append(carriers[r.Pod], id)
		if old, ok := newest[r.Pod]; !ok || r.At.After(old.At) {
			newest[r.Pod] = *r
		}
	}
	out := make([]podLoad, 0, len(newest))
	for pod, r := range newest {
		parts := r.Partitions
		if len(parts) == 0 {
			parts = carriers[pod]
		}
		pl := podLoad{Report: r, ids: parts, listed: len(r.Partitions) > 0}
		for _, id := range parts {
			if p, ok := s.partitions[id]; ok {
				pl.lag += partitionLag(p, fromEarliest)
			}
		}
		out = append(out, pl)
	}
	slices.SortFunc(out, func(a, b podLoad) int { return strings.Compare(a.Pod, b.Pod) })
	return out
}

// oldestUncommittedAge estimates how long ago the first uncommitted record of partition
// id was produced: the latest sample whose log end had not yet passed it was taken
// before it, the next one after. Older than the window, it extrapolates with the rate.
// bound is true when the age is no older than the record's: bracketed by the window, or
// the window's length.
func oldestUncommittedAge(window []offsetSample, id int, cur partitionOffsets, fromEarliest bool) (age time.Duration, bound bool) {
	now := window[len(window)-1].at
	position := cur.end - partitionLag(cur, fromEarliest) // offset of the oldest uncommitted record
	for i := len(window) - 1; i >= 0; i-- {
		p, ok := window[i].partitions[id]
		if ok && p.end <= position {
			if i == len(window)-1 {
				return 0, true
			}
			return now.Sub(window[i+1].at), true
		}
	}
	// Produced before the window began: extrapolate from the window's production rate.
	first := window[0]
	span := now.Sub(first.at)
	if p, ok := first.partitions[id]; ok && span > 0 {
		rate := float64(cur.end-p.end) / span.Seconds()
		if rate > 0 {
			return max(time.Duration(float64(cur.end-position)/rate*float64(time.Second)), span), false
		}
	}
	return span, true
}

func lastPollInterval(prev, cur offsetSample, fromEarliest bool) pollInterval {
	iv := pollInterval{since: prev.at, leastBacklog: math.MaxInt64}
	var produced, consumed int64
	for id, c := range cur.partitions {
		p, ok := prev.partitions[id]
		if !ok {
			iv.leastBacklog = 0
			continue
		}
		produced += c.end - p.end
		iv.leastBacklog = min(iv.leastBacklog, partitionLag(p, fromEarliest), partitionLag(c, fromEarliest))
		if p.committed >= 0 && c.committed >= 0 {
			consumed += c.committed - p.committed
		}
	}
	if span := cur.at.Sub(prev.at).Seconds(); span > 0 {
		iv.produceRate, iv.consumeRate = float64(produced)/span, float64(consumed)/span
	}
	return iv
}
