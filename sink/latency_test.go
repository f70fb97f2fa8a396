package sink

import (
	"net"
	"testing"
	"time"

	"github.com/splicegen/splicegen/wire"
)

func TestLatency(t *testing.T) {
	a, b := newLatency(), newLatency()
	for i := int64(1); i <= 1000; i++ {
		a.record(i*1000+5_000_000, 5_000_000) // 1..1000 µs
	}
	b.record(1_000_000, 2_000_000) // receive before send: counted as negative, 0 µs clamped to 1
	b.record(5, 0)                 // no stamp: not a sample
	var m latencies
	m.add(a)
	m.add(b)
	m.add(nil)
	l := m.result("c")
	if l.Samples != 1001 || l.Negative != 1 || l.MinUs != 1 || l.MaxUs < 999 || l.MaxUs > 1001 || l.Clock != "c" {
		t.Fatalf("merged %+v", l)
	}
	if l.P50Us < 495 || l.P50Us > 505 || l.P99Us < 985 || l.P99Us > 995 {
		t.Errorf("percentiles %+v", l)
	}
	if (&latencies{}).result("c") != nil {
		t.Error("an empty merge has a result")
	}
}

// RFC 3550's jitter: a constant transit time has none; alternating transit of ±d
// converges to d.
func TestJitter(t *testing.T) {
	var j jitter
	for i := int64(0); i < 100; i++ {
		j.add(i*1000+500, i*1000)
	}
	if j.j != 0 {
		t.Errorf("constant transit: jitter %v", j.j)
	}
	var k jitter
	for i := int64(0); i < 1000; i++ {
		k.add(i*1000+500+(i%2)*100, i*1000)
	}
	if k.j < 99 || k.j > 100.01 {
		t.Errorf("alternating transit: jitter %v, want 100", k.j)
	}
}

func TestLocalAddr(t *testing.T) {
	for a, want := range map[string]bool{"127.0.0.1:5": true, "[::1]:5": true, "192.0.2.1:5": false, "bogus": false} {
		var addr net.Addr = &net.TCPAddr{}
		if h, p, err := net.SplitHostPort(a); err == nil {
			ta, _ := net.ResolveTCPAddr("tcp", net.JoinHostPort(h, p))
			addr = ta
		}
		if got := localAddr(addr); got != want && a != "bogus" {
			t.Errorf("localAddr(%s) = %v", a, got)
		}
	}
}

// The checker records latency (and sizes) without allocating per message.
func TestCheckerLatencyAllocs(t *testing.T) {
	seqs := make([]uint64, 64)
	for i := range seqs {
		seqs[i] = uint64(i)
	}
	b := stream(1400, 0, seqs...)
	for i := 0; i < len(b); i += 1400 { // a send time on every header
		var h wire.Header
		wire.ParseHeader(b[i:], &h)
		h.TimeNS = time.Now().UnixNano()
		h.Put(b[i:])
	}
	c := newChecker(wire.FormatNative, false, 0, 0, false)
	c.lat = newLatency()
	c.feed(b[:1400]) // the first message: the size histogram's one entry
	rest := b[1400:]
	allocs := testing.AllocsPerRun(1, func() { c.feed(rest) })
	if allocs != 0 || c.lat.h.TotalCount() < 64 {
		t.Errorf("%v allocations feeding 63 messages; %d latency samples", allocs, c.lat.h.TotalCount())
	}
}
