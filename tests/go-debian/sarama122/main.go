// sarama122: Debian's Sarama 1.22.1 (golang-github-shopify-sarama-dev,
// github.com/Shopify/sarama) against a broker, built offline in GOPATH
// mode from /usr/share/gocode (tests/integration/old_clients.py).
//
//	sarama122 SCENARIO BOOTSTRAP PREFIX
//
// prints one JSON object: what each step returned and, under "errors",
// every step that failed (the steps go on after a failure, so one run
// names everything a broker lacks).  Sarama 1.22 sends no ApiVersions: it
// picks each request's version from Config.Version alone, so each
// scenario sets the Kafka version a real user of it would have had.
//
//	admin      Version 0.11.0 (the oldest Sarama describes configs with):
//	           create PREFIX-adm with 3 partitions and retention.ms=3600000
//	           (CreateTopics v1), create it again (TOPIC_ALREADY_EXISTS),
//	           describe it (Metadata v4), describe its configs
//	           (DescribeConfigs v0), alter retention.ms to 7200000
//	           (AlterConfigs v0) and describe again, list topics
//	           (ListTopics: an all-topics Metadata v0, then DescribeConfigs
//	           v0 of every topic), delete it (DeleteTopics v1) and wait
//	           until the metadata no longer has it.
//	admin010   the same with Version 0.10.2 (the oldest its ClusterAdmin
//	           and consumer groups accept): CreateTopics v0, Metadata v0,
//	           DeleteTopics v0; no config steps (Sarama refuses
//	           DescribeConfigs and AlterConfigs below 0.11 itself).
//	alter-unknown  Version 0.11.0: alter retention.ms of PREFIX-none, a
//	           topic that does not exist (AlterConfigs v0).  Sarama 1.22
//	           looks at the resource's error message only, not its code:
//	           a broker that answers without a message lets it report
//	           success.
//	roundtrip  Version 0.11.0 (the oldest that writes record batches):
//	           into PREFIX-rt (3 partitions, made by the test) a sync
//	           producer writes N records, record i to partition i % 3,
//	           with a key, a header and a timestamp (Produce v3); a
//	           consumer group PREFIX-g reads them all from the oldest
//	           offset and commits (JoinGroup v1, SyncGroup v0, OffsetFetch
//	           v1, Fetch v4, OffsetCommit v1, LeaveGroup v0); then the
//	           committed offsets (OffsetFetch v1) and the end offsets
//	           (ListOffsets v1).
//	offsets    Sarama's default configuration (Version 0.8.2), as a
//	           monitoring tool has it: the topics (Metadata v0), the
//	           partitions, the oldest and newest offsets (ListOffsets v0)
//	           of PREFIX-rt and the offsets group PREFIX-g committed
//	           (FindCoordinator v0, OffsetFetch v1).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

const (
	n     = 30
	parts = 3
)

// report is what the scenario found: each step's value, or its error.
type report struct {
	mu      sync.Mutex
	out     map[string]interface{}
	errors  map[string]string
	current string // the step running
}

// step runs f, keeps its value under name, or its error under errors[name].
func (r *report) step(name string, f func() (interface{}, error)) {
	r.mu.Lock()
	r.current = name
	r.mu.Unlock()
	v, err := f()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.current = ""
	if err != nil {
		r.errors[name] = err.Error()
		return
	}
	r.out[name] = v
}

// print writes the report as one line of JSON; the caller holds r.mu.
func (r *report) print() {
	r.out["errors"] = r.errors
	b, err := json.Marshal(r.out)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
}

// watchdog prints the report and exits when the scenario has not ended
// in time: an old client can wait forever on a broker that closed the
// connection (kafka-go 0.2 spins on a dead connection's next response).
func (r *report) watchdog(d time.Duration) {
	time.AfterFunc(d, func() {
		r.mu.Lock()
		r.errors[r.current] = fmt.Sprintf("still running after %v (the scenario's limit)", d)
		r.print()
		os.Exit(0)
	})
}

func config(v sarama.KafkaVersion, scenario string) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = v
	c.ClientID = "spool-sarama122-" + scenario
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Admin.Timeout = 10 * time.Second
	return c
}

// kerr is a Kafka error code from what Sarama returned, or -1.
func kerr(err error) int {
	switch e := err.(type) {
	case nil:
		return 0
	case sarama.KError:
		return int(e)
	case *sarama.TopicError:
		return int(e.Err)
	}
	return -1
}

func describeConfig(admin sarama.ClusterAdmin, topic string) (interface{}, error) {
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	if err != nil {
		return nil, err
	}
	got := map[string]interface{}{}
	for _, e := range entries {
		if e.Name == "retention.ms" || e.Name == "cleanup.policy" {
			got[e.Name] = map[string]interface{}{"value": e.Value, "default": e.Default,
				"read_only": e.ReadOnly, "sensitive": e.Sensitive}
		}
	}
	got["count"] = len(entries)
	return got, nil
}

func admin(bootstrap, prefix string, r *report, v sarama.KafkaVersion, scenario string) {
	topic := prefix + "-adm"
	conf := config(v, scenario)
	// Each step has its own client: Sarama 1.22 does not reconnect after a
	// broker closed the connection (as brokers do on a version they do
	// not serve), so one failed step would fail every later one.
	step := func(name string, f func(sarama.ClusterAdmin) (interface{}, error)) {
		r.step(name, func() (interface{}, error) {
			admin, err := sarama.NewClusterAdmin([]string{bootstrap}, conf)
			if err != nil {
				return nil, err
			}
			defer admin.Close()
			return f(admin)
		})
	}
	retention := "3600000"
	detail := &sarama.TopicDetail{NumPartitions: parts, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &retention}}
	step("create", func(a sarama.ClusterAdmin) (interface{}, error) { return 0, a.CreateTopic(topic, detail, false) })
	step("create_again", func(a sarama.ClusterAdmin) (interface{}, error) {
		return kerr(a.CreateTopic(topic, detail, false)), nil
	})
	step("describe", func(a sarama.ClusterAdmin) (interface{}, error) {
		md, err := a.DescribeTopics([]string{topic})
		if err != nil {
			return nil, err
		}
		if len(md) != 1 {
			return nil, fmt.Errorf("%d topics described", len(md))
		}
		ids := []int{}
		for _, p := range md[0].Partitions {
			ids = append(ids, int(p.ID))
		}
		sort.Ints(ids)
		return map[string]interface{}{"name": md[0].Name, "error": int(md[0].Err), "partitions": ids}, nil
	})
	if v.IsAtLeast(sarama.V0_11_0_0) {
		step("configs", func(a sarama.ClusterAdmin) (interface{}, error) { return describeConfig(a, topic) })
		step("alter", func(a sarama.ClusterAdmin) (interface{}, error) {
			v := "7200000"
			return 0, a.AlterConfig(sarama.TopicResource, topic, map[string]*string{"retention.ms": &v}, false)
		})
		step("configs_altered", func(a sarama.ClusterAdmin) (interface{}, error) { return describeConfig(a, topic) })
		step("list", func(a sarama.ClusterAdmin) (interface{}, error) { return listTopic(a, topic) })
	}
	step("delete", func(a sarama.ClusterAdmin) (interface{}, error) { return 0, a.DeleteTopic(topic) })
	step("gone", func(sarama.ClusterAdmin) (interface{}, error) {
		// all topics, as a new client learns them (Metadata v0 naming the
		// topic would create it again: v0 always creates)
		deadline := time.Now().Add(20 * time.Second)
		for {
			listed, err := topicListed(bootstrap, conf, topic)
			if err != nil {
				return nil, err
			}
			if !listed {
				return true, nil
			}
			if time.Now().After(deadline) {
				return false, nil
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// topicListed says if a new client's metadata (all topics) has topic.
func topicListed(bootstrap string, conf *sarama.Config, topic string) (bool, error) {
	client, err := sarama.NewClient([]string{bootstrap}, conf)
	if err != nil {
		return false, err
	}
	defer client.Close()
	topics, err := client.Topics()
	if err != nil {
		return false, err
	}
	for _, t := range topics {
		if t == topic {
			return true, nil
		}
	}
	return false, nil
}

func alterUnknown(bootstrap, prefix string, r *report) {
	admin, err := sarama.NewClusterAdmin([]string{bootstrap}, config(sarama.V0_11_0_0, "alter-unknown"))
	if err != nil {
		r.errors["connect"] = err.Error()
		return
	}
	defer admin.Close()
	v := "7200000"
	err = admin.AlterConfig(sarama.TopicResource, prefix+"-none", map[string]*string{"retention.ms": &v}, false)
	r.out["alter"] = ""
	if err != nil {
		r.out["alter"] = err.Error()
	}
}

// listTopic is what ListTopics says of one topic.
func listTopic(admin sarama.ClusterAdmin, topic string) (interface{}, error) {
	topics, err := admin.ListTopics()
	if err != nil {
		return nil, err
	}
	d, ok := topics[topic]
	if !ok {
		return nil, fmt.Errorf("%s not among the %d topics listed", topic, len(topics))
	}
	cfg := map[string]string{}
	for k, v := range d.ConfigEntries {
		cfg[k] = *v
	}
	return map[string]interface{}{"partitions": d.NumPartitions, "replication_factor": d.ReplicationFactor,
		"configs": cfg}, nil
}

// Record i of the round trip.
func rec(i int) (p int32, key, value string, ts int64) {
	return int32(i % parts), fmt.Sprintf("k%d", i), fmt.Sprintf("v%d-%s", i, "sarama-1.22"), 1700000000000 + int64(i)
}

type handler struct {
	mu       sync.Mutex
	records  [][]interface{}
	assigned []int
	done     context.CancelFunc
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.assigned = nil
	for _, ps := range s.Claims() {
		for _, p := range ps {
			h.assigned = append(h.assigned, int(p))
		}
	}
	sort.Ints(h.assigned)
	return nil
}

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		hdrs := [][]string{}
		for _, hd := range m.Headers {
			hdrs = append(hdrs, []string{string(hd.Key), string(hd.Value)})
		}
		h.mu.Lock()
		h.records = append(h.records, []interface{}{m.Partition, m.Offset, string(m.Key), string(m.Value),
			hdrs, m.Timestamp.UnixNano() / 1e6})
		full := len(h.records) >= n
		h.mu.Unlock()
		s.MarkMessage(m, "")
		if full {
			h.done()
		}
	}
	return nil
}

func roundtrip(bootstrap, prefix string, r *report) {
	topic, group := prefix+"-rt", prefix+"-g"
	conf := config(sarama.V0_11_0_0, "roundtrip")
	conf.Producer.RequiredAcks = sarama.WaitForAll
	conf.Producer.Return.Successes = true
	conf.Producer.Partitioner = sarama.NewManualPartitioner
	conf.Consumer.Return.Errors = true
	conf.Consumer.Offsets.Initial = sarama.OffsetOldest
	conf.Consumer.MaxWaitTime = 100 * time.Millisecond
	conf.Consumer.Retry.Backoff = 200 * time.Millisecond
	conf.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	conf.Consumer.Group.Session.Timeout = 10 * time.Second
	conf.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
	addrs := []string{bootstrap}

	r.step("produced", func() (interface{}, error) {
		prod, err := sarama.NewSyncProducer(addrs, conf)
		if err != nil {
			return nil, err
		}
		defer prod.Close()
		msgs := []*sarama.ProducerMessage{}
		for i := 0; i < n; i++ {
			p, k, v, ts := rec(i)
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: p,
				Key: sarama.StringEncoder(k), Value: sarama.StringEncoder(v),
				Headers:   []sarama.RecordHeader{{Key: []byte("seq"), Value: []byte(strconv.Itoa(i))}},
				Timestamp: time.Unix(0, ts*1e6)})
		}
		if err := prod.SendMessages(msgs); err != nil {
			return nil, err
		}
		out := [][]int64{}
		for _, m := range msgs {
			out = append(out, []int64{int64(m.Partition), m.Offset})
		}
		return out, nil
	})

	r.step("group", func() (interface{}, error) {
		cg, err := sarama.NewConsumerGroup(addrs, group, conf)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		h := &handler{done: cancel}
		var cerrs []string
		go func() {
			for e := range cg.Errors() {
				h.mu.Lock()
				cerrs = append(cerrs, e.Error())
				h.mu.Unlock()
			}
		}()
		var cerr error
		for ctx.Err() == nil {
			if cerr = cg.Consume(ctx, []string{topic}, h); cerr != nil {
				break
			}
		}
		if err := cg.Close(); err != nil && cerr == nil {
			cerr = err
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if cerr != nil {
			return nil, cerr
		}
		if len(h.records) < n {
			return nil, fmt.Errorf("read %d of %d records in 40 s (consumer errors: %v)", len(h.records), n, cerrs)
		}
		return map[string]interface{}{"assigned": h.assigned, "records": h.records}, nil
	})

	r.step("committed", func() (interface{}, error) {
		admin, err := sarama.NewClusterAdmin(addrs, conf)
		if err != nil {
			return nil, err
		}
		defer admin.Close()
		resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
		if err != nil {
			return nil, err
		}
		got := map[string]int64{}
		for p := int32(0); p < parts; p++ {
			b := resp.GetBlock(topic, p)
			if b == nil {
				return nil, fmt.Errorf("no offset for partition %d", p)
			}
			if b.Err != sarama.ErrNoError {
				return nil, b.Err
			}
			got[strconv.Itoa(int(p))] = b.Offset
		}
		return got, nil
	})

	r.step("end_offsets", func() (interface{}, error) { return endOffsets(addrs, conf, topic, sarama.OffsetNewest) })
}

func endOffsets(addrs []string, conf *sarama.Config, topic string, which int64) (interface{}, error) {
	client, err := sarama.NewClient(addrs, conf)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	got := map[string]int64{}
	for p := int32(0); p < parts; p++ {
		o, err := client.GetOffset(topic, p, which)
		if err != nil {
			return nil, err
		}
		got[strconv.Itoa(int(p))] = o
	}
	return got, nil
}

func offsets(bootstrap, prefix string, r *report) {
	topic, group := prefix+"-rt", prefix+"-g"
	conf := sarama.NewConfig() // Version 0.8.2, Sarama's MinVersion
	conf.ClientID = "spool-sarama122-offsets"
	conf.Metadata.Retry.Backoff = 100 * time.Millisecond
	addrs := []string{bootstrap}
	r.out["version"] = conf.Version.String()
	r.step("listed", func() (interface{}, error) { return topicListed(bootstrap, conf, topic) })
	r.step("partitions", func() (interface{}, error) {
		client, err := sarama.NewClient(addrs, conf)
		if err != nil {
			return nil, err
		}
		defer client.Close()
		return client.Partitions(topic)
	})
	r.step("newest", func() (interface{}, error) { return endOffsets(addrs, conf, topic, sarama.OffsetNewest) })
	r.step("oldest", func() (interface{}, error) { return endOffsets(addrs, conf, topic, sarama.OffsetOldest) })
	r.step("committed", func() (interface{}, error) {
		client, err := sarama.NewClient(addrs, conf)
		if err != nil {
			return nil, err
		}
		defer client.Close()
		om, err := sarama.NewOffsetManagerFromClient(group, client)
		if err != nil {
			return nil, err
		}
		defer om.Close()
		got := map[string]int64{}
		for p := int32(0); p < parts; p++ {
			pom, err := om.ManagePartition(topic, p)
			if err != nil {
				return nil, err
			}
			o, _ := pom.NextOffset()
			pom.Close()
			got[strconv.Itoa(int(p))] = o
		}
		return got, nil
	})
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: sarama122 admin|admin010|alter-unknown|roundtrip|offsets BOOTSTRAP PREFIX")
		os.Exit(2)
	}
	scenario, bootstrap, prefix := os.Args[1], os.Args[2], os.Args[3]
	sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Ltime|log.Lmicroseconds)
	r := &report{out: map[string]interface{}{}, errors: map[string]string{}}
	r.watchdog(90 * time.Second)
	switch scenario {
	case "admin":
		admin(bootstrap, prefix, r, sarama.V0_11_0_0, scenario)
	case "admin010":
		admin(bootstrap, prefix, r, sarama.V0_10_2_0, scenario)
	case "alter-unknown":
		alterUnknown(bootstrap, prefix, r)
	case "roundtrip":
		roundtrip(bootstrap, prefix, r)
	case "offsets":
		offsets(bootstrap, prefix, r)
	default:
		fmt.Fprintln(os.Stderr, "unknown scenario", scenario)
		os.Exit(2)
	}
	r.mu.Lock()
	r.print()
}
