package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/spanflow/spanflow/ingester/kafkaclient"
)

// probeTimeout bounds one look at a Kafka cluster.
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
