package proto

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

func getsockoptInt(fd, level, opt int) (int, error) {
	v, err := unix.GetsockoptInt(fd, level, opt)
	return v, os.NewSyscallError("getsockopt", err)
}

// SetBuffers applies SO_SNDBUF/SO_RCVBUF requests to fd before bind/connect (socket(7):
// setting them locks autotuning; the kernel doubles the value and caps it at
// wmem_max/rmem_max unless we use the FORCE variants, which root may).
func SetBuffers(fd int, o Options) error {
	if o.SndBuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, o.SndBuf); err != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, o.SndBuf); err != nil {
				return os.NewSyscallError("setsockopt SO_SNDBUF", err)
			}
		}
	}
	if o.RcvBuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, o.RcvBuf); err != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, o.RcvBuf); err != nil {
				return os.NewSyscallError("setsockopt SO_RCVBUF", err)
			}
		}
	}
	return nil
}

// ControlBuffers is a net.Dialer / net.ListenConfig Control function applying o's buffer
// requests before bind/connect.
func ControlBuffers(o Options) func(string, string, syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = SetBuffers(int(fd), o) }); err != nil {
			return err
		}
		return serr
	}
}
