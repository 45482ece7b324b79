package fetchwire

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// fetchResponse encodes a Fetch v4 response body of one topic's partitions.
func fetchResponse(topic string, partitions ...FetchResult) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0) // throttle time
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
		b = binary.BigEndian.AppendUint32(b, 1)                       // an aborted transaction
		b = append(b, make([]byte, 16)...)
		b = appendBytes(b, p.Records)
	}
	return b
}

func TestParseFetchResponse(t *testing.T) {
	body := fetchResponse("spans",
		FetchResult{HighWatermark: 7, Records: []byte("zero")},
		FetchResult{HighWatermark: 9, Records: []byte("one"), Error: kafka.NotLeaderForPartition})
	got, err := parseFetchResponse(body, "spans", 1)
	if err != nil || got.HighWatermark != 9 || string(got.Records) != "one" || !errors.Is(got.Error, kafka.NotLeaderForPartition) {
		t.Errorf("partition 1: %+v, %v", got, err)
	}
	if got, err := parseFetchResponse(body, "spans", 0); err != nil || got.HighWatermark != 7 || string(got.Records) != "zero" || got.Error != nil {
		t.Errorf("partition 0: %+v, %v", got, err)
	}
	if _, err := parseFetchResponse(body, "other", 0); err == nil || !strings.Contains(err.Error(), "no partition 0 of other") {
		t.Errorf("another topic: %v", err)
	}
	for cut := range len(body) - 1 {
		if got, err := parseFetchResponse(body[:cut], "spans", 1); err == nil {
			t.Fatalf("cut at %d: %+v without an error", cut, got)
		}
	}
}

// TestParseFetchResponseTrustsNoCount: a count of 2³¹−1 topics in a body of eight bytes
// ends at the first read past the end (it looped through them all: 22 s).
func TestParseFetchResponseTrustsNoCount(t *testing.T) {
	body := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0), 1<<31-1)
	start := time.Now()
	if _, err := parseFetchResponse(body, "spans", 0); err == nil {
		t.Error("no error")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v", took)
	}
}

// FuzzParseFetchResponse: whatever a response holds, parsing it neither panics nor
// returns records beyond it.
func FuzzParseFetchResponse(f *testing.F) {
	f.Add(fetchResponse("spans", FetchResult{HighWatermark: 3, Records: []byte("batches")}), 0)
	f.Fuzz(func(t *testing.T, body []byte, partition int) {
		res, err := parseFetchResponse(body, "spans", partition)
		if err == nil && len(res.Records) > len(body) {
			t.Fatalf("%d bytes of records from a body of %d", len(res.Records), len(body))
		}
	})
}
