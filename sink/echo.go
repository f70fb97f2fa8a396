package sink

import (
	"syscall"
	"unsafe"

	"github.com/splicegen/splicegen/wire"
	"golang.org/x/sys/unix"
)

// Echoes (send --rtt, wire/echo.go): the receiver reflects the header of every message
// flagged FlagRTT, one echo per flagged message, without ever blocking its receive loop:
// send(2) with MSG_DONTWAIT, and an echo that finds the reverse path full is dropped
// and counted. MSG_NOSIGNAL: a sender gone is EPIPE, not SIGPIPE (send(2)).

// echoer reflects on one byte stream (the connection's reverse direction). A stream's
// framing must stay whole: an echo the socket took only in part is finished before the
// next one is tried (which is dropped meanwhile), and before the verdict (flushEcho).
type echoer struct {
	rc       syscall.RawConn
	buf      [wire.EchoLen]byte
	off, end int // buf[off:end] not sent yet
	err      error
	fn       func(fd uintptr) // bound once: no allocation per echo
	sent     uint64
	dropped  uint64
}

func newEchoer(rc syscall.RawConn) *echoer {
	e := &echoer{rc: rc}
	e.fn = func(fd uintptr) {
		if e.sent+e.dropped == 0 {
			// No Nagle on the echoes (tcp(7) TCP_NODELAY): an echo must not wait for the
			// previous one's ACK. Only echoes and the verdict go this way.
			unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		}
		for e.off < e.end {
			n, err := sys(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&e.buf[e.off])), uintptr(e.end-e.off),
				unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
			switch err {
			case nil:
				e.off += int(n)
			case unix.EINTR:
			case unix.EAGAIN:
				return
			default:
				e.err = err // the sender is gone: echo no more
				return
			}
		}
	}
	return e
}

// reflect echoes message header h.
func (e *echoer) reflect(h *wire.Header) {
	if e.off < e.end && e.err == nil {
		e.rc.Control(e.fn) // the previous echo's rest first
	}
	if e.off < e.end || e.err != nil {
		e.dropped++
		return
	}
	wire.PutEcho(e.buf[:], h)
	e.off, e.end = 0, wire.EchoLen
	e.rc.Control(e.fn)
	if e.off == 0 {
		e.end = 0 // nothing went: the whole echo is dropped
		e.dropped++
		return
	}
	e.sent++
}

// rest is the unsent part of an echo the socket took in part (written before the verdict).
func (e *echoer) rest() []byte {
	if e == nil || e.err != nil {
		return nil
	}
	return e.buf[e.off:e.end]
}

// reflect echoes datagram header h to its source (the bound socket's sendto, without
// waiting), only to the address the test came from: a spoofed source cannot turn the
// receiver into a reflector towards a third host.
func (r *DgramReceiver) reflect(h *wire.Header) {
	r.rtt = true // keep reading sources (msg_name) from here on
	if r.src == nil || !sameHost(r.src, &r.peerSA) {
		r.echoDrops++
		return
	}
	wire.PutEcho(r.echo[:], h)
	r.rc.Control(r.echoFn)
	if r.echoErr != nil {
		r.echoDrops++
		return
	}
	r.echoes++
}

// echoTo is bound once per receiver (no allocation per echo).
func (r *DgramReceiver) echoTo(fd uintptr) {
	n := uintptr(unix.SizeofSockaddrInet6)
	if r.src.Family == unix.AF_INET {
		n = unix.SizeofSockaddrInet4
	}
	for {
		_, r.echoErr = sys(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&r.echo[0])), wire.EchoLen,
			unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, uintptr(unsafe.Pointer(r.src)), n)
		if r.echoErr != unix.EINTR {
			return
		}
	}
}

// sameHost compares two recvmmsg sources' addresses (not ports: --flows use several).
func sameHost(a, b *unix.RawSockaddrInet6) bool {
	if a.Family != b.Family {
		return false
	}
	if a.Family == unix.AF_INET {
		return (*unix.RawSockaddrInet4)(unsafe.Pointer(a)).Addr == (*unix.RawSockaddrInet4)(unsafe.Pointer(b)).Addr
	}
	return a.Family == unix.AF_INET6 && a.Addr == b.Addr
}
