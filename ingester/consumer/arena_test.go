package consumer

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestArenaBytesStayUntilReleased fills arenas the way deliveries are filled, keeps a few alive while older ones are released and their chunks reused, and
// checks every live copy still holds what was copied: a chunk given back while a delivery
// still points into it would show here as another delivery's bytes.
func TestArenaBytesStayUntilReleased(t *testing.T) {
	type copied struct {
		got, want []byte
	}
	type delivery struct {
		a      *arena
		copies []copied
	}
	var live []delivery
	for round := range 300 {
		d := delivery{a: &arena{}}
		// Sizes from a few bytes to past the largest chunk, so messages straddle no chunk
		// and big ones get buffers of their own.
		for i := range 1 + round%7 {
			size := (round*131 + i*977) % (3 * chunkSizes[len(chunkSizes)-1] / 2)
			if i%3 == 0 {
				size %= 300
			}
			want := bytes.Repeat([]byte{byte(round), byte(i)}, size/2+1)
			got := d.a.copyBytes(want, size*(7-i))
			d.copies = append(d.copies, copied{got, want})
			header := fmt.Appendf(nil, "header-%d-%d", round, i)
			d.copies = append(d.copies, copied{d.a.copyBytes(header, 0), header})
		}
		live = append(live, d)
		for _, l := range live {
			for _, c := range l.copies {
				if !bytes.Equal(c.got, c.want) {
					t.Fatalf("round %d: a live copy of %d bytes changed: an arena's chunk was reused while still in use", round, len(c.want))
				}
			}
		}
		if len(live) > 3 {
			live[0].a.release()
			live = live[1:]
		}
	}
	if nilCopy := (&arena{}).copyBytes(nil, 10); nilCopy != nil {
		t.Errorf("a nil key copied as %q, want nil", nilCopy)
	}
	// Empty is not null: a key of no bytes stays a key (a dead-lettered message keeps it).
	if empty := (&arena{}).copyBytes([]byte{}, 10); empty == nil || len(empty) != 0 {
		t.Errorf("an empty key copied as %#v, want an empty, non-nil slice", empty)
	}
}

// TestArenaChunkSizes: a single small message takes a small chunk; a backlog's take the
// largest; a message larger than the largest chunk gets exactly its size.
func TestArenaChunkSizes(t *testing.T) {
	for _, tc := range []struct{ n, want, capacity int }{
		{100, 100, 4 << 10},
		{100, 10 << 10, 16 << 10},
		{100, 1 << 20, 64 << 10},
		{20 << 10, 0, 64 << 10},
		{100 << 10, 1 << 20, 100 << 10},
	} {
		a := &arena{}
		if got := cap(a.newChunk(tc.n, max(tc.n, tc.want))); got != tc.capacity {
			t.Errorf("newChunk(%d, want %d): %d bytes, want %d", tc.n, tc.want, got, tc.capacity)
		}
	}
}

// TestArenaMessagesAreClearedOnRelease: a delivery's message slice goes back to its pool
// emptied (a pooled slice must not keep a finished delivery's bytes reachable), and one
// taken from the pool has room for the messages asked for.
func TestArenaMessagesAreClearedOnRelease(t *testing.T) {
	a := &arena{}
	msgs := append(a.messages(4), kafka.Message{Key: a.copyBytes([]byte("k"), 0), Value: a.copyBytes([]byte("value"), 0)})
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
