// Package kafkaclient turns the ingester's Kafka settings into kafka-go's connection
// objects — a Dialer for the consumer group and partition readers, a Transport for
// producers — with TLS and SASL as configured, reading keys and credentials from files.
package kafkaclient

import (
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
}

// New reads the TLS material and SASL credentials the config names.
func New(cfg config.Kafka) (Connection, error) {
	var c Connection
	var err error
	if cfg.TLS.Enabled {
		if c.TLS, err = tlsConfig(cfg.TLS); err != nil {
			return c, fmt.Errorf("kafka.tls: %w", err)
		}
	}
	if cfg.SASL.Mechanism != "" {
		if c.SASL, err = mechanism(cfg.SASL); err != nil {
			return c, fmt.Errorf("kafka.sasl: %w", err)
		}
	}
	return c, nil
}

// Dialer returns a dialer for consumer groups and readers.
func (c Connection) Dialer() *kafka.Dialer {
	return &kafka.Dialer{Timeout: dialTimeout, DualStack: true, TLS: c.TLS, SASLMechanism: c.SASL}
}

// Transport returns a transport of its own (kafka-go's shared default caches metadata) for
// producers and admin requests.
func (c Connection) Transport() *kafka.Transport {
	return &kafka.Transport{DialTimeout: dialTimeout, TLS: c.TLS, SASL: c.SASL}
}

func tlsConfig(cfg config.KafkaTLS) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // explicit opt-in
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", cfg.CAFile)
		}
		t.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

func mechanism(cfg config.KafkaSASL) (sasl.Mechanism, error) {
	user, err := readSecretFile(cfg.UsernameFile)
	if err != nil {
		return nil, err
	}
	pass, err := readSecretFile(cfg.PasswordFile)
	if err != nil {
		return nil, err
	}
	switch cfg.Mechanism {
	case config.SASLPlain:
		return plain.Mechanism{Username: user, Password: pass}, nil
	case config.SASLScramSHA256:
		return scram.Mechanism(scram.SHA256, user, pass)
	case config.SASLScramSHA512:
		return scram.Mechanism(scram.SHA512, user, pass)
	}
	return nil, fmt.Errorf("unknown mechanism %q", cfg.Mechanism)
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
