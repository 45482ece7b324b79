// Package fetchwire reads Kafka partitions with Fetch requests on connections of its own
// and parses the responses where they were read: a record's key and value are slices of
// the response, not copies. kafka-go, which the ingester uses for everything else (the
// consumer group, commits, metadata, offsets), decodes a fetch response through
// io.Readers varint by varint into pooled pages, from where every value is read again:
// that was about a third of the CPU of reading otlp_proto into nothing.
//
// It speaks Fetch v4 (Kafka 0.11 and later, still accepted by Kafka 4) — v11 (Kafka 2.4
// and later) for a client in a rack, which may read from a replica in its rack — and
// ListOffsets v2 for the ends of many partitions in one request; before them,
// SaslHandshake v1 and SaslAuthenticate v0 with kafka-go's SASL mechanisms, over TLS
// when configured.
package fetchwire

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// Dialer connects to brokers.
type Dialer struct {
	TLS      *tls.Config    // nil: plain TCP
	SASL     sasl.Mechanism // nil: no authentication
	Timeout  time.Duration  // connecting, TLS and SASL included; 10 s when zero
	ClientID string         // "spanflow" when empty
}

// Conn is one connection to a broker, used by one goroutine at a time. After any error
// it returns it must be closed: the request stream's position is unknown.
type Conn struct {
	nc          net.Conn
	clientID    string
	correlation int32
	request     []byte // the last request's encoding, reused
}

// Dial connects to the broker at addr (host:port) and authenticates.
func (d *Dialer) Dial(ctx context.Context, addr string) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(d.Timeout, 10*time.Second))
	defer cancel()
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	if d.TLS != nil {
		cfg := d.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("TLS with %s: %w", addr, err)
		}
		nc = tc
	}
	c := &Conn{nc: nc, clientID: cmp.Or(d.ClientID, "spanflow")}
	if d.SASL != nil {
		portNumber, _ := strconv.Atoi(port)
		ctx = sasl.WithMetadata(ctx, &sasl.Metadata{Host: host, Port: portNumber})
		if err := c.authenticate(ctx, d.SASL); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("SASL %s with %s: %w", d.SASL.Name(), addr, err)
		}
	}
	return c, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// The requests' API keys.
const (
	apiFetch            = 1
	apiSASLHandshake    = 17
	apiVersions         = 18
	apiSASLAuthenticate = 36
)

// FetchVersions returns the highest Fetch version the broker serves (ApiVersions v0):
// a rack needs v11 (Kafka 2.4; 2.3 reads it, without selecting replicas).
func (c *Conn) FetchVersions(ctx context.Context) (int16, error) {
	body, err := c.roundTrip(ctx, apiVersions, 0, func(b []byte) []byte { return b }, nil, 0)
	if err != nil {
		return 0, err
	}
	r := reader{b: body}
	if code := r.int16(); r.err == nil && code != 0 {
		return 0, kafka.Error(code)
	}
	for n := r.int32(); n > 0 && r.err == nil; n-- {
		key, _, maxVersion := r.int16(), r.int16(), r.int16()
		if r.err == nil && key == apiFetch {
			return maxVersion, nil
		}
	}
	if r.err != nil {
		return 0, fmt.Errorf("api versions response: %w", r.err)
	}
	return 0, errors.New("the broker lists no Fetch versions")
}

// authenticate runs mechanism's exchange: the handshake names it, then its messages go
// back and forth in SaslAuthenticate requests until it is done.
func (c *Conn) authenticate(ctx context.Context, mechanism sasl.Mechanism) error {
	body, err := c.roundTrip(ctx, apiSASLHandshake, 1, func(b []byte) []byte {
		return appendString(b, mechanism.Name())
	}, nil, 0)
	if err != nil {
		return err
	}
	r := reader{b: body}
	if code := r.int16(); r.err != nil || code != 0 {
		return cmp.Or(r.err, error(kafka.Error(code)))
	}
	session, message, err := mechanism.Start(ctx)
	if err != nil {
		return err
	}
	for done := false; !done; {
		body, err := c.roundTrip(ctx, apiSASLAuthenticate, 0, func(b []byte) []byte {
			return appendBytes(b, message)
		}, nil, 0)
		if errors.Is(err, io.EOF) {
			return kafka.SASLAuthenticationFailed // brokers may say so by closing the connection
		}
		if err != nil {
			return err
		}
		r := reader{b: body}
		code, text, challenge := r.int16(), r.nullableString(), r.bytes()
		if r.err != nil {
			return r.err
		}
		if code != 0 {
			return fmt.Errorf("%w: %s", kafka.Error(code), text)
		}
		if done, message, err = session.Next(ctx, challenge); err != nil {
			return err
		}
	}
	return nil
}

// maxResponseSize bounds what a response may claim to be, so that a corrupt length
// prefix cannot ask for gigabytes. A fetch response exceeds its max bytes by at most
// one record batch (a broker returns the first batch whole); batches are at most
// message.max.bytes, 1 MiB by default.
const maxResponseSize = 512 << 20

// bufferRounding is what response buffers are allocated in multiples of.
const bufferRounding = 128 << 10

// roundTrip sends a request of apiKey at version, its body appended by body, and returns
// the response's body, read into the array buffer returns when it is large enough
// (buffer is called once the response's size is known: no buffer is held while the
// broker is waited for; nil: a new array); a new array for a response of at least half
// of full bytes holds full. ctx's deadline bounds it and ctx's end interrupts it.
func (c *Conn) roundTrip(ctx context.Context, apiKey, version int16, body func([]byte) []byte, buffer func() []byte, full int) ([]byte, error) {
	c.correlation++
	b := append(c.request[:0], 0, 0, 0, 0) // the size, set below
	b = binary.BigEndian.AppendUint16(b, uint16(apiKey))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(c.correlation))
	b = appendString(b, c.clientID)
	b = body(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	c.request = b

	deadline, _ := ctx.Deadline()
	if err := c.nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// Ending ctx unblocks the read or write in progress. If it ends as the exchange does,
	// the deadline it sets is waited for, so that it cannot land on the next request.
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.nc.SetDeadline(time.Unix(1, 0))
		close(interrupted)
	})
	defer func() {
		if !stop() {
			<-interrupted
		}
	}()
	out, err := c.exchange(b, buffer, full)
	switch {
	case err == nil:
		return out, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, os.ErrDeadlineExceeded) && !deadline.IsZero():
		return nil, context.DeadlineExceeded // the connection's deadline passed before ctx's timer fired
	}
	return nil, err
}

func (c *Conn) exchange(request []byte, buffer func() []byte, full int) ([]byte, error) {
	if _, err := c.nc.Write(request); err != nil {
		return nil, err
	}
	var header [8]byte // size, correlation id
	if _, err := io.ReadFull(c.nc, header[:]); err != nil {
		return nil, err
	}
	size := int(binary.BigEndian.Uint32(header[:4]))
	if size < 4 || size > maxResponseSize {
		return nil, fmt.Errorf("a response of %d bytes", size)
	}
	if id := int32(binary.BigEndian.Uint32(header[4:])); id != c.correlation {
		return nil, fmt.Errorf("the response to request %d came for request %d", c.correlation, id)
	}
	size -= 4
	var into []byte
	if buffer != nil {
		into = buffer()
	}
	if cap(into) < size {
		// A buffer for a response of at least half the fetch's max bytes (a backlog) is made
		// to hold any response up to them: buffers are pooled across partitions, and one a
		// little short for the next response was garbage at once (under a backlog of
		// otlp_proto, half the bytes allocated while reading). Smaller ones (a partition
		// read at its end) are rounded up, and grow when the partition's traffic does.
		capacity := (size + bufferRounding - 1) / bufferRounding * bufferRounding
		if size >= full/2 {
			capacity = max(capacity, full)
		}
		into = make([]byte, size, capacity)
	}
	into = into[:size]
	if _, err := io.ReadFull(c.nc, into); err != nil {
		return nil, err
	}
	return into, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendBytes(b, data []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// reader reads a response's fields; the first that does not fit sets err and every read
// after it returns zero values.
type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("response cut short")

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = cmp.Or(r.err, errShort)
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) int16() int16 {
	if b := r.take(2); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (r *reader) int32() int32 {
	if b := r.take(4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (r *reader) int64() int64 {
	if b := r.take(8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

// string reads a string field as bytes, unconverted.
func (r *reader) string() []byte { return r.take(int(r.int16())) }

func (r *reader) nullableString() string {
	n := r.int16()
	if n < 0 {
		return ""
	}
	return string(r.take(int(n)))
}

// bytes reads a bytes field; nil when null.
func (r *reader) bytes() []byte {
	n := r.int32()
	if n < 0 {
		return nil
	}
	return r.take(int(n))
}
