// franz: the round trip, group and admin scenarios with franz-go
// (github.com/twmb/franz-go/pkg/kgo and kadm).  See internal/spec.
//
// Idempotent writes are franz-go's default, kept here: the producer asks
// InitProducerId first and its batches carry a producer id and sequences.
// The group uses franz-go's default balancer (cooperative-sticky) and the
// classic protocol (KIP-848 is an opt-in there).
package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"spool/tests/go/internal/spec"
)

func main() {
	spec.Main(map[string]spec.Scenario{"roundtrip": roundtrip, "group": group, "admin": admin},
		"github.com/twmb/franz-go", "github.com/twmb/franz-go/pkg/kadm")
}

func codec(name string) kgo.CompressionCodec {
	switch name {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

func producer(bootstrap string, opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(bootstrap),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5 * time.Millisecond),
	}, opts...)...)
}

// produce sends recs and returns [partition, offset] of each, in order.
func produce(cl *kgo.Client, recs []*kgo.Record) ([][2]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), spec.Deadline)
	defer cancel()
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		return nil, err
	}
	out := make([][2]int64, len(res))
	for i, r := range res {
		out[i] = [2]int64{int64(r.Record.Partition), r.Record.Offset}
	}
	return out, nil
}

func record(r *kgo.Record) spec.Record {
	hs := []spec.Header{}
	for _, h := range r.Headers {
		hs = append(hs, spec.Header{h.Key, string(h.Value)})
	}
	return spec.Record{P: r.Partition, O: r.Offset, K: spec.Str(r.Key), V: spec.Str(r.Value),
		H: hs, TS: r.Timestamp.UnixMilli()}
}

func roundtrip(bootstrap, prefix string) (any, error) {
	topic := prefix + "-rt"
	recs := spec.RTRecords(spec.Codecs)
	out := &spec.RoundTrip{Codecs: spec.Codecs}
	for _, c := range spec.Codecs {
		cl, err := producer(bootstrap, kgo.ProducerBatchCompression(codec(c)))
		if err != nil {
			return nil, err
		}
		var krs []*kgo.Record
		for _, r := range recs {
			if r.Codec != c {
				continue
			}
			kr := &kgo.Record{Topic: topic, Partition: r.P, Key: spec.Bytes(r.K), Value: spec.Bytes(r.V),
				Timestamp: time.UnixMilli(r.TS)}
			for _, h := range r.H {
				kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h[0], Value: []byte(h[1])})
			}
			krs = append(krs, kr)
		}
		got, err := produce(cl, krs)
		cl.Close()
		if err != nil {
			return nil, fmt.Errorf("produce %s: %w", c, err)
		}
		out.Produced = append(out.Produced, got...)
		spec.Step("produced %s", c)
	}
	parts := map[int32]kgo.Offset{}
	for p := 0; p < spec.RTParts; p++ {
		parts[int32(p)] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	w := spec.Wait("consume")
	for len(out.Consumed) < len(recs) {
		if err := w.Check(); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				return nil, e.Err
			}
		}
		fs.EachRecord(func(r *kgo.Record) { out.Consumed = append(out.Consumed, record(r)) })
	}
	return out, nil
}

type member struct {
	mu       sync.Mutex
	assigned map[int32]bool
	final    map[int32]bool
	cl       *kgo.Client
	out      spec.Member
}

func newMember(bootstrap, topic, grp, name string) (*member, error) {
	m := &member{assigned: map[int32]bool{}}
	m.out.Records = [][3]any{}
	add := func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, p := range a[topic] {
			m.assigned[p] = true
		}
	}
	del := func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, p := range a[topic] {
			delete(m.assigned, p)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ClientID(name),
		kgo.ConsumerGroup(grp), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.HeartbeatInterval(500*time.Millisecond), kgo.SessionTimeout(10*time.Second),
		kgo.OnPartitionsAssigned(add), kgo.OnPartitionsRevoked(del), kgo.OnPartitionsLost(del))
	if err != nil {
		return nil, err
	}
	m.cl = cl
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

// poll polls the members in turn until done() holds.
func poll(ms []*member, done func() bool, what string) error {
	w := spec.Wait(what)
	for !done() {
		if err := w.Check(); err != nil {
			return err
		}
		for _, m := range ms {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			fs := m.cl.PollFetches(ctx)
			cancel()
			for _, e := range fs.Errors() {
				if !errors.Is(e.Err, context.DeadlineExceeded) {
					return e.Err
				}
			}
			fs.EachRecord(func(r *kgo.Record) {
				m.out.Records = append(m.out.Records, [3]any{r.Partition, r.Offset, string(r.Value)})
			})
		}
	}
	return nil
}

func (m *member) commitClose(grp, topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), spec.Deadline)
	defer cancel()
	m.final = m.set()
	m.out.Assigned = spec.Sorted(m.final)
	if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
		return err
	}
	offs, err := kadm.NewClient(m.cl).FetchOffsets(ctx, grp)
	if err != nil {
		return err
	}
	m.out.Committed = map[string]int64{}
	for p := range m.final {
		if o, ok := offs.Lookup(topic, p); ok {
			m.out.Committed[fmt.Sprint(p)] = o.At
		}
	}
	m.cl.Close()
	return nil
}

func groupRecords(topic string, phase int) []*kgo.Record {
	var out []*kgo.Record
	for _, gv := range spec.GroupValues(phase) {
		out = append(out, &kgo.Record{Topic: topic, Partition: gv.P, Value: []byte(gv.V)})
	}
	return out
}

func group(bootstrap, prefix string) (any, error) {
	topic, grp := prefix+"-grp", prefix+"-g"
	a, err := newMember(bootstrap, topic, grp, "a")
	if err != nil {
		return nil, err
	}
	b, err := newMember(bootstrap, topic, grp, "b")
	if err != nil {
		return nil, err
	}
	if err := poll([]*member{a, b}, func() bool { return spec.Stable(a.set(), b.set()) }, "two members assigned"); err != nil {
		return nil, err
	}
	spec.Step("a: %v, b: %v", a.set(), b.set())
	prod, err := producer(bootstrap)
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	if _, err := produce(prod, groupRecords(topic, 1)); err != nil {
		return nil, err
	}
	total := spec.Phase1 * spec.GroupParts
	if err := poll([]*member{a, b}, func() bool { return len(a.out.Records)+len(b.out.Records) >= total }, "phase 1"); err != nil {
		return nil, err
	}
	spec.Step("phase 1 read")
	for _, m := range []*member{a, b} {
		if err := m.commitClose(grp, topic); err != nil {
			return nil, err
		}
	}
	if _, err := produce(prod, groupRecords(topic, 2)); err != nil {
		return nil, err
	}
	spec.Step("a and b closed, phase 2 produced")
	c, err := newMember(bootstrap, topic, grp, "c")
	if err != nil {
		return nil, err
	}
	if err := poll([]*member{c}, func() bool { return len(c.out.Records) >= spec.Phase2*spec.GroupParts }, "after the restart"); err != nil {
		return nil, err
	}
	spec.Step("phase 2 read by c")
	if err := c.commitClose(grp, topic); err != nil {
		return nil, err
	}
	return &spec.Group{Members: map[string]*spec.Member{"a": &a.out, "b": &b.out}, Restart: &c.out}, nil
}

func code(err error) int16 {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
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
	// MetadataMinAge: kgo answers a metadata request younger than this
	// (5 s by default) from its cache, and the waits below poll metadata.
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	out := &spec.Admin{}
	if _, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, topic); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	_, err = adm.CreateTopic(ctx, 2, 1, nil, topic)
	out.CreateAgain = code(err)
	partitions := func() ([]int32, error) {
		w := spec.Wait("topic metadata")
		for {
			td, err := adm.ListTopics(ctx)
			if err != nil {
				return nil, err
			}
			if d, ok := td[topic]; ok && d.Err == nil {
				out.Listed = true
				return d.Partitions.Numbers(), nil
			}
			if err := w.Check(); err != nil {
				return nil, err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if out.Partitions, err = partitions(); err != nil {
		return nil, err
	}
	// configs describes the topic until retention.ms is retention (Kafka
	// applies a change through its metadata log: a describe right after
	// the alter may see the old value) or the deadline passes.
	configs := func(retention string) (map[string]string, error) {
		w := spec.Wait("topic configs")
		for {
			rcs, err := adm.DescribeTopicConfigs(ctx, topic)
			if err != nil {
				return nil, err
			}
			rc, err := rcs.On(topic, nil)
			if err != nil {
				return nil, err
			}
			if rc.Err != nil {
				return nil, rc.Err
			}
			m := map[string]string{}
			for _, c := range rc.Configs {
				if (c.Key == "retention.ms" || c.Key == "cleanup.policy") && c.Value != nil {
					m[c.Key] = *c.Value
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
	ars, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms",
		Value: kadm.StringPtr("7200000")}}, topic)
	if err == nil {
		for _, r := range ars {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("alter configs: %w", err)
	}
	if out.ConfigsAltered, err = configs("7200000"); err != nil {
		return nil, err
	}
	cps, err := adm.UpdatePartitions(ctx, 4, topic)
	if err == nil {
		for _, r := range cps {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create partitions: %w", err)
	}
	w := spec.Wait("four partitions")
	for {
		if out.PartitionsAfter, err = partitions(); err != nil {
			return nil, err
		}
		if len(out.PartitionsAfter) == 4 {
			break
		}
		if err := w.Check(); err != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}

	spec.Step("topic made, configs altered, partitions added")
	m, err := newMember(bootstrap, topic, grp, "adm-member")
	if err != nil {
		return nil, err
	}
	err = poll([]*member{m}, func() bool { return len(m.set()) == 4 }, "admin group member")
	if err == nil {
		var lgs kadm.ListedGroups
		lgs, err = adm.ListGroups(ctx)
		out.Groups = []string{}
		for g := range lgs {
			if g == grp {
				out.Groups = append(out.Groups, g)
			}
		}
		var dgs kadm.DescribedGroups
		if err == nil {
			dgs, err = adm.DescribeGroups(ctx, grp)
		}
		if err == nil {
			d := dgs[grp]
			assigned := map[int32]bool{}
			for _, mem := range d.Members {
				if ca, ok := mem.Assigned.AsConsumer(); ok {
					for _, t := range ca.Topics {
						if t.Topic == topic {
							for _, p := range t.Partitions {
								assigned[p] = true
							}
						}
					}
				}
			}
			out.Group = map[string]any{"state": lower(d.State), "members": len(d.Members),
				"assigned": spec.Sorted(assigned)}
			err = d.Err
		}
	}
	m.cl.Close()
	if err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	if _, err := adm.DeleteTopic(ctx, topic); err != nil {
		return nil, fmt.Errorf("delete: %w", err)
	}
	w = spec.Wait("topic deleted")
	for {
		td, err := adm.ListTopics(ctx)
		if err != nil {
			return nil, err
		}
		if _, ok := td[topic]; !ok {
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

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
