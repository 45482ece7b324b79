package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

// TestOpenTransactionsAreShownApartFromTheLag: an Ingester reading committed records
// counts the records behind a transaction still open in status.lag.openTransactionRecords,
// not in its lag (the pods may not read them, and more pods would not help), until the
// transaction commits.
func TestOpenTransactionsAreShownApartFromTheLag(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	topic := "transactional-" + ns // the suite's broker outlives a test
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	admin := &kafka.Client{Addr: kafka.TCP(testBroker), Transport: transport, Timeout: 5 * time.Second}
	res, err := admin.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Errors[topic]).NotTo(HaveOccurred())

	producer, err := kgo.NewClient(kgo.SeedBrokers(testBroker), kgo.DefaultProduceTopic(topic), kgo.TransactionalID(topic))
	g.Expect(err).NotTo(HaveOccurred())
	defer producer.Close()
	g.Expect(producer.BeginTransaction()).To(Succeed())
	for range 5 {
		g.Expect(producer.ProduceSync(ctx, &kgo.Record{Value: []byte("span")}).FirstErr()).To(Succeed())
	}

	ing := minimalIngester(ns, "committed")
	ing.Spec.Kafka.Topic = topic
	ing.Spec.Kafka.IsolationLevel = spanflowv1alpha1.IsolationReadCommitted
	g.Expect(k8sClient.Create(ctx, ing)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		g.Expect(ing.Status.Lag).NotTo(BeNil())
		g.Expect([]int64{ing.Status.Lag.Records, ing.Status.Lag.OpenTransactionRecords}).To(Equal([]int64{0, 5}), "records, open transaction records")
	}, eventually, poll).Should(Succeed())

	g.Expect(producer.EndTransaction(ctx, kgo.TryCommit)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ing), ing)).To(Succeed())
		// The five records and the commit marker, now readable.
		g.Expect([]int64{ing.Status.Lag.Records, ing.Status.Lag.OpenTransactionRecords}).To(Equal([]int64{6, 0}), "records, open transaction records")
	}, eventually, poll).Should(Succeed())
}
