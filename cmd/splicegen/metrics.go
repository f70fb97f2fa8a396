package main

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/splicegen/splicegen/control"
	"github.com/splicegen/splicegen/gen"
	"github.com/splicegen/splicegen/report"
	"github.com/splicegen/splicegen/sink"
)

// --metrics [HOST]:PORT: a Prometheus endpoint (/metrics). The collector reads the send
// and receive loops' own counters at scrape time: no atomic or lock is added per
// message (the latency histograms are locked once per read call, sink/latency.go).
// Counters are cumulative over the process: recv --keep adds test after test.

var (
	mSentBytes  = prometheus.NewDesc("splicegen_sent_bytes_total", "Message bytes sent (header included, not IP/UDP/TCP headers).", []string{"proto", "mode", "stream"}, nil)
	mSentMsgs   = prometheus.NewDesc("splicegen_sent_messages_total", "Messages sent.", []string{"proto", "mode", "stream"}, nil)
	mRecvBytes  = prometheus.NewDesc("splicegen_received_bytes_total", "Message bytes received.", []string{"proto", "mode"}, nil)
	mRecvMsgs   = prometheus.NewDesc("splicegen_received_messages_total", "Messages received.", []string{"proto", "mode"}, nil)
	mLost       = prometheus.NewDesc("splicegen_lost_messages_total", "Messages lost (sequence gaps).", []string{"proto", "mode"}, nil)
	mCorrupt    = prometheus.NewDesc("splicegen_corrupt_messages_total", "Messages with a bad header, checksum or payload.", []string{"proto", "mode"}, nil)
	mLatency    = prometheus.NewDesc("splicegen_latency_seconds", "One-way latency from the header's send time to the receiver's read.", []string{"proto", "mode"}, nil)
	latencyEdge = []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10}
)

// metrics is the collector of one send or recv process.
type metrics struct {
	proto, mode string // mode: the send mode, or the receiver's sink

	mu       sync.Mutex
	sent     []*gen.Counters
	cur      sink.Runner             // the receiver's running test
	base     sink.Progress           // finished tests' totals (recv --keep)
	baseLat  *hdrhistogram.Histogram // finished tests' latency
	finished bool                    // cur's figures are in base
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mSentBytes, mSentMsgs, mRecvBytes, mRecvMsgs, mLost, mCorrupt, mLatency} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, c := range m.sent {
		s := strconv.Itoa(i)
		ch <- prometheus.MustNewConstMetric(mSentBytes, prometheus.CounterValue, float64(c.Bytes.Load()), m.proto, m.mode, s)
		ch <- prometheus.MustNewConstMetric(mSentMsgs, prometheus.CounterValue, float64(c.Messages.Load()), m.proto, m.mode, s)
	}
	if m.cur == nil && m.baseLat == nil {
		return
	}
	p, lat := m.base, m.baseLat
	if m.cur != nil && !m.finished {
		q := m.cur.Progress()
		p.Bytes, p.Messages, p.Lost, p.Corrupt = p.Bytes+q.Bytes, p.Messages+q.Messages, p.Lost+q.Lost, p.Corrupt+q.Corrupt
		lat = merged(lat, m.cur.Latency())
	}
	for _, c := range []struct {
		d *prometheus.Desc
		v uint64
	}{{mRecvBytes, p.Bytes}, {mRecvMsgs, p.Messages}, {mLost, p.Lost}, {mCorrupt, p.Corrupt}} {
		ch <- prometheus.MustNewConstMetric(c.d, prometheus.CounterValue, float64(c.v), m.proto, m.mode)
	}
	if lat != nil {
		ch <- latencyMetric(lat, m.proto, m.mode)
	}
}

// sender registers a sender's per-stream counters.
func (m *metrics) sender(s *gen.Sender) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = s.Counters()
}

// receiving registers the receiver of the next test; done moves its figures to the
// totals when it ended.
func (m *metrics) receiving(r sink.Runner) (done func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur, m.finished = r, false
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		q := r.Progress()
		m.base.Bytes, m.base.Messages, m.base.Lost, m.base.Corrupt = m.base.Bytes+q.Bytes, m.base.Messages+q.Messages, m.base.Lost+q.Lost, m.base.Corrupt+q.Corrupt
		m.baseLat = merged(m.baseLat, r.Latency())
		m.finished = true
	}
}

// merged is a ∪ b (either may be nil).
func merged(a, b *hdrhistogram.Histogram) *hdrhistogram.Histogram {
	switch {
	case b == nil:
		return a
	case a == nil:
		return b
	}
	c := hdrhistogram.Import(a.Export())
	c.Merge(b)
	return c
}

// latencyMetric turns an HDR histogram (µs) into a Prometheus histogram (seconds) with
// the fixed edges of latencyEdge: each edge counts the samples at or below it.
func latencyMetric(h *hdrhistogram.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(latencyEdge))
	var sum float64
	var cum uint64
	e := 0
	for _, b := range h.Distribution() { // ascending values
		if b.Count == 0 {
			continue
		}
		for ; e < len(latencyEdge) && int64(latencyEdge[e]*1e6) < b.From; e++ {
			buckets[latencyEdge[e]] = cum
		}
		cum += uint64(b.Count)
		sum += float64(b.Count) * float64(b.From) / 1e6
	}
	for ; e < len(latencyEdge); e++ {
		buckets[latencyEdge[e]] = cum
	}
	return prometheus.MustNewConstHistogram(mLatency, uint64(h.TotalCount()), sum, buckets, labels...)
}

// serveMetrics serves /metrics on addr until the process ends. Bounded: a scraper gets
// 5 s for its request headers and 10 s for the response.
func serveMetrics(addr string, m prometheus.Collector) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usagef("--metrics %q: want [HOST]:PORT", addr)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			ln.Close()
		}
	}()
	return nil
}

// serverMetrics sums the figures of a server's own sides from their children's
// --json-stream lines: interval records while a test runs, its result at the end (the
// part after the last interval is added then). Senders are labelled stream="all".
type serverMetrics struct {
	mu   sync.Mutex
	sum  map[[3]string]*[3]uint64     // {role, proto, mode}: bytes, messages, lost
	seen map[*control.Side]*[3]uint64 // a running side's figures so far
}

func (m *serverMetrics) observe(req *control.Request, sd *control.Side, line json.RawMessage, final bool) {
	var got [3]uint64
	if final {
		var r report.Run
		if json.Unmarshal(line, &r) != nil {
			return
		}
		switch {
		case r.Sender != nil:
			got = [3]uint64{r.Sender.Bytes, r.Sender.Messages, 0}
		case r.Receiver != nil:
			got = [3]uint64{r.Receiver.Bytes, r.Receiver.Messages, r.Receiver.Lost}
		}
	} else {
		var iv report.Interval
		if json.Unmarshal(line, &iv) != nil || iv.Type != "interval" {
			return
		}
		got = [3]uint64{iv.Bytes, iv.Messages, iv.Lost}
	}
	mode := req.Mode
	if sd.Role == "receiver" {
		if mode = req.Sink; mode == "" {
			mode = "default"
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sum == nil {
		m.sum, m.seen = map[[3]string]*[3]uint64{}, map[*control.Side]*[3]uint64{}
	}
	k := [3]string{sd.Role, req.Proto, mode}
	v, seen := m.sum[k], m.seen[sd]
	if v == nil {
		v = new([3]uint64)
		m.sum[k] = v
	}
	if seen == nil {
		seen = new([3]uint64)
		m.seen[sd] = seen
	}
	for i := range got {
		if final { // the result's totals: add what the intervals did not carry
			got[i] -= min(got[i], seen[i])
		}
		v[i] += got[i]
		seen[i] += got[i]
	}
	if final {
		delete(m.seen, sd)
	}
}

func (m *serverMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mSentBytes, mSentMsgs, mRecvBytes, mRecvMsgs, mLost} {
		ch <- d
	}
}

func (m *serverMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range m.sum {
		if k[0] == "sender" {
			ch <- prometheus.MustNewConstMetric(mSentBytes, prometheus.CounterValue, float64(v[0]), k[1], k[2], "all")
			ch <- prometheus.MustNewConstMetric(mSentMsgs, prometheus.CounterValue, float64(v[1]), k[1], k[2], "all")
			continue
		}
		ch <- prometheus.MustNewConstMetric(mRecvBytes, prometheus.CounterValue, float64(v[0]), k[1], k[2])
		ch <- prometheus.MustNewConstMetric(mRecvMsgs, prometheus.CounterValue, float64(v[1]), k[1], k[2])
		ch <- prometheus.MustNewConstMetric(mLost, prometheus.CounterValue, float64(v[2]), k[1], k[2])
	}
}
