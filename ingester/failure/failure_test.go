package failure

import (
	"errors"
	"fmt"
	"testing"
)

func TestKinds(t *testing.T) {
	base := errors.New("bad bytes")
	if p := Permanent(base); !IsPermanent(p) || !errors.Is(p, base) || IsPermanent(base) || Permanent(nil) != nil {
		t.Error("Permanent does not mark, unwrap or pass nil through")
	}
	if d := fmt.Errorf("offset 5: %w", Decode(base)); !IsDecode(d) || !IsPermanent(d) || IsDecode(Permanent(base)) {
		t.Error("Decode is not permanent, or not recognised through wrapping")
	}
	if l := TooLarge(base); !IsTooLarge(l) || IsPermanent(l) || TooLarge(nil) != nil {
		t.Error("TooLarge marks wrongly")
	}
	r := fmt.Errorf("otlp: %w", &Rejected{Spans: 3, Message: "too old"})
	if got := AsRejected(r); got == nil || got.Spans != 3 || AsRejected(base) != nil {
		t.Errorf("AsRejected(%v) = %v", r, got)
	}
}
