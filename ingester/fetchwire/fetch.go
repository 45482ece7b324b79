package fetchwire

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// FetchRequest asks for one partition's records from Offset on.
type FetchRequest struct {
	Topic     string
	Partition int
	Offset    int64
	// MinBytes is how much the broker waits for, at most MaxWait; MaxBytes bounds the
	// response (the broker still returns a first record batch larger than it whole).
	MinBytes, MaxBytes int
	MaxWait            time.Duration
	// ReadCommitted asks for read_committed isolation: records up to the last stable
	// offset only, and the aborted transactions among them listed (ParseRecords leaves
	// their records out).
	ReadCommitted bool
	// Rack is the client's rack (its zone), "" when none. With one, the request is Fetch
	// v11 (Kafka 2.4 and later), and a leader whose brokers select replicas by rack may
	// name a replica in the client's rack to read from (KIP-392); without, Fetch v4.
	Rack string
}

// FetchResult is the partition's part of a response.
type FetchResult struct {
	// Error is the partition's error code, nil when none: then the connection is still
	// good.
	Error         error
	HighWatermark int64
	// LastStableOffset is where the first transaction still open begins (the high
	// watermark when none is): what read_committed may read ends there.
	LastStableOffset int64
	// Aborted are the aborted transactions in the records (read_committed only).
	Aborted []AbortedTransaction
	// PreferredReadReplica is the broker the leader would have the client read the
	// partition from (a replica in its rack), or -1: the broker asked.
	PreferredReadReplica int32
	// Throttle is how long the broker, over a quota, reads nothing more of the connection
	// (Fetch v8 and later answer at once, then throttle, KIP-219): the next fetch waits
	// for it. Zero for v4, whose answer the broker held back instead.
	Throttle time.Duration
	// Records are the record batches, raw (ParseRecords reads them), a slice of the
	// response buffer.
	Records []byte
	// Buffer is the array the response was read into, buffer's or a larger new one, to
	// be given to a later Fetch (and not read while Records are in use).
	Buffer []byte
}

// AbortedTransaction is a producer's transaction that was aborted, from its first offset.
type AbortedTransaction struct {
	ProducerID, FirstOffset int64
}

// fetchResponseOverhead bounds a one-partition response's bytes besides its records,
// topic name and aborted transactions (which make a response larger than asked for: the
// buffer grows for them).
const fetchResponseOverhead = 64

// Fetch sends req and reads its response into the array buffer returns, when it is
// large enough; buffer (nil: a new array) is called only once the response begins to
// arrive, so that a partition waiting for records holds no buffer meanwhile. ctx's
// deadline bounds the round trip; a broker should answer within req.MaxWait.
func (c *Conn) Fetch(ctx context.Context, req FetchRequest, buffer func() []byte) (FetchResult, error) {
	version := int16(4)
	if req.Rack != "" {
		version = 11
	}
	body, err := c.roundTrip(ctx, apiFetch, version, func(b []byte) []byte {
		b = binary.BigEndian.AppendUint32(b, ^uint32(0)) // replica id -1: a consumer
		b = binary.BigEndian.AppendUint32(b, uint32(max(req.MaxWait.Milliseconds(), 0)))
		b = binary.BigEndian.AppendUint32(b, uint32(req.MinBytes))
		b = binary.BigEndian.AppendUint32(b, uint32(req.MaxBytes))
		b = append(b, isolationLevel(req.ReadCommitted))
		if version >= 7 {
			b = binary.BigEndian.AppendUint32(b, 0)          // session id: none
			b = binary.BigEndian.AppendUint32(b, ^uint32(0)) // session epoch -1: a full fetch, no session
		}
		b = binary.BigEndian.AppendUint32(b, 1) // topics
		b = appendString(b, req.Topic)
		b = binary.BigEndian.AppendUint32(b, 1) // partitions
		b = binary.BigEndian.AppendUint32(b, uint32(req.Partition))
		if version >= 9 {
			b = binary.BigEndian.AppendUint32(b, ^uint32(0)) // current leader epoch -1: not checked
		}
		b = binary.BigEndian.AppendUint64(b, uint64(req.Offset))
		if version >= 5 {
			b = binary.BigEndian.AppendUint64(b, ^uint64(0)) // log start offset -1: a consumer's
		}
		b = binary.BigEndian.AppendUint32(b, uint32(req.MaxBytes))
		if version >= 7 {
			b = binary.BigEndian.AppendUint32(b, 0) // forgotten topics
		}
		if version >= 11 {
			b = appendString(b, req.Rack)
		}
		return b
	}, buffer, req.MaxBytes+fetchResponseOverhead+len(req.Topic))
	if err != nil {
		return FetchResult{}, err
	}
	res, err := parseFetchResponse(body, version, req.Topic, req.Partition)
	res.Buffer = body[:cap(body)]
	return res, err
}

// parseFetchResponse finds topic's partition in a Fetch response body of version 4 or 11.
func parseFetchResponse(body []byte, version int16, topic string, partition int) (FetchResult, error) {
	r := reader{b: body}
	throttle := r.int32()
	if version < 8 || throttle < 0 {
		throttle = 0
	}
	var code int16
	if version >= 7 {
		code = r.int16()
		r.int32() // session id
	}
	if r.err == nil && code != 0 { // the whole request failed
		return FetchResult{Error: kafka.Error(code), PreferredReadReplica: -1, Throttle: time.Duration(throttle) * time.Millisecond}, nil
	}
	// Counts are trusted only as far as the bytes go: a corrupt one ends the loop at the
	// first read past the end.
	for topics := r.int32(); topics > 0 && r.err == nil; topics-- {
		name := r.string()
		for partitions := r.int32(); partitions > 0 && r.err == nil; partitions-- {
			id, code, highWatermark, lastStable := r.int32(), r.int16(), r.int64(), r.int64()
			if version >= 5 {
				r.int64() // log start offset
			}
			var aborted []byte
			if n := r.int32(); n > 0 { // -1: null
				aborted = r.take(int(n) * 16) // producer id, first offset
			}
			preferred := int32(-1)
			if version >= 11 {
				preferred = r.int32()
			}
			records := r.bytes()
			if r.err != nil {
				break
			}
			if int(id) == partition && string(name) == topic {
				res := FetchResult{HighWatermark: highWatermark, LastStableOffset: lastStable, Records: records,
					PreferredReadReplica: preferred, Throttle: time.Duration(throttle) * time.Millisecond}
				for ; len(aborted) >= 16; aborted = aborted[16:] {
					res.Aborted = append(res.Aborted, AbortedTransaction{
						ProducerID:  int64(binary.BigEndian.Uint64(aborted)),
						FirstOffset: int64(binary.BigEndian.Uint64(aborted[8:])),
					})
				}
				if code != 0 {
					res.Error = kafka.Error(code)
				}
				return res, nil
			}
		}
	}
	if r.err != nil {
		return FetchResult{}, fmt.Errorf("fetch response: %w", r.err)
	}
	return FetchResult{}, fmt.Errorf("the fetch response holds no partition %d of %s", partition, topic)
}

// isolationLevel is the Fetch and ListOffsets requests' isolation level byte.
func isolationLevel(readCommitted bool) byte {
	if readCommitted {
		return 1
	}
	return 0
}
