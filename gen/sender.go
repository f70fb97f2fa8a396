package gen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/splicegen/splicegen/pages"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/sink"
	"github.com/splicegen/splicegen/wire"
)

// Sender: one test over connected sockets, one goroutine (locked to its OS thread) per
// stream, and the figures it reports.

// Counters are one stream's running totals, on their own cache lines: only the stream's
// goroutine writes them; the interval printer reads them.
type Counters struct {
	_        [64]byte
	Bytes    atomic.Uint64
	Messages atomic.Uint64
	_        [48]byte
}

// StreamStats are one stream's final figures.
type StreamStats struct {
	Stream        uint32 `json:"stream"`
	Bytes         uint64 `json:"bytes"`
	Messages      uint64 `json:"messages"`
	VmspliceCalls uint64 `json:"vmsplice_calls,omitempty"`
	VmsplicedB    uint64 `json:"vmspliced_bytes,omitempty"`
	SpliceCalls   uint64 `json:"splice_calls,omitempty"`
	WriteCalls    uint64 `json:"write_calls,omitempty"`
	SendfileCalls uint64 `json:"sendfile_calls,omitempty"`
	Waits         uint64 `json:"waits"`                     // EAGAIN: socket full, waited for the poller
	SndbufSeen    int    `json:"sndbuf_max_seen,omitempty"` // largest SO_SNDBUF sampled during the run
	// MSG_ZEROCOPY: notification ids completed, and how many of them the kernel copied
	// anyway (SO_EE_CODE_ZEROCOPY_COPIED; on loopback all, skb_orphan_frags_rx).
	ZCCompleted   uint64 `json:"zc_completed,omitempty"`
	ZCCopied      uint64 `json:"zc_copied,omitempty"`
	SendmmsgCalls uint64 `json:"sendmmsg_calls,omitempty"`
	GSOCalls      uint64 `json:"gso_calls,omitempty"`
	EndDatagrams  uint64 `json:"end_datagrams,omitempty"` // UDP: end-of-test datagrams that went out
	PaceSleeps    uint64 `json:"pace_sleeps,omitempty"`
	RingRenewed   uint64 `json:"ring_renewed_bytes,omitempty"` // UDP splice: fresh pages after each lap (pages/renew.go)
	Fallback      string `json:"fallback,omitempty"`           // why the mode was demoted at run time
}

// SendStats are a whole send's figures.
type SendStats struct {
	Streams   []StreamStats `json:"streams"`
	RingBytes int           `json:"ring_bytes"`      // per stream
	RingHuge  int           `json:"ring_huge_bytes"` // of stream 0's ring, in transparent huge pages
	Rule      pages.Rule    `json:"ring_rule"`
	Buffers   proto.Buffers `json:"buffers"` // stream 0's, read at the end of the run
	Pipe      int           `json:"pipe"`
	IO        string        `json:"io"`
	Fallbacks int           `json:"fallbacks"`
	TestID    string        `json:"test_id"` // hex; every native header carries it
	// Receiver is the receiver's verdict (byte streams and messages, native format), or
	// why there is none (Proof).
	Receiver *wire.Verdict `json:"receiver_verdict,omitempty"`
	Proof    string        `json:"proof"`
	Stalled  bool          `json:"stalled,omitempty"` // no progress for --stall-timeout
	RTT      *sink.RTT     `json:"-"`                 // --rtt: report.Sender carries it
	Warnings []string      `json:"warnings,omitempty"`
	// RateShortfallPct: paced runs, how far below the asked rate the messages sent fell
	// over the time they were meant to take (ramp and off periods counted); 0 at or above.
	RateShortfallPct *float64      `json:"-"` // report.Sender carries it
	Real             time.Duration `json:"-"`
}

// Totals sums the streams.
func (s *SendStats) Totals() (bytes, messages uint64) {
	for _, st := range s.Streams {
		bytes += st.Bytes
		messages += st.Messages
	}
	return
}

// Sender runs one test, one goroutine (locked to its own OS thread) per stream.
type Sender struct {
	spec    Spec
	streams []*stream
	stop    atomic.Bool
	stalled atomic.Bool
	stats   SendStats
}

// Dialer makes connection i: stream i/F's flow i%F, F = max(1, Spec.Flows).
type Dialer func(i int) (proto.Conn, error)

// Conns is a Dialer over connections made already.
func Conns(cs ...proto.Conn) Dialer {
	return func(i int) (proto.Conn, error) {
		if i >= len(cs) {
			return nil, fmt.Errorf("gen: no connection for stream %d", i)
		}
		return cs[i], nil
	}
}

// NewSender connects and prepares the streams: page rings, pipes, pre-filled payload;
// nothing is sent. Stream 0 is made first, so its ring size — and the total over all
// streams, against the cap — is checked before any other connection is opened. The spec
// must have passed Check for the protocol. The Sender owns the connections.
func NewSender(spec Spec, dial Dialer) (*Sender, error) {
	if spec.IO == "" {
		spec.IO = "poll"
	}
	if spec.StallTimeout == 0 {
		spec.StallTimeout = DefaultStallTimeout
	}
	if spec.TestID == 0 && spec.Format == wire.FormatNative {
		spec.TestID = wire.NewTestID()
	}
	s := &Sender{spec: spec}
	s.stats.IO = spec.IO
	if spec.TestID != 0 {
		s.stats.TestID = fmt.Sprintf("%016x", spec.TestID)
	}
	flows := max(1, spec.Flows)
	for i := range spec.Streams {
		c, err := dial(i * flows)
		if err != nil {
			s.Close()
			return nil, err
		}
		st, err := newStream(s, uint32(i), c)
		if err != nil {
			c.Close()
			s.Close()
			return nil, err
		}
		s.streams = append(s.streams, st)
		for k := 1; k < flows; k++ {
			if err := st.addFlow(dial(i*flows + k)); err != nil {
				s.Close()
				return nil, err
			}
		}
	}
	st0 := s.streams[0]
	if st0.u == nil && spec.Size > st0.rule.SndBuf && st0.rule.SndBuf > 0 {
		s.stats.Warnings = append(s.stats.Warnings, fmt.Sprintf("--size %d is larger than the send buffer (%d bytes): every message waits for the peer to acknowledge the one before (with delayed acknowledgements, a timer per message); raise --sndbuf",
			spec.Size, st0.rule.SndBuf))
	}
	s.stats.RingBytes = st0.ring.Bytes()
	s.stats.RingHuge = st0.ring.HugeBytes()
	s.stats.Rule = st0.rule
	s.stats.Pipe = st0.pipeCap
	return s, nil
}

// Stop asks every stream to finish after its current message. A stream stuck on a full
// socket (receiver stalled) gets one second of grace, then its write deadline fires; the
// unfinished message is not counted.
func (s *Sender) Stop() { s.stopAfter(time.Second) }

// stopAfter stops with a grace of d for a stream stuck on a full socket.
func (s *Sender) stopAfter(d time.Duration) {
	if s.stop.Swap(true) {
		return
	}
	dl := time.Now().Add(d)
	for _, st := range s.streams {
		st.conn.SetWriteDeadline(dl)
		for _, c := range st.extra {
			c.SetWriteDeadline(dl)
		}
	}
}

// Warnings are settings that make the run measure the setting rather than the protocol.
func (s *Sender) Warnings() []string { return s.stats.Warnings }

// NoReport reports that a native byte-stream or message receiver sent no receiver
// report within 2 s: it is not splicegen (nc, socat), the ring was sized for the worst
// case, and no verdict will come.
func (s *Sender) NoReport() bool {
	st := s.streams[0]
	return s.spec.Format == wire.FormatNative && st.u == nil && !st.hello
}

// Counters are the streams' running totals (read by --metrics at scrape time).
func (s *Sender) Counters() []*Counters {
	cs := make([]*Counters, len(s.streams))
	for i, st := range s.streams {
		cs[i] = &st.c
	}
	return cs
}

// Progress returns the bytes and messages sent so far (for interval lines).
func (s *Sender) Progress() (bytes, messages uint64) {
	for _, st := range s.streams {
		bytes += st.c.Bytes.Load()
		messages += st.c.Messages.Load()
	}
	return
}

// Run sends until the spec's limit, ctx's end or Stop, then half-closes every socket so
// the receiver sees EOF. The stats are complete even when an error is returned.
func (s *Sender) Run(ctx context.Context) (*SendStats, error) {
	start := time.Now()
	if s.spec.Duration > 0 {
		t := time.AfterFunc(s.spec.Duration, s.Stop)
		defer t.Stop()
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			s.Stop()
		case <-done:
		}
	}()
	go s.watchStall(done)
	s.startRTT()
	var wg sync.WaitGroup
	errs := make([]error, len(s.streams))
	for i, st := range s.streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = st.run()
			if errs[i] != nil {
				s.Stop() // one stream failing ends the test; the others report what they sent
			}
		}()
	}
	wg.Wait()
	s.stats.Real = time.Since(start)
	s.stats.RateShortfallPct = s.shortfall(time.Now().UnixNano())
	for _, st := range s.streams {
		if st.flows != nil {
			st.rc = st.flows[0] // end datagrams go on the stream's first socket
		}
		ss := st.stats()
		s.stats.Streams = append(s.stats.Streams, ss)
		s.stats.Fallbacks += int(ss.ZCCopied)
	}
	if b, err := s.streams[0].conn.Buffers(); err == nil {
		s.stats.Buffers = b
	}
	errs = append(errs, s.end())
	s.finishRTT()
	if s.stalled.Load() {
		s.stats.Stalled = true
		errs = append(errs, fmt.Errorf("peer stalled: no progress for %v (--stall-timeout)", s.spec.StallTimeout))
	}
	for i, st := range s.streams {
		if st.u != nil {
			s.stats.Streams[i].EndDatagrams = st.u.ends
			if st.u.fallback != "" {
				s.stats.Fallbacks++
			}
		}
	}
	return &s.stats, errors.Join(errs...)
}

// shortfall is how far (percent) the streams fell below the messages their paces were
// due (nil: not paced), each over its own sending time (end: for a stream without one).
func (s *Sender) shortfall(end int64) *float64 {
	var due, sent float64
	for _, st := range s.streams {
		if st.pace == nil || !st.pace.Paced() {
			return nil
		}
		e := st.endNS
		if e == 0 {
			e = end
		}
		due += st.pace.Due(st.pace.Elapsed(e))
		sent += float64(st.c.Messages.Load())
	}
	if due <= 0 {
		return nil
	}
	pct := max(0, (1-sent/due)*100)
	return &pct
}

// DefaultStallTimeout is --stall-timeout's default, like the receiver's --idle.
const DefaultStallTimeout = 30 * time.Second

// watchStall stops the test when a stream has waited for its socket longer than the
// stall timeout (a frozen receiver, a dead route): the run then ends as "peer stalled"
// with what it measured. A paced stream that sleeps between messages is not waiting.
func (s *Sender) watchStall(done <-chan struct{}) {
	t := time.NewTicker(min(100*time.Millisecond, s.spec.StallTimeout/4))
	defer t.Stop()
	limit := s.spec.StallTimeout.Nanoseconds()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			for _, st := range s.streams {
				if w := st.waitSince.Load(); w != 0 && now.UnixNano()-w > limit {
					s.stalled.Store(true)
					s.stopAfter(0) // it has waited the whole stall timeout already
					return
				}
			}
		}
	}
}

// Close releases pipes, rings and connections.
func (s *Sender) Close() {
	for _, st := range s.streams {
		st.close()
		st.conn.Close()
		for _, c := range st.extra {
			c.Close()
		}
	}
}
