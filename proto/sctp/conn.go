package sctp

import (
	"errors"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	lib "github.com/ishidawataru/sctp"

	"github.com/splicegen/splicegen/proto"
	"golang.org/x/sys/unix"
)

// Conn is an SCTP association on Go's netpoller.
type Conn struct {
	f    *os.File
	rc   syscall.RawConn
	o    proto.Options
	note string // the buffer sizes sized chose, if it chose

	// Send side: the default SCTP_SNDINFO, rewritten per message to rotate stream ids.
	snd sndInfo
	// Receive side: preallocated recvmsg state (ReadMessage allocates nothing).
	msg   unix.Msghdr
	iov   unix.Iovec
	oob   [64]byte
	rn    int
	rflag int
	rerr  error
	readF func(fd uintptr) bool
}

func newConn(fd int, o proto.Options) (*Conn, error) {
	f := os.NewFile(uintptr(fd), "sctp")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	c := &Conn{f: f, rc: rc, o: o}
	c.readF = c.recvmsg
	if o.PPID != 0 {
		c.snd.PPID = o.PPID
		if err := proto.Control(rc, func(fd int) error { return c.setSndInfo(uintptr(fd)) }); err != nil {
			f.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Conn) Read(b []byte) (int, error)         { return c.f.Read(b) }
func (c *Conn) Write(b []byte) (int, error)        { return c.f.Write(b) }
func (c *Conn) Close() error                       { return c.f.Close() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	return c.rc, nil
}

func (c *Conn) LocalAddr() net.Addr  { return c.addr(unix.Getsockname) }
func (c *Conn) RemoteAddr() net.Addr { return c.addr(unix.Getpeername) }

func (c *Conn) addr(get func(int) (unix.Sockaddr, error)) net.Addr {
	var a net.Addr
	if proto.Control(c.rc, func(fd int) error {
		sa, err := get(fd)
		a = sockaddrToAddr(sa)
		return err
	}) != nil {
		return nil
	}
	return a
}

func sockaddrToAddr(sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &lib.SCTPAddr{IPAddrs: []net.IPAddr{{IP: net.IP(sa.Addr[:])}}, Port: sa.Port}
	case *unix.SockaddrInet6:
		return &lib.SCTPAddr{IPAddrs: []net.IPAddr{{IP: net.IP(sa.Addr[:])}}, Port: sa.Port}
	}
	return nil
}

// CloseWriteEndsBoth marks SCTP as a proto.FullCloser: shutdown(2) is not a half-close.
func (c *Conn) CloseWriteEndsBoth() {}

// CloseWrite starts SCTP's graceful shutdown (shutdown(2) SHUT_WR sends SHUTDOWN once
// all queued data is acknowledged; the peer reads EOF).
func (c *Conn) CloseWrite() error {
	return proto.Control(c.rc, func(fd int) error { return os.NewSyscallError("shutdown", unix.Shutdown(fd, unix.SHUT_WR)) })
}

// Buffers: SCTP does not autotune its send buffer like TCP, but sctp_wmem bounds it;
// a local peer may queue up to max(sctp_rmem[2], 2*rmem_max), or 2*DefaultBuf: a
// splicegen receiver without --rcvbuf asks for DefaultBuf, which root gets past
// rmem_max (SO_RCVBUFFORCE) and the kernel doubles (socket(7)). splice into SCTP copies
// (no MSG_SPLICE_PAGES), so only the pipe holds our pages; the generic rule is kept
// anyway until that is measured per kernel.
func (c *Conn) Buffers() (proto.Buffers, error) {
	b, err := proto.Autotuned(c, c.o, "net/sctp/sctp_wmem", "net/sctp/sctp_rmem", [3]int{4096, 16384, 4 << 20}, [3]int{4096, 131072, 6 << 20})
	b.PeerRcvBufMax = max(b.PeerRcvBufMax, 2*DefaultBuf)
	b.Why = "sctp: local peer may queue max(sctp_rmem[2], 2*rmem_max, 2*4 MiB splicegen default); the kernel copies spliced data"
	if c.note != "" {
		b.Why = c.note + "; " + b.Why
	}
	return b, err
}

// Lanes is the number of stream ids messages rotate over.
func (c *Conn) Lanes() int { return max(1, c.o.Lanes) }

// SetLane makes stream id lane the default for the next messages
// (SCTP_DEFAULT_SNDINFO, RFC 6458 §8.1.31). splice(2) and write(2) pass no cmsg, so
// the default is the only way to choose the stream: one setsockopt per message.
func (c *Conn) SetLane(fd uintptr, lane int) error {
	c.snd.SID = uint16(lane)
	return c.setSndInfo(fd)
}

func (c *Conn) setSndInfo(fd uintptr) error {
	if err := setsockopt(int(fd), sctpDefaultSndInfo, unsafe.Pointer(&c.snd), unsafe.Sizeof(c.snd)); err != nil {
		return os.NewSyscallError("setsockopt SCTP_DEFAULT_SNDINFO", err)
	}
	return nil
}

// ReadMessage reads (part of) one SCTP message: recvmsg(2) with the SCTP_RCVINFO cmsg
// for the stream id; MSG_EOR marks the message's last byte (sctp_recvmsg).
func (c *Conn) ReadMessage(b []byte) (n int, lane int, eor bool, err error) {
	if len(b) == 0 {
		return 0, 0, false, errors.New("sctp: empty read buffer")
	}
	c.iov.Base = &b[0]
	c.iov.SetLen(len(b))
	if err := c.rc.Read(c.readF); err != nil {
		return 0, 0, false, err
	}
	if c.rerr != nil {
		return 0, 0, false, c.rerr
	}
	lane = -1
	if d := proto.FindCmsg(c.oob[:c.msg.Controllen], solSCTP, cmsgRcvInfo); len(d) >= int(unsafe.Sizeof(rcvInfo{})) {
		lane = int((*rcvInfo)(unsafe.Pointer(&d[0])).SID)
	}
	if c.rn > 0 && lane < 0 {
		return 0, 0, false, errors.New("sctp: message without SCTP_RCVINFO")
	}
	return c.rn, lane, c.rflag&unix.MSG_EOR != 0, nil
}

func (c *Conn) recvmsg(fd uintptr) bool {
	c.msg = unix.Msghdr{Iov: &c.iov, Iovlen: 1, Control: &c.oob[0]}
	c.msg.SetControllen(len(c.oob))
	n, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.msg)), 0)
	if e == unix.EAGAIN {
		return false
	}
	c.rn, c.rflag, c.rerr = int(n), int(c.msg.Flags), nil
	if e != 0 {
		c.rn, c.rerr = 0, os.NewSyscallError("recvmsg", e)
	}
	if c.rflag&lib.MSG_NOTIFICATION != 0 { // no events are subscribed; never data
		c.rerr = errors.New("sctp: unexpected notification")
	}
	return true
}
