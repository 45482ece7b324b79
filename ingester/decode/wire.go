package decode

import "google.golang.org/protobuf/encoding/protowire"

// Small fronts of protowire for the transcoders' hot paths: nearly every tag, length and
// small number on the wire fits one byte, and protowire's functions loop even then.
// appendVarint, appendLenString and appendLenBytes are inlined; the consume fronts and
// appendTag are not (go build -gcflags=-m: the call to protowire in their rare case puts
// them over the budget), so the hottest loops, the span's and appendKV's, read their
// one-byte tags and lengths themselves.

func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

func appendTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return appendVarint(b, protowire.EncodeTag(num, typ))
}

func appendLenString(b []byte, s string) []byte {
	return append(appendVarint(b, uint64(len(s))), s...)
}

func appendLenBytes(b []byte, v []byte) []byte {
	return append(appendVarint(b, uint64(len(v))), v...)
}

func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 && b[0] >= 8 {
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	return protowire.ConsumeTag(b)
}

func consumeVarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return protowire.ConsumeVarint(b)
}

func consumeBytes(b []byte) ([]byte, int) {
	if len(b) > 0 && b[0] < 0x80 {
		if n := int(b[0]); 1+n <= len(b) {
			return b[1 : 1+n], 1 + n
		}
	}
	return protowire.ConsumeBytes(b)
}

// tagAt reads the tag at data[off] through protowire (the callers read one-byte tags
// themselves): the field, its wire type and where its value starts, -1 for a bad tag.
func tagAt(data []byte, off int) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(data[off:])
	if n < 0 {
		return 0, 0, -1
	}
	return num, typ, off + n
}

// shortBytesAt finds the length-delimited value at data[off] when its length is one byte:
// its start and end (not checked against data: the callers check end ≤ len(data)), or
// end -2 for a longer length, which longBytesAt reads. Apart so that it inlines: the
// common case costs no call.
func shortBytesAt(data []byte, off int) (start, end int) {
	if off < len(data) && data[off] < 0x80 {
		return off + 1, off + 1 + int(data[off])
	}
	return 0, -2
}

// longBytesAt reads the length-delimited value at data[off] through protowire: its start
// and end, end -1 when the length is malformed.
func longBytesAt(data []byte, off int) (start, end int) {
	v, n := protowire.ConsumeBytes(data[off:])
	if n < 0 {
		return 0, -1
	}
	return off + n - len(v), off + n
}
