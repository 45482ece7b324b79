package fetchwire

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
)

// Record is one record of a batch. Key, Value and the headers' values are slices of the
// bytes parsed (of the decompressed batch when it was compressed); a nil Key is a null
// key, an empty one an empty key.
type Record struct {
	Offset     int64
	Time       time.Time // zero when the producer gave none
	Key, Value []byte
	Headers    []kafka.Header
	// Decompressed says the record came in a compressed batch: its bytes are in the
	// scratch buffer, not in the set.
	Decompressed bool
}

// ErrOldMessageFormat is returned for a message set written before Kafka 0.11 (magic 0
// or 1), which this reader does not read. Kafka 3 deprecated those formats and Kafka 4
// removed them.
var ErrOldMessageFormat = errors.New("a message set in the format before Kafka 0.11 (magic 0 or 1), which the ingester does not read")

// The batch header's fields, by their offset in it (Kafka's RecordBatch, magic 2).
const (
	batchLengthAt     = 8  // int32: the bytes after this field
	magicAt           = 16 // int8
	crcAt             = 17 // uint32: CRC-32C of everything after it
	attributesAt      = 21 // int16
	lastOffsetDeltaAt = 23 // int32
	baseTimestampAt   = 27 // int64
	maxTimestampAt    = 35 // int64
	producerIDAt      = 43 // int64
	recordCountAt     = 57 // int32
	batchHeaderSize   = 61

	compressionMask   = 0x07
	logAppendTimeFlag = 0x08
	transactionalFlag = 0x10
	controlFlag       = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ParseRecords reads the record batches of set, a fetch response's records, and calls
// yield with each record at from or after it (a response may begin with a batch from
// before the offset asked for), in order of their offsets, skipping control batches
// (transaction markers) and the batches of the aborted transactions (those of a
// read_committed response; nil otherwise). It
// returns the offset to fetch next (from when no batch was complete: a batch cut short at
// the end of set is fetched whole next time) and scratch, into which compressed batches
// were decompressed (appended: the records yielded before stay valid).
//
// The *Record yield receives is reused for the next record.
func ParseRecords(set []byte, from int64, aborted []AbortedTransaction, scratch []byte, yield func(*Record)) (next int64, _ []byte, err error) {
	next = from
	var r Record
	var txns abortedTransactions
	if len(aborted) > 0 {
		txns.pending = slices.SortedFunc(slices.Values(aborted), func(a, b AbortedTransaction) int {
			return cmp.Compare(a.FirstOffset, b.FirstOffset)
		})
	}
	for len(set) >= magicAt+1 {
		baseOffset := int64(binary.BigEndian.Uint64(set))
		length := int(int32(binary.BigEndian.Uint32(set[batchLengthAt:])))
		if length < 0 {
			return next, scratch, fmt.Errorf("a record batch at offset %d of %d bytes", baseOffset, length)
		}
		if length > len(set)-batchLengthAt-4 {
			break // cut short
		}
		batch := set[:batchLengthAt+4+length]
		set = set[len(batch):]
		if len(batch) > magicAt && batch[magicAt] != 2 {
			return next, scratch, fmt.Errorf("offset %d: %w", baseOffset, ErrOldMessageFormat)
		}
		if len(batch) < batchHeaderSize {
			return next, scratch, fmt.Errorf("a record batch at offset %d of %d bytes", baseOffset, len(batch))
		}
		if sum, want := crc32.Checksum(batch[attributesAt:], castagnoli), binary.BigEndian.Uint32(batch[crcAt:]); sum != want {
			return next, scratch, fmt.Errorf("the record batch at offset %d is corrupt: CRC-32C %08x, its header says %08x", baseOffset, sum, want)
		}
		attributes := binary.BigEndian.Uint16(batch[attributesAt:])
		lastOffset := baseOffset + int64(int32(binary.BigEndian.Uint32(batch[lastOffsetDeltaAt:])))
		if txns.pending != nil || txns.open != nil {
			var skip bool
			if skip, scratch, err = txns.skips(batch, attributes, lastOffset, scratch); err != nil {
				return next, scratch, fmt.Errorf("the record batch at offset %d: %w", baseOffset, err)
			}
			if skip {
				next = max(next, lastOffset+1)
				continue
			}
		}
		if lastOffset < next || attributes&controlFlag != 0 {
			next = max(next, lastOffset+1)
			continue
		}
		baseTime := int64(binary.BigEndian.Uint64(batch[baseTimestampAt:]))
		logAppendTime := int64(-1)
		if attributes&logAppendTimeFlag != 0 {
			logAppendTime = int64(binary.BigEndian.Uint64(batch[maxTimestampAt:]))
		}
		count := int(int32(binary.BigEndian.Uint32(batch[recordCountAt:])))
		records := batch[batchHeaderSize:]
		codec := compress.Compression(attributes & compressionMask)
		r.Decompressed = codec != compress.None
		if r.Decompressed {
			start := len(scratch)
			if scratch, err = decompress(scratch, codec, records); err != nil {
				return next, scratch, fmt.Errorf("the record batch at offset %d: %w", baseOffset, err)
			}
			records = scratch[start:len(scratch):len(scratch)]
		}
		for i := 0; i < count; i++ {
			var size int
			if records, size, err = recordOf(records); err != nil {
				return next, scratch, fmt.Errorf("record %d of the batch at offset %d: %w", i, baseOffset, err)
			}
			if err := r.parse(records[:size], baseOffset, baseTime, logAppendTime); err != nil {
				return next, scratch, fmt.Errorf("record %d of the batch at offset %d: %w", i, baseOffset, err)
			}
			records = records[size:]
			if r.Offset >= next { // in order: a broken response's offsets going back are not read twice
				yield(&r)
				next = r.Offset + 1
			}
		}
		next = max(next, lastOffset+1)
	}
	return next, scratch, nil
}

var errRecord = errors.New("malformed record")

// recordOf reads a record's length prefix: it returns the bytes after the prefix and the
// record's size.
func recordOf(b []byte) ([]byte, int, error) {
	size, n := binary.Varint(b)
	if n <= 0 || size < 0 || size > int64(len(b)-n) {
		return nil, 0, errRecord
	}
	return b[n:], int(size), nil
}

// parse reads one record (after its length prefix) into r.
func (r *Record) parse(b []byte, baseOffset, baseTime, logAppendTime int64) error {
	if len(b) < 1 {
		return errRecord
	}
	b = b[1:] // attributes, unused
	timeDelta, n1 := binary.Varint(b)
	if n1 <= 0 {
		return errRecord
	}
	offsetDelta, n2 := binary.Varint(b[n1:])
	if n2 <= 0 {
		return errRecord
	}
	b = b[n1+n2:]
	r.Offset = baseOffset + offsetDelta
	r.Time = timeOf(baseTime + timeDelta)
	if logAppendTime >= 0 {
		r.Time = timeOf(logAppendTime)
	}
	var ok bool
	if r.Key, b, ok = varBytes(b); !ok {
		return errRecord
	}
	if r.Value, b, ok = varBytes(b); !ok {
		return errRecord
	}
	headers, n := binary.Varint(b)
	// A header takes at least two bytes (its key's and its value's lengths): a count
	// beyond that is corrupt, and would allocate before failing.
	if n <= 0 || headers < 0 || headers > int64(len(b)-n)/2 {
		return errRecord
	}
	b = b[n:]
	r.Headers = nil
	if headers > 0 {
		r.Headers = make([]kafka.Header, headers)
		for i := range r.Headers {
			var key []byte
			if key, b, ok = varBytes(b); !ok || key == nil {
				return errRecord
			}
			r.Headers[i].Key = string(key)
			if r.Headers[i].Value, b, ok = varBytes(b); !ok {
				return errRecord
			}
		}
	}
	return nil
}

// varBytes reads a varint length and that many bytes: nil for a length of -1.
func varBytes(b []byte) (field, rest []byte, ok bool) {
	n, size := binary.Varint(b)
	if size <= 0 || n < -1 || n > int64(len(b)-size) {
		return nil, nil, false
	}
	b = b[size:]
	if n < 0 {
		return nil, b, true
	}
	return b[:n:n], b[n:], true
}

// timeOf is a record's timestamp (milliseconds since the epoch) as a time; zero when
// the producer gave none (-1).
func timeOf(ms int64) time.Time {
	if ms < 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
