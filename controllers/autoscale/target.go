package autoscale

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

// Target is a topic and consumer group as an Ingester reaches them.
type Target struct {
	Brokers []string
	Topic   string
	// Material is how to connect: TLS and SASL settings with the credentials.
	Material kafkaclient.Material
	Group    string
	// FromEarliest is true when a group with nothing committed starts at the log start:
	// its lag is then the whole log (at the latest, none).
	FromEarliest bool
	// ClientID is the client.id the polls carry: the Ingester's, so that what a broker's
	// quotas and request logs say of its pods holds for the operator's polls for them too.
	ClientID string
	// ReadCommitted says the group reads with read_committed isolation: its partitions
	// end at their last stable offset (records of transactions still open are not lag
	// the pods could take).
	ReadCommitted bool
}

// key identifies the target among the pollers: brokers, topic, group and a digest of the
// credentials, so that rotated credentials are polled afresh. The digest is never shown
// anywhere.
func (t Target) key() string {
	h := sha256.New()
	m := t.Material
	fmt.Fprintf(h, "%t\x00%s\x00%s\x00%s\x00%t\x00%s\x00%s\x00%s", m.TLS, m.CA, m.Cert, m.Key, m.InsecureSkipVerify, m.Mechanism, m.Username, m.Password)
	return fmt.Sprintf("%s/%s/%s/%s/%t/%t/%s", strings.Join(t.Brokers, ","), t.Topic, hex.EncodeToString(h.Sum(nil)[:8]), t.Group, t.FromEarliest, t.ReadCommitted, t.ClientID)
}
