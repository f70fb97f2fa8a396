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
	"strconv"
	"strings"
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
// Traits are built once (their maps are shared: callers read them, never write).
func (Plugin) Traits() proto.Traits { return traits }

var traits = proto.Traits{
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
	Compare:  proto.CompareDefaults{Modes: "splice,write", Sizes: "64KiB", Limit: "--bytes=4GiB"},
	Probe:    probe,
	Counters: counters,
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

// DefaultBuf is SCTP's send and receive buffer when --sndbuf/--rcvbuf are not given.
// The kernel's default send buffer, sctp_wmem[1] = 16 KiB, is smaller than one 64 KiB
// message and than two full packets, so every message waits for a SACK, which the
// receiver delays by sack_timeout (200 ms; RFC 4960 §6.2 allows up to 500 ms). Measured
// in the Debian 6.1 guest, 16 MiB of 64 KiB splice: 55.8 s and 271 delayed-SACK
// expirations with the defaults, 0.6 s and 1 with 4 MiB both sides (docs/kernel.md#sctp).
// 4 MiB, like UDP's receiver default; root sets it past wmem_max/rmem_max (the FORCE
// options), others get at most those limits.
const DefaultBuf = 4 << 20

// sized fills in the buffer sizes a user did not give, and says so for Buffers.
func sized(o proto.Options) (proto.Options, string) {
	var what []string
	if o.SndBuf == 0 {
		o.SndBuf, what = DefaultBuf, append(what, "sndbuf")
	}
	if o.RcvBuf == 0 {
		o.RcvBuf, what = DefaultBuf, append(what, "rcvbuf")
	}
	if what == nil {
		return o, ""
	}
	return o, "sctp " + strings.Join(what, " and ") + " set to 4 MiB (no --sndbuf/--rcvbuf: the kernel's 16 KiB default makes every message wait for a delayed SACK, docs/kernel.md#sctp)"
}

// counters reads the SCTP counters that explain a slow run (/proc/net/sctp/snmp, per
// network namespace): delayed SACKs that timed out, and retransmission timeouts.
func counters() map[string]uint64 {
	b, err := os.ReadFile("/proc/net/sctp/snmp")
	if err != nil {
		return nil
	}
	m := map[string]uint64{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && (f[0] == "SctpDelaySackExpireds" || f[0] == "SctpT3RtxExpireds") {
			m[f[0]], _ = strconv.ParseUint(f[1], 10, 64)
		}
	}
	return m
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
	o, note := sized(o)
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
	v6 := family(ra) == unix.AF_INET6
	if err := errors.Join(o.Path.Set(fd, v6), o.Path.BindLocal(fd, v6)); err != nil {
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
	c.note = note
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
	o, note := sized(o)
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
	return newListener(fd, o, note)
}

// FileListener adopts an inherited listening SCTP socket.
func (Plugin) FileListener(f *os.File, o proto.Options) (proto.Listener, error) {
	o, note := sized(o)
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
	return newListener(fd, o, note)
}

type listener struct {
	f    *os.File
	rc   syscall.RawConn
	o    proto.Options
	note string // what sized chose
	la   net.Addr
}

func newListener(fd int, o proto.Options, note string) (*listener, error) {
	f := os.NewFile(uintptr(fd), "sctp-listener")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	l := &listener{f: f, rc: rc, o: o, note: note}
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
		// EINTR even on a non-blocking socket: sctp_wait_for_accept (net/sctp/socket.c)
		// returns sock_intr_errno(0) when a signal is pending (Go's preemption signal).
		// Retry at once: waiting for the poller could miss an edge already consumed.
		for nfd, _, serr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC); serr == unix.EINTR; {
			nfd, _, serr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		}
		return serr != unix.EAGAIN
	})
	if err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, os.NewSyscallError("accept", serr)
	}
	// The accepted socket inherits the listener's options in sctp_copy_sock; set the
	// receive info and the buffers again anyway (one accepted before an adopted
	// listener got its options would not have them: see proto/tcp's Accept).
	if err := unix.SetsockoptInt(nfd, solSCTP, sctpRecvRcvInfo, 1); err != nil {
		unix.Close(nfd)
		return nil, os.NewSyscallError("setsockopt SCTP_RECVRCVINFO", err)
	}
	if err := proto.SetBuffers(nfd, l.o); err != nil {
		unix.Close(nfd)
		return nil, err
	}
	c, err := newConn(nfd, l.o)
	if err == nil {
		c.note = l.note
	}
	return c, err
}
