package fetchwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testBatch describes a record batch for encodeBatch.
type testBatch struct {
	base    int64
	records []Record // Offset and Time absolute
	codec   compress.Compression
	control bool
	// producer, when not zero, is the batch's producer id, in a transaction when
	// transactional.
	producer      int64
	transactional bool
	logAppendTime int64 // set: the batch's timestamps are the broker's
	extraOffsets  int32 // offsets past the last record the batch still spans (compaction)
}

// encodeBatch encodes b with franz-go's kmsg — another implementation than the one tested.
func encodeBatch(t testing.TB, b testBatch) []byte {
	t.Helper()
	var records []byte
	first, last := int64(0), b.base
	if len(b.records) > 0 {
		first = b.records[0].Time.UnixMilli()
	}
	for _, r := range b.records {
		rec := kmsg.Record{TimestampDelta64: r.Time.UnixMilli() - first, OffsetDelta: int32(r.Offset - b.base), Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			rec.Headers = append(rec.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		rec.Length = int32(len(rec.AppendTo(nil)) - 1) // less its own length, 0: one byte
		records = rec.AppendTo(records)
		last = r.Offset
	}
	var attributes int16
	if b.codec != compress.None {
		var buf bytes.Buffer
		w := b.codec.Codec().NewWriter(&buf)
		if _, err := w.Write(records); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		records, attributes = buf.Bytes(), int16(b.codec)
	}
	maxTime := first
	if n := len(b.records); n > 0 {
		maxTime = b.records[n-1].Time.UnixMilli()
	}
	if b.control {
		attributes |= controlFlag
	}
	producer := int64(-1)
	if b.producer != 0 {
		producer = b.producer
	}
	if b.transactional {
		attributes |= transactionalFlag
	}
	if b.logAppendTime != 0 {
		attributes |= logAppendTimeFlag
		maxTime = b.logAppendTime
	}
	batch := kmsg.RecordBatch{FirstOffset: b.base, Magic: 2, Attributes: attributes,
		LastOffsetDelta: int32(last-b.base) + b.extraOffsets, FirstTimestamp: first, MaxTimestamp: maxTime,
		ProducerID: producer, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(b.records)), Records: records}
	out := batch.AppendTo(nil)
	binary.BigEndian.PutUint32(out[batchLengthAt:], uint32(len(out)-batchLengthAt-4))
	binary.BigEndian.PutUint32(out[crcAt:], crc32.Checksum(out[attributesAt:], castagnoli))
	return out
}

// parseAll parses set from from and returns its records, copied, and the next offset.
func parseAll(set []byte, from int64) ([]Record, int64, error) {
	var got []Record
	next, _, err := ParseRecords(set, from, nil, nil, func(r *Record) {
		c := *r
		c.Key, c.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
		got = append(got, c)
	})
	return got, next, err
}

func recordsText(rs []Record) string {
	var b bytes.Buffer
	for _, r := range rs {
		fmt.Fprintf(&b, "%d@%d key=%q(nil %t) value=%q headers=%v; ", r.Offset, r.Time.UnixMilli(), r.Key, r.Key == nil, r.Value, r.Headers)
	}
	return b.String()
}

func makeRecords(from int64, n int) []Record {
	at := time.UnixMilli(1_780_000_000_000)
	var rs []Record
	for i := range n {
		r := Record{Offset: from + int64(i), Time: at.Add(time.Duration(i) * time.Millisecond), Value: fmt.Appendf(nil, "value %d", from+int64(i))}
		switch i % 4 {
		case 1:
			r.Key = []byte{} // empty, not null
		case 2:
			r.Key = fmt.Appendf(nil, "key-%d", i)
			r.Headers = []kafka.Header{{Key: "content-type", Value: []byte("application/x-protobuf")}, {Key: "empty", Value: []byte{}}}
		case 3:
			r.Value = nil
		}
		rs = append(rs, r)
	}
	return rs
}

func TestParseRecords(t *testing.T) {
	plain := makeRecords(100, 10)
	cases := []struct {
		name     string
		batches  []testBatch
		from     int64
		want     []Record
		wantNext int64
	}{
		{"one batch", []testBatch{{base: 100, records: plain}}, 100, plain, 110},
		{"from inside the batch", []testBatch{{base: 100, records: plain}}, 104, plain[4:], 110},
		{"a batch wholly before from is passed over", []testBatch{{base: 100, records: plain[:5]}, {base: 105, records: plain[5:]}}, 105, plain[5:], 110},
		{"two batches", []testBatch{{base: 100, records: plain[:3]}, {base: 103, records: plain[3:]}}, 100, plain, 110},
		{"a control batch is no records", []testBatch{{base: 100, records: plain[:3]}, {base: 103, records: makeRecords(103, 1), control: true},
			{base: 104, records: makeRecords(104, 2)}}, 100, append(append([]Record{}, plain[:3]...), makeRecords(104, 2)...), 106},
		{"a compacted batch's end", []testBatch{{base: 100, records: plain[:3], extraOffsets: 7}}, 100, plain[:3], 110},
		{"an empty batch moves the offset", []testBatch{{base: 100, records: nil, extraOffsets: 4}}, 100, nil, 105},
		{"log append time", []testBatch{{base: 100, records: plain[:2], logAppendTime: 1_790_000_000_123}}, 100, []Record{
			{Offset: 100, Time: time.UnixMilli(1_790_000_000_123), Value: plain[0].Value},
			{Offset: 101, Time: time.UnixMilli(1_790_000_000_123), Key: []byte{}, Value: plain[1].Value}}, 102},
	}
	for _, codec := range []compress.Compression{compress.Gzip, compress.Snappy, compress.Lz4, compress.Zstd} {
		cases = append(cases, struct {
			name     string
			batches  []testBatch
			from     int64
			want     []Record
			wantNext int64
		}{codec.String(), []testBatch{{base: 100, records: plain[:6], codec: codec}, {base: 106, records: plain[6:], codec: codec}}, 102, plain[2:], 110})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var set []byte
			for _, b := range tc.batches {
				set = append(set, encodeBatch(t, b)...)
			}
			got, next, err := parseAll(set, tc.from)
			if err != nil {
				t.Fatal(err)
			}
			if recordsText(got) != recordsText(tc.want) || next != tc.wantNext {
				t.Errorf("got %s next %d\nwant %s next %d", recordsText(got), next, recordsText(tc.want), tc.wantNext)
			}
			// A response cut anywhere yields the records of its complete batches, and moves
			// the offset no further than them.
			for cut := range len(set) {
				got, next, err := parseAll(set[:cut], tc.from)
				if err != nil {
					t.Fatalf("cut at %d: %v", cut, err)
				}
				if next > tc.wantNext || len(got) > len(tc.want) || recordsText(got) != recordsText(tc.want[:len(got)]) {
					t.Fatalf("cut at %d: %s next %d", cut, recordsText(got), next)
				}
			}
		})
	}
}

func TestParseRecordsRefusesWhatIsBroken(t *testing.T) {
	good := encodeBatch(t, testBatch{base: 7, records: makeRecords(7, 3)})
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-2] ^= 0x40
	old := bytes.Clone(good)
	old[magicAt] = 1
	// A record that claims more bytes than its batch holds, under a correct CRC.
	overlong := encodeBatch(t, testBatch{base: 7, records: makeRecords(7, 1)})
	overlong[batchHeaderSize] = 0x7e // the record's length: 63, more than the batch holds
	binary.BigEndian.PutUint32(overlong[crcAt:], crc32.Checksum(overlong[attributesAt:], castagnoli))
	for _, tc := range []struct {
		name string
		set  []byte
		want string
	}{
		{"a flipped bit", corrupt, "is corrupt: CRC-32C"},
		{"the format before Kafka 0.11", old, ErrOldMessageFormat.Error()},
		{"a record longer than its batch", overlong, "malformed record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, next, err := parseAll(tc.set, 7)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if len(got) != 0 || next != 7 {
				t.Errorf("%d records and next offset %d from a broken batch", len(got), next)
			}
		})
	}
	if _, _, err := parseAll(old, 7); !errors.Is(err, ErrOldMessageFormat) {
		t.Errorf("an old message set: %v, want ErrOldMessageFormat", err)
	}
}

// FuzzParseRecords: whatever a response holds (and whichever transaction it says was
// aborted), parsing neither panics nor yields a
// record before from or out of order, nor moves the offset back or short of what it
// yielded.
func FuzzParseRecords(f *testing.F) {
	for _, b := range []testBatch{{base: 0, records: makeRecords(0, 5)}, {base: 3, records: makeRecords(3, 2), codec: compress.Gzip},
		{base: 9, records: makeRecords(9, 1), control: true}, {base: 1, records: makeRecords(1, 4), codec: compress.Snappy}} {
		f.Add(encodeBatch(f, b), int64(1), int64(-1), int64(0))
	}
	f.Add(slices.Concat(encodeBatch(f, testBatch{base: 0, records: makeRecords(0, 2), producer: 7, transactional: true}),
		encodeBatch(f, testBatch{base: 2, records: []Record{{Offset: 2, Key: []byte{0, 0, 0, 0}}}, producer: 7, transactional: true, control: true}),
		encodeBatch(f, testBatch{base: 3, records: makeRecords(3, 1), producer: 7, transactional: true})), int64(0), int64(7), int64(0))
	// A few bytes decompress to the bound, and the fuzzer takes a worker that spends
	// seconds on one input for hung: the bound is held low here (its own test holds it).
	defer func(bound int) { maxDecompressed = bound }(maxDecompressed)
	maxDecompressed = 1 << 20
	f.Fuzz(func(t *testing.T, set []byte, from, abortedProducer, abortedFrom int64) {
		var aborted []AbortedTransaction
		if abortedProducer >= 0 {
			aborted = []AbortedTransaction{{ProducerID: abortedProducer, FirstOffset: abortedFrom}}
		}
		// As the bytes came, and with every whole batch's CRC made right, so that the
		// records' own parsing is reached.
		for _, set := range [][]byte{set, withCRCsFixed(set)} {
			last, seen := int64(0), false
			next, _, err := ParseRecords(set, from, aborted, nil, func(r *Record) {
				if r.Offset < from || (seen && r.Offset <= last) {
					t.Fatalf("record at offset %d after %d, from %d", r.Offset, last, from)
				}
				last, seen = r.Offset, true
			})
			if next < from {
				t.Fatalf("next offset %d before %d (err %v)", next, from, err)
			}
			if seen && last >= next {
				t.Fatalf("record at %d, next offset %d", last, next)
			}
		}
	})
}

// withCRCsFixed returns a copy of set with the CRC of every whole batch of the current
// format computed anew.
func withCRCsFixed(set []byte) []byte {
	set = bytes.Clone(set)
	for rest := set; len(rest) >= batchHeaderSize; {
		length := int(int32(binary.BigEndian.Uint32(rest[batchLengthAt:])))
		if length < batchHeaderSize-batchLengthAt-4 || length > len(rest)-batchLengthAt-4 {
			break
		}
		batch := rest[:batchLengthAt+4+length]
		binary.BigEndian.PutUint32(batch[crcAt:], crc32.Checksum(batch[attributesAt:], castagnoli))
		rest = rest[len(batch):]
	}
	return set
}

// TestParseRecordsBoundsWhatItAllocates: a header count a corrupt record gives (under a
// right CRC) is held to what its bytes can hold before anything is allocated for it: here
// 3,000 headers claimed in 4,000 bytes, which hold at most 2,000.
func TestParseRecordsBoundsWhatItAllocates(t *testing.T) {
	body := []byte{0}                       // attributes
	body = binary.AppendVarint(body, 0)     // timestamp delta
	body = binary.AppendVarint(body, 0)     // offset delta
	body = binary.AppendVarint(body, -1)    // null key
	body = binary.AppendVarint(body, 1)     // value length
	body = append(body, 'v')                //
	body = binary.AppendVarint(body, 3_000) // header count
	body = append(body, make([]byte, 4_000)...)
	records := append(binary.AppendVarint(nil, int64(len(body))), body...)
	batch := kmsg.RecordBatch{Magic: 2, NumRecords: 1, Records: records, FirstSequence: -1, ProducerID: -1, ProducerEpoch: -1}
	set := withCRCsFixed(fixLength(batch.AppendTo(nil)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, _, err := ParseRecords(set, 0, nil, nil, func(*Record) {}); err == nil {
			t.Fatal("a record claiming 3,000 headers in 4,000 bytes parsed")
		}
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / 10; perRun > 10<<10 {
		t.Errorf("%d bytes allocated parsing it", perRun)
	}
}

func fixLength(batch []byte) []byte {
	binary.BigEndian.PutUint32(batch[batchLengthAt:], uint32(len(batch)-batchLengthAt-4))
	return batch
}

// TestDecompressionIsBoundedAResponse: the compressed batches of one response may grow to
// maxDecompressed in all, not each: the batch past it is an error, the whole ones before
// it are read.
func TestDecompressionIsBoundedAResponse(t *testing.T) {
	defer func(limit int) { maxDecompressed = limit }(maxDecompressed)
	records := makeRecords(0, 20)
	for i := range records {
		records[i].Value = bytes.Repeat([]byte{'x'}, 100)
	}
	set := append(encodeBatch(t, testBatch{base: 0, records: records[:10], codec: compress.Gzip}),
		encodeBatch(t, testBatch{base: 10, records: records[10:], codec: compress.Gzip})...)
	maxDecompressed = 1500 // a batch decompresses to about 1,300 bytes
	got, next, err := parseAll(set, 0)
	if err == nil || len(got) != 10 || next != 10 {
		t.Errorf("%d records, next %d, error %v; want the first batch's 10, next 10, and an error", len(got), next, err)
	}
}

// TestParseRecordsLeavesOutAbortedTransactions: given a read_committed response's aborted
// transactions, a producer's transactional batches from its aborted transaction's first
// offset to its abort marker are left out, and only those: another producer's
// interleaved transaction, records outside transactions, and the same producer's next
// transaction (committed) are read; a compressed abort marker counts as well.
func TestParseRecordsLeavesOutAbortedTransactions(t *testing.T) {
	const p, q = 7, 9
	marker := func(offset int64, commit bool) []Record {
		key := []byte{0, 0, 0, 0}
		if commit {
			key[3] = 1
		}
		return []Record{{Offset: offset, Time: time.UnixMilli(1_780_000_000_000), Key: key, Value: []byte{0, 0, 0, 0, 0, 0}}}
	}
	set := slices.Concat(
		encodeBatch(t, testBatch{base: 0, records: makeRecords(0, 2), producer: p, transactional: true}), // p's first, aborted
		encodeBatch(t, testBatch{base: 2, records: makeRecords(2, 1), producer: q, transactional: true}), // q's, committed
		encodeBatch(t, testBatch{base: 3, records: makeRecords(3, 1)}),                                   // no transaction
		encodeBatch(t, testBatch{base: 4, records: marker(4, false), producer: p, transactional: true, control: true}),
		encodeBatch(t, testBatch{base: 5, records: makeRecords(5, 1), producer: p, transactional: true}), // p's second, committed
		encodeBatch(t, testBatch{base: 6, records: marker(6, true), producer: p, transactional: true, control: true}),
		encodeBatch(t, testBatch{base: 7, records: marker(7, true), producer: q, transactional: true, control: true}),
		encodeBatch(t, testBatch{base: 8, records: makeRecords(8, 1), producer: p, transactional: true, codec: compress.Gzip}), // p's third, aborted
		encodeBatch(t, testBatch{base: 9, records: marker(9, false), producer: p, transactional: true, control: true, codec: compress.Gzip}),
		encodeBatch(t, testBatch{base: 10, records: makeRecords(10, 1)}),
	)
	aborted := []AbortedTransaction{{ProducerID: p, FirstOffset: 8}, {ProducerID: p, FirstOffset: 0}} // in no order
	offsets := func(rs []Record) []int64 {
		var out []int64
		for _, r := range rs {
			out = append(out, r.Offset)
		}
		return out
	}
	parse := func(set []byte, from int64, aborted []AbortedTransaction) ([]int64, int64) {
		t.Helper()
		var got []Record
		next, _, err := ParseRecords(set, from, aborted, nil, func(r *Record) { got = append(got, *r) })
		if err != nil {
			t.Fatal(err)
		}
		return offsets(got), next
	}
	for _, tc := range []struct {
		from    int64
		aborted []AbortedTransaction
		want    []int64
	}{
		{0, aborted, []int64{2, 3, 5, 10}},
		{5, aborted, []int64{5, 10}},
		{5, aborted[:1], []int64{5, 10}},        // as a broker lists them from 5: what ends at 5 or after
		{0, nil, []int64{0, 1, 2, 3, 5, 8, 10}}, // read uncommitted
	} {
		if got, next := parse(set, tc.from, tc.aborted); !slices.Equal(got, tc.want) || next != 11 {
			t.Errorf("from %d, aborted %v: read %v, next %d; want %v, next 11", tc.from, tc.aborted, got, next, tc.want)
		}
	}
	// A batch the log cleaner emptied (it keeps a producer's last one) marks nothing, as
	// for Kafka's consumer: p's transaction ends at its abort marker after it.
	emptied := slices.Concat(
		encodeBatch(t, testBatch{base: 20, records: makeRecords(20, 1), producer: p, transactional: true}),
		encodeBatch(t, testBatch{base: 21, producer: p, transactional: true, control: true}),
		encodeBatch(t, testBatch{base: 22, records: makeRecords(22, 1), producer: p, transactional: true}),
		encodeBatch(t, testBatch{base: 23, records: marker(23, false), producer: p, transactional: true, control: true}),
		encodeBatch(t, testBatch{base: 24, records: makeRecords(24, 1)}),
	)
	if got, next := parse(emptied, 20, []AbortedTransaction{{ProducerID: p, FirstOffset: 20}}); !slices.Equal(got, []int64{24}) || next != 25 {
		t.Errorf("with an emptied batch: read %v, next %d; want [24], next 25", got, next)
	}
	for cut := range len(set) {
		got, next := parse(set[:cut], 0, aborted)
		want := []int64{2, 3, 5, 10}
		if len(got) > len(want) || !slices.Equal(got, want[:len(got)]) || next > 11 {
			t.Fatalf("cut at %d: read %v, next %d", cut, got, next)
		}
	}
}

// TestDecompressionAllocatesNoDeclaredSize: a batch of a few bytes that declares a huge
// decompressed size (a snappy chunk or block of 3 GB, a zstd frame of 1 GB) is refused
// without allocating it — kafka-go's readers allocated the declared size first, and a pod
// reading such a batch was killed for its memory at every start.
func TestDecompressionAllocatesNoDeclaredSize(t *testing.T) {
	defer func(bound int) { maxDecompressed = bound }(maxDecompressed)
	maxDecompressed = 4 << 20
	xerial := append(bytes.Clone(xerialMagic), 0, 0, 0, 1, 0, 0, 0, 1)
	var zstdBomb bytes.Buffer
	w, err := zstd.NewWriter(&zstdBomb, zstd.WithWindowSize(8<<20))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 1<<30)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Sixteen frames of 3 MB, each under the bound, together far over it; and one frame
	// that declares its 3 MB, decoded after 3 MB of batches before.
	var zstdFrames []byte
	encoder, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 3<<20)
	for range 16 {
		zstdFrames = encoder.EncodeAll(zeros, zstdFrames)
	}
	declared := encoder.EncodeAll(zeros, nil)
	for _, tc := range []struct {
		name  string
		codec compress.Compression
		data  []byte
		// before is how much the batches before hold (16 bytes when 0).
		before int
	}{
		{"zstd frames", compress.Zstd, zstdFrames, 0},
		{"a zstd frame of a declared size", compress.Zstd, declared, 3 << 20},
		{"a snappy chunk's length", compress.Snappy, binary.BigEndian.AppendUint32(bytes.Clone(xerial), 3<<30), 0},
		{"a snappy chunk's block", compress.Snappy, append(binary.BigEndian.AppendUint32(bytes.Clone(xerial), 8), append(binary.AppendUvarint(nil, 3<<30), 0, 0, 0)...), 0},
		{"a snappy block", compress.Snappy, append(binary.AppendUvarint(nil, 3<<30), 0, 0, 0), 0},
		{"a zstd frame", compress.Zstd, zstdBomb.Bytes(), 0},
	} {
		var before0, after runtime.MemStats
		// After other batches of the response, which stay as they were.
		before := []byte("the batch before")
		if tc.before > 0 {
			before = bytes.Repeat([]byte{'b'}, tc.before)
		}
		scratch := bytes.Clone(before)
		runtime.GC()
		runtime.ReadMemStats(&before0)
		out, err := decompress(scratch, tc.codec, tc.data)
		runtime.ReadMemStats(&after)
		if !bytes.Equal(out, before) {
			t.Errorf("%s: the bytes before became %q", tc.name, out[:min(len(out), 40)])
		}
		if err == nil {
			t.Errorf("%s: no error", tc.name)
		}
		// zstd decodes up to the bound before it is known too large: the output doubles its
		// array as it grows (4 × the bound allocated in all), and the decoder keeps what it
		// decoded as its window. What a batch declares was 768 times the bound.
		if allocated := after.TotalAlloc - before0.TotalAlloc; allocated > 8*uint64(maxDecompressed) {
			t.Errorf("%s (%d bytes): %d MB allocated (%v)", tc.name, len(tc.data), allocated>>20, err)
		}
	}
}

// TestSnappyFramings: snappy batches come in Java's xerial framing (Kafka's clients, in
// several chunks for a large batch) and as one block (librdkafka's); both are read.
func TestSnappyFramings(t *testing.T) {
	want := bytes.Repeat([]byte("a span of some bytes "), 10_000)
	xerial := append(bytes.Clone(xerialMagic), 0, 0, 0, 1, 0, 0, 0, 1)
	for chunk := 0; chunk < len(want); chunk += 32 << 10 {
		block := snappy.Encode(nil, want[chunk:min(chunk+32<<10, len(want))])
		xerial = append(binary.BigEndian.AppendUint32(xerial, uint32(len(block))), block...)
	}
	for name, data := range map[string][]byte{"xerial": xerial, "a block": snappy.Encode(nil, want)} {
		got, err := decompress([]byte("before"), compress.Snappy, data)
		if err != nil || !bytes.Equal(got, append([]byte("before"), want...)) {
			t.Errorf("%s: %d bytes, %v", name, len(got), err)
		}
		if _, err := decompress(nil, compress.Snappy, data[:len(data)-1]); err == nil {
			t.Errorf("%s cut short: no error", name)
		}
	}
}

// BenchmarkDecompress: a batch of 1,000 records of about 900 bytes, compressed as kafka-go's
// writer compresses, decoded with each codec; snappy also through kafka-go's reader (what
// it went through before), in the same run.
func BenchmarkDecompress(b *testing.B) {
	records := makeRecords(0, 1000)
	for i := range records {
		records[i].Value = fmt.Appendf(nil, "%0900d", i*7919)
	}
	for _, codec := range []compress.Compression{compress.Snappy, compress.Zstd, compress.Gzip, compress.Lz4} {
		batch := encodeBatch(b, testBatch{base: 0, records: records, codec: codec})
		data := batch[batchHeaderSize:]
		scratch := make([]byte, 0, 2<<20)
		b.Run(codec.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := decompress(scratch[:0], codec, data); err != nil {
					b.Fatal(err)
				}
			}
		})
		if codec == compress.Snappy {
			b.Run(codec.String()+"-kafka-go", func(b *testing.B) {
				for b.Loop() {
					if _, err := decompressStream(scratch[:0], codec, data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// FuzzDecompress: whatever a compressed batch holds, decompressing it after the batches
// before neither panics nor changes their bytes (a zstd frame naming a dictionary made
// zstd's DecodeAll, used for a while, return nil, and the bytes before were sliced out of
// it: a panic at every start of the pod).
func FuzzDecompress(f *testing.F) {
	hello, err := zstd.NewWriter(nil)
	if err != nil {
		f.Fatal(err)
	}
	frame := hello.EncodeAll([]byte("hello"), nil)
	// The frame header's descriptor (after the magic number) with a dictionary id of one
	// byte after the window's descriptor, a dictionary no decoder here has.
	if frame[4] != 0x04 { // no content size, not a single segment: a window descriptor
		f.Fatalf("the frame's header changed: % x", frame)
	}
	withDictionary := slices.Concat(frame[:4], []byte{frame[4] | 1, frame[5], 7}, frame[6:])
	f.Add(byte(compress.Zstd), []byte("previous batch"), withDictionary)
	f.Add(byte(compress.Zstd), []byte("previous batch"), frame)
	f.Add(byte(compress.Snappy), []byte("previous"), snappy.Encode(nil, []byte("hello hello hello")))
	f.Add(byte(compress.Snappy), []byte("previous"), append(bytes.Clone(xerialMagic), 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 3, 1, 2, 3))
	f.Add(byte(compress.Gzip), []byte{}, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Add(byte(compress.Lz4), []byte("x"), []byte{0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7})
	defer func(bound int) { maxDecompressed = bound }(maxDecompressed)
	maxDecompressed = 1 << 20
	f.Fuzz(func(t *testing.T, codec byte, before, data []byte) {
		scratch := bytes.Clone(before)
		out, err := decompress(scratch, compress.Compression(codec%5), data)
		if !bytes.Equal(out[:min(len(out), len(before))], before) || len(out) < len(before) {
			t.Fatalf("the bytes before became %q (error %v)", out, err)
		}
		if err != nil && len(out) != len(before) {
			t.Fatalf("%d bytes kept after the error %v", len(out)-len(before), err)
		}
	})
}
