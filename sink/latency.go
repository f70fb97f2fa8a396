package sink

import (
	"math"
	"net"
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/wire"
)

// One-way latency: the native header's send time (the sender's CLOCK_REALTIME, read
// before the send call of the message or its batch: wire/header.go) to the receiver's
// CLOCK_REALTIME after the read that returned it (one clock read per read call, per
// recvmmsg batch). Recorded in an HDR histogram per connection (per receiver for
// datagrams) and merged at the end: percentiles are never averaged.

// Histogram bounds: 1 µs to 100 s at 3 significant digits (about 140 KiB of counts).
const (
	latMaxUs  = 100_000_000
	latDigits = 3
)

// latency is one reader's histogram. Its reader holds mu for a whole read's samples (one
// lock per read call, not per message), so a scrape (--metrics) can copy it meanwhile.
type latency struct {
	mu       sync.Mutex
	h        *hdrhistogram.Histogram
	negative uint64 // samples with the receive time before the send time: clocks apart
}

func newLatency() *latency { return &latency{h: NewHistogram()} }

// NewHistogram is an empty latency histogram (µs, the bounds above).
func NewHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1, latMaxUs, latDigits) }

// Record adds a sample of d ns (>= 0) to h; out-of-range values clamp (never dropped).
func Record(h *hdrhistogram.Histogram, d int64) { h.RecordValue(min(max(d/1000, 1), latMaxUs)) }

// record adds one sample (ns); a send time of 0 (no stamp) is not a sample.
func (l *latency) record(now, sent int64) {
	if sent == 0 {
		return
	}
	d := now - sent
	if d < 0 {
		l.negative++
		d = 0
	}
	Record(l.h, d)
}

// Percentiles summarise an HDR histogram of microseconds (JSON: inline in latency, rtt).
type Percentiles struct {
	Samples int64 `json:"samples"`
	MinUs   int64 `json:"min_us"`
	P50Us   int64 `json:"p50_us"`
	P90Us   int64 `json:"p90_us"`
	P99Us   int64 `json:"p99_us"`
	P999Us  int64 `json:"p999_us"`
	MaxUs   int64 `json:"max_us"`
}

// percentilesOf reads h (nil or empty: zero samples).
func percentilesOf(h *hdrhistogram.Histogram) Percentiles {
	if h == nil || h.TotalCount() == 0 {
		return Percentiles{}
	}
	q := h.ValueAtQuantile
	return Percentiles{h.TotalCount(), h.Min(), q(50), q(90), q(99), q(99.9), h.Max()}
}

// Latency is the merged one-way latency of a receive (JSON: receiver.latency).
type Latency struct {
	Percentiles
	JitterUs float64 `json:"jitter_us,omitempty"` // datagrams: RFC 3550 interarrival jitter, mean over streams
	Negative uint64  `json:"negative,omitempty"`  // receive before send: the clocks differ
	Clock    string  `json:"clock"`
}

// RTT is the sender's round-trip time (send --rtt; JSON: sender.rtt): every Nth
// message's header reflected by the receiver, timed on the sender's clock alone.
type RTT struct {
	Percentiles
	Every   int    `json:"every"`             // --rtt N
	Invalid uint64 `json:"invalid,omitempty"` // echoes that match no message sent (not samples)
}

// RTTOf summarises a round-trip histogram (µs; nil or empty: zero samples).
func RTTOf(h *hdrhistogram.Histogram, every int, invalid uint64) *RTT {
	return &RTT{Percentiles: percentilesOf(h), Every: every, Invalid: invalid}
}

// latencies merges the readers' histograms: finished ones in h, running ones in live.
type latencies struct {
	mu       sync.Mutex
	h        *hdrhistogram.Histogram
	negative uint64
	live     map[*latency]bool
}

// start registers a running reader's histogram (for snapshots).
func (m *latencies) start(l *latency) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.live == nil {
		m.live = map[*latency]bool{}
	}
	m.live[l] = true
}

// add merges a finished reader's histogram.
func (m *latencies) add(l *latency) {
	if l == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.live, l)
	if l.h.TotalCount() == 0 && l.negative == 0 {
		return
	}
	if m.h == nil {
		m.h = NewHistogram()
	}
	m.h.Merge(l.h)
	m.negative += l.negative
}

// snapshot is a copy of every sample so far, finished readers' and running ones'
// (nil: none), in microseconds.
func (m *latencies) snapshot() *hdrhistogram.Histogram {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := NewHistogram()
	if m.h != nil {
		s.Merge(m.h)
	}
	for l := range m.live {
		l.mu.Lock()
		s.Merge(l.h)
		l.mu.Unlock()
	}
	if s.TotalCount() == 0 {
		return nil
	}
	return s
}

// result is the merged figures (nil: no sample).
func (m *latencies) result(clock string) *Latency {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil || m.h.TotalCount() == 0 {
		return nil
	}
	return &Latency{Percentiles: percentilesOf(m.h), Negative: m.negative, Clock: clock}
}

// jitter is RFC 3550 §6.4.1's interarrival jitter of one stream: J += (|D| - J)/16, D the
// change in transit time (receive - send) between consecutive arrivals.
type jitter struct {
	j       float64 // ns
	transit int64
	seen    bool
}

func (j *jitter) add(now, sent int64) {
	if sent == 0 {
		return
	}
	t := now - sent
	if j.seen {
		j.j += (math.Abs(float64(t-j.transit)) - j.j) / 16
	}
	j.transit, j.seen = t, true
}

// Clock names what a one-way latency means: one host's clock when the sender's address
// is this host's (loopback, a local address), else two hosts' (exact only when they are
// synchronised, NTP or PTP). Namespaces share the host's clock but not its addresses: a
// sender in another namespace is reported as another host.
func Clock(local bool) string {
	if local {
		return "CLOCK_REALTIME, one host: exact"
	}
	return "CLOCK_REALTIME of two hosts: exact only if their clocks are synchronised (NTP, PTP)"
}

// latency makes a connection's latency histogram (nil: the format has no send time) and
// notes whether its peer is another host.
func (r *Receiver) latency(c proto.Conn) *latency {
	if r.cfg.Format != wire.FormatNative {
		return nil
	}
	if !localAddr(c.RemoteAddr()) {
		r.remote.Store(true)
	}
	l := newLatency()
	r.lat.start(l)
	return l
}

// Latency is a copy of the one-way latency samples so far (µs; nil: none).
func (r *Receiver) Latency() *hdrhistogram.Histogram { return r.lat.snapshot() }

// Latency is a copy of the one-way latency samples so far (µs; nil: none).
func (r *DgramReceiver) Latency() *hdrhistogram.Histogram {
	var m latencies
	if l := r.latP.Load(); l != nil {
		m.start(l)
	}
	return m.snapshot()
}

// localAddr reports whether a peer address is this host's (in this network namespace).
func localAddr(a net.Addr) bool {
	host, _, err := net.SplitHostPort(a.String())
	ip := net.ParseIP(host)
	if err != nil || ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	addrs, _ := net.InterfaceAddrs()
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
