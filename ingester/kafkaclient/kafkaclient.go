// Package kafkaclient turns the ingester's Kafka settings into kafka-go's connection
// objects — a Dialer for the consumer group and partition readers, a Transport for
// producers — with TLS and SASL as configured, reading keys and credentials from files.
package kafkaclient

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/spanflow/spanflow/ingester/config"
)

// dialTimeout bounds connecting to a broker.
const dialTimeout = 10 * time.Second

// Connection holds what kafka-go needs to reach the brokers.
type Connection struct {
	TLS  *tls.Config
	SASL sasl.Mechanism
	// ClientID names the client in every request (brokers key quotas and logs by it);
	// kafka-go's default, the program and host, when empty.
	ClientID string
}

// Material is TLS and SASL settings with the keys and credentials themselves, as the
// operator reads them from Secrets. Zero values mean "not used".
type Material struct {
	TLS                bool
	CA                 []byte // PEM; empty: the system roots
	Cert, Key          []byte // PEM client certificate and key, for mutual TLS
	InsecureSkipVerify bool
	Mechanism          string // SASL mechanism; empty: no SASL
	Username, Password string
}

// New reads the TLS material and SASL credentials the config names from their files.
func New(cfg config.Kafka) (Connection, error) {
	m := Material{TLS: cfg.TLS.Enabled, InsecureSkipVerify: cfg.TLS.InsecureSkipVerify, Mechanism: cfg.SASL.Mechanism}
	var err error
	read := func(dst *[]byte, path string) {
		if path != "" && err == nil {
			*dst, err = os.ReadFile(path)
		}
	}
	read(&m.CA, cfg.TLS.CAFile)
	read(&m.Cert, cfg.TLS.CertFile)
	read(&m.Key, cfg.TLS.KeyFile)
	if err != nil {
		return Connection{}, fmt.Errorf("kafka.tls: %w", err)
	}
	if m.Mechanism != "" {
		if m.Username, err = readSecretFile(cfg.SASL.UsernameFile); err == nil {
			m.Password, err = readSecretFile(cfg.SASL.PasswordFile)
		}
		if err != nil {
			return Connection{}, fmt.Errorf("kafka.sasl: %w", err)
		}
	}
	c, err := FromMaterial(m)
	c.ClientID = cmp.Or(cfg.ClientID, config.DefaultClientID)
	return c, err
}

// FromMaterial builds a connection from keys and credentials in memory.
func FromMaterial(m Material) (Connection, error) {
	var c Connection
	var err error
	if m.TLS {
		if c.TLS, err = tlsConfig(m); err != nil {
			return c, fmt.Errorf("tls: %w", err)
		}
	}
	if m.Mechanism != "" {
		if c.SASL, err = mechanism(m); err != nil {
			return c, fmt.Errorf("sasl: %w", err)
		}
	}
	return c, nil
}

// Dialer returns a dialer for consumer groups and readers.
func (c Connection) Dialer() *kafka.Dialer {
	return &kafka.Dialer{Timeout: dialTimeout, DualStack: true, TLS: c.TLS, SASLMechanism: c.SASL, ClientID: c.ClientID}
}

// Transport returns a transport of its own (kafka-go's shared default caches metadata) for
// producers and admin requests.
func (c Connection) Transport() *kafka.Transport {
	return &kafka.Transport{DialTimeout: dialTimeout, TLS: c.TLS, SASL: c.SASL, ClientID: c.ClientID}
}

func tlsConfig(m Material) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: m.InsecureSkipVerify} //nolint:gosec // explicit opt-in
	if len(m.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(m.CA) {
			return nil, errors.New("the CA bundle holds no PEM certificate")
		}
		t.RootCAs = pool
	}
	if len(m.Cert) > 0 || len(m.Key) > 0 {
		cert, err := tls.X509KeyPair(m.Cert, m.Key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

func mechanism(m Material) (sasl.Mechanism, error) {
	if m.Username == "" || m.Password == "" {
		return nil, errors.New("username and password are required")
	}
	switch m.Mechanism {
	case config.SASLPlain:
		return plain.Mechanism{Username: m.Username, Password: m.Password}, nil
	case config.SASLScramSHA256:
		return scram.Mechanism(scram.SHA256, m.Username, m.Password)
	case config.SASLScramSHA512:
		return scram.Mechanism(scram.SHA512, m.Username, m.Password)
	}
	return nil, fmt.Errorf("unknown mechanism %q", m.Mechanism)
}

// readSecretFile reads a credential, without the trailing newline editors and
// `kubectl create secret --from-file` leave. The error names the file, never its content.
func readSecretFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	value := strings.TrimRight(string(data), "\r\n")
	if value == "" {
		return "", errors.New(path + " is empty")
	}
	return value, nil
}
