package consumer

import (
	"bytes"
	"testing"

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
		response := takeBuffer(&responseBuffers)
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
