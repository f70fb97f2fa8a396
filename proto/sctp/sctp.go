// Package sctp is the SCTP plugin: one-to-one style sockets (SOCK_STREAM, IPPROTO_SCTP).
//
// github.com/ishidawataru/sctp gives address parsing (multi-homing "h1/h2:port"), bindx
// and connectx. Its SCTPConn is not used for I/O: its sockets block outside Go's
// netpoller, deadlines return EOPNOTSUPP and Close sends SCTP_EOF to fd -1
// (docs/kernel.md#sctp). splicegen owns the fd instead: SOCK_NONBLOCK, os.NewFile (which
// registers a non-blocking fd with the poller), SyscallConn for the data path, and a
// non-blocking connect finished by waiting for writability and reading SO_ERROR (the
// mdlayher/socket pattern). Deadlines and Close then work as for TCP.
package sctp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	lib "github.com/ishidawataru/sctp"
	"github.com/splicegen/splicegen/proto"
	"golang.org/x/sys/unix"
)

func init() { proto.Register(Plugin{}) }

// From include/uapi/linux/sctp.h (x/sys/unix has none of them).
const (
	solSCTP            = 132 // SOL_SCTP
	sctpInitMsg        = 2   // SCTP_INITMSG
	sctpNoDelay        = 3   // SCTP_NODELAY
	sctpStatus         = 14  // SCTP_STATUS
	sctpRecvRcvInfo    = 32  // SCTP_RECVRCVINFO
	sctpDefaultSndInfo = 34  // SCTP_DEFAULT_SNDINFO
	cmsgRcvInfo        = 3   // SCTP_RCVINFO (enum sctp_cmsg_type)
)

// sndInfo is struct sctp_sndinfo (RFC 6458 §5.3.4).
type sndInfo struct {
	SID     uint16
	Flags   uint16
	PPID    uint32
	Context uint32
	AssocID int32
}

// rcvInfo is struct sctp_rcvinfo (RFC 6458 §5.3.5), 28 bytes.
type rcvInfo struct {
	SID     uint16
	SSN     uint16
	Flags   uint16
	_       uint16
	PPID    uint32
	TSN     uint32
	CumTSN  uint32
	Context uint32
	AssocID int32
}

// Plugin implements proto.Plugin for SCTP.
type Plugin struct{}

// ErrNoSCTP is the kernel-lacks-SCTP answer (exit status 2).
var ErrNoSCTP = proto.KernelLacks("SCTP not supported by this kernel: socket: protocol not supported; load the sctp module or use a kernel with CONFIG_IP_SCTP")

// Traits: reliable messages over sub-streams (stream ids); splice runs but the kernel
// copies (SCTP never got MSG_SPLICE_PAGES; before 6.5 it used sock_no_sendpage).
func (Plugin) Traits() proto.Traits {
	return proto.Traits{
		Name:  "sctp",
		Kind:  proto.KindMessage,
		Modes: []string{"splice", "write"},
		Sinks: []string{"read"},
		Refused: map[string]string{
			"sendfile":    "not built for SCTP: the kernel copies page-passing sends into SCTP anyway",
			"zerocopy":    "SCTP has no MSG_ZEROCOPY",
			"mmsg":        "sendmmsg batches datagrams",
			"gso":         "UDP_SEGMENT cuts UDP datagrams",
			"sink splice": "the receiver needs recvmsg for message boundaries and stream ids",
		},
		DefaultSize: 64 << 10,
		LossFails:   true,
		Lanes:       true,
		Notes: map[string]string{"splice": "splice into SCTP is copied by the kernel (SCTP has no MSG_SPLICE_PAGES; 6.1 used sock_no_sendpage): " +
			"compare splice's sender sys time with write's"},
		Compare: proto.CompareDefaults{Modes: "splice,write", Sizes: "64KiB", Limit: "--bytes=4GiB"},
		Probe:   probe,
	}
}

func probe() []proto.Capability {
	return []proto.Capability{
		{Name: "sctp socket", Err: kernelErr(proto.ProbeSocket(unix.SOCK_STREAM, unix.IPPROTO_SCTP))},
		{Name: "splice into sctp", Detail: "vmsplice+splice of one page over loopback", Err: kernelErr(proto.ProbeSplice(unix.SOCK_STREAM, unix.IPPROTO_SCTP))},
	}
}

// kernelErr maps "no SCTP in this kernel" (EPROTONOSUPPORT from socket(2), net/socket.c
// when no family handles the protocol) to ErrNoSCTP.
func kernelErr(err error) error {
	if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ESOCKTNOSUPPORT) {
		return ErrNoSCTP
	}
	return err
}

// socket makes a non-blocking one-to-one SCTP socket.
func socket(family int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	return fd, kernelErr(os.NewSyscallError("socket", err))
}

func family(a *lib.SCTPAddr) int {
	for _, ip := range a.IPAddrs {
		if ip.IP.To4() == nil {
			return unix.AF_INET6
		}
	}
	return unix.AF_INET
}

// setup applies the options every splicegen SCTP socket gets.
func setup(fd int, o proto.Options, ostreams, instreams uint16) error {
	if err := proto.SetBuffers(fd, o); err != nil {
		return err
	}
	// SCTP_INITMSG (RFC 6458 §8.1.3): stream counts asked for in the INIT.
	im := lib.InitMsg{NumOstreams: ostreams, MaxInstreams: instreams}
	if err := setsockopt(fd, sctpInitMsg, unsafe.Pointer(&im), unsafe.Sizeof(im)); err != nil {
		return os.NewSyscallError("setsockopt SCTP_INITMSG", err)
	}
	if o.NoDelay {
		if err := unix.SetsockoptInt(fd, solSCTP, sctpNoDelay, 1); err != nil {
			return os.NewSyscallError("setsockopt SCTP_NODELAY", err)
		}
	}
	// SCTP_RECVRCVINFO: every recvmsg carries an SCTP_RCVINFO cmsg with the stream id.
	if err := unix.SetsockoptInt(fd, solSCTP, sctpRecvRcvInfo, 1); err != nil {
		return os.NewSyscallError("setsockopt SCTP_RECVRCVINFO", err)
	}
	return nil
}

func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), solSCTP, uintptr(opt), uintptr(p), n, 0)
	if e != 0 {
		return e
	}
	return nil
}

func getsockopt(fd, opt int, p unsafe.Pointer, n *uint32) error {
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), solSCTP, uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(n)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// Dial connects to addr ("host:port", or "h1/h2:port" for a multi-homed peer).
func (Plugin) Dial(ctx context.Context, addr string, o proto.Options) (proto.Conn, error) {
	ra, err := lib.ResolveSCTPAddr("sctp", addr)
	if err != nil {
		return nil, err
	}
	fd, err := socket(family(ra))
	if err != nil {
		return nil, err
	}
	lanes := max(1, o.Lanes)
	if lanes > 65535 {
		unix.Close(fd)
		return nil, fmt.Errorf("--sctp-streams %d: at most 65535", lanes)
	}
	if err := setup(fd, o, uint16(lanes), uint16(lanes)); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// sctp_connectx(3) through the library; on a non-blocking socket it returns
	// EINPROGRESS and the association completes in the background (connect(2)).
	if _, err := lib.SCTPConnect(fd, ra); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return nil, os.NewSyscallError("connect", err)
	}
	c, err := newConn(fd, o)
	if err != nil {
		return nil, err
	}
	if err := c.finishConnect(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.checkStreams(lanes); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// finishConnect waits for writability, then reads SO_ERROR (connect(2), EINPROGRESS).
func (c *Conn) finishConnect(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		c.f.SetWriteDeadline(dl)
		defer c.f.SetWriteDeadline(time.Time{})
	}
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			serr = os.NewSyscallError("getsockopt SO_ERROR", err)
			return true
		}
		if v == int(unix.EINPROGRESS) || v == int(unix.EALREADY) {
			return false
		}
		if v != 0 {
			serr = os.NewSyscallError("connect", unix.Errno(v))
		}
		return true
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	// sctp_poll (net/sctp/socket.c) reports a connecting one-to-one socket writable as
	// soon as it has send-buffer space, before the association is up, and SCTP_STATUS
	// answers EINVAL until it is ESTABLISHED (sctp_id2assoc). Nothing in the poller
	// signals that moment, so wait for it with short, growing sleeps, bounded by ctx.
	wait := time.Millisecond
	for {
		_, err := c.status()
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("connect: %w", err)
		}
		if v, err := proto.GetInt(c.rc, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && v != 0 {
			return os.NewSyscallError("connect", unix.Errno(v))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connect: association not established: %w", ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// status reads SCTP_STATUS: the negotiated stream counts.
func (c *Conn) status() (lib.Status, error) {
	var st lib.Status
	n := uint32(unsafe.Sizeof(st))
	err := proto.Control(c.rc, func(fd int) error {
		return os.NewSyscallError("getsockopt SCTP_STATUS", getsockopt(fd, sctpStatus, unsafe.Pointer(&st), &n))
	})
	return st, err
}

func (c *Conn) checkStreams(lanes int) error {
	st, err := c.status()
	if err != nil {
		return err
	}
	if int(st.Ostreams) < lanes {
		return fmt.Errorf("--sctp-streams %d: the peer granted only %d outbound streams", lanes, st.Ostreams)
	}
	return nil
}

// Listen binds addr ("host:port", "h1/h2:port" or ":port").
func (Plugin) Listen(addr string, o proto.Options) (proto.Listener, error) {
	la, err := lib.ResolveSCTPAddr("sctp", addr)
	if err != nil {
		return nil, err
	}
	fd, err := socket(family(la))
	if err != nil {
		return nil, err
	}
	if err := setup(fd, o, 10, 65535); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setsockopt SO_REUSEADDR", err)
	}
	if err := lib.SCTPBind(fd, la, lib.SCTP_BINDX_ADD_ADDR); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("listen", err)
	}
	return newListener(fd, o)
}

// FileListener adopts an inherited listening SCTP socket.
func (Plugin) FileListener(f *os.File, o proto.Options) (proto.Listener, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// The parent made the socket without our options (see proto/tcp FileListener).
	if err := proto.SetBuffers(fd, o); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return newListener(fd, o)
}

type listener struct {
	f  *os.File
	rc syscall.RawConn
	o  proto.Options
	la net.Addr
}

func newListener(fd int, o proto.Options) (*listener, error) {
	f := os.NewFile(uintptr(fd), "sctp-listener")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	l := &listener{f: f, rc: rc, o: o}
	if sa, err := unix.Getsockname(fd); err == nil {
		l.la = sockaddrToAddr(sa)
	}
	return l, nil
}

func (l *listener) Addr() net.Addr { return l.la }
func (l *listener) Close() error   { return l.f.Close() }

func (l *listener) File() (*os.File, error) {
	var nfd int
	err := proto.Control(l.rc, func(fd int) error {
		var err error
		nfd, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		return os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(nfd), "sctp-listener"), nil
}

func (l *listener) Accept() (proto.Conn, error) {
	var nfd int
	var serr error
	err := l.rc.Read(func(fd uintptr) bool {
		nfd, _, serr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		return serr != unix.EAGAIN
	})
	if err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, os.NewSyscallError("accept", serr)
	}
	// The accepted socket inherits the listener's options in sctp_copy_sock; set the
	// receive info again anyway, it is what the receiver depends on.
	if err := unix.SetsockoptInt(nfd, solSCTP, sctpRecvRcvInfo, 1); err != nil {
		unix.Close(nfd)
		return nil, os.NewSyscallError("setsockopt SCTP_RECVRCVINFO", err)
	}
	return newConn(nfd, l.o)
}

// Conn is an SCTP association on Go's netpoller.
type Conn struct {
	f  *os.File
	rc syscall.RawConn
	o  proto.Options

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

// CloseWrite starts SCTP's graceful shutdown (shutdown(2) SHUT_WR sends SHUTDOWN once
// all queued data is acknowledged; the peer reads EOF).
func (c *Conn) CloseWrite() error {
	return proto.Control(c.rc, func(fd int) error { return os.NewSyscallError("shutdown", unix.Shutdown(fd, unix.SHUT_WR)) })
}

// Buffers: SCTP does not autotune its send buffer like TCP, but sctp_wmem bounds it;
// a local peer may queue up to max(sctp_rmem[2], 2*rmem_max). splice into SCTP copies
// (no MSG_SPLICE_PAGES), so only the pipe holds our pages; the generic rule is kept
// anyway until that is measured per kernel.
func (c *Conn) Buffers() (proto.Buffers, error) {
	b, err := proto.ReadBuffers(c.rc)
	if err != nil {
		return b, err
	}
	wmem, err1 := proto.Sysctl3("net/sctp/sctp_wmem")
	rmem, err2 := proto.Sysctl3("net/sctp/sctp_rmem")
	rmemMax, err3 := proto.Sysctl("net/core/rmem_max")
	if err1 != nil || err2 != nil || err3 != nil {
		wmem, rmem, rmemMax = [3]int{4096, 16384, 4 << 20}, [3]int{4096, 131072, 6 << 20}, 4<<20
	}
	b.SndBufMax = b.SndBuf
	if c.o.SndBuf == 0 {
		b.SndBufMax = max(b.SndBuf, wmem[2])
	}
	b.RcvBufMax = b.RcvBuf
	if c.o.RcvBuf == 0 {
		b.RcvBufMax = max(b.RcvBuf, rmem[2])
	}
	b.PeerRcvBufMax = max(rmem[2], 2*rmemMax)
	b.Why = "sctp: sndbuf up to sctp_wmem[2]; local peer may queue max(sctp_rmem[2], 2*rmem_max); the kernel copies spliced data"
	return b, nil
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
