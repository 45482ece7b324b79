package fetchwire

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// fetchResponse encodes a Fetch response body (version 4 or 11) of one topic's partitions.
func fetchResponse(version int16, topic string, partitions ...FetchResult) []byte {
	b := binary.BigEndian.AppendUint32(nil, 250) // throttle time, ms
	if version >= 7 {
		b = binary.BigEndian.AppendUint16(b, 0) // error code
		b = binary.BigEndian.AppendUint32(b, 0) // session id
	}
	b = binary.BigEndian.AppendUint32(b, 1)
	b = appendString(b, topic)
	b = binary.BigEndian.AppendUint32(b, uint32(len(partitions)))
	for i, p := range partitions {
		code := int16(0)
		var kerr kafka.Error
		if errors.As(p.Error, &kerr) {
			code = int16(kerr)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(i))
		b = binary.BigEndian.AppendUint16(b, uint16(code))
		b = binary.BigEndian.AppendUint64(b, uint64(p.HighWatermark))
		b = binary.BigEndian.AppendUint64(b, uint64(p.HighWatermark)) // last stable offset
		if version >= 5 {
			b = binary.BigEndian.AppendUint64(b, 0) // log start offset
		}
		b = binary.BigEndian.AppendUint32(b, 1) // an aborted transaction
		b = append(b, make([]byte, 16)...)
		if version >= 11 {
			b = binary.BigEndian.AppendUint32(b, uint32(p.PreferredReadReplica))
		}
		b = appendBytes(b, p.Records)
	}
	return b
}

func TestParseFetchResponse(t *testing.T) {
	for _, version := range []int16{4, 11} {
		body := fetchResponse(version, "spans",
			FetchResult{HighWatermark: 7, Records: []byte("zero"), PreferredReadReplica: -1},
			FetchResult{HighWatermark: 9, Records: []byte("one"), Error: kafka.NotLeaderForPartition, PreferredReadReplica: 2})
		got, err := parseFetchResponse(body, version, "spans", 1)
		if err != nil || got.HighWatermark != 9 || string(got.Records) != "one" || !errors.Is(got.Error, kafka.NotLeaderForPartition) {
			t.Errorf("v%d, partition 1: %+v, %v", version, got, err)
		}
		if want := map[int16]int32{4: -1, 11: 2}[version]; got.PreferredReadReplica != want {
			t.Errorf("v%d, partition 1: preferred read replica %d, want %d", version, got.PreferredReadReplica, want)
		}
		// v4's broker held its answer back for the throttle; v11's answers, then throttles.
		if want := map[int16]time.Duration{4: 0, 11: 250 * time.Millisecond}[version]; got.Throttle != want {
			t.Errorf("v%d: throttle %v, want %v", version, got.Throttle, want)
		}
		if got, err := parseFetchResponse(body, version, "spans", 0); err != nil || got.HighWatermark != 7 || string(got.Records) != "zero" ||
			got.Error != nil || got.PreferredReadReplica != -1 {
			t.Errorf("v%d, partition 0: %+v, %v", version, got, err)
		}
		if _, err := parseFetchResponse(body, version, "other", 0); err == nil || !strings.Contains(err.Error(), "no partition 0 of other") {
			t.Errorf("v%d, another topic: %v", version, err)
		}
		for cut := range len(body) - 1 {
			if got, err := parseFetchResponse(body[:cut], version, "spans", 1); err == nil {
				t.Fatalf("v%d, cut at %d: %+v without an error", version, cut, got)
			}
		}
	}
	// A v11 response that failed as a whole says so for the partition.
	body := fetchResponse(11, "spans")
	binary.BigEndian.PutUint16(body[4:], uint16(kafka.FetchSessionIDNotFound))
	if got, err := parseFetchResponse(body, 11, "spans", 0); err != nil || !errors.Is(got.Error, kafka.FetchSessionIDNotFound) {
		t.Errorf("a failed request: %+v, %v", got, err)
	}
}

// TestParseFetchResponseTrustsNoCount: a count of 2³¹−1 topics in a body of eight bytes
// ends at the first read past the end (it looped through them all: 22 s).
func TestParseFetchResponseTrustsNoCount(t *testing.T) {
	body := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0), 1<<31-1)
	start := time.Now()
	if _, err := parseFetchResponse(body, 4, "spans", 0); err == nil {
		t.Error("no error")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v", took)
	}
}

// FuzzParseFetchResponse: whatever a response holds, parsing it neither panics nor
// returns records beyond it.
func FuzzParseFetchResponse(f *testing.F) {
	f.Add(fetchResponse(4, "spans", FetchResult{HighWatermark: 3, Records: []byte("batches")}), 0, false)
	f.Add(fetchResponse(11, "spans", FetchResult{HighWatermark: 3, Records: []byte("batches"), PreferredReadReplica: 1}), 0, true)
	f.Fuzz(func(t *testing.T, body []byte, partition int, v11 bool) {
		version := int16(4)
		if v11 {
			version = 11
		}
		res, err := parseFetchResponse(body, version, "spans", partition)
		if err == nil && len(res.Records) > len(body) {
			t.Fatalf("%d bytes of records from a body of %d", len(res.Records), len(body))
		}
	})
}

// listOffsetsResponse encodes a ListOffsets v2 response body of one topic that declares
// declared partitions and holds one, partition 4 ending at 42.
func listOffsetsResponse(declared uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0) // throttle time
	b = binary.BigEndian.AppendUint32(b, 1)    // topics
	b = appendString(b, "spans")
	b = binary.BigEndian.AppendUint32(b, declared)
	b = binary.BigEndian.AppendUint32(b, 4)
	b = binary.BigEndian.AppendUint16(b, 0)          // error code
	b = binary.BigEndian.AppendUint64(b, ^uint64(0)) // timestamp
	return binary.BigEndian.AppendUint64(b, 42)
}

// TestParseListOffsetsResponseTrustsNoCount: a response whose counts run past its bytes
// is an error, not a read past the end.
func TestParseListOffsetsResponseTrustsNoCount(t *testing.T) {
	if ends, err := parseListOffsetsResponse(listOffsetsResponse(1000), "spans"); err == nil {
		t.Errorf("parsed %+v from a response of 1,000 partitions cut short after one", ends)
	}
	if ends, err := parseListOffsetsResponse(listOffsetsResponse(1), "spans"); err != nil || len(ends) != 1 || ends[0].Partition != 4 || ends[0].End != 42 {
		t.Errorf("the whole response: %+v, %v", ends, err)
	}
}
