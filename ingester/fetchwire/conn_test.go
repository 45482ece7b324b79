package fetchwire_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/spanflow/spanflow/ingester/fetchwire"
	"github.com/spanflow/spanflow/internal/kafkatest"
)

// fetchAll fetches partition 0 of topic from offset 0 and returns its values.
func fetchAll(t *testing.T, c *fetchwire.Conn, topic string) ([]string, fetchwire.FetchResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Fetch(ctx, fetchwire.FetchRequest{Topic: topic, Offset: 0, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	if _, _, err := fetchwire.ParseRecords(res.Records, 0, nil, nil, func(r *fetchwire.Record) { values = append(values, string(r.Value)) }); err != nil {
		t.Fatal(err)
	}
	return values, res
}

// TestFetchOverTLSAndSASL: with a broker that speaks only TLS and requires SCRAM-SHA-256,
// the records come as produced; a wrong password is refused at the dial, saying why.
func TestFetchOverTLSAndSASL(t *testing.T) {
	const topic = "secure"
	b, sec := kafkatest.StartSecure(t, topic, 1)
	b.Produce(t, topic, kafka.Message{Value: []byte("one")}, kafka.Message{Value: []byte("two")})
	caPEM, err := os.ReadFile(sec.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	mechanism := func(password string) sasl.Mechanism {
		m, err := scram.Mechanism(scram.SHA256, sec.Username, password)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	d := &fetchwire.Dialer{TLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, SASL: mechanism(sec.Password)}
	c, err := d.Dial(context.Background(), b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if values, res := fetchAll(t, c, topic); fmt.Sprint(values) != "[one two]" || res.HighWatermark != 2 || res.Error != nil {
		t.Errorf("fetched %v, high watermark %d, error %v", values, res.HighWatermark, res.Error)
	}

	d.SASL = mechanism("not-the-password")
	if c, err := d.Dial(context.Background(), b.Addr); err == nil || !strings.Contains(err.Error(), "SASL SCRAM-SHA-256") {
		if c != nil {
			_ = c.Close()
		}
		t.Errorf("with a wrong password: %v, want a SASL error", err)
	}
	d.SASL = mechanism(sec.Password)
	d.TLS = nil
	if c, err := d.Dial(context.Background(), b.Addr); err == nil {
		_ = c.Close()
		t.Error("a plain connection to a TLS listener authenticated")
	}
}

// TestFetchWithEachSASLMechanism: PLAIN and both SCRAMs authenticate, the wrong secret
// is refused.
func TestFetchWithEachSASLMechanism(t *testing.T) {
	for _, name := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(name, func(t *testing.T) {
			b := kafkatest.Start(t, "sasl", 1, kfake.EnableSASL(), kfake.Superuser(name, "ingester", "pass-word"))
			mechanism := func(password string) sasl.Mechanism {
				switch name {
				case "PLAIN":
					return plain.Mechanism{Username: "ingester", Password: password}
				case "SCRAM-SHA-256":
					m, _ := scram.Mechanism(scram.SHA256, "ingester", password)
					return m
				}
				m, _ := scram.Mechanism(scram.SHA512, "ingester", password)
				return m
			}
			c, err := (&fetchwire.Dialer{SASL: mechanism("pass-word")}).Dial(context.Background(), b.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if values, res := fetchAll(t, c, "sasl"); len(values) != 0 || res.Error != nil {
				t.Errorf("an empty partition fetched as %v, %v", values, res.Error)
			}
			if c, err := (&fetchwire.Dialer{SASL: mechanism("wrong")}).Dial(context.Background(), b.Addr); err == nil {
				_ = c.Close()
				t.Error("the wrong password authenticated")
			}
		})
	}
}

// TestFetchReportsThePartitionsError: a partition the broker does not have, or an offset
// past its end, is the partition's error code, and the connection goes on serving.
func TestFetchReportsThePartitionsError(t *testing.T) {
	const topic = "errors"
	b := kafkatest.Start(t, topic, 1)
	b.Produce(t, topic, kafka.Message{Value: []byte("only")})
	c, err := (&fetchwire.Dialer{}).Dial(context.Background(), b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		req  fetchwire.FetchRequest
		want error
	}{
		{fetchwire.FetchRequest{Topic: topic, Partition: 3, MaxBytes: 1 << 20}, kafka.UnknownTopicOrPartition},
		{fetchwire.FetchRequest{Topic: topic, Offset: 5, MaxBytes: 1 << 20}, kafka.OffsetOutOfRange},
	} {
		res, err := c.Fetch(ctx, tc.req, nil)
		if err != nil || !errors.Is(res.Error, tc.want) {
			t.Errorf("fetching %+v: %v, partition error %v; want %v", tc.req, err, res.Error, tc.want)
		}
	}
	if values, _ := fetchAll(t, c, topic); fmt.Sprint(values) != "[only]" {
		t.Errorf("after the errors fetched %v", values)
	}
}

// TestFetchEndsWithItsContext: a fetch the broker holds ends when its context does, and
// when its deadline passes.
func TestFetchEndsWithItsContext(t *testing.T) {
	const topic = "held"
	b := kafkatest.Start(t, topic, 1)
	b.SilenceFetches(t)
	req := fetchwire.FetchRequest{Topic: topic, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 50 * time.Millisecond}
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"past its deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Millisecond)
		}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := (&fetchwire.Dialer{}).Dial(context.Background(), b.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			_, err = c.Fetch(ctx, req, nil)
			if took := time.Since(start); !errors.Is(err, tc.want) || took > 5*time.Second {
				t.Errorf("returned %v after %v; want %v after about 200 ms", err, took, tc.want)
			}
		})
	}
}

// TestFetchTakesItsBufferAsTheResponseComes: a fetch waiting for records asks for no
// buffer until the broker answers (a partition at its end holds none while it waits);
// the buffer given is read into when large enough, and a new one made for a response of
// at least half the max bytes holds the max bytes, so that it fits the next response of
// a backlog; a smaller response gets a smaller one.
func TestFetchTakesItsBufferAsTheResponseComes(t *testing.T) {
	const topic = "buffers"
	b := kafkatest.Start(t, topic, 1)
	c, err := (&fetchwire.Dialer{}).Dial(context.Background(), b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var produced atomic.Bool
	go func() {
		time.Sleep(200 * time.Millisecond)
		produced.Store(true)
		if err := b.TryProduce(topic, kafka.Message{Value: bytes.Repeat([]byte{'x'}, 100<<10)}); err != nil {
			t.Error(err)
		}
	}()
	given := make([]byte, 0, 300<<10)
	asked := 0
	res, err := c.Fetch(ctx, fetchwire.FetchRequest{Topic: topic, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 5 * time.Second}, func() []byte {
		asked++
		if !produced.Load() {
			t.Error("a buffer was asked for before the broker had records to answer with")
		}
		return given
	})
	if err != nil || res.Error != nil || asked != 1 || &res.Buffer[0] != &given[:1][0] {
		t.Fatalf("fetched with %v, %v; a buffer asked for %d times, the one given used: %t", err, res.Error, asked, &res.Buffer[0] == &given[:1][0])
	}
	for _, tc := range []struct {
		maxBytes int
		fits     bool // a new buffer holds maxBytes
	}{{150 << 10, true}, {1 << 20, false}} {
		res, err := c.Fetch(ctx, fetchwire.FetchRequest{Topic: topic, MinBytes: 1, MaxBytes: tc.maxBytes, MaxWait: time.Second},
			func() []byte { return make([]byte, 0, 10) })
		if err != nil || res.Error != nil {
			t.Fatal(err, res.Error)
		}
		if got := cap(res.Buffer) >= tc.maxBytes; got != tc.fits || cap(res.Buffer) < len(res.Records) {
			t.Errorf("with max bytes %d: a response of %d bytes got a buffer of %d", tc.maxBytes, len(res.Records), cap(res.Buffer))
		}
	}
}

// TestFetchesCarryTheClientID: a fetch's request names the dialer's client id (brokers
// apply fetch quotas by it), "spanflow" when the dialer has none.
func TestFetchesCarryTheClientID(t *testing.T) {
	for set, want := range map[string]string{"team-a.traces": "team-a.traces", "": "spanflow"} {
		addr, got := kafkatest.ClientIDs(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := (&fetchwire.Dialer{ClientID: set}).Dial(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Fetch(ctx, fetchwire.FetchRequest{Topic: "spans", MaxBytes: 1 << 20, MaxWait: time.Second}, nil) // answered by a close
		if id := <-got; id != want {
			t.Errorf("dialer's client id %q: the request said %q, want %q", set, id, want)
		}
		_ = c.Close()
		cancel()
	}
}
