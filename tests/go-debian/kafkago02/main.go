// kafkago02: Debian's kafka-go 0.2.1 (golang-github-segmentio-kafka-go-dev,
// github.com/segmentio/kafka-go) against a broker, built offline in GOPATH
// mode from /usr/share/gocode (tests/integration/old_clients.py).
//
//	kafkago02 SCENARIO BOOTSTRAP PREFIX
//
// prints one JSON object: what each step returned and, under "errors",
// every step that failed.  kafka-go 0.2 sends no ApiVersions; each API has
// one fixed version in its source (protocol.go and the files per API).
//
//	admin      create PREFIX-adm (3 partitions, retention.ms=3600000) and
//	           PREFIX-del (1 partition) in one CreateTopics v0, create
//	           PREFIX-adm again with 5 partitions (kafka-go returns no
//	           error for TOPIC_ALREADY_EXISTS), read both topics'
//	           partitions (Metadata v1), delete PREFIX-del (DeleteTopics
//	           v1) and wait until the metadata no longer has it (the broker
//	           must not create topics on Metadata requests).  The test
//	           checks PREFIX-adm's configs itself (kafka-go 0.2 has no
//	           DescribeConfigs).
//	roundtrip  into PREFIX-rt (3 partitions, made by the test): through a
//	           connection to each partition's leader, N records (record i
//	           to partition i % 3, with a key and a timestamp) in one
//	           write per partition (Produce v2, message format v1), the
//	           end offsets (ListOffsets v1), every record read back from
//	           offset 0 (Fetch v2); then a Reader in group PREFIX-g reads
//	           the N records and commits each one (FindCoordinator v0,
//	           JoinGroup v1, SyncGroup v0, OffsetFetch v1, Fetch v2,
//	           OffsetCommit v2, Heartbeat v0, LeaveGroup v0).
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

	kafka "github.com/segmentio/kafka-go"
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

// kerr is a Kafka error code from what kafka-go returned, or -1.
func kerr(err error) int {
	switch e := err.(type) {
	case nil:
		return 0
	case kafka.Error:
		return int(e)
	}
	return -1
}

var dialer = &kafka.Dialer{ClientID: "spool-kafkago02", Timeout: 10 * time.Second}

func dial(bootstrap string) (*kafka.Conn, error) {
	conn, err := dialer.Dial("tcp", bootstrap)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn, nil
}

func partitionIDs(conn *kafka.Conn, topic string) ([]int, error) {
	ps, err := conn.ReadPartitions(topic)
	if err != nil {
		return nil, err
	}
	ids := []int{}
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	sort.Ints(ids)
	return ids, nil
}

func admin(bootstrap, prefix string, r *report) {
	topic, del := prefix+"-adm", prefix+"-del"
	// Each step has its own connection: a broker closes one on a version it
	// does not serve, and kafka-go 0.2 then waits forever on its next one.
	step := func(name string, f func(*kafka.Conn) (interface{}, error)) {
		r.step(name, func() (interface{}, error) {
			conn, err := dial(bootstrap)
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			return f(conn)
		})
	}
	adm := kafka.TopicConfig{Topic: topic, NumPartitions: parts, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "3600000"}}}
	step("create", func(c *kafka.Conn) (interface{}, error) {
		return 0, c.CreateTopics(adm, kafka.TopicConfig{Topic: del, NumPartitions: 1, ReplicationFactor: 1})
	})
	// kafka-go 0.2 takes TOPIC_ALREADY_EXISTS for success ("idempotent"):
	// asked again with 5 partitions, the topic must keep its 3
	again := adm
	again.NumPartitions = 5
	step("create_again", func(c *kafka.Conn) (interface{}, error) { return kerr(c.CreateTopics(again)), nil })
	step("partitions", func(c *kafka.Conn) (interface{}, error) { return partitionIDs(c, topic) })
	step("partitions_del", func(c *kafka.Conn) (interface{}, error) { return partitionIDs(c, del) })
	step("delete", func(c *kafka.Conn) (interface{}, error) { return 0, c.DeleteTopics(del) })
	step("gone", func(c *kafka.Conn) (interface{}, error) {
		// kafka-go 0.2 reports a topic's error only for the connection's
		// own topic: a deleted one has no partitions.  (Metadata v1 naming
		// it would create it again where auto.create.topics.enable is on:
		// the test turns that off.)
		deadline := time.Now().Add(15 * time.Second)
		for {
			ids, err := partitionIDs(c, del)
			if err != nil {
				return nil, err
			}
			if len(ids) == 0 {
				return true, nil
			}
			if time.Now().After(deadline) {
				return false, nil
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// Record i of the round trip.
func rec(i int) (p int, key, value string, ts int64) {
	return i % parts, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d-%s", i, "kafka-go-0.2"), 1700000000000 + int64(i)
}

func record(m kafka.Message) []interface{} {
	return []interface{}{m.Partition, m.Offset, string(m.Key), string(m.Value), m.Time.UnixNano() / 1e6}
}

func roundtrip(bootstrap, prefix string, r *report) {
	topic, group := prefix+"-rt", prefix+"-g"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// a new connection to partition p's leader for each use (see admin)
	leader := func(p int) (*kafka.Conn, error) {
		conn, err := dialer.DialLeader(ctx, "tcp", bootstrap, topic, p)
		if err != nil {
			return nil, err
		}
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		return conn, nil
	}
	r.step("produced", func() (interface{}, error) {
		msgs := map[int][]kafka.Message{}
		for i := 0; i < n; i++ {
			p, k, v, ts := rec(i)
			msgs[p] = append(msgs[p], kafka.Message{Key: []byte(k), Value: []byte(v), Time: time.Unix(0, ts*1e6)})
		}
		got := map[string]int{}
		for p := 0; p < parts; p++ {
			conn, err := leader(p)
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			if err := conn.SetRequiredAcks(-1); err != nil {
				return nil, err
			}
			if _, err := conn.WriteMessages(msgs[p]...); err != nil {
				return nil, fmt.Errorf("partition %d: %v", p, err)
			}
			got[strconv.Itoa(p)] = len(msgs[p])
		}
		return got, nil
	})
	r.step("end_offsets", func() (interface{}, error) {
		got := map[string]int64{}
		for p := 0; p < parts; p++ {
			conn, err := leader(p)
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			o, err := conn.ReadLastOffset()
			if err != nil {
				return nil, err
			}
			got[strconv.Itoa(p)] = o
		}
		return got, nil
	})
	r.step("read", func() (interface{}, error) {
		out := [][]interface{}{}
		for p := 0; p < parts; p++ {
			conn, err := leader(p)
			if err != nil {
				return nil, err
			}
			defer conn.Close()
			if _, err := conn.Seek(0, kafka.SeekAbsolute); err != nil {
				return nil, err
			}
			got := 0
			for got < n/parts {
				batch := conn.ReadBatch(1, 1<<20)
				for {
					m, err := batch.ReadMessage()
					if err != nil {
						break
					}
					out = append(out, record(m))
					got++
				}
				if err := batch.Close(); err != nil {
					return nil, fmt.Errorf("partition %d after %d records: %v", p, got, err)
				}
			}
		}
		return out, nil
	})
	r.step("group", func() (interface{}, error) {
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, GroupID: group, Topic: topic,
			Dialer: dialer, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond,
			HeartbeatInterval: 500 * time.Millisecond, SessionTimeout: 10 * time.Second,
			RebalanceTimeout: 10 * time.Second, ErrorLogger: log.New(os.Stderr, "[kafka-go] ", log.Ltime)})
		defer rd.Close()
		gctx, gcancel := context.WithTimeout(ctx, 15*time.Second)
		defer gcancel()
		out := [][]interface{}{}
		for len(out) < n {
			m, err := rd.ReadMessage(gctx) // commits m before it returns
			if err != nil {
				return nil, fmt.Errorf("after %d records: %v", len(out), err)
			}
			out = append(out, record(m))
		}
		return out, nil
	})
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: kafkago02 admin|roundtrip BOOTSTRAP PREFIX")
		os.Exit(2)
	}
	scenario, bootstrap, prefix := os.Args[1], os.Args[2], os.Args[3]
	r := &report{out: map[string]interface{}{}, errors: map[string]string{}}
	r.watchdog(90 * time.Second)
	switch scenario {
	case "admin":
		admin(bootstrap, prefix, r)
	case "roundtrip":
		roundtrip(bootstrap, prefix, r)
	default:
		fmt.Fprintln(os.Stderr, "unknown scenario", scenario)
		os.Exit(2)
	}
	r.mu.Lock()
	r.print()
}
