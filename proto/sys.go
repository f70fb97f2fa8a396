package proto

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Control runs f on rc's file descriptor and returns the first error of either: neither
// is ever dropped.
func Control(rc syscall.RawConn, f func(fd int) error) error {
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// SetInt sets an int socket option; the error names the option.
func SetInt(rc syscall.RawConn, level, opt, v int, name string) error {
	return Control(rc, func(fd int) error {
		return os.NewSyscallError("setsockopt "+name, unix.SetsockoptInt(fd, level, opt, v))
	})
}

// GetInt reads an int socket option.
func GetInt(rc syscall.RawConn, level, opt int) (int, error) {
	var v int
	err := Control(rc, func(fd int) error {
		var err error
		v, err = unix.GetsockoptInt(fd, level, opt)
		return os.NewSyscallError("getsockopt", err)
	})
	return v, err
}

// Outcome is what a data-path syscall's errno means for the loop that made it.
type Outcome int

const (
	Done  Outcome = iota // no error
	Retry                // EINTR: a signal interrupted the call; make it again at once
	Wait                 // EAGAIN: the socket is full (send) or empty (receive); park in the poller
	Fail                 // anything else: the call failed
)

// Classify is the one errno classifier of the data path. On a non-blocking socket the
// poller is edge-triggered (internal/poll), so a loop may park only after Wait.
func Classify(err error) Outcome {
	switch err {
	case nil:
		return Done
	case unix.EINTR:
		return Retry
	case unix.EAGAIN:
		return Wait
	}
	return Fail
}

// Mmsghdr is struct mmsghdr (sendmmsg(2), recvmmsg(2)): a msghdr and the byte count the
// kernel fills in, padded to 8 bytes.
type Mmsghdr struct {
	Hdr unix.Msghdr
	Len uint32
	_   [4]byte
}

// SetBuffers applies SO_SNDBUF/SO_RCVBUF requests to fd before bind/connect (socket(7):
// setting them locks autotuning; the kernel doubles the value and caps it at
// wmem_max/rmem_max unless we use the FORCE variants, which root may).
func SetBuffers(fd int, o Options) error {
	for _, b := range []struct {
		n             int
		force, normal int
		name          string
	}{{o.SndBuf, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, "SO_SNDBUF"}, {o.RcvBuf, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, "SO_RCVBUF"}} {
		if b.n <= 0 {
			continue
		}
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, b.force, b.n) == nil {
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, b.normal, b.n); err != nil {
			return os.NewSyscallError("setsockopt "+b.name, err)
		}
	}
	return nil
}

// ControlBuffers is a net.Dialer / net.ListenConfig Control function applying o's buffer
// requests and path options before bind/connect.
func ControlBuffers(o Options) func(string, string, syscall.RawConn) error {
	return func(network, _ string, rc syscall.RawConn) error {
		return Control(rc, func(fd int) error {
			if err := SetBuffers(fd, o); err != nil {
				return err
			}
			return o.Path.Set(fd, v6Network(network))
		})
	}
}

// ReadBuffers reads a socket's effective SO_SNDBUF and SO_RCVBUF; the plugin fills in
// the bounds (how far the kernel may grow them) from its own sysctls.
func ReadBuffers(c syscall.Conn) (Buffers, error) {
	var b Buffers
	rc, err := c.SyscallConn()
	if err != nil {
		return b, err
	}
	if b.SndBuf, err = GetInt(rc, unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil {
		return b, err
	}
	b.RcvBuf, err = GetInt(rc, unix.SOL_SOCKET, unix.SO_RCVBUF)
	return b, err
}

// Autotuned reads the buffers of a socket whose kernel autotunes them (TCP, SCTP) and
// fills in their bounds: without a lock (o.SndBuf/o.RcvBuf 0), the send buffer may grow
// to wmem[2] and the receive buffer to rmem[2] (the sysctls named, "net/ipv4/tcp_wmem"
// say; def when they cannot be read); a receiver on this host may queue up to
// max(rmem[2], 2*rmem_max) — its autotune limit, or the most an explicit SO_RCVBUF can
// get (socket(7): the kernel doubles it).
func Autotuned(c syscall.Conn, o Options, wmemName, rmemName string, defW, defR [3]int) (Buffers, error) {
	b, err := ReadBuffers(c)
	if err != nil {
		return b, err
	}
	wmem, err1 := Sysctl3(wmemName)
	rmem, err2 := Sysctl3(rmemName)
	rmemMax, err3 := Sysctl("net/core/rmem_max")
	if err1 != nil || err2 != nil || err3 != nil {
		wmem, rmem, rmemMax = defW, defR, 4<<20 // this machine's defaults (docs/kernel.md#page-reuse)
	}
	b.SndBufMax, b.RcvBufMax = b.SndBuf, b.RcvBuf
	if o.SndBuf == 0 {
		b.SndBufMax = max(b.SndBuf, wmem[2])
	}
	if o.RcvBuf == 0 {
		b.RcvBufMax = max(b.RcvBuf, rmem[2])
	}
	b.PeerRcvBufMax = max(rmem[2], 2*rmemMax)
	return b, nil
}

// Sysctl3 reads a three-value sysctl such as net/ipv4/tcp_wmem ("min default max").
func Sysctl3(name string) ([3]int, error) {
	var v [3]int
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return v, err
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return v, fmt.Errorf("%s: want 3 values, got %q", name, b)
	}
	for i := range f {
		if v[i], err = strconv.Atoi(f[i]); err != nil {
			return v, fmt.Errorf("%s: %v", name, err)
		}
	}
	return v, nil
}

// Sysctl reads a one-value sysctl such as net/core/rmem_max.
func Sysctl(name string) (int, error) {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// PutCmsg writes one control message (level, typ, data) at the start of b, which must
// have room for unix.CmsgSpace(len(data)), and returns its length (cmsg(3)).
func PutCmsg(b []byte, level, typ int32, data []byte) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return unix.CmsgSpace(len(data))
}

// FindCmsg returns the data of the first control message (level, typ) in b, or nil. It
// walks with unix.ParseOneSocketControlMessage, so it allocates nothing.
func FindCmsg(b []byte, level, typ int32) []byte {
	for len(b) >= unix.CmsgLen(0) { // ParseOne reads a whole cmsghdr unchecked
		h, data, rest, err := unix.ParseOneSocketControlMessage(b)
		if err != nil {
			return nil
		}
		if h.Level == level && h.Type == typ {
			return data
		}
		b = rest
	}
	return nil
}
