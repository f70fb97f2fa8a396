package gen

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"

	"github.com/splicegen/splicegen/pages"
	"github.com/splicegen/splicegen/proto"
	"golang.org/x/sys/unix"
)

// Datagram sending (UDP). Every message is one datagram. splice and write use the
// per-message steps of send.go (splice its own dgramSpliceStep); mmsg and gso send a
// batch per syscall from runBatch. All read their messages from a packed page ring.

// Kernel limits.
const (
	udpMaxSegments = 128 // UDP_MAX_SEGMENTS, include/linux/udp.h: more is EINVAL
	defaultMmsg    = 64  // datagrams per sendmmsg (KERNEL-FACTS.md measured x64)
	FlagEnd        = 1 << 1
	endRounds      = 5
)

// endDelays space the end datagrams: a receiver whose queue is full when the first
// arrives (which is when loss happens) gets the later ones.
var endDelays = [endRounds]time.Duration{0, 2 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond}

// mmsghdr is struct mmsghdr (sendmmsg(2)): a msghdr and the bytes sent, padded to 8.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// dgram is a datagram stream's extra state.
type dgram struct {
	max      int // largest datagram for this socket
	caps     proto.Caps
	batch    int // datagrams per syscall (mmsg, gso); 1 otherwise
	mm       []mmsghdr
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

// Test hook: the GSO super-buffer send, swapped to inject EIO.
var gsoSendmsg = func(fd int, msg *unix.Msghdr) error {
	_, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(msg)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// modeImplemented reports whether gen can run mode on c.
func modeImplemented(mode string, c proto.Conn) error {
	_, dg := c.(proto.Datagram)
	switch mode {
	case ModeSplice, ModeWrite:
		return nil
	case ModeZerocopy:
		return nil
	case ModeSendfile:
		if !dg {
			return nil
		}
	case ModeMmsg, ModeGSO:
		if dg {
			return nil
		}
	}
	return usagef("mode %q is not implemented for this protocol", mode)
}

// setupDgram prepares a datagram stream: limits, capabilities, pipe, packed ring, step.
func (st *stream) setupDgram(d proto.Datagram) error {
	spec := &st.s.spec
	u := &dgram{max: d.MaxDatagram(), caps: d.Caps(), batch: 1}
	st.u = u
	if spec.Size > u.max {
		return usagef("--size %d exceeds the largest UDP datagram, %d bytes", spec.Size, u.max)
	}
	if spec.Format == FormatNettest {
		return usagef("--format nettest is a byte-stream format: use native or raw over udp")
	}
	switch spec.Mode {
	case ModeMmsg:
		u.batch = defaultMmsg
	case ModeGSO:
		u.batch = min(udpMaxSegments, u.max/spec.Size)
	}
	if spec.Batch > 0 && u.batch > 1 {
		if spec.Mode == ModeGSO && spec.Batch > u.batch {
			return usagef("--batch %d: gso takes at most %d segments of %d bytes (128 segments, %d bytes per super-buffer)",
				spec.Batch, u.batch, spec.Size, u.max)
		}
		u.batch = spec.Batch
	}
	if spec.Mode == ModeSplice {
		if err := st.openDgramPipe(); err != nil {
			return err
		}
	}
	// The ring rule (see proto/udp Conn.Buffers for each term): our sndbuf, the local
	// peer's receive buffer plus the backlog of datagrams charged to nobody, our pipe.
	b, err := st.conn.Buffers()
	if err != nil {
		return err
	}
	st.rule = pages.Rule{SndBuf: b.SndBufMax, PeerRcvBuf: b.PeerRcvBufMax + b.Backlog*spec.Size, Pipe: st.pipeCap,
		Msg: u.batch * spec.Size, MarginPct: pages.DefaultMarginPct, Why: b.Why}
	ringBytes := st.rule.Bytes()
	if spec.HotBuffer {
		ringBytes = u.batch * spec.Size
	} else if spec.Ring > 0 {
		// Zerocopy recycles on the kernel's notifications: any ring is safe.
		if spec.Ring < ringBytes && !spec.Unsafe && spec.Mode != ModeZerocopy {
			return usagef("--ring %d is below the safe size %d (%v); add --unsafe-ring to demonstrate the hazard",
				spec.Ring, ringBytes, st.rule)
		}
		ringBytes = spec.Ring
	}
	if st.ring, err = pages.NewPacked(spec.Size, ringBytes, u.batch); err != nil {
		return err
	}
	st.fillRing()
	if err := st.setStep(st.dgramSpliceStep); err != nil {
		return err
	}
	switch spec.Mode {
	case ModeMmsg, ModeGSO:
		u.mm = make([]mmsghdr, u.batch)
		u.iov = make([]unix.Iovec, u.batch)
		for i := range u.mm {
			u.mm[i].hdr.Iov = &u.iov[i]
			u.mm[i].hdr.SetIovlen(1)
		}
		st.step = st.mmsgStep
		if spec.Mode == ModeGSO {
			if !u.caps.GSO && !strings.HasPrefix(u.caps.GSOWhy, "disabled by ") {
				return usagef("%v: %s", ErrGSOUnavailable, u.caps.GSOWhy)
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
	if spec.IO == "block" {
		return st.openBlocking()
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
	h := (*unix.Cmsghdr)(unsafe.Pointer(&u.gsoCtl[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&u.gsoCtl[unix.CmsgLen(0)])) = uint16(size)
	u.gsoMsg.Iov = &u.gsoIov[0]
	u.gsoMsg.SetIovlen(1)
}

// openDgramPipe sizes the pipe for one whole datagram: one splice(2) call is one
// datagram (KERNEL-FACTS.md), so the datagram must be in the pipe in one piece. A packed
// slot may straddle pages: room for its pages plus one.
func (st *stream) openDgramPipe() error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return os.NewSyscallError("pipe2", err)
	}
	st.pr, st.pw = p[0], p[1]
	want := pages.RoundUp(st.s.spec.Size) + 2*pages.PageSize
	unix.FcntlInt(uintptr(st.pw), unix.F_SETPIPE_SZ, want)
	n, err := unix.FcntlInt(uintptr(st.pw), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return os.NewSyscallError("fcntl F_GETPIPE_SZ", err)
	}
	if n < want {
		return fmt.Errorf("pipe of %d bytes cannot hold a %d-byte datagram (fs.pipe-max-size)", n, st.s.spec.Size)
	}
	st.pipeCap = n
	return nil
}

// dgramSpliceStep vmsplices the whole datagram into the pipe, then splices it into the
// socket with one call and no SPLICE_F_MORE (on UDP that corks the next call into the
// same datagram). The pipe is empty between datagrams, so EAGAIN means the socket is
// full. On any error the datagram stays in the pipe (EMSGSIZE: KERNEL-FACTS.md), so
// the pipe is drained before the error is returned.
func (st *stream) dgramSpliceStep(fd uintptr) bool {
	for st.inPipe < len(st.msg) {
		st.iov[0].Base = &st.msg[st.inPipe]
		st.iov[0].SetLen(len(st.msg) - st.inPipe)
		m, err := unix.Vmsplice(st.pw, st.iov[:], 0)
		st.vmCalls++
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			st.err = os.NewSyscallError("vmsplice", err)
			return true
		}
		st.inPipe += m
		st.vmBytes += uint64(m)
	}
	for {
		n, err := unix.Splice(st.pr, nil, int(fd), nil, st.inPipe, 0)
		st.spCalls++
		switch {
		case err == unix.EAGAIN:
			st.waits++
			return false
		case err == unix.EINTR:
			continue
		case err != nil:
			st.err = os.NewSyscallError("splice", err)
			st.drainPipe()
			return true
		case int(n) != st.inPipe:
			st.err = fmt.Errorf("splice: sent %d bytes of a %d-byte datagram", n, st.inPipe)
			st.drainPipe()
			return true
		}
		st.inPipe = 0
		st.done = len(st.msg)
		return true
	}
}

// drainPipe empties the pipe after a failed splice (error path only: it allocates).
func (st *stream) drainPipe() {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(st.pr, buf)
		if n <= 0 || err != nil {
			break
		}
	}
	st.inPipe = 0
}

// mmsgStep sends the batch's remaining datagrams with sendmmsg(2), which returns how
// many went; EAGAIN only when none did.
func (st *stream) mmsgStep(fd uintptr) bool {
	u := st.u
	for u.sent < u.k {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&u.mm[u.sent])), uintptr(u.k-u.sent), 0, 0, 0)
		u.mmCalls++
		switch {
		case e == unix.EAGAIN:
			st.waits++
			return false
		case e == unix.EINTR:
			continue
		case e != 0:
			st.err = os.NewSyscallError("sendmmsg", e)
			return true
		}
		u.sent += int(r)
	}
	return true
}

// gsoStep sends the batch as one super-buffer with sendmsg(2) and a UDP_SEGMENT cmsg;
// the kernel cuts it into datagrams of that size. EIO means the route's device can't
// checksum-offload the segments (net/ipv4/udp.c udp_send_skb: "ip_summed !=
// CHECKSUM_PARTIAL ... -EIO"): demote to sendmmsg for the rest of the run and resend
// this batch, as wireguard-go does.
func (st *stream) gsoStep(fd uintptr) bool {
	u := st.u
	u.gsoIov[0].Base = &u.span[0]
	u.gsoIov[0].SetLen(len(u.span))
	if u.k > 1 {
		u.gsoMsg.Control = &u.gsoCtl[0]
		u.gsoMsg.SetControllen(len(u.gsoCtl))
	} else {
		u.gsoMsg.Control = nil
		u.gsoMsg.SetControllen(0)
	}
	for {
		err := gsoSendmsg(int(fd), &u.gsoMsg)
		switch {
		case err == unix.EAGAIN:
			st.waits++
			return false
		case err == unix.EINTR:
			continue
		case err == unix.EIO:
			u.fallback = "gso demoted to sendmmsg: " + os.NewSyscallError("sendmsg", err).Error()
			st.step = st.mmsgStep
			return st.mmsgStep(fd)
		case err != nil:
			st.err = os.NewSyscallError("sendmsg (gso)", err)
			return true
		}
		u.gsoCalls++ // super-buffers sent: the kernel's OutDatagrams counts these
		u.sent = u.k
		return true
	}
}

// runBatch is the send loop of mmsg and gso: a batch of datagrams per syscall, framed
// from consecutive ring slots (contiguous: the ring is a multiple of the batch), the
// pacer and the stop flag consulted once per batch.
func (st *stream) runBatch() error {
	spec := &st.s.spec
	u := st.u
	size := spec.Size
	for seq := uint64(0); st.limit < 0 || seq < uint64(st.limit); {
		if st.s.stop.Load() {
			break
		}
		k := u.batch
		if st.limit >= 0 {
			k = int(min(uint64(k), uint64(st.limit)-seq))
		}
		if st.pace != nil && !st.pace.Wait(k, &st.s.stop) {
			break
		}
		now := time.Now().UnixNano()
		var first int64
		for i := range k {
			var buf []byte
			var off int64
			if spec.HotBuffer {
				off = int64(i * size)
				buf = st.ring.Span(off, size)
			} else {
				buf, off = st.ring.Next()
			}
			if i == 0 {
				first = off
			}
			st.msg = buf[:size]
			st.frame(seq+uint64(i), now)
			u.iov[i].Base = &buf[0]
			u.iov[i].SetLen(size)
		}
		u.span = st.ring.Span(first, k*size)
		u.k, u.sent = k, 0
		if err := st.send(); err != nil {
			if st.s.stop.Load() {
				break
			}
			return fmt.Errorf("stream %d, datagrams %d..%d: %w", st.id, seq, seq+uint64(k)-1, err)
		}
		st.c.Bytes.Add(uint64(k * size))
		st.c.Messages.Add(uint64(k))
		seq += uint64(k)
	}
	return nil
}

// sendEnds tells a UDP receiver that the test is over: every stream sends an end
// datagram (native header, FlagEnd, no payload, Seq = datagrams sent) endRounds times,
// spaced by endDelays. Errors are ignored: a receiver that has seen every stream's end
// closes its socket and the later ones come back ECONNREFUSED. Raw format sends none
// (the peer is not splicegen): such a receiver ends on --idle.
func (s *Sender) sendEnds() {
	if s.spec.Format != FormatNative || len(s.streams) == 0 || s.streams[0].u == nil {
		return
	}
	for _, d := range endDelays {
		time.Sleep(d)
		for _, st := range s.streams {
			var b [HeaderLen]byte
			h := Header{Flags: FlagEnd, Streams: uint16(s.spec.Streams), Stream: st.id, Seq: st.c.Messages.Load(),
				TimeNS: time.Now().UnixNano()}
			h.Put(b[:])
			var err error
			st.rc.Control(func(fd uintptr) { _, err = unix.Write(int(fd), b[:]) })
			if err == nil {
				st.u.ends++
			}
		}
	}
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
