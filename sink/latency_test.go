package sink

import (
	"net"
	"testing"
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
