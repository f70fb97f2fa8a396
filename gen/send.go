package gen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/splicegen/splicegen/pages"
	"github.com/splicegen/splicegen/proto"
	"golang.org/x/sys/unix"
)

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
func NewSender(spec Spec, conns []proto.Conn) (*Sender, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if len(conns) != spec.Streams {
		return nil, fmt.Errorf("gen: %d conns for %d streams", len(conns), spec.Streams)
	}
	if err := modeImplemented(spec.Mode, conns[0]); err != nil {
		return nil, err
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

	// SO_SNDBUF as autotuning grows it, sampled during the run.
	sndbufSeen int
	sndbufFn   func(fd uintptr)

	c                                                  Counters
	vmCalls, vmBytes, spCalls, wrCalls, sfCalls, waits uint64
	nettestCRC                                         uint64 // CRC of the constant payload (no --verify)
	u                                                  *dgram // datagram sockets (send_udp.go), nil otherwise
	pace                                               *Pacer // --rate/--pps, nil otherwise
}

func newStream(s *Sender, id uint32, c proto.Conn) (*stream, error) {
	st := &stream{s: s, id: id, conn: c, pr: -1, pw: -1, blockd: -1, limit: s.spec.messages(int(id))}
	var err error
	if st.rc, err = c.SyscallConn(); err != nil {
		return nil, err
	}
	spec := &s.spec
	if r := spec.perStream(); r > 0 {
		st.pace = NewPacer(r, max(1, spec.Batch))
	}
	if d, ok := c.(proto.Datagram); ok {
		if err := st.setupDgram(d); err != nil {
			st.close()
			return nil, err
		}
		if r := spec.perStream(); r > 0 {
			st.pace = NewPacer(r, st.u.batch)
		}
		return st, nil
	}
	if spec.Mode == ModeSplice {
		if err := st.openPipe(); err != nil {
			return nil, err
		}
	}
	// A native receiver reports its receive-queue bound first; always read it, so no
	// unread byte is left in our receive queue at close (that would reset, tcp(7)).
	var peer int
	var helloOK bool
	if spec.Format == FormatNative {
		peer, helloOK = readHello(c)
	}
	// Every mode reads its messages from the same ring, so a comparison isolates the
	// syscall: same framing, same payload, same (cache-cold) memory. --hot-buffer makes
	// write re-send one cache-hot buffer instead (safe: write copies).
	ringBytes := 1
	if !spec.HotBuffer {
		b, err := c.Buffers()
		if err != nil {
			return nil, err
		}
		st.rule = pages.Rule{SndBuf: b.SndBufMax, PeerRcvBuf: b.PeerRcvBufMax, Pipe: st.pipeCap,
			Msg: pages.RoundUp(spec.Size), MarginPct: pages.DefaultMarginPct, Why: b.Why}
		switch {
		case helloOK:
			st.rule.PeerRcvBuf = peer
			st.rule.Why += "; the receiver reported its bound: " + pages.Human(peer)
		case spec.Format == FormatNative:
			st.rule.Why += "; the receiver reported nothing: worst case for a local peer"
		}
		ringBytes = st.rule.Bytes()
		if spec.Ring > 0 {
			// Zerocopy recycles on the kernel's notifications: any ring is safe.
			if spec.Ring < ringBytes && !spec.Unsafe && spec.Mode != ModeZerocopy {
				return nil, usagef("--ring %d is below the safe size %d (%v); add --unsafe-ring to demonstrate the hazard",
					spec.Ring, ringBytes, st.rule)
			}
			ringBytes = spec.Ring
		}
	}
	// Every stream gets a ring this size: check the total before mapping any of it.
	if total := ringBytes * spec.Streams; total > pages.MaxTotalBytes {
		return nil, usagef("page rings of %d streams need %s (%s each), above the cap of %s: use fewer --streams, smaller --sndbuf/--rcvbuf, or --size",
			spec.Streams, pages.Human(total), pages.Human(ringBytes), pages.Human(pages.MaxTotalBytes))
	}
	if st.ring, err = pages.New(spec.Size, ringBytes); err != nil {
		return nil, err
	}
	st.fillRing()
	if spec.Format == FormatNettest {
		hl := spec.Format.HeaderSize()
		st.nettestCRC = NettestCRC(0, st.ring.Buf(0)[hl:spec.Size])
	}
	if l, ok := c.(proto.Laner); ok && l.Lanes() > 1 {
		st.lanes = l.Lanes()
		st.laneFn = func(fd uintptr) { st.laneErr = l.SetLane(fd, st.lane) }
	}
	if err := st.setStep(st.spliceStep); err != nil {
		return nil, err
	}
	if spec.IO == "block" {
		if err := st.openBlocking(); err != nil {
			return nil, err
		}
	}
	return st, nil
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
		FillPattern(st.ring.Buf(i)[hl:spec.Size], st.id, 0)
	}
}

// openPipe makes the stream's pipe, sized to one message when pipe-max-size allows
// (fcntl(2) F_SETPIPE_SZ; best effort: EPERM/EBUSY keep the current size).
func (st *stream) openPipe() error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return os.NewSyscallError("pipe2", err)
	}
	st.pr, st.pw = p[0], p[1]
	want := pages.RoundUp(st.s.spec.Size)
	if lim, err := pages.Sysctl("fs/pipe-max-size"); err == nil {
		want = min(want, lim)
	}
	unix.FcntlInt(uintptr(st.pw), unix.F_SETPIPE_SZ, want)
	n, err := unix.FcntlInt(uintptr(st.pw), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return os.NewSyscallError("fcntl F_GETPIPE_SZ", err)
	}
	st.pipeCap = n
	return nil
}

// openBlocking dups the socket and clears O_NONBLOCK so the stream's locked thread can
// block in the kernel instead of parking in the poller. O_NONBLOCK is per open file
// description, shared with Go's fd: only this dup is used for I/O from here on.
// SO_SNDTIMEO bounds each blocked call so a stop request is seen within 100 ms.
func (st *stream) openBlocking() error {
	var serr error
	err := st.rc.Control(func(fd uintptr) {
		if st.blockd, serr = unix.Dup(int(fd)); serr != nil {
			return
		}
		if serr = unix.SetNonblock(st.blockd, false); serr != nil {
			return
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		serr = unix.SetsockoptTimeval(st.blockd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	})
	if err != nil {
		return err
	}
	return serr
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
	if st.zc != nil {
		s.ZCCompleted, s.ZCCopied = st.zc.t.completions, st.zc.t.copied
	}
	if st.pace != nil {
		s.PaceSleeps = st.pace.Sleeps
	}
	st.dgramStats(&s)
	return s
}

// run is the send loop of one stream.
func (st *stream) run() error {
	// One OS thread per stream (DESIGN.md): the blocking variant needs it, and pinning
	// (--cpu) then applies to a stream, not to whichever thread the scheduler picked.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st.u != nil && st.u.mm != nil { // mmsg, gso
		return st.runBatch()
	}
	spec := &st.s.spec
	size := uint64(spec.Size)
	var now int64
	var idx int // ring buffer of the current message (zerocopy bookkeeping)
	for seq := uint64(0); st.limit < 0 || seq < uint64(st.limit); seq++ {
		if st.s.stop.Load() {
			break
		}
		if st.pace != nil && !st.pace.Wait(1, &st.s.stop) {
			break
		}
		// The send timestamp is read every 16 messages, not per message: it is for
		// coarse latency, and the clock read would otherwise show up at packet rates.
		if seq&15 == 0 {
			now = time.Now().UnixNano()
		}
		if spec.HotBuffer {
			st.msg = st.ring.Buf(0)[:spec.Size]
		} else {
			buf, off := st.ring.Next()
			st.msg, st.off = buf[:spec.Size], off
			if st.zc != nil {
				idx = int(off) / len(buf)
				if err := st.zcReclaim(idx); err != nil {
					if st.s.stop.Load() {
						return nil
					}
					return fmt.Errorf("stream %d, message %d: waiting for zerocopy completion: %w", st.id, seq, err)
				}
			}
		}
		st.frame(seq, now)
		if st.lanes > 1 {
			st.lane = int(seq % uint64(st.lanes))
			if err := st.rc.Control(st.laneFn); err != nil || st.laneErr != nil {
				return fmt.Errorf("stream %d, message %d: %w", st.id, seq, errors.Join(err, st.laneErr))
			}
		}
		st.done, st.more = 0, st.limit < 0 || seq+1 < uint64(st.limit)
		if err := st.send(); err != nil {
			if st.s.stop.Load() {
				return nil // stopped mid-message: not an error, the message is not counted
			}
			return fmt.Errorf("stream %d, message %d: %w", st.id, seq, err)
		}
		if st.zc != nil {
			st.zc.last[idx], st.zc.used[idx] = st.zc.t.next-1, true
		}
		if seq&sndbufEvery == sndbufEvery && st.ring.Len() > 1 {
			st.sampleSndbuf()
		}
		st.c.Bytes.Add(size)
		st.c.Messages.Add(1)
	}
	if st.zc != nil {
		st.zcFinish()
	}
	return nil
}

// sndbufEvery+1 messages between SO_SNDBUF samples (one getsockopt, no allocation).
const sndbufEvery = 1023

// sampleSndbuf re-reads SO_SNDBUF: TCP autotuning grows it during the run
// (tcp_sndbuf_expand, up to tcp_wmem[2]). The ring was sized for that limit up front —
// the rule clamps rather than grows the ring mid-run — so a sample above the rule's
// input would mean the rule's assumption broke; the report shows the largest sample.
func (st *stream) sampleSndbuf() {
	if st.sndbufFn == nil {
		st.sndbufFn = func(fd uintptr) {
			if v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF); err == nil {
				st.sndbufSeen = max(st.sndbufSeen, v)
			}
		}
	}
	st.rc.Control(st.sndbufFn)
}

// zcFinish waits (two seconds at most) for the last notifications, so the COPIED count
// covers the whole run.
func (st *stream) zcFinish() {
	z := st.zc
	if z.t.next == z.t.base {
		return
	}
	st.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	z.target = z.t.next - 1
	for !z.t.doneThrough(z.target) && st.rc.Write(z.waitFn) == nil && z.err == nil {
	}
}

// frame writes the header (and with --verify the payload) of message seq into st.msg.
func (st *stream) frame(seq uint64, now int64) {
	spec := &st.s.spec
	switch spec.Format {
	case FormatNative:
		h := Header{Streams: uint16(spec.Streams), Stream: st.id, Length: uint32(len(st.msg) - HeaderLen),
			Seq: seq, TimeNS: now, Lanes: uint32(st.lanes)}
		if spec.Verify {
			p := st.msg[HeaderLen:]
			FillPattern(p, st.id, seq)
			h.Flags, h.CRC = FlagVerify, CRC32C(p)
		}
		h.Put(st.msg)
	case FormatNettest:
		crc := st.nettestCRC
		if spec.Verify {
			p := st.msg[NettestHeaderLen:]
			FillPattern(p, st.id, seq)
			crc = NettestCRC(0, p)
		}
		PutNettest(st.msg, len(st.msg), crc)
	}
}

// send hands st.msg to the socket. Poll IO runs the step inside RawConn.Write, which
// parks the goroutine in the netpoller whenever the step returns false (only after
// EAGAIN: the poller is edge-triggered, internal/poll). Block IO calls the step on the
// dup'd blocking fd; EAGAIN there means SO_SNDTIMEO expired.
//
// Poll is the default. Measured here (TCP loopback, 64 KiB, 2 GiB runs, sender on CPU0,
// receiver on CPU1, 4 interleaved runs): poll 277/309/320/295 ms CPU per GiB, block
// 322/362/290/308. On loopback the sender is the bottleneck (it also runs the receive
// softirq), so the socket is rarely full: ~2 EAGAIN waits per 2 GiB, and parking in the
// poller costs nothing measurable. Poll keeps deadlines (Stop's grace) and Close working.
func (st *stream) send() error {
	if st.blockd < 0 {
		if err := st.rc.Write(st.step); err != nil {
			return err
		}
		return st.err
	}
	for !st.step(uintptr(st.blockd)) {
		if st.s.stop.Load() {
			return errors.New("stopped while the socket stayed full")
		}
	}
	return st.err
}

// spliceStep moves st.msg through the pipe into the socket. Invariant (as in Go's
// internal/poll/splice_linux.go): the pipe is empty between messages, so an EAGAIN from
// splice() can only mean the socket is full. A message larger than the pipe goes in
// pipe-sized chunks, each drained before the next is vmspliced, so vmsplice never blocks.
func (st *stream) spliceStep(fd uintptr) bool {
	for {
		if st.inPipe == 0 {
			if st.done == len(st.msg) {
				return true
			}
			n := min(len(st.msg)-st.done, st.pipeCap)
			st.iov[0].Base = &st.msg[st.done]
			st.iov[0].SetLen(n)
			// vmsplice(2) without SPLICE_F_GIFT: the pipe references our pages (GIFT
			// changed nothing in our measurements, KERNEL-FACTS.md).
			m, err := unix.Vmsplice(st.pw, st.iov[:], 0)
			st.vmCalls++
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				st.err = os.NewSyscallError("vmsplice", err)
				return true
			}
			st.done += m
			st.inPipe = m
			st.vmBytes += uint64(m)
		}
		// SPLICE_F_MORE (splice(2)): more data follows, the socket may cork; left off on
		// the last chunk of the last message so nothing waits for a send that never comes.
		flags := 0
		if st.more || st.done < len(st.msg) {
			flags = unix.SPLICE_F_MORE
		}
		n, err := unix.Splice(st.pr, nil, int(fd), nil, st.inPipe, flags)
		st.spCalls++
		switch {
		case err == unix.EAGAIN:
			st.waits++
			return false
		case err == unix.EINTR:
			continue
		case err != nil:
			st.err = os.NewSyscallError("splice", err)
			return true
		case n == 0:
			st.err = errors.New("splice: socket accepted 0 bytes")
			return true
		}
		st.inPipe -= int(n)
	}
}

// writeStep is the copy baseline: write(2) from one buffer, rewritten at will.
func (st *stream) writeStep(fd uintptr) bool {
	for st.done < len(st.msg) {
		n, err := unix.Write(int(fd), st.msg[st.done:])
		st.wrCalls++
		switch {
		case err == unix.EAGAIN:
			st.waits++
			return false
		case err == unix.EINTR:
			continue
		case err != nil:
			st.err = os.NewSyscallError("write", err)
			return true
		}
		st.done += n
	}
	return true
}

// sendfileStep sends st.msg from the ring's memfd with sendfile(2): the socket takes
// references to the memfd's pages, the same hazard as vmsplice, so it shares the ring.
func (st *stream) sendfileStep(fd uintptr) bool {
	for st.done < len(st.msg) {
		st.sfOff = st.off + int64(st.done)
		n, err := unix.Sendfile(int(fd), st.ring.Fd(), &st.sfOff, len(st.msg)-st.done)
		st.sfCalls++
		switch {
		case err == unix.EAGAIN:
			st.waits++
			return false
		case err == unix.EINTR:
			continue
		case err != nil:
			st.err = os.NewSyscallError("sendfile", err)
			return true
		case n == 0:
			st.err = errors.New("sendfile: socket accepted 0 bytes")
			return true
		}
		st.done += n
	}
	return true
}

// readHello reads the receiver's report (gen.PutHello), waiting at most two seconds.
func readHello(c proto.Conn) (int, bool) {
	var h [HelloLen]byte
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return 0, false
	}
	v, err := ParseHello(h[:])
	if err != nil || v == 0 || v > 1<<40 {
		return 0, false
	}
	return int(v), true
}
