package fetchwire

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/segmentio/kafka-go"
)

const apiListOffsets = 2

// ListedEnd is a partition's end as its leader listed it.
type ListedEnd struct {
	Partition int
	// End is the high watermark, or reading committed the last stable offset: the offset
	// the next record produced (or committed) gets.
	End int64
	// Error is the partition's own: the broker no longer leads it, say.
	Error error
}

// ListEnds asks the broker for the ends of topic's partitions in one ListOffsets request
// (v2, Kafka 0.11 and later: it reads the isolation level). kafka-go's client sends a
// request for each partition; a pod holding 96 partitions in a storage outage sent 96
// every 5 s to learn their lag. The partitions must be led by this broker; those it does
// not lead come back with an error of their own.
func (c *Conn) ListEnds(ctx context.Context, topic string, partitions []int, readCommitted bool) ([]ListedEnd, error) {
	body, err := c.roundTrip(ctx, apiListOffsets, 2, func(b []byte) []byte {
		b = binary.BigEndian.AppendUint32(b, ^uint32(0)) // replica id -1: a consumer
		b = append(b, isolationLevel(readCommitted))
		b = binary.BigEndian.AppendUint32(b, 1) // topics
		b = appendString(b, topic)
		b = binary.BigEndian.AppendUint32(b, uint32(len(partitions)))
		for _, p := range partitions {
			b = binary.BigEndian.AppendUint32(b, uint32(p))
			b = binary.BigEndian.AppendUint64(b, ^uint64(0)) // timestamp -1: the latest offset
		}
		return b
	}, nil, 0)
	if err != nil {
		return nil, err
	}
	return parseListOffsetsResponse(body, topic)
}

// parseListOffsetsResponse reads the partitions of topic from a ListOffsets v2 response.
func parseListOffsetsResponse(body []byte, topic string) ([]ListedEnd, error) {
	r := reader{b: body}
	r.int32() // throttle time
	var ends []ListedEnd
	for topics := r.int32(); topics > 0 && r.err == nil; topics-- {
		name := r.string()
		for partitions := r.int32(); partitions > 0 && r.err == nil; partitions-- {
			id, code := r.int32(), r.int16()
			r.int64() // timestamp
			end := r.int64()
			if r.err != nil || string(name) != topic {
				continue
			}
			listed := ListedEnd{Partition: int(id), End: end}
			if code != 0 {
				listed.Error = kafka.Error(code)
			}
			ends = append(ends, listed)
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("list offsets response: %w", r.err)
	}
	return ends, nil
}
