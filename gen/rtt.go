package gen

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/sink"
	"github.com/splicegen/splicegen/wire"
)

// Round-trip time (--rtt N, wire/echo.go): every Nth message carries FlagRTT, the
// receiver reflects its header, and a reader goroutine per socket times each echo
// against the header's send time, both on this host's clock: no clock sync needed (the
// model is sockperf's under-load mode). A byte stream's reader also takes the verdict
// that follows the echoes (end.go). The send loops do not change beyond the flag.

// rttReader reads one socket's reverse path for the run.
type rttReader struct {
	st      *stream
	c       proto.Conn
	h       *hdrhistogram.Histogram // µs
	invalid uint64                  // well-formed echoes of no message this stream sent
	start   int64                   // the run's start (ns): no echo is older
	v       wire.Verdict
	verr    error // why the reader stopped (nil: the verdict came)
	done    chan struct{}
}

// startRTT starts the readers of every socket of every stream (--flows: each flow's
// echoes come back to its own socket).
func (s *Sender) startRTT() {
	if s.spec.RTT == 0 {
		return
	}
	now := time.Now().UnixNano()
	for _, st := range s.streams {
		for _, c := range append([]proto.Conn{st.conn}, st.extra...) {
			r := &rttReader{st: st, c: c, h: sink.NewHistogram(), start: now, done: make(chan struct{})}
			st.rtt = append(st.rtt, r)
			go r.run()
		}
	}
}

// finishRTT ends the readers still reading (their socket's read deadline is now: a
// byte stream's verdict is in or given up on, datagram echoes had the end datagrams'
// 262 ms) and merges their histograms.
func (s *Sender) finishRTT() {
	if s.spec.RTT == 0 {
		return
	}
	h := sink.NewHistogram()
	var invalid uint64
	for _, st := range s.streams {
		for _, r := range st.rtt {
			r.c.SetReadDeadline(time.Now())
			<-r.done
			h.Merge(r.h)
			invalid += r.invalid
		}
	}
	s.stats.RTT = sink.RTTOf(h, s.spec.RTT, invalid)
}

func (r *rttReader) run() {
	defer close(r.done)
	if r.st.u != nil {
		r.verr = r.datagrams()
	} else {
		r.verr = r.stream()
	}
}

// stream reads echoes until the verdict (true end: verr nil), EOF, a read deadline or
// a frame that is neither (the reverse framing is then lost: the reader stops).
func (r *rttReader) stream() error {
	var b [wire.EchoLen]byte
	for {
		if _, err := io.ReadFull(r.c, b[:wire.VerdictLen]); err != nil { // the shorter frame
			return err
		}
		if wire.IsVerdict(b[:]) {
			return wire.ParseVerdict(b[:], &r.v)
		}
		if _, err := io.ReadFull(r.c, b[wire.VerdictLen:]); err != nil {
			return err
		}
		var h wire.Header
		if err := wire.ParseEcho(b[:], &h); err != nil {
			return fmt.Errorf("reverse path: %w", err)
		}
		r.record(&h)
	}
}

// datagrams reads echo datagrams until the read deadline or close. A datagram of
// another size or form is counted invalid (a longer one is cut to the buffer: udp(7)).
func (r *rttReader) datagrams() error {
	var b [2 * wire.EchoLen]byte
	for {
		n, err := r.c.Read(b[:])
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			continue // ICMP port unreachable for an earlier send (udp(7)): not an echo
		case err != nil:
			return err
		}
		var h wire.Header
		if n != wire.EchoLen || wire.ParseEcho(b[:n], &h) != nil {
			r.invalid++
			continue
		}
		r.record(&h)
	}
}

// record times an echo; one that no message of this stream can have made (another test
// or stream, an unflagged seq, a send time outside the run) is counted, not recorded.
func (r *rttReader) record(h *wire.Header) {
	spec := &r.st.s.spec
	now := time.Now().UnixNano()
	if h.TestID != spec.TestID || h.Stream != r.st.id || h.Seq%uint64(spec.RTT) != 0 || h.TimeNS < r.start || h.TimeNS > now {
		r.invalid++
		return
	}
	sink.Record(r.h, now-h.TimeNS)
}
