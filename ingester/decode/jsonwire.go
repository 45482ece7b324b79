package decode

import (
	"encoding/binary"
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/spanflow/spanflow/ingester/otlpwire"
)

// jsonTranscoder reads one JSON value at a time from in, appending protobuf to out: the
// jaeger_json and otlp_json transcoders (jaegerjson.go, otlpjson.go) on the reading of
// this file. Every method reports false for input it does not transcode exactly.
type jsonTranscoder struct {
	in  []byte
	pos int
	out []byte
	// depth is how deep values nest where the transcoder is (OTLP's arrays and maps).
	depth int
}

// number returns a JSON number's text (nil when what comes is not one).
func (t *jsonTranscoder) number() []byte {
	t.skipSpace()
	end := jsonNumberEnd(t.in, t.pos)
	if end < 0 {
		return nil
	}
	s := t.in[t.pos:end]
	t.pos = end
	return s
}

// plainString reads a JSON string without escapes (IDs, enums, times, numbers).
func (t *jsonTranscoder) plainString() ([]byte, bool) {
	raw, escaped, ok := t.scanString()
	return raw, ok && !escaped
}

// rawString reads a JSON string and returns what is between the quotes, unresolved.
func (t *jsonTranscoder) rawString() ([]byte, bool) {
	raw, _, ok := t.scanString()
	return raw, ok
}

// scanString reads a JSON string and returns what is between the quotes, unresolved, and
// whether it holds an escape. A control character (which JSON must escape) fails it.
func (t *jsonTranscoder) scanString() (raw []byte, escaped, ok bool) {
	t.skipSpace()
	if t.pos >= len(t.in) || t.in[t.pos] != '"' {
		return nil, false, false
	}
	start := t.pos + 1
	end, escaped := stringEnd(t.in, start)
	if end < 0 {
		return nil, false, false
	}
	t.pos = end + 1
	return t.in[start:end], escaped, true
}

// stringEnd returns where the string whose bytes start at in[i] ends (its closing quote)
// and whether it holds an escape; -1 if it holds a control character (other than one
// escaped, which the reader of the escapes refuses) or does not end.
func stringEnd(in []byte, i int) (end int, escaped bool) {
	for {
		// Eight bytes at a time while none is a quote, a backslash or a control
		// character: most of a message is strings.
		for ; i+8 <= len(in); i += 8 {
			w := binary.LittleEndian.Uint64(in[i:])
			if hasZeroByte(w^quotes)|hasZeroByte(w^backslashes)|((w-controls)&^w&highBits) != 0 {
				break
			}
		}
		for ; i < len(in); i++ {
			switch c := in[i]; {
			case c == '"':
				return i, escaped
			case c == '\\':
				escaped = true
				i++
			case c < 0x20:
				return -1, false
			default:
				continue
			}
			break // past an escape: eight at a time again
		}
		if i >= len(in) {
			return -1, false
		}
		i++
	}
}

// Masks of the eight-byte scan: each byte of a word the same.
const (
	quotes      = 0x2222222222222222 // '"'
	backslashes = 0x5c5c5c5c5c5c5c5c // '\\'
	controls    = 0x2020202020202020 // below: a control character
	lowBits     = 0x0101010101010101
	highBits    = 0x8080808080808080
)

// hasZeroByte is non-zero when a byte of w is zero.
func hasZeroByte(w uint64) uint64 { return (w - lowBits) &^ w & highBits }

// char reads the one-byte token c (a bracket, a colon, a comma), after any whitespace.
func (t *jsonTranscoder) char(c byte) bool {
	t.skipSpace()
	if t.pos < len(t.in) && t.in[t.pos] == c {
		t.pos++
		return true
	}
	return false
}

func (t *jsonTranscoder) literal(word string) bool {
	t.skipSpace()
	if len(t.in)-t.pos >= len(word) && string(t.in[t.pos:t.pos+len(word)]) == word {
		t.pos += len(word)
		return true
	}
	return false
}

// object reads {"key": value, ...}, calling member for each key to read its value.
func (t *jsonTranscoder) object(member func(key []byte) bool) bool {
	if !t.char('{') {
		return false
	}
	if t.char('}') {
		return true
	}
	for {
		key, ok := t.plainString()
		if !ok || !t.char(':') || !member(key) {
			return false
		}
		if t.char('}') {
			return true
		}
		if !t.char(',') {
			return false
		}
	}
}

// array reads [value, ...], calling element for each.
func (t *jsonTranscoder) array(element func() bool) bool {
	if !t.char('[') {
		return false
	}
	if t.char(']') {
		return true
	}
	for {
		if !element() {
			return false
		}
		if t.char(']') {
			return true
		}
		if !t.char(',') {
			return false
		}
	}
}

func (t *jsonTranscoder) skipSpace() {
	for t.pos < len(t.in) {
		switch t.in[t.pos] {
		case ' ', '\t', '\n', '\r':
			t.pos++
		default:
			return
		}
	}
}

func (t *jsonTranscoder) boolField(field protowire.Number) bool {
	var v uint64
	switch {
	case t.literal("true"):
		v = 1
	case t.literal("false"):
	default:
		return false
	}
	t.out = appendTag(t.out, field, protowire.VarintType)
	t.out = appendVarint(t.out, v)
	return true
}

// fields reads an object whose keys number maps to field numbers, each at most once, and
// calls read for each value. A key number maps to 0 (unknown, spelt otherwise, or a field
// the transcoder leaves to the library) or a repeated one fails it: a library keeps the
// last of a repeated key, even a zero value the transcoder leaves out.
func (t *jsonTranscoder) fields(number func(key string) protowire.Number, read func(protowire.Number) bool) bool {
	var seen uint64
	return t.object(func(key []byte) bool {
		field := number(string(key))
		if field == 0 || seen&(1<<field) != 0 {
			return false
		}
		seen |= 1 << field
		return read(field)
	})
}

// submessage appends field as a length-delimited message whose body body writes.
func (t *jsonTranscoder) submessage(field protowire.Number, body func() bool) bool {
	var at int
	t.out, at = otlpwire.OpenField(t.out, field)
	if !body() {
		return false
	}
	t.out = otlpwire.CloseField(t.out, at)
	return true
}

// list reads an array of messages, each appended as field.
func (t *jsonTranscoder) list(field protowire.Number, body func() bool) bool {
	return t.array(func() bool { return t.submessage(field, body) })
}

// listPlainFirst reads a list of messages as field: each in the shape plain takes in one
// pass by plain (which reports false for any other, having read some of it: the reading
// goes back), any other by general.
func (t *jsonTranscoder) listPlainFirst(field protowire.Number, plain func(protowire.Number) bool, general func() bool) bool {
	return t.array(func() bool {
		pos, out := t.pos, len(t.out)
		if plain(field) {
			return true
		}
		t.pos, t.out = pos, t.out[:out]
		return t.submessage(field, general)
	})
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

// plainStringEnd returns where the string whose bytes start at in[i] ends (its closing
// quote), or -1 if it holds an escape or a control character or does not end.
func plainStringEnd(in []byte, i int) int {
	end, escaped := stringEnd(in, i)
	if escaped {
		return -1
	}
	return end
}

// jsonNumberEnd returns where the JSON number starting at in[i] ends, or -1 if what is
// there is not one (JSON's grammar: no plus sign, no leading zero, digits around a point).
func jsonNumberEnd(in []byte, i int) int {
	digits := func() bool {
		start := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(in) && in[i] == '-' {
		i++
	}
	if i < len(in) && in[i] == '0' {
		i++
	} else if !digits() {
		return -1
	}
	if i < len(in) && in[i] == '.' {
		i++
		if !digits() {
			return -1
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if !digits() {
			return -1
		}
	}
	return i
}

// float64Field appends a double read from a bare JSON number, as jsonpb and pdata read one:
// strconv's value (jsoniter's fast path divides exact operands, and its slow path is
// strconv). Quoted ones ("NaN", …) are each library's to read.
func (t *jsonTranscoder) float64Field(field protowire.Number) bool {
	v, err := strconv.ParseFloat(string(t.number()), 64)
	if err != nil { // out of range too
		return false
	}
	t.out = appendTag(t.out, field, protowire.Fixed64Type)
	t.out = protowire.AppendFixed64(t.out, math.Float64bits(v))
	return true
}
