package kafkatest

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SelectReplicasByRack has the cluster's brokers stand in racks (broker i in racks[i])
// and serve fetches as brokers with Kafka's RackAwareReplicaSelector do: every broker
// holds a replica of every partition of topic, and a fetch that names the rack of
// another broker than the partition's leader is answered by the leader with no records
// and that broker to read from (KIP-392). The partitions' leaders must not move after.
func SelectReplicasByRack(c *kfake.Cluster, racks []string, topic string, partitions int32) {
	leaders := map[int32]int32{}
	for p := range partitions {
		leaders[p] = c.LeaderFor(topic, p)
		var followers []int32
		for node := range int32(len(racks)) {
			if node != leaders[p] {
				followers = append(followers, node)
			}
		}
		c.SetFollowers(topic, p, followers)
	}
	c.ControlKey(int16(kmsg.Fetch), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.FetchRequest)
		inRack := int32(slices.Index(racks, req.Rack))
		if inRack < 0 || len(req.Topics) != 1 || req.Topics[0].Topic != topic || len(req.Topics[0].Partitions) != 1 {
			return nil, nil, false // the broker answers
		}
		partition := req.Topics[0].Partitions[0].Partition
		leader, ok := leaders[partition]
		if !ok || c.CurrentNode() != leader || inRack == leader {
			return nil, nil, false
		}
		c.KeepControl()
		return FetchAnswer(req, topic, partition, 0, inRack), nil, true
	})
}

// FetchAnswer is the answer to a one-partition fetch that holds no records: the
// partition's error code, and the replica to read it from (-1: none). Its high watermark
// is unknown (-1).
func FetchAnswer(req *kmsg.FetchRequest, topic string, partition int32, code int16, preferred int32) *kmsg.FetchResponse {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	rt := kmsg.NewFetchResponseTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.Partition, rp.ErrorCode, rp.PreferredReadReplica = partition, code, preferred
	rp.HighWatermark, rp.LastStableOffset = -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	resp.Topics = append(resp.Topics, rt)
	return resp
}
