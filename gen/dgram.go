package gen

import (
	"encoding/binary"
	"errors"

	"github.com/splicegen/splicegen/pages"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/wire"
	"golang.org/x/sys/unix"
)

// Datagram streams (connected datagram sockets: UDP and its variants). Every message is
// one datagram. splice and write use the per-message steps; mmsg and gso send a batch
// per syscall from runBatch. All read their messages from a packed page ring.

// Datagram sending (UDP). Every message is one datagram. splice and write use the
// per-message steps of send.go (splice its own dgramSpliceStep); mmsg and gso send a
// batch per syscall from runBatch. All read their messages from a packed page ring.

// Kernel limits.
const (
	udpMaxSegments = 128 // UDP_MAX_SEGMENTS, include/linux/udp.h: more is EINVAL
	defaultMmsg    = 64  // datagrams per sendmmsg (docs/kernel.md#udp: measured x64)
	// dgramRun: an unpaced splice or write stream frames this many consecutive datagrams
	// per pass and sends them inside one RawConn.Write, still a syscall each (splice: one
	// vmsplice for the run, then a splice per datagram). 16: their shared stamp is at
	// most 15 sends old, the bound the one-message loop's clock rule already allows
	// (loop.go, stamp). Measured: docs/results.md#udp-runs.
	dgramRun = 16
)

// runnable: a splice or write stream framing runs (framesRuns) on one socket, without
// --on/--off cycles, sends runs of dgramRun datagrams.
func (st *stream) runnable() bool {
	spec := &st.s.spec
	return (spec.Mode == ModeSplice || spec.Mode == ModeWrite) && spec.On == 0 && spec.Flows <= 1 && st.framesRuns()
}

// renews: a datagram splice stream's ring gets fresh pages every lap (pages/renew.go):
// a queue that is full keeps the datagrams it holds and drops the later ones — a local
// receiver's (loopback, veth, bridges, a bound socket sending to a local address,
// multicast loopback), a qdisc in front of a stalled device — so no ring size bounds how
// long the kernel references a slot (docs/kernel.md#page-reuse). On every path: which
// queues a datagram may sit in is not known from the socket. write, mmsg and gso copy;
// zerocopy recycles on completions; TCP and SCTP deliver in order without dropping what
// they accepted, so what the kernel holds is the newest window (the rule).
func (st *stream) renews() bool {
	spec := &st.s.spec
	return renewRings && st.u != nil && spec.Mode == ModeSplice && !spec.HotBuffer
}

// renewRings is false only in the test that shows the hazard without renewal.
var renewRings = true

// refill rewrites a renewed slot's constant payload (fillRing's), or nil when frame
// writes the whole payload anyway (--verify with a header).
func (st *stream) refill() func(buf []byte) {
	spec := &st.s.spec
	hl := spec.Format.HeaderSize()
	if spec.Verify && hl > 0 {
		return nil
	}
	return func(buf []byte) { wire.FillPattern(buf[hl:spec.Size], st.id, 0) }
}

type dgram struct {
	max      int // largest datagram for this socket
	caps     proto.Caps
	batch    int // datagrams per syscall (mmsg, gso); 1 otherwise
	mm       []proto.Mmsghdr
	iov      []unix.Iovec
	k, sent  int    // datagrams in this batch, sent so far
	span     []byte // gso: the batch's contiguous bytes
	gsoMsg   unix.Msghdr
	gsoIov   [1]unix.Iovec
	gsoCtl   []byte // cmsg UDP_SEGMENT (u16 segment size)
	mmCalls  uint64
	gsoCalls uint64
	ends     uint64
	fallback string // why gso was demoted (empty: not demoted)
}

// setupDgram prepares a datagram stream: limits, capabilities, pipe, packed ring, step.
func (st *stream) setupDgram(d proto.Datagram) error {
	spec := &st.s.spec
	u := &dgram{max: d.MaxDatagram(), caps: d.Caps(), batch: 1}
	st.u = u
	if spec.Size > u.max { // Spec.Check bounds it by address; this is the socket's own answer
		return proto.Usagef("--size %d exceeds the largest datagram of this socket, %d bytes", spec.Size, u.max)
	}
	switch spec.Mode {
	case ModeMmsg:
		u.batch = defaultMmsg
	case ModeGSO:
		u.batch = min(udpMaxSegments, u.max/spec.Size)
	}
	if spec.Batch > 0 && u.batch > 1 {
		if spec.Mode == ModeGSO && spec.Batch > u.batch {
			return proto.Usagef("--batch %d: gso takes at most %d segments of %d bytes (128 segments, %d bytes per super-buffer)",
				spec.Batch, u.batch, spec.Size, u.max)
		}
		u.batch = spec.Batch
	}
	if st.runnable() {
		st.batch = dgramRun
	}
	run := max(u.batch, st.batch) // consecutive ring slots framed at once
	if spec.Mode == ModeSplice {
		// One splice(2) call is one datagram (docs/kernel.md#udp), so the datagram must be
		// in the pipe in one piece; a packed slot may straddle pages: its pages plus one.
		// A run of datagrams is vmspliced at once, the pipe sized to hold it.
		want := pages.RoundUp(spec.Size) + 2*pages.PageSize
		if err := st.openPipe(max(want, pages.RoundUp(run*spec.Size)+2*pages.PageSize), want); err != nil {
			return err
		}
	}
	ringBytes := run * spec.Size
	if !spec.HotBuffer {
		var err error
		if ringBytes, err = st.ringSize(run*spec.Size, -1); err != nil {
			return err
		}
	}
	var err error
	if st.ring, err = pages.NewPacked(spec.Size, ringBytes, run, false); err != nil {
		return err
	}
	st.fillRing()
	if st.renews() {
		if err := st.ring.Renew(st.refill()); err != nil {
			return err
		}
	}
	if err := st.setStep(st.dgramSpliceStep); err != nil {
		return err
	}
	if spec.Mode == ModeWrite {
		st.step = st.dgramWriteStep
	}
	switch spec.Mode {
	case ModeMmsg, ModeGSO:
		u.mm = make([]proto.Mmsghdr, u.batch)
		u.iov = make([]unix.Iovec, u.batch)
		for i := range u.mm {
			u.mm[i].Hdr.Iov = &u.iov[i]
			u.mm[i].Hdr.SetIovlen(1)
		}
		st.step = st.mmsgStep
		if spec.Mode == ModeGSO {
			if !u.caps.GSO && !u.caps.GSOKilled {
				return proto.Usagef("%v: %s", ErrGSOUnavailable, u.caps.GSOWhy)
			}
			if !u.caps.GSO {
				// The kill switch forces the fallback path: reported, not hidden.
				u.fallback = "gso " + u.caps.GSOWhy + ": sent with sendmmsg"
			} else {
				st.setGSO(spec.Size)
				st.step = st.gsoStep
			}
		}
	}
	return nil
}

// setGSO builds the per-call UDP_SEGMENT cmsg (udp(7): a u16 segment size). Per call,
// not per socket (setsockopt): measured on 6.18 loopback, a send no longer than the
// socket-level segment size (a batch of one) silently never arrived; with the cmsg a
// batch of one goes without it, as a plain datagram.
func (st *stream) setGSO(size int) {
	u := st.u
	u.gsoCtl = make([]byte, unix.CmsgSpace(2))
	proto.PutCmsg(u.gsoCtl, unix.SOL_UDP, unix.UDP_SEGMENT, binary.NativeEndian.AppendUint16(nil, uint16(size)))
	u.gsoMsg.Iov = &u.gsoIov[0]
	u.gsoMsg.SetIovlen(1)
}

// dgramStats adds the datagram counters to a stream's stats.
func (st *stream) dgramStats(s *StreamStats) {
	if st.u == nil {
		return
	}
	s.SendmmsgCalls, s.GSOCalls, s.EndDatagrams, s.Fallback = st.u.mmCalls, st.u.gsoCalls, st.u.ends, st.u.fallback
}

// ErrGSOUnavailable: --mode gso on a kernel without UDP_SEGMENT.
var ErrGSOUnavailable = errors.New("gso: UDP_SEGMENT not supported by this kernel (needs Linux 4.18)")
