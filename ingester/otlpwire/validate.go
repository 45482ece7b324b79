package otlpwire

import (
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

// The walk below accepts exactly the bytes pdata's unmarshaler accepts (the reference, held
// to it by a differential fuzz test): a known field must have its declared wire type, IDs
// are empty or of their exact size, unknown fields (groups included) are skipped, AnyValue
// nesting stops at pdata's recursion limit. Strings are not checked for UTF-8, as pdata
// does not check them. One difference: bytes without a span that hold top-level fields
// other than resource_spans are refused (ErrForeignFields), where pdata reads an empty
// request.

var (
	errTruncated     = io.ErrUnexpectedEOF
	errOverflow      = errors.New("varint overflows 64 bits")
	errBadLength     = errors.New("negative length")
	errEndGroup      = errors.New("unexpected end of group")
	errTooDeep       = errors.New("values nested too deeply")
	errTraceIDLength = errors.New("trace ID is not 16 bytes")
	errSpanIDLength  = errors.New("span ID is not 8 bytes")
)

// ErrForeignFields refuses bytes that hold no span and fields that no trace request has
// (pdata skips them and reads an empty request). A request has resource_spans alone; a
// Jaeger span read as OTLP is such bytes when its trace ID happens to be a well-formed
// ResourceSpans (about one span in 80), and committed past as empty it would be lost.
var ErrForeignFields = errors.New("no spans, and top-level fields that no trace request has (is the topic's encoding the one configured?)")

// recursionLimit is pdata's: KeyValue, AnyValue, ArrayValue and KeyValueList nest at most
// this deep.
const recursionLimit = 100

// AppendValidated walks req, an encoded ExportTraceServiceRequest (or TracesData), and
// when every part of it is well-formed adds its ResourceSpans to b, returning the number
// of spans. b refers to them in req, which must not change until Reset: a message is sent
// where it arrived, not copied. The scope spans of a resource already in b join its
// ResourceSpans: as the Collector's Kafka exporter writes one trace a message, a delivery
// holds about one ResourceSpans a span and a few dozen resources, and a request with each
// resource once is a quarter smaller (a tenth less for gzip to compress, and for a
// receiver to decode). On an error b is unchanged.
func (b *Batch) AppendValidated(req []byte) (int, error) {
	if b.known == nil {
		b.known = knownResourceCaches.Get().(*knownResources)
		b.epoch = epochs.Add(1)
	}
	known := b.known
	spans, resources, entries, merged := 0, 0, len(b.entries), len(b.merged)
	b.journal = b.journal[:0]
	refuse := func(err error) (int, error) {
		clear(b.entries[entries:])
		b.entries = b.entries[:entries]
		b.unmerge(merged)
		return 0, err
	}
	runStart, runEnd := -1, -1 // the entries sent as they came, since the last one merged
	foreign := false
	for pos := 0; pos < len(req); {
		entry := pos
		num, typ, next, err := consumeTag(req, pos)
		if err != nil {
			return refuse(err)
		}
		if num != requestResourceSpans {
			if pos, err = skipUnknown(req, next, typ); err != nil {
				return refuse(err)
			}
			foreign = true
			continue
		}
		body, end, err := consumeLen(req, next, typ, "ResourceSpans")
		if err != nil {
			return refuse(err)
		}
		if err := walkResourceSpans(body, known, &b.parts); err != nil {
			return refuse(fmt.Errorf("resource spans at byte %d: %w", entry, err))
		}
		pos = end
		var migrated []byte
		if b.parts.legacy {
			// Rewritten, then walked again as what it is now (it cannot fail: the same
			// fields, one tag changed).
			if migrated, body = migrateLegacy(body); migrated == nil {
				return refuse(fmt.Errorf("resource spans at byte %d: cannot be rewritten", entry))
			}
			if err := walkResourceSpans(body, known, &b.parts); err != nil {
				return refuse(fmt.Errorf("resource spans at byte %d: %w", entry, err))
			}
		}
		spans += b.parts.spans
		resources++
		if b.parts.mergeable {
			b.merge(&b.parts)
			continue
		}
		if migrated != nil {
			b.entries = append(b.entries, batchEntry{piece: migrated})
			runStart, runEnd = -1, -1 // a piece of its own: the next does not extend it
			continue
		}
		// Consecutive entries sent as they came go in one piece.
		if last := len(b.entries) - 1; runEnd == entry && last >= entries && b.entries[last].piece != nil {
			b.entries[last].piece = req[runStart:end]
		} else {
			runStart = entry
			b.entries = append(b.entries, batchEntry{piece: req[entry:end]})
		}
		runEnd = end
	}
	if spans == 0 && foreign {
		return refuse(ErrForeignFields)
	}
	b.spans += spans
	b.resources += resources
	return spans, nil
}

// resourceSpansParts is where the fields of one well-formed ResourceSpans are.
type resourceSpansParts struct {
	spans int
	// resource is the resource field whole (tag and length too), body its message, scopes
	// the run of scope_spans fields, schema the schema_url field whole, or nil.
	resource, body, scopes, schema []byte
	// slot is the resource's in the known resources, nil when it is not kept there; hash
	// is the body's, as the cache hashes it.
	slot *knownResource
	hash uint64
	// mergeable: the message is one resource kept in the cache, one run of scope spans
	// and at most one schema URL. Anything else — a field pdata drops, the deprecated
	// instrumentation_library_spans beside scope_spans, a field repeated — is sent as it
	// came.
	mergeable bool
	// legacy: its spans are in the deprecated instrumentation_library_spans alone, which
	// pdata reads as scope_spans (a receiver on today's opentelemetry-proto would skip
	// them as an unknown field): it is rewritten so before it is sent (migrateLegacy).
	legacy bool
}

// walkResourceSpans checks a ResourceSpans message and counts its spans the way pdata
// reads them: the deprecated instrumentation_library_spans (field 1000) only when there
// is no scope_spans.
// It fills p (the caller's, so that it is not copied out on every return).
func walkResourceSpans(buf []byte, known *knownResources, p *resourceSpansParts) error {
	*p = resourceSpansParts{}
	spans, legacySpans, legacyScopes, scopes, resources, schemas := 0, 0, 0, 0, 0, 0
	scopesStart, scopesEnd := -1, -1
	oneRun, other := true, false
	for pos := 0; pos < len(buf); {
		field := pos
		num, typ, next, err := consumeTag(buf, pos)
		if err != nil {
			return err
		}
		switch num {
		case resourceSpansResource:
			var body []byte
			if body, pos, err = consumeLen(buf, next, typ, "Resource"); err != nil {
				return err
			}
			slot, ok, hash := known.lookup(body)
			if !ok {
				if err = walkResource(body); err != nil {
					return fmt.Errorf("Resource: %w", err)
				}
				remember(slot, body)
			}
			p.resource, p.body, p.slot, p.hash = buf[field:pos], body, slot, hash
			resources++
		case resourceSpansScopeSpans, resourceSpansDeprecatedScopeSpans:
			var body []byte
			if body, pos, err = consumeLen(buf, next, typ, "ScopeSpans"); err != nil {
				return err
			}
			n, err := walkScopeSpans(body)
			if err != nil {
				return err
			}
			if num == resourceSpansDeprecatedScopeSpans {
				legacySpans += n
				legacyScopes++
				other = true
				break
			}
			spans += n
			scopes++
			if scopesStart < 0 {
				scopesStart = field
			} else if scopesEnd != field {
				oneRun = false
			}
			scopesEnd = pos
		case resourceSpansSchemaURL:
			if _, pos, err = consumeLen(buf, next, typ, "SchemaUrl"); err != nil {
				return err
			}
			p.schema = buf[field:pos]
			schemas++
		default:
			if pos, err = skipUnknown(buf, next, typ); err != nil {
				return err
			}
			other = true
		}
	}
	if scopes == 0 {
		p.spans, p.legacy = legacySpans, legacyScopes > 0
		return nil
	}
	p.spans, p.scopes = spans, buf[scopesStart:scopesEnd]
	p.mergeable = resources == 1 && p.slot != nil && schemas <= 1 && oneRun && !other
	return nil
}

// migrateLegacy rewrites a well-formed ResourceSpans body whose spans are in the
// deprecated instrumentation_library_spans (field 1000; its message is ScopeSpans field for
// field) as pdata reads it: those entries become scope_spans, the other fields stay as
// they are, in their order. It returns the rewritten ResourceSpans as a field of the
// request (tag and length too) and its body, in memory of their own: rare enough (OTLP
// before 0.15, 2022) not to be worth the batch's.
func migrateLegacy(body []byte) (field, migrated []byte) {
	migrated = make([]byte, 0, len(body))
	for pos := 0; pos < len(body); {
		num, typ, next, err := consumeTag(body, pos)
		end := len(body)
		if err == nil {
			end, err = skipUnknown(body, next, typ)
		}
		if err != nil { // the walk found it well-formed: never
			return nil, nil
		}
		if num == resourceSpansDeprecatedScopeSpans {
			migrated = protowire.AppendTag(migrated, resourceSpansScopeSpans, protowire.BytesType)
			migrated = append(migrated, body[next:end]...) // its length and message
		} else {
			migrated = append(migrated, body[pos:end]...)
		}
		pos = end
	}
	field = protowire.AppendTag(make([]byte, 0, len(migrated)+protowire.SizeVarint(uint64(len(migrated)))+1), requestResourceSpans, protowire.BytesType)
	field = protowire.AppendBytes(field, migrated)
	return field, field[len(field)-len(migrated):]
}

func walkScopeSpans(buf []byte) (int, error) {
	spans := 0
	for pos := 0; pos < len(buf); {
		num, typ, next, err := consumeTag(buf, pos)
		if err != nil {
			return 0, err
		}
		switch num {
		case scopeSpansScope:
			pos, err = walkMessage(buf, next, typ, "Scope", walkScope)
		case scopeSpansSpans:
			pos, err = walkMessage(buf, next, typ, "Span", walkSpan)
			spans++
		case scopeSpansSchemaURL:
			_, pos, err = consumeLen(buf, next, typ, "SchemaUrl")
		default:
			pos, err = skipUnknown(buf, next, typ)
		}
		if err != nil {
			return 0, err
		}
	}
	return spans, nil
}

// walkMessage checks a length-delimited field holding a message that walk checks.
func walkMessage(buf []byte, pos int, typ protowire.Type, name string, walk func([]byte) error) (int, error) {
	body, end, err := consumeLen(buf, pos, typ, name)
	if err != nil {
		return 0, err
	}
	if err := walk(body); err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return end, nil
}

// kind is what a known field of a message holds.
type kind uint8

const (
	kindNone kind = iota // not a known field: skipped
	kindVarint
	kindFixed32
	kindFixed64
	kindBytes
	kindTraceID
	kindSpanID
	kindKeyValue // a KeyValue message, starting a nesting depth
	kindEvent
	kindLink
	kindStatus
	kindEntityRef
)

// schema lists the known fields of a message by number.
type schema []kind

var (
	resourceSchema  = schema{1: kindKeyValue, 2: kindVarint, 3: kindEntityRef}
	entityRefSchema = schema{1: kindBytes, 2: kindBytes, 3: kindBytes, 4: kindBytes}
	scopeSchema     = schema{1: kindBytes, 2: kindBytes, 3: kindKeyValue, 4: kindVarint}
	spanSchema      = schema{1: kindTraceID, 2: kindSpanID, 3: kindBytes, 4: kindSpanID, 5: kindBytes,
		6: kindVarint, 7: kindFixed64, 8: kindFixed64, 9: kindKeyValue, 10: kindVarint, 11: kindEvent,
		12: kindVarint, 13: kindLink, 14: kindVarint, 15: kindStatus, 16: kindFixed32}
	eventSchema  = schema{1: kindFixed64, 2: kindBytes, 3: kindKeyValue, 4: kindVarint}
	linkSchema   = schema{1: kindTraceID, 2: kindSpanID, 3: kindBytes, 4: kindKeyValue, 5: kindVarint, 6: kindFixed32}
	statusSchema = schema{2: kindBytes, 3: kindVarint}
)

func walkResource(buf []byte) error { return walkSchema(buf, resourceSchema) }
func walkScope(buf []byte) error    { return walkSchema(buf, scopeSchema) }
func walkSpan(buf []byte) error     { return walkSchema(buf, spanSchema) }

// walkSchema checks a message whose fields s declares.
func walkSchema(buf []byte, s schema) error {
	for pos := 0; pos < len(buf); {
		if next, ok := plainField(buf, pos, s); ok {
			pos = next
			continue
		}
		num, typ, next, err := consumeTag(buf, pos)
		if err != nil {
			return err
		}
		k := kindNone
		if int(num) < len(s) {
			k = s[num]
		}
		if pos, err = walkKind(buf, next, typ, k, num); err != nil {
			return err
		}
	}
	return nil
}

// plainField checks the field at pos without a call a field when it is of the shape
// producers write — a one-byte tag of the declared wire type, a length of one or two bytes
// — and returns where the next field starts; a run of plain attributes it takes whole.
// It accepts only what the walk accepts; ok false (anything else, a malformed field
// included) leaves the field to the walk.
func plainField(buf []byte, pos int, s schema) (int, bool) {
	tag := buf[pos]
	if tag >= 0x80 || int(tag>>3) >= len(s) {
		return 0, false
	}
	pos++
	typ := protowire.Type(tag & 7)
	switch s[tag>>3] {
	case kindVarint:
		if typ != protowire.VarintType {
			return 0, false
		}
		for end := min(pos+10, len(buf)); pos < end; pos++ {
			if buf[pos] < 0x80 {
				return pos + 1, true
			}
		}
		return 0, false
	case kindFixed64:
		return pos + 8, typ == protowire.Fixed64Type && pos+8 <= len(buf)
	case kindFixed32:
		return pos + 4, typ == protowire.Fixed32Type && pos+4 <= len(buf)
	case kindTraceID:
		return pos + 17, typ == protowire.BytesType && pos+17 <= len(buf) && buf[pos] == 16
	case kindSpanID:
		return pos + 9, typ == protowire.BytesType && pos+9 <= len(buf) && buf[pos] == 8
	case kindBytes:
		n, next, ok := shortLength(buf, pos)
		return next + n, ok && typ == protowire.BytesType
	case kindKeyValue:
		// Attributes come in runs, one KeyValue field after another: the run is taken
		// here, up to its end or the first one that is not plain (left to the walk).
		if typ != protowire.BytesType {
			return 0, false
		}
		end := -1
		for {
			n, next, ok := shortLength(buf, pos)
			if !ok || !plainKeyValue(buf[next:next+n]) {
				return end, end >= 0
			}
			end = next + n
			if end >= len(buf) || buf[end] != tag {
				return end, true
			}
			pos = end + 1
		}
	}
	return 0, false
}

func walkKind(buf []byte, pos int, typ protowire.Type, k kind, num int32) (int, error) {
	switch k {
	case kindNone:
		return skipUnknown(buf, pos, typ)
	case kindVarint:
		if typ != protowire.VarintType {
			return 0, wrongType(num, typ)
		}
		_, end, err := consumeVarint(buf, pos)
		return end, err
	case kindFixed32:
		if typ != protowire.Fixed32Type {
			return 0, wrongType(num, typ)
		}
		return consumeFixed(buf, pos, 4)
	case kindFixed64:
		if typ != protowire.Fixed64Type {
			return 0, wrongType(num, typ)
		}
		return consumeFixed(buf, pos, 8)
	}
	body, end, err := consumeLen(buf, pos, typ, "")
	if err != nil {
		if errors.Is(err, errWrongType) {
			return 0, wrongType(num, typ)
		}
		return 0, err
	}
	switch k {
	case kindTraceID:
		if len(body) != 0 && len(body) != 16 {
			return 0, errTraceIDLength
		}
	case kindSpanID:
		if len(body) != 0 && len(body) != 8 {
			return 0, errSpanIDLength
		}
	case kindKeyValue:
		err = walkKeyValue(body, 0)
	case kindEvent:
		err = walkSchema(body, eventSchema)
	case kindLink:
		err = walkSchema(body, linkSchema)
	case kindStatus:
		err = walkSchema(body, statusSchema)
	case kindEntityRef:
		err = walkSchema(body, entityRefSchema)
	}
	return end, err
}

// Field numbers of KeyValue, AnyValue, ArrayValue and KeyValueList.
const (
	keyValueKey, keyValueValue, keyValueKeyStrindex = 1, 2, 3

	anyString, anyBool, anyInt, anyDouble, anyArray, anyKvlist, anyBytes, anyStrindex = 1, 2, 3, 4, 5, 6, 7, 8

	listValues = 1
)

func walkKeyValue(buf []byte, depth int) error {
	if depth >= recursionLimit {
		return errTooDeep
	}
	// A plain KeyValue's value is one level deeper, which the limit may not allow.
	if depth+1 < recursionLimit && plainKeyValue(buf) {
		return nil
	}
	depth++
	for pos := 0; pos < len(buf); {
		num, typ, next, err := consumeTag(buf, pos)
		if err != nil {
			return err
		}
		switch num {
		case keyValueKey:
			_, pos, err = consumeLen(buf, next, typ, "Key")
		case keyValueValue:
			var body []byte
			if body, pos, err = consumeLen(buf, next, typ, "Value"); err == nil {
				err = walkAnyValue(body, depth)
			}
		case keyValueKeyStrindex:
			pos, err = walkKind(buf, next, typ, kindVarint, num)
		default:
			pos, err = skipUnknown(buf, next, typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// plainKeyValue reports whether buf is a KeyValue of the shape producers write — its key
// and its value holding one string, bool, int or double, in either order (pdata writes
// the value first), lengths of at most two bytes — which the walk accepts without a
// field-by-field look. Anything else (false) is walked.
func plainKeyValue(buf []byte) bool {
	const (
		keyTag   = keyValueKey<<3 | byte(protowire.BytesType)
		valueTag = keyValueValue<<3 | byte(protowire.BytesType)
	)
	if len(buf) < 2 {
		return false
	}
	first := buf[0]
	if first != keyTag && first != valueTag {
		return false
	}
	n, pos, ok := shortLength(buf, 1)
	if !ok {
		return false
	}
	value := buf[pos : pos+n]
	if pos += n; pos == len(buf) {
		return first == keyTag // a key without a value; a value without a key is walked
	}
	second := buf[pos]
	if second == first || (second != keyTag && second != valueTag) {
		return false
	}
	if n, pos, ok = shortLength(buf, pos+1); !ok || pos+n != len(buf) {
		return false
	}
	if second == valueTag {
		value = buf[pos:]
	}
	return plainAnyValue(value)
}

// plainAnyValue reports whether v is an AnyValue holding one string, bool, int or double
// (or nothing), as plainKeyValue needs it.
func plainAnyValue(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	switch v[0] {
	case anyString<<3 | byte(protowire.BytesType):
		n, pos, ok := shortLength(v, 1)
		return ok && pos+n == len(v)
	case anyBool<<3 | byte(protowire.VarintType), anyInt<<3 | byte(protowire.VarintType):
		// One varint of at most 9 bytes filling the rest.
		if len(v) < 2 || len(v) > 10 || v[len(v)-1] >= 0x80 {
			return false
		}
		for _, c := range v[1 : len(v)-1] {
			if c < 0x80 {
				return false
			}
		}
		return true
	case anyDouble<<3 | byte(protowire.Fixed64Type):
		return len(v) == 9
	}
	return false
}

// shortLength reads a length of one or two varint bytes at pos and checks that the
// bytes it counts are there; ok is false for anything else.
func shortLength(buf []byte, pos int) (n, next int, ok bool) {
	switch {
	case pos < len(buf) && buf[pos] < 0x80:
		n, next = int(buf[pos]), pos+1
	case pos+1 < len(buf) && buf[pos+1] < 0x80:
		n, next = int(buf[pos]&0x7f)|int(buf[pos+1])<<7, pos+2
	default:
		return 0, 0, false
	}
	return n, next, next+n <= len(buf)
}

func walkAnyValue(buf []byte, depth int) error {
	if depth >= recursionLimit {
		return errTooDeep
	}
	depth++
	for pos := 0; pos < len(buf); {
		num, typ, next, err := consumeTag(buf, pos)
		if err != nil {
			return err
		}
		switch num {
		case anyString, anyBytes:
			_, pos, err = consumeLen(buf, next, typ, "Value")
		case anyBool, anyInt, anyStrindex:
			pos, err = walkKind(buf, next, typ, kindVarint, num)
		case anyDouble:
			pos, err = walkKind(buf, next, typ, kindFixed64, num)
		case anyArray, anyKvlist:
			var body []byte
			if body, pos, err = consumeLen(buf, next, typ, "Value"); err == nil {
				err = walkList(body, depth, num == anyKvlist)
			}
		default:
			pos, err = skipUnknown(buf, next, typ)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// walkList checks an ArrayValue (AnyValues) or a KeyValueList (KeyValues).
func walkList(buf []byte, depth int, keyValues bool) error {
	if depth >= recursionLimit {
		return errTooDeep
	}
	depth++
	for pos := 0; pos < len(buf); {
		num, typ, next, err := consumeTag(buf, pos)
		if err != nil {
			return err
		}
		if num != listValues {
			if pos, err = skipUnknown(buf, next, typ); err != nil {
				return err
			}
			continue
		}
		var body []byte
		if body, pos, err = consumeLen(buf, next, typ, "Values"); err != nil {
			return err
		}
		if keyValues {
			err = walkKeyValue(body, depth)
		} else {
			err = walkAnyValue(body, depth)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var errWrongType = errors.New("wrong wire type")

func wrongType(num int32, typ protowire.Type) error {
	return fmt.Errorf("%w %d for field %d", errWrongType, typ, num)
}

// consumeTag reads a field's tag at pos, as pdata does: the field number must be positive
// once truncated to 32 bits.
func consumeTag(buf []byte, pos int) (int32, protowire.Type, int, error) {
	tag, pos, err := consumeVarint(buf, pos)
	if err != nil {
		return 0, 0, 0, err
	}
	num := int32(tag >> 3)
	if num <= 0 {
		return 0, 0, 0, fmt.Errorf("illegal field number %d", num)
	}
	return num, protowire.Type(tag & 7), pos, nil
}

func consumeVarint(buf []byte, pos int) (uint64, int, error) {
	if pos < len(buf) && buf[pos] < 0x80 {
		return uint64(buf[pos]), pos + 1, nil
	}
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			return 0, 0, errOverflow
		}
		if pos >= len(buf) {
			return 0, 0, errTruncated
		}
		c := buf[pos]
		pos++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, pos, nil
		}
	}
}

func consumeFixed(buf []byte, pos, size int) (int, error) {
	if pos += size; pos > len(buf) {
		return 0, errTruncated
	}
	return pos, nil
}

// consumeLen reads a length-delimited field's body; name, when set, names the field in
// the wire type error.
func consumeLen(buf []byte, pos int, typ protowire.Type, name string) ([]byte, int, error) {
	if typ != protowire.BytesType {
		if name == "" {
			return nil, 0, errWrongType
		}
		return nil, 0, fmt.Errorf("%w %d for %s", errWrongType, typ, name)
	}
	n, pos, err := consumeVarint(buf, pos)
	if err != nil {
		return nil, 0, err
	}
	length := int(n)
	if length < 0 {
		return nil, 0, errBadLength
	}
	end := pos + length
	if end < 0 || end > len(buf) {
		return nil, 0, errTruncated
	}
	return buf[pos:end], end, nil
}

// skipUnknown skips a field the schema does not know, groups included.
func skipUnknown(buf []byte, pos int, typ protowire.Type) (int, error) {
	depth := 0
	for pos < len(buf) {
		var err error
		switch typ {
		case protowire.VarintType:
			_, pos, err = consumeVarint(buf, pos)
			return pos, err
		case protowire.Fixed64Type:
			return consumeFixed(buf, pos, 8)
		case protowire.BytesType:
			_, pos, err = consumeLen(buf, pos, typ, "")
			return pos, err
		case protowire.Fixed32Type:
			return consumeFixed(buf, pos, 4)
		case protowire.StartGroupType:
			depth++
		case protowire.EndGroupType:
			if depth == 0 {
				return 0, errEndGroup
			}
			depth--
		default:
			return 0, fmt.Errorf("illegal wire type %d", typ)
		}
		if depth == 0 {
			return pos, nil
		}
		if _, typ, pos, err = consumeTag(buf, pos); err != nil {
			return 0, err
		}
	}
	return 0, errTruncated
}
