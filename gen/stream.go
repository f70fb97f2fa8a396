package gen

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/splicegen/splicegen/pages"
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/wire"
	"golang.org/x/sys/unix"
)

// Stream setup: the socket's page ring (sized by the page-reuse rule), its pipe, the
// receiver's report, and the step function chosen once for the mode.

// stream is one connection's send state. The data path (run and the step functions)
// allocates nothing: the step closure is bound once, the iovec lives here.
type stream struct {
	s     *Sender
	id    uint32
	conn  proto.Conn
	rc    syscall.RawConn
	ring  *pages.Ring
	rule  pages.Rule
	limit int64

	pr, pw  int // pipe (splice mode), -1 otherwise
	pipeCap int

	// The message being sent.
	msg    []byte
	off    int64 // msg's offset in the ring's memfd (sendfile)
	sfOff  int64 // sendfile's in/out offset
	done   int   // bytes of msg vmspliced (splice) or sent (write, sendfile)
	inPipe int   // bytes in the pipe, not yet spliced to the socket
	more   bool  // another message follows at once: SPLICE_F_MORE
	err    error
	iov    [1]unix.Iovec
	step   func(fd uintptr) bool
	blockd int // dup'd blocking fd (IO "block"), -1 otherwise

	// SCTP stream rotation (proto.Laner): message seq goes on stream id seq % lanes.
	lanes   int
	lane    int
	laneErr error
	laneFn  func(fd uintptr)

	zc *zcState // MSG_ZEROCOPY mode only

	stamps  uint64 // calls stamped (stamp)
	stampAt int64  // the last clock reading (stamp)

	// --flows: the sockets a datagram stream rotates over (flows[0] is conn's; nil: one),
	// the next one's index, and the extra connections to close.
	flows []syscall.RawConn
	flow  int
	extra []proto.Conn

	// waitSince is when the socket was first found full since the last progress (ns, 0:
	// not waiting): the stall watchdog reads it; outcome writes it, on EAGAIN and on the
	// progress after one.
	waitSince atomic.Int64
	partial   bool // the last message went out only in part (stopped mid-message)
	batch     int  // consecutive messages framed per pass: TCP/SCTP splice (batchable), UDP splice/write (runnable); 0: one
	hello     bool // a splicegen receiver reported its bound: it will send a verdict

	// SO_SNDBUF as autotuning grows it, sampled during the run.
	sndbufSeen int
	sndbufErr  error
	sndbufFn   func(fd uintptr)

	c                                                  Counters
	vmCalls, vmBytes, spCalls, wrCalls, sfCalls, waits uint64
	nettestCRC                                         uint64       // CRC of the constant payload (no --verify)
	u                                                  *dgram       // datagram sockets (send_udp.go), nil otherwise
	pace                                               *Pacer       // --rate/--pps or --on/--off, nil otherwise
	endNS                                              int64        // when the send loop ended (0: on an error)
	rtt                                                []*rttReader // --rtt: one per socket (rtt.go)
}

func newStream(s *Sender, id uint32, c proto.Conn) (*stream, error) {
	st := &stream{s: s, id: id, conn: c, pr: -1, pw: -1, blockd: -1, limit: s.spec.messages(int(id))}
	if err := st.setup(); err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

// setup prepares the stream for its socket kind; on error the caller closes it.
func (st *stream) setup() error {
	s, c := st.s, st.conn
	var err error
	if st.rc, err = c.SyscallConn(); err != nil {
		return err
	}
	spec := &s.spec
	batch := 1
	if d, ok := c.(proto.Datagram); ok {
		if err := st.setupDgram(d); err != nil {
			return err
		}
		batch = st.u.batch
	} else if err := st.setupStream(); err != nil {
		return err
	}
	if r := spec.perStream(); r > 0 || spec.On > 0 {
		st.pace = NewPacer(r, batch, spec.Pattern)
	}
	if spec.IO == "block" {
		return st.openBlocking()
	}
	return nil
}

// setupStream prepares a byte-stream or message socket: pipe, page ring, step.
func (st *stream) setupStream() error {
	spec := &st.s.spec
	if spec.Mode == ModeSplice {
		// One message per vmsplice when pipe-max-size allows (a packed slot may straddle
		// one more page), else pipe-sized chunks; batched (see batchable): a pipe of
		// pipe-max-size, filled with consecutive messages.
		want := pages.RoundUp(spec.Size)
		if spec.Size%pages.PageSize != 0 {
			want += pages.PageSize
		}
		lim, err := proto.Sysctl("fs/pipe-max-size")
		if err == nil && st.batchable() {
			want = max(want, lim)
		}
		if err == nil {
			want = min(want, lim)
		}
		if err := st.openPipe(want, 0); err != nil {
			return err
		}
		if st.batchable() {
			st.batch = max(1, st.pipeCap/spec.Size)
		}
	}
	// A native receiver reports its receive-queue bound first; always read it, so no
	// unread byte is left in our receive queue at close (that would reset, tcp(7)).
	peer := -1
	if spec.Format == wire.FormatNative {
		peer = readHello(st.conn)
		st.hello = peer >= 0
	}
	// Every mode reads its messages from the same ring, so a comparison isolates the
	// syscall: same framing, same payload, same (cache-cold) memory. --hot-buffer makes
	// write re-send one cache-hot buffer instead (safe: write copies).
	//
	// The ring is packed: message slots back to back, not one page each. The kernel
	// charges a spliced message to the socket buffers by its bytes (the skb frag covers
	// the message, not its page), so the rule's bound is a bound on bytes in flight: a
	// lap of ring bytes is safe whatever the message size. A page per message made a
	// 1400-byte message count as 4096 bytes of ring, 2.9x too few messages per lap:
	// measured corrupt with --sndbuf 200k --rcvbuf 200k -s 1400 and a stalling receiver
	// (TestSmallMessagesRingCountsBytes). Sizes that are whole pages stay page-aligned.
	var err error
	if spec.HotBuffer {
		st.ring, err = pages.New(spec.Size, 1)
	} else {
		var ringBytes int
		if ringBytes, err = st.ringSize(max(1, st.batch)*spec.Size, peer); err != nil {
			return err
		}
		st.ring, err = pages.NewPacked(spec.Size, ringBytes, max(1, st.batch), spec.Mode == ModeSendfile)
	}
	if err != nil {
		return err
	}
	st.fillRing()
	if spec.Format == wire.FormatNettest {
		hl := spec.Format.HeaderSize()
		st.nettestCRC = wire.NettestCRC(0, st.ring.Buf(0)[hl:spec.Size])
	}
	if l, ok := st.conn.(proto.Laner); ok && l.Lanes() > 1 {
		st.lanes = l.Lanes()
		st.laneFn = func(fd uintptr) { st.laneErr = l.SetLane(fd, st.lane) }
	}
	return st.setStep(st.spliceStep)
}

// batchable: splice mode moves several consecutive messages of the packed ring through
// one pipe fill (one vmsplice, one splice per pipe-max-size) instead of one pair per
// message. Measured on main: 32.8k syscalls per GiB at 64 KiB against iperf3's 8.2k
// writes; a 1 MiB message as a proxy cut the pinned sender's CPU per GiB by about a
// third. Not with pacing (a batch would be a burst), SCTP stream rotation (a message
// each), zerocopy, a hot buffer, or a ring override (--ring keeps its exact meaning).
// Write and sendfile stay one call per message: the seed's baseline.
// SCTP on one stream id batches too: a splice into SCTP is one SCTP message per pipe
// page whatever the call (6.1: sock_no_sendpage, one sendmsg per page, net/core/sock.c),
// and the receiver reassembles splicegen messages per stream id (sink/message.go).
func (st *stream) batchable() bool {
	spec := &st.s.spec
	l, ok := st.conn.(proto.Laner)
	rotates := ok && l.Lanes() > 1 // a stream id per message: one splice each
	return spec.Mode == ModeSplice && !rotates && st.framesRuns()
}

// framesRuns: what batchable (TCP/SCTP) and runnable (UDP) both need to frame several
// consecutive ring slots per pass: unpaced, from the ring (no hot buffer, no --ring
// override), one size, through the poller.
func (st *stream) framesRuns() bool {
	spec := &st.s.spec
	return spec.perStream() == 0 && !spec.HotBuffer && spec.Ring == 0 && spec.IO != "block" && len(spec.Mix) == 0
}

// ringSize applies the page-reuse rule (docs/kernel.md#page-reuse) to this socket's live
// buffer bounds: our send buffer, what a local peer may queue (the receiver's own report
// when peer >= 0; a datagram path adds the backlog charged to no socket, see proto/udp
// Conn.Buffers), our pipe, one message (or batch) being filled. --ring overrides it,
// below the safe size only with --unsafe-ring. All streams' rings are checked against
// the cap before any is mapped.
func (st *stream) ringSize(msg, peer int) (int, error) {
	spec := &st.s.spec
	b, err := st.conn.Buffers()
	if err != nil {
		return 0, err
	}
	st.rule = pages.Rule{SndBuf: b.SndBufMax, PeerRcvBuf: b.PeerRcvBufMax + b.Backlog*spec.Size, Pipe: st.pipeCap,
		Msg: msg, MarginPct: pages.DefaultMarginPct, Why: b.Why}
	pipeMax, _ := proto.Sysctl("fs/pipe-max-size") // a splice sink reports its pipe too
	switch {
	case peer > b.PeerRcvBufMax+pipeMax:
		// More than a socket on this host can hold: the peer is not local (then its queue
		// holds copies, not our pages) or it lies. The local worst case covers both.
		st.rule.Why += fmt.Sprintf("; the receiver reported %s, more than a socket on this host can hold: capped to the local worst case", pages.Human(peer))
	case peer >= 0:
		st.rule.PeerRcvBuf = peer
		st.rule.Why += "; the receiver reported its bound: " + pages.Human(peer)
	case spec.Format == wire.FormatNative && st.u == nil:
		st.rule.Why += "; the receiver reported nothing: worst case for a local peer"
	}
	if st.renews() {
		st.rule.Why += "; datagram splice: the ring renews its pages every lap (a full queue keeps old datagrams and drops new ones: a queued datagram may outlive any lap)"
	}
	n := spec.ringScale(st.rule.Bytes())
	if len(spec.Mix) > 0 {
		st.rule.Why += fmt.Sprintf("; size mix: grown to %d cycles of %d messages in %d-byte slots, to hold the rule's bytes", n/spec.Size/len(spec.Mix), len(spec.Mix), spec.Size)
	}
	// A ring that holds every message of the test is never reused, whatever the rule:
	// a short test (a count or byte total) need not map and fill a ring for a long one
	// (a 4-message test filled 45 MiB: ~100 ms of its 110).
	if m := spec.messages(int(st.id)); spec.Ring == 0 && m >= 0 {
		if whole := max(int64(msg), m*int64(spec.Size)); int64(n) > whole {
			n = int(whole)
			st.rule.Why += fmt.Sprintf("; the ring holds the whole test (%d messages): no page is reused", m)
		}
	}
	if spec.Ring > 0 {
		// Zerocopy recycles on the kernel's notifications, a datagram splice ring renews
		// its pages every lap (renews): any ring is safe.
		if spec.Ring < n && !spec.Unsafe && spec.Mode != ModeZerocopy && !st.renews() {
			return 0, proto.Usagef("--ring %d is below the safe size %d (%v); add --unsafe-ring to demonstrate the hazard",
				spec.Ring, n, st.rule)
		}
		n = spec.Ring
	}
	if n > pages.MaxRingBytes {
		return 0, proto.Usagef("a page ring of %s per stream exceeds the cap of %s: use smaller --ring, --sndbuf/--rcvbuf or --size",
			pages.Human(n), pages.Human(pages.MaxRingBytes))
	}
	if total := n * spec.Streams; total > pages.MaxTotalBytes {
		return 0, proto.Usagef("page rings of %d streams need %s (%s each), above the cap of %s: use fewer --streams, smaller --sndbuf/--rcvbuf, or --size",
			spec.Streams, pages.Human(total), pages.Human(n), pages.Human(pages.MaxTotalBytes))
	}
	return n, nil
}

// setStep picks the step function of the modes every socket kind shares; splice is the
// kind's own (a byte stream drains the pipe in chunks, a datagram is one splice call).
// Modes it does not know (mmsg, gso) are left to the caller.
func (st *stream) setStep(splice func(fd uintptr) bool) error {
	switch st.s.spec.Mode {
	case ModeSplice:
		st.step = splice
	case ModeWrite:
		st.step = st.writeStep
	case ModeSendfile:
		st.step = st.sendfileStep
	case ModeZerocopy:
		// One sendmsg(MSG_ZEROCOPY) per message (UDP zerocopy: Linux 5.0, commit
		// b5947e5d1e71); buffers recycled on completion.
		st.step = st.zcStep
		return st.setupZerocopy()
	}
	return nil
}

// fillRing writes the payload of seq 0 into every buffer. Without --verify only the
// header changes per message; with it, each message gets its own pattern.
func (st *stream) fillRing() {
	spec := &st.s.spec
	hl := spec.Format.HeaderSize()
	for i := range st.ring.Len() {
		wire.FillPattern(st.ring.Buf(i)[hl:spec.Size], st.id, 0)
	}
}

// openPipe makes the stream's pipe and asks for want bytes (fcntl(2) F_SETPIPE_SZ; best
// effort: EPERM/EBUSY above fs.pipe-max-size keep the current size). Fewer than need
// bytes is an error.
func (st *stream) openPipe(want, need int) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return os.NewSyscallError("pipe2", err)
	}
	st.pr, st.pw = p[0], p[1]
	unix.FcntlInt(uintptr(st.pw), unix.F_SETPIPE_SZ, want) // best effort, checked below
	n, err := unix.FcntlInt(uintptr(st.pw), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return os.NewSyscallError("fcntl F_GETPIPE_SZ", err)
	}
	if n < need {
		return fmt.Errorf("a pipe of %d bytes cannot hold a %d-byte message in one piece (fs.pipe-max-size)", n, st.s.spec.Size)
	}
	st.pipeCap = n
	return nil
}

// openBlocking dups the socket and clears O_NONBLOCK so the stream's locked thread can
// block in the kernel instead of parking in the poller. O_NONBLOCK is per open file
// description, shared with Go's fd: only this dup is used for I/O from here on.
// SO_SNDTIMEO bounds each blocked call so a stop request is seen within 100 ms.
func (st *stream) openBlocking() error {
	return proto.Control(st.rc, func(fd int) error {
		var err error
		if st.blockd, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0); err != nil {
			st.blockd = -1
			return os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
		}
		if err := unix.SetNonblock(st.blockd, false); err != nil {
			return os.NewSyscallError("fcntl O_NONBLOCK", err)
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		return os.NewSyscallError("setsockopt SO_SNDTIMEO", unix.SetsockoptTimeval(st.blockd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv))
	})
}

// addFlow adds a socket the stream's datagrams rotate over (--flows).
func (st *stream) addFlow(c proto.Conn, err error) error {
	if err != nil {
		return err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return err
	}
	if st.flows == nil {
		st.flows = []syscall.RawConn{st.rc}
	}
	st.flows = append(st.flows, rc)
	st.extra = append(st.extra, c)
	return nil
}

func (st *stream) close() {
	for _, fd := range []int{st.pr, st.pw, st.blockd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	st.pr, st.pw, st.blockd = -1, -1, -1
	if st.ring != nil {
		st.ring.Close()
	}
}

func (st *stream) stats() StreamStats {
	s := StreamStats{Stream: st.id, Bytes: st.c.Bytes.Load(), Messages: st.c.Messages.Load(),
		VmspliceCalls: st.vmCalls, VmsplicedB: st.vmBytes, SpliceCalls: st.spCalls,
		WriteCalls: st.wrCalls, SendfileCalls: st.sfCalls, Waits: st.waits, SndbufSeen: st.sndbufSeen}
	if st.ring != nil {
		s.RingRenewed = st.ring.RenewedBytes()
	}
	if st.zc != nil {
		s.ZCCompleted, s.ZCCopied = st.zc.t.completions, st.zc.t.copied
	}
	if st.pace != nil {
		s.PaceSleeps = st.pace.Sleeps
	}
	st.dgramStats(&s)
	return s
}

// readHello reads the receiver's report (wire.PutHello), waiting at most two seconds;
// -1 if there is none or it is implausible.
func readHello(c proto.Conn) int {
	var h [wire.HelloLen]byte
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return -1
	}
	v, err := wire.ParseHello(h[:])
	if err != nil || v == 0 {
		return -1
	}
	return int(min(v, 1<<50)) // ringSize caps it; this only keeps it an int
}
