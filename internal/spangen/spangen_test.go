package spangen

import "testing"

func TestJaegerSpanSize(t *testing.T) {
	g := New(1)
	total := 0
	const n = 1000
	for i := range uint64(n) {
		data, err := g.JaegerSpan(i).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		total += len(data)
	}
	if avg := total / n; avg < 800 || avg > 1000 {
		t.Errorf("average span is %d bytes, want about 900", avg)
	}
}
