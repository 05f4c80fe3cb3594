// Package spec holds what the Go client programs share: the records of
// the round trip and of the group scenario (the same rule as
// tests/python/scenarios.py and tests/node/scenarios.js, asserted by
// tests/integration/newer_clients.py), the test for a stable group, and
// the command line and JSON output of each program.
//
//	<program> SCENARIO BOOTSTRAP PREFIX
//
// prints one JSON object on stdout, or exits non-zero with the error on
// stderr.
package spec

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

const (
	N          = 40 // records per codec in the round trip
	RTParts    = 3  // partitions of the round trip topic (pytest creates it)
	GroupParts = 4  // partitions of the group topic (pytest creates it)
	Phase1     = 10 // records per partition before the restart
	Phase2     = 5  // and after it
)

// Deadline bounds any one wait in a scenario.
const Deadline = 60 * time.Second

// Codecs every Go client here can produce.
var Codecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// Header is one record header; JSON [key, value].
type Header [2]string

// Record is a record as produced or consumed; Key and Value nil are null.
type Record struct {
	P     int32    `json:"p"`
	O     int64    `json:"o"`
	K     *string  `json:"k"`
	V     *string  `json:"v"`
	H     []Header `json:"h"`
	TS    int64    `json:"ts"`
	Codec string   `json:"-"`
}

func str(s string) *string { return &s }

// Bytes is nil for a nil string, else its bytes.
func Bytes(s *string) []byte {
	if s == nil {
		return nil
	}
	return []byte(*s)
}

// Str is nil for nil bytes (null on the wire), else the string.
func Str(b []byte) *string {
	if b == nil {
		return nil
	}
	return str(string(b))
}

// RTRecords are the round trip's records in production order.
func RTRecords(codecs []string) []Record {
	var out []Record
	for ci, c := range codecs {
		for j := 0; j < N; j++ {
			r := Record{P: int32(ci % RTParts), Codec: c,
				TS: 1700000000000 + 1000*int64(ci) + int64(j),
				H:  []Header{{"codec", c}, {"seq", fmt.Sprint(j)}, {"dup", "1"}, {"dup", "2"}, {"empty", ""}}}
			if j != N-1 {
				r.K = str(fmt.Sprintf("%s-k%d", c, j))
			}
			if j != N-2 {
				r.V = str(fmt.Sprintf("%s-v%d-%s", c, j, strings.Repeat("spool-", 12)))
			}
			out = append(out, r)
		}
	}
	return out
}

// GroupValue is one record of a group phase.
type GroupValue struct {
	P int32
	V string
}

// GroupValues are the records produced in group phase 1 or 2.
func GroupValues(phase int) []GroupValue {
	n := Phase1
	if phase == 2 {
		n = Phase2
	}
	var out []GroupValue
	for i := 0; i < n; i++ {
		for p := 0; p < GroupParts; p++ {
			out = append(out, GroupValue{int32(p), fmt.Sprintf("g%d-p%d-%d", phase, p, i)})
		}
	}
	return out
}

// Stable: every set non-empty, pairwise disjoint, together all partitions.
func Stable(sets ...map[int32]bool) bool {
	seen := map[int32]bool{}
	total := 0
	for _, s := range sets {
		if len(s) == 0 {
			return false
		}
		for p := range s {
			seen[p] = true
		}
		total += len(s)
	}
	return len(seen) == GroupParts && total == GroupParts
}

// Member is what the group scenario reports of one member.
type Member struct {
	Assigned  []int32          `json:"assigned"`
	Records   [][3]any         `json:"records"` // [partition, offset, value]
	Committed map[string]int64 `json:"committed"`
}

// Sorted lists a partition set in order.
func Sorted(s map[int32]bool) []int32 {
	out := []int32{}
	for p := range s {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Group is the group scenario's report.
type Group struct {
	Members map[string]*Member `json:"members"`
	Restart *Member            `json:"restart"`
}

// Admin is the admin scenario's report.
type Admin struct {
	Create          int16             `json:"create"`
	CreateAgain     int16             `json:"create_again"`
	Listed          bool              `json:"listed"`
	Partitions      []int32           `json:"partitions"`
	Configs         map[string]string `json:"configs"`
	ConfigsAltered  map[string]string `json:"configs_altered"`
	PartitionsAfter []int32           `json:"partitions_after"`
	Groups          []string          `json:"groups"`
	Group           map[string]any    `json:"group"`
	Deleted         bool              `json:"deleted"`
}

// RoundTrip is the round trip's report.
type RoundTrip struct {
	Codecs   []string   `json:"codecs"`
	Produced [][2]int64 `json:"produced"`
	Consumed []Record   `json:"consumed"`
}

var start = time.Now()

// Step notes on stderr how far the scenario got, and when: the trail a
// failing test shows.
func Step(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[%6.2fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
}

// Scenario runs against bootstrap with names starting with prefix.
type Scenario func(bootstrap, prefix string) (any, error)

// Main runs the scenario named on the command line and prints its report
// with the versions of the modules whose paths start with one of mods.
func Main(scenarios map[string]Scenario, mods ...string) {
	if len(os.Args) != 4 || scenarios[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: PROGRAM roundtrip|group|admin BOOTSTRAP PREFIX")
		os.Exit(2)
	}
	t0 := time.Now()
	res, err := scenarios[os.Args[1]](os.Args[2], os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	b, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	versions := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		versions["go"] = bi.GoVersion
		for _, d := range bi.Deps {
			for _, p := range mods {
				if d.Path == p {
					versions[d.Path] = d.Version
				}
			}
		}
	}
	m["client"] = versions
	m["seconds"] = float64(time.Since(t0).Milliseconds()) / 1000
	out, _ := json.Marshal(m)
	fmt.Println(string(out))
}

// Waiter fails once Deadline has passed since it was made.
type Waiter struct {
	t0   time.Time
	what string
}

// Wait starts a wait for what.
func Wait(what string) *Waiter { return &Waiter{time.Now(), what} }

// Check is an error once the deadline has passed.
func (w *Waiter) Check() error {
	if time.Since(w.t0) > Deadline {
		return fmt.Errorf("%s: not done within %v", w.what, Deadline)
	}
	return nil
}
