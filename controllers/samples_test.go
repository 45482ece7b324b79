package controllers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
	"github.com/spanflow/spanflow/internal/testenv"
)

// kubectl runs the kubectl built by hack/build-tools.sh against the envtest API server.
func kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	stdout, stderr, err := testEnv.ControlPlane.KubeCtl().Run(args...)
	out, _ := io.ReadAll(stdout)
	errOut, _ := io.ReadAll(stderr)
	if err != nil {
		return string(out), &kubectlError{err: err, stderr: string(errOut)}
	}
	return string(out), nil
}

type kubectlError struct {
	err    error
	stderr string
}

func (e *kubectlError) Error() string { return e.err.Error() + ": " + e.stderr }

// TestSamplesApplyWithKubectl applies config/samples with a real kubectl, as a user would,
// and checks that the operator runs them and that kubectl shows the printer columns.
func TestSamplesApplyWithKubectl(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	samples, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "spanflow_*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(samples).To(HaveLen(2))
	// The Secrets the full sample names, created the way its comment says (the operator
	// checks that their certificates and keys can be used).
	dir := t.TempDir()
	cert, key := selfSignedPEM(t)
	g.Expect(os.WriteFile(filepath.Join(dir, "ca.pem"), cert, 0o600)).To(Succeed())
	for _, args := range [][]string{
		{"create", "secret", "generic", "kafka-ca", "--from-file=ca.crt=" + filepath.Join(dir, "ca.pem")},
		{"create", "secret", "generic", "kafka-user", "--from-literal=username=ingester", "--from-literal=password=pw"},
	} {
		_, err := kubectl(t, append(args, "-n", ns)...)
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(k8sClient.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kafka-client"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key},
	})).To(Succeed())
	// The whole folder, as the README suggests: everything in it is an object to apply.
	out, err := kubectl(t, "apply", "--server-side", "--field-manager=test-user", "-n", ns, "-f", filepath.Join(testenv.RepoRoot(), "config", "samples"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Count(out, "serverside-applied")).To(Equal(len(samples)), out)

	// The minimal sample is named "sample" and asks for 2 replicas.
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, ns, "sample-ingester").Spec.Replicas).To(Equal(ptr.To[int32](2)))
	}, eventually, poll).Should(Succeed())

	// No pods yet (and the samples' brokers do not exist): 0 replicas, not a blank, and the
	// state shows what needs attention first once the operator has looked at Kafka.
	g.Eventually(func(g Gomega) {
		out, err := kubectl(t, "get", "ingesters", "-n", ns)
		g.Expect(err).NotTo(HaveOccurred())
		lines := strings.Split(strings.TrimSpace(out), "\n")
		g.Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "REPLICAS", "READY", "PARALLELISM", "LAG", "STATUS", "AGE"}))
		for _, line := range lines[1:] {
			fields := strings.Fields(line)
			g.Expect(fields).To(HaveLen(6), line)
			g.Expect(fields[1:3]).To(Equal([]string{"0", "0"}), line)
			g.Expect(fields[4]).To(Equal(spanflowv1alpha1.ReasonKafkaUnreachable), line)
		}
	}, eventually, poll).Should(Succeed())

	// The short name and category work too.
	_, err = kubectl(t, "get", "sfi", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred())
	out, err = kubectl(t, "get", "spanflow", "-n", ns, "-o", "name")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("ingester.spanflow.dev/sample"))

	// kubectl scale goes through the scale subresource.
	_, err = kubectl(t, "scale", "-n", ns, "ingester/sample", "--replicas=3")
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		g.Expect(getDeployment(g, ns, "sample-ingester").Spec.Replicas).To(Equal(ptr.To[int32](3)))
	}, eventually, poll).Should(Succeed())

	// The full sample runs with its Secrets mounted and its storage on the claim.
	g.Eventually(func(g Gomega) {
		dep := getDeployment(g, ns, "jaeger-spans-ingester")
		var volumes []string
		for _, v := range dep.Spec.Template.Spec.Volumes {
			volumes = append(volumes, v.Name)
		}
		g.Expect(volumes).To(ConsistOf(volumeConfig, volumeKafkaCA, volumeKafkaClient, volumeKafkaSASL, volumeFileStorage))
	}, eventually, poll).Should(Succeed())

	// Its autoscaling holds at its starting size while it cannot see Kafka, and says why.
	g.Eventually(func(g Gomega) {
		var ing spanflowv1alpha1.Ingester
		g.Expect(k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "jaeger-spans"}, &ing)).To(Succeed())
		g.Expect(ing.Status.Autoscaling).NotTo(BeNil())
		g.Expect(ing.Status.Autoscaling.DesiredReplicas).To(Equal(int32(3)))
		g.Expect(ing.Status.Autoscaling.Reason).To(Or(ContainSubstring("waiting for the first lag figures"), ContainSubstring("stale")))
		g.Expect(getDeployment(g, ns, "jaeger-spans-ingester").Spec.Replicas).To(Equal(ptr.To[int32](3)))
	}, eventually, poll).Should(Succeed())

	// kubectl explain says what a duration looks like and its default.
	out, err = kubectl(t, "explain", "ingester.spec.kafka.sessionTimeout")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Join(strings.Fields(out), " ")).To(ContainSubstring("A duration such as 30s (the default)"))

	// A user's invalid edit is refused by the server, naming the field.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	g.Expect(os.WriteFile(bad, []byte(`apiVersion: spanflow.dev/v1alpha1
kind: Ingester
metadata:
  name: bad
spec:
  storage: {type: blackhole}
  kafka:
    brokers: ["k:9092"]
    topic: spans
  parallelism: 0
`), 0o600)).To(Succeed())
	_, err = kubectl(t, "apply", "-n", ns, "-f", bad)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.parallelism"))
}

// selfSignedPEM is a certificate, its own CA, and its key, in PEM.
func selfSignedPEM(t *testing.T) (cert, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "spanflow-sample"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
