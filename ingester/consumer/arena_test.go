package consumer

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestSharedBuffersStayUntilEveryHolderLetsGo fills buffers as responses are, lets
// arenas (deliveries) hold them in overlapping runs as deliveries take a response's
// records, releases them in another order, and checks that every message a live arena
// holds still reads as it was: a buffer back in the pool, and filled again, while a
// delivery still pointed into it would show here as another response's bytes.
func TestSharedBuffersStayUntilEveryHolderLetsGo(t *testing.T) {
	type message struct {
		got, want []byte
	}
	type delivery struct {
		a    *arena
		msgs []message
	}
	var live []delivery
	current := &delivery{a: &arena{}}
	for round := range 200 {
		// A response: its fetcher holds it while its records are queued.
		response := responseBuffers.get()
		response.b = append(response.b[:0], bytes.Repeat([]byte{byte(round)}, 1000+round)...)
		for i := range 1 + round%5 {
			value := response.b[i*100 : i*100+100]
			current.a.hold(response)
			current.msgs = append(current.msgs, message{value, bytes.Clone(value)})
			if (round+i)%3 == 0 { // the delivery is full: the next takes the rest
				live = append(live, *current)
				current = &delivery{a: &arena{}}
			}
		}
		response.release() // its queue is empty
		for _, d := range live {
			for _, m := range d.msgs {
				if !bytes.Equal(m.got, m.want) {
					t.Fatalf("round %d: a held message changed: its buffer was reused while a delivery held it", round)
				}
			}
		}
		// Deliveries finish out of order.
		if len(live) > 4 {
			done := (round * 7) % len(live)
			live[done].a.release()
			live = append(live[:done], live[done+1:]...)
		}
	}
}

// TestArenaMessagesAreClearedOnRelease: a delivery's message slice goes back to its pool
// emptied (a pooled slice must not keep a finished delivery's bytes reachable), and one
// taken from the pool has room for the messages asked for.
func TestArenaMessagesAreClearedOnRelease(t *testing.T) {
	a := &arena{}
	msgs := append(a.messages(4), kafka.Message{Key: []byte("k"), Value: []byte("value")})
	if cap(msgs) < 4 {
		t.Fatalf("room for %d messages, want 4", cap(msgs))
	}
	pooled := a.msgs
	a.release()
	if m := (*pooled)[:1][0]; m.Key != nil || m.Value != nil {
		t.Errorf("a released message slice still holds %q=%q", m.Key, m.Value)
	}
	for _, n := range []int{1, 4, 100} {
		b := &arena{}
		if got := b.messages(n); len(got) != 0 || cap(got) < n {
			t.Errorf("messages(%d): len %d, cap %d", n, len(got), cap(got))
		}
		b.release()
	}
}

// TestDetachKeepsTheMessagesAndLetsTheResponseGo: a delivery's messages moved out of a
// fetched response read as they did — keys (none stays none), values (empty stays
// empty), headers' values, one larger than a chunk — and keep reading so once the
// response's buffer is back in its pool and filled again; a second detach moves only the
// messages taken since. Messages that are most of what their buffers hold stay there.
func TestDetachKeepsTheMessagesAndLetsTheResponseGo(t *testing.T) {
	fill := func(n int) *sharedBuffer { // a response, held by its fetcher
		r := responseBuffers.get()
		r.b = append(make([]byte, 0, n), bytes.Repeat([]byte("response"), n/8)...)
		return r
	}
	a := &arena{}
	msgs := a.messages(4)
	take := func(r *sharedBuffer, m kafka.Message) { // as the fetcher's pop does
		a.hold(r)
		msgs = append(msgs, m)
	}
	first := fill(copyChunkSize * 4)
	big := first.b[:copyChunkSize+1]
	take(first, kafka.Message{Key: first.b[0:3], Value: first.b[3:10],
		Headers: []kafka.Header{{Key: "h", Value: first.b[10:12]}, {Key: "empty", Value: first.b[12:12]}}})
	take(first, kafka.Message{Value: first.b[20:20]}) // no key, an empty value
	take(first, kafka.Message{Key: []byte{}, Value: big})
	want := []string{fmt.Sprint(msgs[0]), fmt.Sprint(msgs[1]), fmt.Sprint(msgs[2])}
	first.release() // the fetcher's queue is empty

	if !a.detach(msgs) {
		t.Fatal("three messages of a fourth of their response were not moved")
	}
	if first.refs.Load() != 0 || slices.Contains(a.held, first) {
		t.Fatalf("the response is still held (%d holders)", first.refs.Load())
	}
	reused := responseBuffers.get() // the pool gives the response's buffer to the next fetch
	clear(reused.b[:cap(reused.b)])
	for i := range 3 {
		if got := fmt.Sprint(msgs[i]); got != want[i] {
			t.Errorf("message %d reads %.80s, want %.80s", i, got, want[i])
		}
	}
	if msgs[1].Key != nil || msgs[1].Value == nil || msgs[2].Key == nil {
		t.Errorf("a missing key or an empty value changed kind: %v %v %v", msgs[1].Key == nil, msgs[1].Value == nil, msgs[2].Key == nil)
	}
	reused.release()

	// The next response: one message of it is taken, then moved alone.
	second := fill(1024)
	take(second, kafka.Message{Value: second.b[8:40]})
	second.release()
	moved := &msgs[0].Value[0]
	if !a.detach(msgs) || &msgs[0].Value[0] != moved || string(msgs[3].Value) != string(bytes.Repeat([]byte("response"), 4)) {
		t.Errorf("a second detach moved the moved messages again, or lost the new one: %q", msgs[3].Value)
	}
	if second.refs.Load() != 0 {
		t.Errorf("the second response is still held")
	}

	// Messages that are most of their buffer stay in it.
	third := fill(1024)
	take(third, kafka.Message{Value: third.b[:len(third.b)*3/4]})
	third.release()
	if a.detach(msgs) || third.refs.Load() != 1 {
		t.Errorf("three quarters of a response were copied out of it (held by %d)", third.refs.Load())
	}
	a.release()
	if third.refs.Load() != 0 {
		t.Errorf("released, the arena still holds its response")
	}

	// A few small messages (a live topic's tail) take no chunk of 256 KB: they are moved
	// into an array of their size.
	tail := &arena{}
	fourth := fill(4096)
	tail.hold(fourth)
	small := []kafka.Message{{Key: fourth.b[:3], Value: fourth.b[8:100]}, {Value: fourth.b[200:210]}}
	want = []string{fmt.Sprint(small[0]), fmt.Sprint(small[1])}
	fourth.release()
	if !tail.detach(small) || len(tail.held) != 0 || fourth.refs.Load() != 0 {
		t.Errorf("a small delivery moved: %t, holding %d buffers (the response held by %d)", tail.copied == 2, len(tail.held), fourth.refs.Load())
	}
	clear(fourth.b[:cap(fourth.b)]) // back in the pool, emptied: the array as the next fetch finds it
	if got := []string{fmt.Sprint(small[0]), fmt.Sprint(small[1])}; !slices.Equal(got, want) {
		t.Errorf("small messages read %q, want %q", got, want)
	}
}

// TestBufferPoolLetsGoOfWhatStaysFree: buffers given back are taken again, the last
// given back first; each trim interval the buffers never taken during it are let go —
// unreachable from the pool — and those taken are kept.
func TestBufferPoolLetsGoOfWhatStaysFree(t *testing.T) {
	now := time.Unix(1_780_000_000, 0)
	p := &bufferPool{now: func() time.Time { return now }}
	var bufs []*sharedBuffer
	for range 5 {
		b := p.get()
		b.b = make([]byte, 10, 100)
		bufs = append(bufs, b)
	}
	for _, b := range bufs {
		b.release()
	}
	if got := p.get(); got != bufs[4] || len(got.b) != 0 || cap(got.b) != 100 || got.refs.Load() != 1 {
		t.Fatalf("took %p (len %d, cap %d, %d holders), want the last given back, emptied, held once", got, len(got.b), cap(got.b), got.refs.Load())
	}
	bufs[4].release()
	now = now.Add(trimInterval) // the first trim: nothing was known to be idle before
	p.get().release()
	if len(p.free) != 5 {
		t.Fatalf("%d free after the first trim, want 5", len(p.free))
	}
	// Two at a time are taken during the next interval: three were never needed.
	a, b := p.get(), p.get()
	a.release()
	b.release()
	now = now.Add(trimInterval)
	p.get().release()
	if len(p.free) != 2 || !slices.Contains(p.free, a) || !slices.Contains(p.free, b) {
		t.Fatalf("after an interval needing two: %d free, want the two taken", len(p.free))
	}
	now = now.Add(trimInterval / 2)
	p.get().release()
	if len(p.free) != 2 {
		t.Errorf("trimmed again before the interval passed: %d free", len(p.free))
	}
	// Trimmed without a taker (as the consumer's ticker does): one was taken in the
	// half interval, so one stays; after an interval with none taken, none does, and the
	// pool's array keeps neither reachable.
	now = now.Add(trimInterval)
	p.trimIdle()
	if len(p.free) != 1 {
		t.Errorf("%d free after an interval needing one, want 1", len(p.free))
	}
	now = now.Add(trimInterval)
	p.trimIdle()
	if len(p.free) != 0 {
		t.Errorf("%d free after an interval needing none, want 0", len(p.free))
	}
	for i, b := range p.free[:cap(p.free)] {
		if b != nil {
			t.Errorf("slot %d of the pool's array still holds a buffer it let go", i)
		}
	}
}

// TestReleaseClearsWhatWasFormed: a delivery's pooled slice of messages is cleared as far
// as the delivery filled it (the rest was cleared before it was pooled), not over its
// whole room: a mark past the formed messages is left alone.
func TestReleaseClearsWhatWasFormed(t *testing.T) {
	a := &arena{}
	msgs := append(a.messages(1000), kafka.Message{Value: []byte("m")})
	a.formed = len(msgs)
	room := a.msgs
	(*room)[:1000][999].Offset = 42
	a.release()
	if (*room)[:1000][999].Offset != 42 || (*room)[:1][0].Value != nil {
		t.Errorf("release cleared the room past the formed message, or not the message")
	}
}

// TestAFewMessagesGetASliceOfTheirOwn: a delivery of a few messages keeps them in a slice
// of their size, not in the pooled room for a full delivery, which goes back at once; a
// full one keeps the pooled slice.
func TestAFewMessagesGetASliceOfTheirOwn(t *testing.T) {
	a := &arena{}
	msgs := append(a.messages(1000), kafka.Message{Offset: 7, Value: []byte("m")})
	a.formed = len(msgs)
	room := a.msgs
	own := a.fit(msgs)
	if cap(own) != 1 || own[0].Offset != 7 || a.msgs != nil || (*room)[:1][0].Value != nil {
		t.Errorf("a delivery of one message kept %d of room (the pooled slice given back: %t)", cap(own), a.msgs == nil)
	}
	a.release()
	b := &arena{}
	full := b.messages(10) // the pool may give more room: filled whole
	for i := 0; len(full) < cap(full); i++ {
		full = append(full, kafka.Message{Offset: int64(i)})
	}
	b.formed = len(full)
	if got := b.fit(full); cap(got) != cap(full) || b.msgs == nil {
		t.Error("a full delivery lost its pooled slice")
	}
	b.release()
}
