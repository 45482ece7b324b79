package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/spanflow/spanflow/ingester/kafkaclient"
)

// probeTimeout bounds one look at a Kafka cluster, so an unreachable broker cannot hold
// a reconcile for long.
const probeTimeout = 5 * time.Second

// kafkaTarget is a cluster and topic as an Ingester reaches them.
type kafkaTarget struct {
	brokers  []string
	topic    string
	material kafkaclient.Material
}

// key identifies the target in the cache: brokers, topic and a digest of the credentials,
// so that rotated credentials are probed afresh. The digest is never shown anywhere.
func (t kafkaTarget) key() string {
	h := sha256.New()
	m := t.material
	fmt.Fprintf(h, "%t\x00%s\x00%s\x00%s\x00%t\x00%s\x00%s\x00%s", m.TLS, m.CA, m.Cert, m.Key, m.InsecureSkipVerify, m.Mechanism, m.Username, m.Password)
	return strings.Join(t.brokers, ",") + "/" + t.topic + "/" + hex.EncodeToString(h.Sum(nil)[:8])
}

// KafkaProber tells whether an Ingester's cluster is reachable with its credentials and
// how many partitions its topic has.
type KafkaProber interface {
	Partitions(ctx context.Context, target kafkaTarget) (int, error)
}

// cachingProber probes each target at most once per ttl, whatever the number of
// reconciles and Ingesters sharing the target.
type cachingProber struct {
	ttl   time.Duration
	now   func() time.Time
	probe func(ctx context.Context, target kafkaTarget) (int, error)

	mu    sync.Mutex
	cache map[string]probeResult
}

type probeResult struct {
	partitions int
	err        error
	at         time.Time
}

// NewKafkaProber returns the prober the manager uses: a metadata request per target, at
// most every ttl.
func NewKafkaProber(ttl time.Duration) KafkaProber {
	return &cachingProber{ttl: ttl, now: time.Now, probe: probeMetadata, cache: map[string]probeResult{}}
}

func (p *cachingProber) Partitions(ctx context.Context, target kafkaTarget) (int, error) {
	key := target.key()
	p.mu.Lock()
	r, ok := p.cache[key]
	p.mu.Unlock()
	if ok && p.now().Sub(r.at) < p.ttl {
		return r.partitions, r.err
	}
	n, err := p.probe(ctx, target)
	p.mu.Lock()
	p.cache[key] = probeResult{partitions: n, err: err, at: p.now()}
	// Forget what has not been asked for in a long time (deleted Ingesters, old credentials).
	for k, old := range p.cache {
		if p.now().Sub(old.at) > 10*p.ttl {
			delete(p.cache, k)
		}
	}
	p.mu.Unlock()
	return n, err
}

// errTopicNotFound is the probe's verdict on a reachable cluster without the topic.
var errTopicNotFound = errors.New("topic not found")

// probeMetadata asks the cluster for the topic's metadata.
func probeMetadata(ctx context.Context, target kafkaTarget) (int, error) {
	conn, err := kafkaclient.FromMaterial(target.material)
	if err != nil {
		return 0, err
	}
	transport := conn.Transport()
	defer transport.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(target.brokers...), Transport: transport, Timeout: probeTimeout}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{target.topic}})
	if err != nil {
		return 0, fmt.Errorf("cannot reach the Kafka brokers %s: %w", strings.Join(target.brokers, ","), err)
	}
	for _, t := range meta.Topics {
		if t.Name != target.topic {
			continue
		}
		if t.Error != nil {
			return 0, fmt.Errorf("%w: %q: %v", errTopicNotFound, target.topic, t.Error)
		}
		return len(t.Partitions), nil
	}
	return 0, fmt.Errorf("%w: %q", errTopicNotFound, target.topic)
}
