package loadreport

import (
	"reflect"
	"testing"
	"time"
)

func TestReportRoundTrip(t *testing.T) {
	r := Report{Pod: "spans-7d9f-abcde", At: time.UnixMilli(1_780_000_000_123), Parallelism: 12, Slots: 9.5, Busy: 0.425,
		CPU: 0.61, Rate: 1234.5, Blocked: true, Held: []string{HeldRefused, HeldStorage}, Pause: 3200 * time.Millisecond, Partitions: []int{0, 4, 8, 12}}
	s := r.String()
	if len(s) > 200 {
		t.Errorf("report of %d bytes: %s", len(s), s)
	}
	got, ok := Parse(s)
	if !ok {
		t.Fatalf("Parse(%q) failed", s)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip: got %+v, want %+v", got, r)
	}
}

// TestReportFitsTheBrokersLimit: a pod holding more partitions than a report can list
// leaves them out rather than go over MaxBytes (brokers refuse the whole commit then).
func TestReportFitsTheBrokersLimit(t *testing.T) {
	r := Report{Pod: "spans-7d9f-abcde", At: time.UnixMilli(1_780_000_000_123), Parallelism: 12}
	for p := range 2000 {
		r.Partitions = append(r.Partitions, 10000+p)
	}
	s := r.String()
	got, ok := Parse(s)
	if len(s) > MaxBytes || !ok || got.Pod != r.Pod || len(got.Partitions) != 0 {
		t.Errorf("%d bytes, parsed %t with %d partitions: %.80s…", len(s), ok, len(got.Partitions), s)
	}
}

func TestParseRefusesWhatIsNotAReport(t *testing.T) {
	for _, s := range []string{
		"",
		"some other client's metadata",
		"spanflow/2 pod=a at=1 p=1 busy=0 cpu=0 rate=0",
		"spanflow/1 pod=a at=1 p=1 busy=0 cpu=0",          // fields missing
		"spanflow/1 pod= at=1 p=1 busy=0 cpu=0 rate=0",    // no pod
		"spanflow/1 pod=a at=1 p=0 busy=0 cpu=0 rate=0",   // no parallelism
		"spanflow/1 pod=a at=1 p=1 busy=x cpu=0 rate=0",   // not a number
		"spanflow/1 pod=a at=1 p=1 busy=7 cpu=0 rate=0",   // busy out of range
		"spanflow/1 pod=a at=1 p=1 busy=0 cpu=0 rate=-5",  // negative rate
		"spanflow/1 pod=a at=1 p=1 busy=0 cpu=0 rate=1 x", // a field without a value
		"spanflow/1 pod=a at=1 p=1 busy=0 cpu=0 slots=8",  // rate missing: slots is not one of the fields every version has
	} {
		if r, ok := Parse(s); ok {
			t.Errorf("Parse(%q) = %+v, want no report", s, r)
		}
	}
}

// TestParseIgnoresSlotsThatAreNot: an average of slots that cannot be one (under one,
// infinite, not a number) is not said, and the report falls back to its parallelism.
func TestParseIgnoresSlotsThatAreNot(t *testing.T) {
	for _, v := range []string{"-2", "0", "0.5", "1e-9", "Inf", "+Inf", "NaN", "x"} {
		r, ok := Parse("spanflow/1 pod=a at=1000 p=4 busy=0.5 cpu=-1 rate=10 blocked=0 slots=" + v)
		if !ok || r.Slots != 0 {
			t.Errorf("slots=%s: parsed %t, Slots %v; want the report with no slots", v, ok, r.Slots)
		}
	}
	if r, ok := Parse("spanflow/1 pod=a at=1000 p=4 busy=0.5 cpu=-1 rate=10 blocked=0 slots=3.5"); !ok || r.Slots != 3.5 {
		t.Errorf("slots=3.5: parsed %t, Slots %v", ok, r.Slots)
	}
}

func TestParseSkipsFieldsOfLaterVersions(t *testing.T) {
	r, ok := Parse("spanflow/1 pod=a at=1000 p=4 busy=0.5 cpu=-1 rate=10 blocked=0 queue=7")
	if !ok || r.Pod != "a" || r.Parallelism != 4 || r.Busy != 0.5 || r.CPU != -1 || r.Rate != 10 {
		t.Errorf("got %+v, %t", r, ok)
	}
}

// TestHeldKindsOfALaterVersion: a kind of hold this version does not know is left out,
// the report still read.
func TestHeldKindsOfALaterVersion(t *testing.T) {
	got, ok := Parse("spanflow/1 pod=a at=1780000000123 p=4 busy=0.5 cpu=0.1 rate=10.0 blocked=1 pause=0.0 held=quota,undecodable parts=1")
	if !ok || !reflect.DeepEqual(got.Held, []string{HeldUndecodable}) || !got.Blocked {
		t.Errorf("parsed %t: %+v", ok, got)
	}
}
