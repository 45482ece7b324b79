package fetchwire

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/segmentio/kafka-go/compress"
)

// abortedTransactions follows a read_committed response's aborted transactions through
// its batches, in offset order, as Kafka's own consumer does: a producer's batches are
// aborted from its aborted transaction's first offset until the transaction's abort
// marker (a control batch of the same producer).
type abortedTransactions struct {
	pending []AbortedTransaction // by first offset, not reached yet
	open    []int64              // producers in an aborted transaction reached
}

// skips says whether batch belongs to an aborted transaction. A control batch is never
// skipped here (the caller skips every control batch): its abort marker ends its
// producer's aborted transaction.
func (t *abortedTransactions) skips(batch []byte, attributes uint16, lastOffset int64, scratch []byte) (bool, []byte, error) {
	for len(t.pending) > 0 && t.pending[0].FirstOffset <= lastOffset {
		if !slices.Contains(t.open, t.pending[0].ProducerID) {
			t.open = append(t.open, t.pending[0].ProducerID)
		}
		t.pending = t.pending[1:]
	}
	producer := int64(binary.BigEndian.Uint64(batch[producerIDAt:]))
	i := slices.Index(t.open, producer)
	if producer < 0 || i < 0 {
		return false, scratch, nil
	}
	if attributes&controlFlag == 0 {
		return attributes&transactionalFlag != 0, scratch, nil
	}
	abort, scratch, err := isAbortMarker(batch, attributes, scratch)
	if abort {
		t.open = slices.Delete(t.open, i, i+1)
	}
	return false, scratch, err
}

// isAbortMarker says whether a control batch's record marks an abort (its key: a version
// and a type, 0 for abort, 1 for commit). A batch emptied by the log cleaner (which keeps
// a producer's last batch, markers too, without its records) marks nothing, as for
// Kafka's consumer.
func isAbortMarker(batch []byte, attributes uint16, scratch []byte) (bool, []byte, error) {
	records := batch[batchHeaderSize:]
	if binary.BigEndian.Uint32(batch[recordCountAt:]) == 0 || len(records) == 0 {
		return false, scratch, nil
	}
	if codec := compress.Compression(attributes & compressionMask); codec != compress.None {
		start := len(scratch)
		var err error
		if scratch, err = decompress(scratch, codec, records); err != nil {
			return false, scratch, err
		}
		records = scratch[start:len(scratch):len(scratch)]
	}
	records, size, err := recordOf(records)
	if err != nil {
		return false, scratch, fmt.Errorf("its control record: %w", err)
	}
	var marker Record
	if err := marker.parse(records[:size], 0, 0, -1); err != nil {
		return false, scratch, fmt.Errorf("its control record: %w", err)
	}
	if len(marker.Key) < 4 {
		return false, scratch, fmt.Errorf("a control record's key of %d bytes", len(marker.Key))
	}
	return binary.BigEndian.Uint16(marker.Key[2:]) == 0, scratch, nil
}
