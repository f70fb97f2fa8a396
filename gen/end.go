package gen

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/wire"
	"golang.org/x/sys/unix"
)

// End of test (docs/design.md#end-of-test). Datagram streams send end datagrams; byte
// streams and message streams send an end frame with their totals, half-close, and wait
// for the receiver's verdict, so the sender exits with what the receiver saw.

const endRounds = 5

// endDelays space the end datagrams: a receiver whose queue is full when the first
// arrives (which is when loss happens) gets the later ones.
var endDelays = [endRounds]time.Duration{0, 2 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond}

// end finishes the test on every stream and records how completeness was proven.
func (s *Sender) end() error {
	switch {
	case s.streams[0].u != nil:
		s.sendEnds()
		s.stats.Proof = "end datagrams sent; the receiver counts loss (no verdict comes back over datagrams)"
		if s.spec.Format != wire.FormatNative {
			s.stats.Proof = "not provable: the " + s.spec.Format.String() + " format has no end datagram"
		}
		return nil
	case s.spec.Format != wire.FormatNative || s.stalled.Load():
		for _, st := range s.streams {
			st.conn.CloseWrite()
		}
		s.stats.Proof = "not provable: the " + s.spec.Format.String() + " format has no end frame"
		if s.stalled.Load() { // a frozen receiver sends no verdict: do not wait for one
			s.stats.Proof = "not provable: the peer stalled"
		}
		return nil
	}
	var errs []error
	_, whole := s.streams[0].conn.(proto.FullCloser)
	for _, st := range s.streams {
		if !st.partial { // after a cut message an end frame would be garbage: the receiver sees the cut
			if err := st.sendEnd(); err != nil {
				errs = append(errs, fmt.Errorf("stream %d: end frame: %w", st.id, err))
			}
		}
		if !whole || !st.hello || st.partial { // a half-close (the verdict can still come back), or a cut stream
			st.conn.CloseWrite()
		}
	}
	if whole {
		defer func() { // now the verdict is in (or given up on)
			for _, st := range s.streams {
				st.conn.CloseWrite()
			}
		}()
	}
	if !s.streams[0].hello {
		s.stats.Proof = "not provable: the receiver sent no report (not a splicegen receiver?)"
		return errors.Join(errs...)
	}
	// Every stream must bring the verdict back (a stream the receiver refused brings
	// none), all within one stall timeout, and the verdict must cover what was sent.
	var v wire.Verdict
	var verr error
	deadline := time.Now().Add(s.spec.StallTimeout)
	for _, st := range s.streams { // read them all: no unread data at close
		sv, err := st.readVerdict(deadline)
		if err == nil && sv.TestID != s.spec.TestID {
			err = fmt.Errorf("the verdict is for test %016x, not ours", sv.TestID)
		}
		switch {
		case err == nil:
			v = sv
		case verr == nil: // the first failure says enough
			verr = fmt.Errorf("stream %d: %w", st.id, err)
		}
	}
	if v.TestID == 0 {
		s.stats.Proof = "no verdict from the receiver"
		return errors.Join(append(errs, fmt.Errorf("no verdict from the receiver: %w", verr))...)
	}
	s.stats.Receiver = &v
	s.stats.Proof = "receiver verdict"
	if verr != nil {
		errs = append(errs, fmt.Errorf("not every stream got the receiver's verdict: %w", verr))
	}
	if b, m := s.stats.Totals(); v.Code == 0 && (v.Messages != m || v.Bytes != b) {
		errs = append(errs, fmt.Errorf("the receiver's verdict covers %d messages / %d bytes, %d / %d were sent", v.Messages, v.Bytes, m, b))
	}
	return errors.Join(errs...)
}

// sendEnd writes the stream's end frame (on sub-stream 0 when messages rotate).
func (st *stream) sendEnd() error {
	var b [wire.EndLen]byte
	h := wire.Header{Streams: uint16(st.s.spec.Streams), Stream: st.id, TimeNS: time.Now().UnixNano(), TestID: st.s.spec.TestID}
	wire.PutEnd(b[:], h, st.c.Messages.Load(), st.c.Bytes.Load())
	if st.lanes > 1 {
		st.lane = 0
		if err := st.rc.Control(st.laneFn); err != nil || st.laneErr != nil {
			return errors.Join(err, st.laneErr)
		}
	}
	// Stop may have set a deadline in the past; the end frame gets the stall timeout.
	if err := st.conn.SetWriteDeadline(time.Now().Add(st.s.spec.StallTimeout)); err != nil {
		return err
	}
	_, err := st.conn.Write(b[:])
	return err
}

// readVerdict reads the receiver's verdict, waiting until deadline at most. With --rtt
// the stream's reader takes it, after the echoes (rtt.go).
func (st *stream) readVerdict(deadline time.Time) (wire.Verdict, error) {
	var v wire.Verdict
	var b [wire.VerdictLen]byte
	if err := st.conn.SetReadDeadline(deadline); err != nil {
		return v, err
	}
	if len(st.rtt) > 0 {
		r := st.rtt[0]
		<-r.done
		return r.v, r.verr
	}
	if _, err := io.ReadFull(st.conn, b[:]); err != nil {
		return v, err
	}
	return v, wire.ParseVerdict(b[:], &v)
}

// sendEnds tells a datagram receiver that the test is over: every stream sends its end
// frame as a datagram endRounds times, spaced by endDelays. Errors are ignored: a
// receiver that has seen every stream's end closes its socket and the later ones come
// back ECONNREFUSED. Raw format sends none (the peer is not splicegen): such a receiver
// ends on --idle.
func (s *Sender) sendEnds() {
	if s.spec.Format != wire.FormatNative {
		return
	}
	for _, d := range endDelays {
		time.Sleep(d)
		for _, st := range s.streams {
			var b [wire.EndLen]byte
			h := wire.Header{Streams: uint16(s.spec.Streams), Stream: st.id, TimeNS: time.Now().UnixNano(), TestID: s.spec.TestID}
			wire.PutEnd(b[:], h, st.c.Messages.Load(), st.c.Bytes.Load())
			err := proto.Control(st.rc, func(fd int) error { _, err := unix.Write(fd, b[:]); return err })
			if err == nil {
				st.u.ends++
			}
		}
	}
}
