package sink

import (
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/splicegen/splicegen/proto"
	"golang.org/x/sys/unix"
)

// The read sink: read(2) into a buffer, raw on the non-blocking socket (raw.go), with
// SO_RCVLOWAT raised while data flows fast.

// readBuf is the read sink's buffer: big enough that one read drains a lot of the
// socket's queue (fewer syscalls), allocated once per admitted connection.
const readBuf = 256 << 10

func (r *Receiver) drainRead(c proto.Conn, ck *checker) error {
	buf := make([]byte, readBuf)
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var n int
	var rerr error
	fill := func(fd uintptr) bool { // bound once per stream: no allocation per read
		n, rerr = read(fd, buf)
		return rerr != unix.EAGAIN
	}
	lw := lowat{rc: rc, c: c}
	var msgs uint64 // the checker's count at the last read
	for {
		if err := rc.Read(fill); err != nil {
			if lw.expired(err) {
				continue // a slow flow: woken at any byte again
			}
			return err // closed (idle, interrupt) or the poller failed
		}
		switch proto.Classify(rerr) {
		case proto.Retry:
			continue
		case proto.Fail:
			return os.NewSyscallError("read", rerr)
		}
		if n == 0 {
			return nil // EOF
		}
		ck.feed(buf[:n])
		r.progress.Add(uint64(n))
		r.msgs.Add(ck.st.Messages - msgs)
		msgs = ck.st.Messages
		ck.publish(&r.corrupt)
		if r.cfg.Stall > 0 {
			time.Sleep(r.cfg.Stall)
		} else {
			lw.after(n)
		}
	}
}

// lowat raises SO_RCVLOWAT (socket(7)) while data flows fast, so the reader wakes once
// per readBuf instead of once per arriving segment burst: measured on main, the read
// sink woke 11.3k times per GiB (reads of 57 KiB on average) and each wake-up is paid
// by the sender too, in the loopback softirq (sock_def_readable: 11.6% of its perf
// samples); with the raw read alone the receiver got cheaper and the sender dearer.
// TCP still wakes a reader below the mark at FIN and when the window is nearly closed
// (tcp_epollin_ready, net/ipv4/tcp.c), and the mark falls back to 1 byte when nothing
// wakes the reader for lowatWait: a slow or paused flow is read as it comes. The mark
// also falls back when it took longer than lowatFill to reach: below ~2 Gbit/s the wait
// for a full buffer would be what the one-way latency measures (sink/latency.go), and
// the wake-ups it saves are few.
type lowat struct {
	rc   syscall.RawConn
	c    proto.Conn
	high bool
	mark int
	last time.Time // the previous wake-up
}

const (
	lowatWait = 200 * time.Millisecond
	lowatFill = time.Millisecond
	lowatMin  = readBuf / 4 // a read this full says data is queuing
)

// after raises the mark after a full read, and pushes the fall-back deadline on.
func (l *lowat) after(n int) {
	now := time.Now()
	slow := now.Sub(l.last) > lowatFill
	l.last = now
	if l.high && slow {
		l.high = false
		l.c.SetReadDeadline(time.Time{})
		l.set(1)
		return
	}
	if !l.high && n >= lowatMin {
		if l.mark == 0 {
			// The kernel's own cap (tcp_set_rcvlowat, net/ipv4/tcp.c): half a locked buffer;
			// an autotuned one is raised to hold the mark (commit d1361840f8c5), so the cap
			// is half its limit. Capping at half the buffer of the moment, as before, gave
			// 64 KiB marks (the buffer starts at tcp_rmem[1], 128 KiB) and 4x the wake-ups;
			// measured: TCP 64 KiB pinned, 4 GiB x 3, receiver 170 → 120 ms/GiB, sender
			// 290 → 185 ms/GiB (docs/results.md#receiver-wake-ups).
			l.mark = readBuf
			if b, err := l.c.Buffers(); err == nil && b.RcvBufMax > 0 {
				l.mark = min(l.mark, b.RcvBufMax/2)
			}
		}
		if l.mark < lowatMin || l.set(l.mark) != nil {
			l.mark = -1 // never again on this socket
			return
		}
		l.high = true
	}
	if l.high {
		l.c.SetReadDeadline(now.Add(lowatWait))
	}
}

// expired says whether err is the fall-back deadline; the mark is then 1 byte again.
func (l *lowat) expired(err error) bool {
	if !l.high || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	l.high = false
	l.c.SetReadDeadline(time.Time{})
	return l.set(1) == nil
}

func (l *lowat) set(v int) error {
	return proto.SetInt(l.rc, unix.SOL_SOCKET, unix.SO_RCVLOWAT, v, "SO_RCVLOWAT")
}
