// kafkago: the round trip, group and admin scenarios with segmentio's
// kafka-go (github.com/segmentio/kafka-go).  See internal/spec.
//
// kafka-go has no idempotent producer, so there is nothing to disable
// (Spool has no InitProducerId yet: issue 13).  The group uses kafka-go's
// ConsumerGroup (the API its group Reader is built on) so that each
// generation's assignment is visible: one partition Reader per assigned
// partition, started in the generation, offsets committed through it.
package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"spool/tests/go/internal/spec"
)

func main() {
	spec.Main(map[string]spec.Scenario{"roundtrip": roundtrip, "group": group, "admin": admin},
		"github.com/segmentio/kafka-go")
}

func codec(name string) kafka.Compression {
	switch name {
	case "gzip":
		return kafka.Gzip
	case "snappy":
		return kafka.Snappy
	case "lz4":
		return kafka.Lz4
	case "zstd":
		return kafka.Zstd
	}
	return 0
}

// produce writes msgs, each to its Partition, and returns [partition,
// offset] of each in order, from the Writer's Completion callback (whose
// messages carry the offsets; matched to msgs by partition, key and value,
// unique in every scenario).
func produce(bootstrap, topic, comp string, msgs []kafka.Message) ([][2]int64, error) {
	var mu sync.Mutex
	done := map[string][2]int64{}
	id := func(m kafka.Message) string {
		return fmt.Sprintf("%d/%t/%q/%t/%q", m.Partition, m.Key == nil, m.Key, m.Value == nil, m.Value)
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(bootstrap),
		Topic:        topic,
		Balancer:     kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.Partition }),
		RequiredAcks: kafka.RequireAll,
		Compression:  codec(comp),
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    1000,
		Completion: func(ms []kafka.Message, err error) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range ms {
				if err == nil {
					done[id(m)] = [2]int64{int64(m.Partition), m.Offset}
				}
			}
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), spec.Deadline)
	defer cancel()
	err := w.WriteMessages(ctx, msgs...)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	out := make([][2]int64, len(msgs))
	for i, m := range msgs {
		r, ok := done[id(m)]
		if !ok {
			return nil, fmt.Errorf("no completion for message %d", i)
		}
		out[i] = r
	}
	return out, nil
}

func roundtrip(bootstrap, prefix string) (any, error) {
	topic := prefix + "-rt"
	recs := spec.RTRecords(spec.Codecs)
	out := &spec.RoundTrip{Codecs: spec.Codecs}
	want := map[int]int{}
	for _, c := range spec.Codecs {
		var msgs []kafka.Message
		for _, r := range recs {
			if r.Codec != c {
				continue
			}
			want[int(r.P)]++
			m := kafka.Message{Partition: int(r.P), Key: spec.Bytes(r.K), Value: spec.Bytes(r.V),
				Time: time.UnixMilli(r.TS)}
			for _, h := range r.H {
				m.Headers = append(m.Headers, kafka.Header{Key: h[0], Value: []byte(h[1])})
			}
			msgs = append(msgs, m)
		}
		got, err := produce(bootstrap, topic, c, msgs)
		if err != nil {
			return nil, fmt.Errorf("produce %s: %w", c, err)
		}
		out.Produced = append(out.Produced, got...)
		spec.Step("produced %s", c)
	}
	for p := 0; p < spec.RTParts; p++ {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, Topic: topic, Partition: p,
			MaxWait: 200 * time.Millisecond})
		if err := r.SetOffset(kafka.FirstOffset); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), spec.Deadline)
		for n := 0; n < want[p]; n++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				cancel()
				r.Close()
				return nil, fmt.Errorf("consume partition %d: %w", p, err)
			}
			hs := []spec.Header{}
			for _, h := range m.Headers {
				hs = append(hs, spec.Header{h.Key, string(h.Value)})
			}
			out.Consumed = append(out.Consumed, spec.Record{P: int32(m.Partition), O: m.Offset,
				K: spec.Str(m.Key), V: spec.Str(m.Value), H: hs, TS: m.Time.UnixMilli()})
		}
		cancel()
		r.Close()
	}
	return out, nil
}

type member struct {
	mu       sync.Mutex
	cg       *kafka.ConsumerGroup
	gen      *kafka.Generation
	assigned map[int32]bool
	next     map[int32]int64 // partition -> offset after the last record read
	done     chan error
	out      spec.Member
}

func newMember(bootstrap, topic, grp string) (*member, error) {
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: grp, Brokers: []string{bootstrap}, Topics: []string{topic},
		HeartbeatInterval: 500 * time.Millisecond, SessionTimeout: 10 * time.Second,
		RebalanceTimeout: 10 * time.Second, JoinGroupBackoff: 200 * time.Millisecond,
		StartOffset: kafka.FirstOffset,
	})
	if err != nil {
		return nil, err
	}
	m := &member{cg: cg, assigned: map[int32]bool{}, next: map[int32]int64{}, done: make(chan error, 1)}
	m.out.Records = [][3]any{}
	go func() {
		fails := 0
		for {
			// Next fails when a rebalance starts while joining (REBALANCE_IN_PROGRESS);
			// kafka-go's own group Reader tries again, and so do we, a few times.
			gen, err := cg.Next(context.Background())
			if errors.Is(err, kafka.ErrGroupClosed) {
				m.done <- nil
				return
			}
			if err != nil {
				if fails++; fails >= 10 {
					m.done <- err
					return
				}
				continue
			}
			fails = 0
			m.mu.Lock()
			m.gen = gen
			m.assigned = map[int32]bool{}
			for _, pa := range gen.Assignments[topic] {
				m.assigned[int32(pa.ID)] = true
			}
			m.mu.Unlock()
			gen.Start(func(ctx context.Context) { // the end of the generation
				<-ctx.Done()
				m.mu.Lock()
				if m.gen == gen {
					m.assigned = map[int32]bool{}
				}
				m.mu.Unlock()
			})
			for _, pa := range gen.Assignments[topic] {
				pa := pa
				gen.Start(func(ctx context.Context) { m.read(ctx, bootstrap, topic, pa) })
			}
		}
	}()
	return m, nil
}

func (m *member) read(ctx context.Context, bootstrap, topic string, pa kafka.PartitionAssignment) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, Topic: topic, Partition: pa.ID,
		MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(pa.Offset); err != nil {
		return
	}
	for {
		msg, err := r.ReadMessage(ctx)
		if err != nil {
			return
		}
		m.mu.Lock()
		m.out.Records = append(m.out.Records, [3]any{msg.Partition, msg.Offset, string(msg.Value)})
		m.next[int32(msg.Partition)] = msg.Offset + 1
		m.mu.Unlock()
	}
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

func (m *member) commitClose(cl *kafka.Client, grp, topic string) error {
	m.mu.Lock()
	gen := m.gen
	final := map[int32]bool{}
	offs := map[int]int64{}
	for p := range m.assigned {
		final[p] = true
		if o, ok := m.next[p]; ok {
			offs[int(p)] = o
		}
	}
	m.mu.Unlock()
	if gen == nil {
		return errors.New("no generation to commit in")
	}
	if err := gen.CommitOffsets(map[string]map[int]int64{topic: offs}); err != nil {
		return err
	}
	m.out.Assigned = spec.Sorted(final)
	parts := []int{}
	for _, p := range m.out.Assigned {
		parts = append(parts, int(p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), spec.Deadline)
	defer cancel()
	resp, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: grp, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return err
	}
	m.out.Committed = map[string]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return p.Error
		}
		m.out.Committed[fmt.Sprint(p.Partition)] = p.CommittedOffset
	}
	err = m.cg.Close()
	if derr := <-m.done; err == nil {
		err = derr
	}
	return err
}

func groupMsgs(phase int) []kafka.Message {
	var out []kafka.Message
	for _, gv := range spec.GroupValues(phase) {
		out = append(out, kafka.Message{Partition: int(gv.P), Value: []byte(gv.V)})
	}
	return out
}

func group(bootstrap, prefix string) (any, error) {
	topic, grp := prefix+"-grp", prefix+"-g"
	cl := &kafka.Client{Addr: kafka.TCP(bootstrap), Timeout: 10 * time.Second}
	a, err := newMember(bootstrap, topic, grp)
	if err != nil {
		return nil, err
	}
	b, err := newMember(bootstrap, topic, grp)
	if err != nil {
		return nil, err
	}
	if err := wait([]*member{a, b}, func() bool { return spec.Stable(a.set(), b.set()) }, "two members assigned"); err != nil {
		return nil, err
	}
	spec.Step("a: %v, b: %v", a.set(), b.set())
	if _, err := produce(bootstrap, topic, "none", groupMsgs(1)); err != nil {
		return nil, err
	}
	total := spec.Phase1 * spec.GroupParts
	if err := wait([]*member{a, b}, func() bool { return a.count()+b.count() >= total }, "phase 1"); err != nil {
		return nil, err
	}
	spec.Step("phase 1 read")
	for _, m := range []*member{a, b} {
		if err := m.commitClose(cl, grp, topic); err != nil {
			return nil, err
		}
	}
	if _, err := produce(bootstrap, topic, "none", groupMsgs(2)); err != nil {
		return nil, err
	}
	spec.Step("a and b closed, phase 2 produced")
	c, err := newMember(bootstrap, topic, grp)
	if err != nil {
		return nil, err
	}
	if err := wait([]*member{c}, func() bool { return c.count() >= spec.Phase2*spec.GroupParts }, "after the restart"); err != nil {
		return nil, err
	}
	spec.Step("phase 2 read by c")
	if err := c.commitClose(cl, grp, topic); err != nil {
		return nil, err
	}
	return &spec.Group{Members: map[string]*spec.Member{"a": &a.out, "b": &b.out}, Restart: &c.out}, nil
}

func code(err error) int16 {
	var ke kafka.Error
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*spec.Deadline)
	defer cancel()
	// MetadataTTL: the Transport answers metadata from a cache (6 s by
	// default), and the waits below poll metadata.
	cl := &kafka.Client{Addr: kafka.TCP(bootstrap), Timeout: 10 * time.Second,
		Transport: &kafka.Transport{MetadataTTL: 100 * time.Millisecond}}
	out := &spec.Admin{}
	create := func(cfg kafka.TopicConfig) (int16, error) {
		r, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{cfg}})
		if err != nil {
			return 0, err
		}
		return code(r.Errors[topic]), nil
	}
	c, err := create(kafka.TopicConfig{Topic: topic, NumPartitions: 2, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "3600000"}}})
	if err != nil || c != 0 {
		return nil, fmt.Errorf("create: %v (%d)", err, c)
	}
	if out.CreateAgain, err = create(kafka.TopicConfig{Topic: topic, NumPartitions: 2, ReplicationFactor: 1}); err != nil {
		return nil, err
	}
	partitions := func(n int) ([]int32, error) {
		w := spec.Wait("topic metadata")
		for {
			md, err := cl.Metadata(ctx, &kafka.MetadataRequest{})
			if err != nil {
				return nil, err
			}
			var ps []int32
			out.Listed = false
			for _, t := range md.Topics {
				if t.Name == topic && t.Error == nil {
					out.Listed = true
					for _, p := range t.Partitions {
						ps = append(ps, int32(p.ID))
					}
				}
			}
			if len(ps) == n {
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
			r, err := cl.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{
				{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic}}})
			if err != nil {
				return nil, err
			}
			if len(r.Resources) != 1 || r.Resources[0].Error != nil {
				return nil, fmt.Errorf("describe configs: %+v", r.Resources)
			}
			m := map[string]string{}
			for _, e := range r.Resources[0].ConfigEntries {
				if e.ConfigName == "retention.ms" || e.ConfigName == "cleanup.policy" {
					m[e.ConfigName] = e.ConfigValue
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
	ar, err := cl.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{
		Resources: []kafka.IncrementalAlterConfigsRequestResource{{ResourceType: kafka.ResourceTypeTopic,
			ResourceName: topic, Configs: []kafka.IncrementalAlterConfigsRequestConfig{
				{Name: "retention.ms", Value: "7200000", ConfigOperation: kafka.ConfigOperationSet}}}}})
	if err == nil && len(ar.Resources) == 1 {
		err = ar.Resources[0].Error
	}
	if err != nil {
		return nil, fmt.Errorf("alter configs: %w", err)
	}
	if out.ConfigsAltered, err = configs("7200000"); err != nil {
		return nil, err
	}
	cr, err := cl.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{
		{Name: topic, Count: 4}}})
	if err == nil {
		err = cr.Errors[topic]
	}
	if err != nil {
		return nil, fmt.Errorf("create partitions: %w", err)
	}
	if out.PartitionsAfter, err = partitions(4); err != nil {
		return nil, err
	}

	spec.Step("topic made, configs altered, partitions added")
	m, err := newMember(bootstrap, topic, grp)
	if err != nil {
		return nil, err
	}
	err = wait([]*member{m}, func() bool { return len(m.set()) == 4 }, "admin group member")
	if err == nil {
		var lg *kafka.ListGroupsResponse
		lg, err = cl.ListGroups(ctx, &kafka.ListGroupsRequest{})
		out.Groups = []string{}
		if err == nil {
			err = lg.Error
			for _, g := range lg.Groups {
				if g.GroupID == grp {
					out.Groups = append(out.Groups, g.GroupID)
				}
			}
		}
		var dg *kafka.DescribeGroupsResponse
		if err == nil {
			dg, err = cl.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{grp}})
		}
		if err == nil && len(dg.Groups) == 1 {
			g := dg.Groups[0]
			assigned := map[int32]bool{}
			for _, mem := range g.Members {
				for _, t := range mem.MemberAssignments.Topics {
					if t.Topic == topic {
						for _, p := range t.Partitions {
							assigned[int32(p)] = true
						}
					}
				}
			}
			out.Group = map[string]any{"state": strings.ToLower(g.GroupState), "members": len(g.Members),
				"assigned": spec.Sorted(assigned)}
			err = g.Error
		}
	}
	m.cg.Close()
	<-m.done
	if err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	dr, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err == nil {
		err = dr.Errors[topic]
	}
	if err != nil {
		return nil, fmt.Errorf("delete: %w", err)
	}
	w := spec.Wait("topic deleted")
	for {
		md, err := cl.Metadata(ctx, &kafka.MetadataRequest{})
		if err != nil {
			return nil, err
		}
		found := false
		for _, t := range md.Topics {
			found = found || t.Name == topic
		}
		if !found {
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
