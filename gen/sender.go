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
	"github.com/splicegen/splicegen/wire"
	"golang.org/x/sys/unix"
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
	Fallback      string `json:"fallback,omitempty"` // why the mode was demoted at run time
}

// SendStats are a whole send's figures.
type SendStats struct {
	Streams   []StreamStats `json:"streams"`
	RingBytes int           `json:"ring_bytes"` // per stream
	Rule      pages.Rule    `json:"ring_rule"`
	Buffers   proto.Buffers `json:"buffers"` // stream 0's, read at the end of the run
	Pipe      int           `json:"pipe"`
	IO        string        `json:"io"`
	Fallbacks int           `json:"fallbacks"`
	Real      time.Duration `json:"-"`
}

// Totals sums the streams.
func (s *SendStats) Totals() (bytes, messages uint64) {
	for _, st := range s.Streams {
		bytes += st.Bytes
		messages += st.Messages
	}
	return
}

// Sender runs one test over already-connected sockets, one goroutine (locked to its own
// OS thread) per stream.
type Sender struct {
	spec    Spec
	streams []*stream
	stop    atomic.Bool
	stats   SendStats
}

// NewSender prepares the streams: page rings, pipes, pre-filled payload. Nothing is sent.
// The spec must have passed Check for the conns' protocol.
func NewSender(spec Spec, conns []proto.Conn) (*Sender, error) {
	if len(conns) != spec.Streams {
		return nil, fmt.Errorf("gen: %d conns for %d streams", len(conns), spec.Streams)
	}
	if spec.IO == "" {
		spec.IO = "poll"
	}
	s := &Sender{spec: spec}
	s.stats.IO = spec.IO
	for i, c := range conns {
		st, err := newStream(s, uint32(i), c)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.streams = append(s.streams, st)
	}
	st0 := s.streams[0]
	s.stats.RingBytes = st0.ring.Bytes()
	s.stats.Rule = st0.rule
	s.stats.Pipe = st0.pipeCap
	return s, nil
}

// Stop asks every stream to finish after its current message. A stream stuck on a full
// socket (receiver stalled) gets one second of grace, then its write deadline fires; the
// unfinished message is not counted.
func (s *Sender) Stop() {
	if s.stop.Swap(true) {
		return
	}
	dl := time.Now().Add(time.Second)
	for _, st := range s.streams {
		st.conn.SetWriteDeadline(dl)
	}
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
	for _, st := range s.streams {
		ss := st.stats()
		s.stats.Streams = append(s.stats.Streams, ss)
		s.stats.Fallbacks += int(ss.ZCCopied)
	}
	s.sendEnds() // UDP only
	for i, st := range s.streams {
		if st.u != nil {
			s.stats.Streams[i].EndDatagrams = st.u.ends
			if st.u.fallback != "" {
				s.stats.Fallbacks++
			}
		}
	}
	if b, err := s.streams[0].conn.Buffers(); err == nil {
		s.stats.Buffers = b
	}
	for _, st := range s.streams {
		st.conn.CloseWrite()
	}
	return &s.stats, errors.Join(errs...)
}

// Close releases pipes and rings. Call it after the sockets are closed or half-closed.
func (s *Sender) Close() {
	for _, st := range s.streams {
		st.close()
	}
}

// sendEnds tells a UDP receiver that the test is over: every stream sends an end
// datagram (native header, FlagEnd, no payload, Seq = datagrams sent) endRounds times,
// spaced by endDelays. Errors are ignored: a receiver that has seen every stream's end
// closes its socket and the later ones come back ECONNREFUSED. Raw format sends none
// (the peer is not splicegen): such a receiver ends on --idle.
func (s *Sender) sendEnds() {
	if s.spec.Format != wire.FormatNative || len(s.streams) == 0 || s.streams[0].u == nil {
		return
	}
	for _, d := range endDelays {
		time.Sleep(d)
		for _, st := range s.streams {
			var b [wire.HeaderLen]byte
			h := wire.Header{Flags: wire.FlagEnd, Streams: uint16(s.spec.Streams), Stream: st.id, Seq: st.c.Messages.Load(),
				TimeNS: time.Now().UnixNano()}
			h.Put(b[:])
			err := proto.Control(st.rc, func(fd int) error { _, err := unix.Write(fd, b[:]); return err })
			if err == nil {
				st.u.ends++
			}
		}
	}
}
