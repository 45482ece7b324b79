package kafkatest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Secure describes a broker started by StartSecure: TLS with a CA of the test's own and
// SCRAM-SHA-256 authentication.
type Secure struct {
	// CAFile is the PEM file of the CA that signed the broker's certificate.
	CAFile             string
	Username, Password string
}

// StartSecure starts a broker like Start that speaks only TLS and requires SCRAM-SHA-256
// with the returned credentials. The Broker's own client methods use them.
func StartSecure(t testing.TB, topic string, partitions int32) (*Broker, Secure) {
	t.Helper()
	dir := t.TempDir()
	serverTLS, caPool := selfSignedTLS(t, dir)
	sec := Secure{CAFile: filepath.Join(dir, "ca.pem"), Username: "ingester", Password: "s3cret-pass"}
	b := Start(t, topic, partitions, kfake.TLS(serverTLS), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", sec.Username, sec.Password))
	mech, err := scram.Mechanism(scram.SHA256, sec.Username, sec.Password)
	if err != nil {
		t.Fatal(err)
	}
	b.transport = &kafka.Transport{TLS: &tls.Config{RootCAs: caPool, MinVersion: tls.VersionTLS12}, SASL: mech}
	b.dialer = &kafka.Dialer{Timeout: 10 * time.Second, TLS: b.transport.TLS, SASLMechanism: mech}
	return b, sec
}

// selfSignedTLS writes a CA to dir/ca.pem and returns a server TLS config for 127.0.0.1
// signed by it, and the CA as a pool.
func selfSignedTLS(t testing.TB, dir string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "spanflow test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}, pool
}
