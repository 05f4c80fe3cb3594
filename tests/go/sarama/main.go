// sarama: the round trip, group and admin scenarios with Sarama
// (github.com/IBM/sarama).  See internal/spec.
//
// config.Version is Sarama's newest (MaxVersion): Sarama then picks each
// request's version as the highest both it and the broker's ApiVersions
// allow.  Idempotence is Sarama's default: off.
package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"spool/tests/go/internal/spec"
)

func main() {
	spec.Main(map[string]spec.Scenario{"roundtrip": roundtrip, "group": group, "admin": admin},
		"github.com/IBM/sarama")
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.MaxVersion
	c.ClientID = "spool-test-sarama"
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 10 * time.Second
	// Sarama waits 2 s before it joins again after a failed join (a join
	// that meets a rebalance) and before it retries a partition consumer.
	c.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
	c.Consumer.Retry.Backoff = 200 * time.Millisecond
	// A commit and a close wait for the fetch in flight (500 ms by default).
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	return c
}

func codec(name string) sarama.CompressionCodec {
	switch name {
	case "gzip":
		return sarama.CompressionGZIP
	case "snappy":
		return sarama.CompressionSnappy
	case "lz4":
		return sarama.CompressionLZ4
	case "zstd":
		return sarama.CompressionZSTD
	}
	return sarama.CompressionNone
}

func produce(bootstrap string, c *sarama.Config, msgs []*sarama.ProducerMessage) ([][2]int64, error) {
	p, err := sarama.NewSyncProducer([]string{bootstrap}, c)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if err := p.SendMessages(msgs); err != nil {
		return nil, err
	}
	out := make([][2]int64, len(msgs))
	for i, m := range msgs {
		out[i] = [2]int64{int64(m.Partition), m.Offset}
	}
	return out, nil
}

func roundtrip(bootstrap, prefix string) (any, error) {
	topic := prefix + "-rt"
	recs := spec.RTRecords(spec.Codecs)
	out := &spec.RoundTrip{Codecs: spec.Codecs}
	want := map[int32]int{}
	for _, c := range spec.Codecs {
		var msgs []*sarama.ProducerMessage
		for _, r := range recs {
			if r.Codec != c {
				continue
			}
			want[r.P]++
			m := &sarama.ProducerMessage{Topic: topic, Partition: r.P, Timestamp: time.UnixMilli(r.TS)}
			if r.K != nil {
				m.Key = sarama.StringEncoder(*r.K)
			}
			if r.V != nil {
				m.Value = sarama.StringEncoder(*r.V)
			}
			for _, h := range r.H {
				m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h[0]), Value: []byte(h[1])})
			}
			msgs = append(msgs, m)
		}
		cfg := config()
		cfg.Producer.Compression = codec(c)
		got, err := produce(bootstrap, cfg, msgs)
		if err != nil {
			return nil, fmt.Errorf("produce %s: %w", c, err)
		}
		out.Produced = append(out.Produced, got...)
		spec.Step("produced %s", c)
	}
	cons, err := sarama.NewConsumer([]string{bootstrap}, config())
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	for p := int32(0); p < spec.RTParts; p++ {
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		timeout := time.After(spec.Deadline)
		for n := 0; n < want[p]; n++ {
			select {
			case m := <-pc.Messages():
				hs := []spec.Header{}
				for _, h := range m.Headers {
					hs = append(hs, spec.Header{string(h.Key), string(h.Value)})
				}
				out.Consumed = append(out.Consumed, spec.Record{P: m.Partition, O: m.Offset,
					K: spec.Str(m.Key), V: spec.Str(m.Value), H: hs, TS: m.Timestamp.UnixMilli()})
			case e := <-pc.Errors():
				return nil, e
			case <-timeout:
				return nil, fmt.Errorf("consume partition %d: timed out", p)
			}
		}
		pc.Close()
	}
	return out, nil
}

// member is one group member: a goroutine that calls Consume again after
// each rebalance until its context is cancelled.
type member struct {
	mu       sync.Mutex
	assigned map[int32]bool
	sess     sarama.ConsumerGroupSession
	cg       sarama.ConsumerGroup
	cancel   context.CancelFunc
	done     chan error
	topic    string
	out      spec.Member
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sess = s
	m.assigned = map[int32]bool{}
	for _, p := range s.Claims()[m.topic] {
		m.assigned[p] = true
	}
	return nil
}

func (m *member) Cleanup(sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sess = nil
	m.assigned = map[int32]bool{}
	return nil
}

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		m.mu.Lock()
		m.out.Records = append(m.out.Records, [3]any{msg.Partition, msg.Offset, string(msg.Value)})
		m.mu.Unlock()
		s.MarkMessage(msg, "")
	}
	return nil
}

func newMember(bootstrap, topic, grp, name string) (*member, error) {
	c := config()
	c.ClientID = name
	cg, err := sarama.NewConsumerGroup([]string{bootstrap}, grp, c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{cg: cg, cancel: cancel, done: make(chan error, 1), topic: topic, assigned: map[int32]bool{}}
	m.out.Records = [][3]any{}
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, m); err != nil && ctx.Err() == nil {
				m.done <- err
				return
			}
		}
		m.done <- nil
	}()
	return m, nil
}

func (m *member) set() map[int32]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := map[int32]bool{}
	for p := range m.assigned {
		s[p] = true
	}
	return s
}

func (m *member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.out.Records)
}

func wait(ms []*member, done func() bool, what string) error {
	w := spec.Wait(what)
	for !done() {
		for _, m := range ms {
			select {
			case err := <-m.done:
				return fmt.Errorf("%s: member stopped: %v", what, err)
			default:
			}
		}
		if err := w.Check(); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (m *member) commitClose(adm sarama.ClusterAdmin, grp string) error {
	m.mu.Lock()
	sess := m.sess
	final := map[int32]bool{}
	for p := range m.assigned {
		final[p] = true
	}
	m.mu.Unlock()
	if sess == nil {
		return errors.New("no session to commit in")
	}
	sess.Commit()
	m.out.Assigned = spec.Sorted(final)
	resp, err := adm.ListConsumerGroupOffsets(grp, map[string][]int32{m.topic: m.out.Assigned})
	if err != nil {
		return err
	}
	m.out.Committed = map[string]int64{}
	for _, p := range m.out.Assigned {
		if b := resp.GetBlock(m.topic, p); b != nil {
			m.out.Committed[fmt.Sprint(p)] = b.Offset
		}
	}
	m.cancel()
	err = m.cg.Close()
	<-m.done
	return err
}

func groupMsgs(topic string, phase int) []*sarama.ProducerMessage {
	var out []*sarama.ProducerMessage
	for _, gv := range spec.GroupValues(phase) {
		out = append(out, &sarama.ProducerMessage{Topic: topic, Partition: gv.P, Value: sarama.StringEncoder(gv.V)})
	}
	return out
}

func group(bootstrap, prefix string) (any, error) {
	topic, grp := prefix+"-grp", prefix+"-g"
	adm, err := sarama.NewClusterAdmin([]string{bootstrap}, config())
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	a, err := newMember(bootstrap, topic, grp, "a")
	if err != nil {
		return nil, err
	}
	b, err := newMember(bootstrap, topic, grp, "b")
	if err != nil {
		return nil, err
	}
	if err := wait([]*member{a, b}, func() bool { return spec.Stable(a.set(), b.set()) }, "two members assigned"); err != nil {
		return nil, err
	}
	spec.Step("a: %v, b: %v", a.set(), b.set())
	if _, err := produce(bootstrap, config(), groupMsgs(topic, 1)); err != nil {
		return nil, err
	}
	total := spec.Phase1 * spec.GroupParts
	if err := wait([]*member{a, b}, func() bool { return a.count()+b.count() >= total }, "phase 1"); err != nil {
		return nil, err
	}
	spec.Step("phase 1 read")
	for _, m := range []*member{a, b} {
		if err := m.commitClose(adm, grp); err != nil {
			return nil, err
		}
	}
	if _, err := produce(bootstrap, config(), groupMsgs(topic, 2)); err != nil {
		return nil, err
	}
	spec.Step("a and b closed, phase 2 produced")
	c, err := newMember(bootstrap, topic, grp, "c")
	if err != nil {
		return nil, err
	}
	if err := wait([]*member{c}, func() bool { return c.count() >= spec.Phase2*spec.GroupParts }, "after the restart"); err != nil {
		return nil, err
	}
	spec.Step("phase 2 read by c")
	if err := c.commitClose(adm, grp); err != nil {
		return nil, err
	}
	return &spec.Group{Members: map[string]*spec.Member{"a": &a.out, "b": &b.out}, Restart: &c.out}, nil
}

func code(err error) int16 {
	var te *sarama.TopicError
	if errors.As(err, &te) {
		return int16(te.Err)
	}
	var ke sarama.KError
	if errors.As(err, &ke) {
		return int16(ke)
	}
	if err == nil {
		return 0
	}
	return -1
}

func admin(bootstrap, prefix string) (any, error) {
	topic, grp := prefix+"-adm", prefix+"-adm-g"
	adm, err := sarama.NewClusterAdmin([]string{bootstrap}, config())
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	out := &spec.Admin{}
	ret := "3600000"
	if err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &ret}}, false); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	out.CreateAgain = code(adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false))
	partitions := func(n int) ([]int32, error) {
		w := spec.Wait("topic metadata")
		for {
			ts, err := adm.ListTopics()
			if err != nil {
				return nil, err
			}
			_, out.Listed = ts[topic]
			md, err := adm.DescribeTopics([]string{topic})
			if err != nil {
				return nil, err
			}
			var ps []int32
			if len(md) == 1 && md[0].Err == sarama.ErrNoError {
				for _, p := range md[0].Partitions {
					ps = append(ps, p.ID)
				}
			}
			if out.Listed && len(ps) == n {
				sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
				return ps, nil
			}
			if err := w.Check(); err != nil {
				return nil, err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if out.Partitions, err = partitions(2); err != nil {
		return nil, err
	}
	// configs describes the topic until retention.ms is retention (Kafka
	// applies a change through its metadata log: a describe right after
	// the alter may see the old value) or the deadline passes.
	configs := func(retention string) (map[string]string, error) {
		w := spec.Wait("topic configs")
		for {
			es, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
			if err != nil {
				return nil, err
			}
			m := map[string]string{}
			for _, e := range es {
				if e.Name == "retention.ms" || e.Name == "cleanup.policy" {
					m[e.Name] = e.Value
				}
			}
			if m["retention.ms"] == retention || w.Check() != nil {
				return m, nil
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if out.Configs, err = configs("3600000"); err != nil {
		return nil, err
	}
	v := "7200000"
	if err := adm.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &v}}, false); err != nil {
		return nil, fmt.Errorf("alter configs: %w", err)
	}
	if out.ConfigsAltered, err = configs(v); err != nil {
		return nil, err
	}
	if err := adm.CreatePartitions(topic, 4, nil, false); err != nil {
		return nil, fmt.Errorf("create partitions: %w", err)
	}
	if out.PartitionsAfter, err = partitions(4); err != nil {
		return nil, err
	}

	spec.Step("topic made, configs altered, partitions added")
	m, err := newMember(bootstrap, topic, grp, "adm-member")
	if err != nil {
		return nil, err
	}
	err = wait([]*member{m}, func() bool { return len(m.set()) == 4 }, "admin group member")
	if err == nil {
		var gs map[string]string
		gs, err = adm.ListConsumerGroups()
		out.Groups = []string{}
		if _, ok := gs[grp]; ok {
			out.Groups = append(out.Groups, grp)
		}
		var ds []*sarama.GroupDescription
		if err == nil {
			ds, err = adm.DescribeConsumerGroups([]string{grp})
		}
		if err == nil && len(ds) == 1 {
			assigned := map[int32]bool{}
			for _, mem := range ds[0].Members {
				ma, aerr := mem.GetMemberAssignment()
				if aerr != nil {
					err = aerr
					break
				}
				for _, p := range ma.Topics[topic] {
					assigned[p] = true
				}
			}
			out.Group = map[string]any{"state": strings.ToLower(ds[0].State), "members": len(ds[0].Members),
				"assigned": spec.Sorted(assigned)}
			if ds[0].Err != sarama.ErrNoError {
				err = ds[0].Err
			}
		}
	}
	m.cancel()
	m.cg.Close()
	<-m.done
	if err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	if err := adm.DeleteTopic(topic); err != nil {
		return nil, fmt.Errorf("delete: %w", err)
	}
	w := spec.Wait("topic deleted")
	for {
		ts, err := adm.ListTopics()
		if err != nil {
			return nil, err
		}
		if _, ok := ts[topic]; !ok {
			break
		}
		if err := w.Check(); err != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	spec.Step("topic deleted")
	out.Deleted = true
	return out, nil
}
