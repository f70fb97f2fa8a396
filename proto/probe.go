package proto

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Capability is one probe answer: Err nil means available.
type Capability struct {
	Name   string
	Detail string
	Err    error
}

// Probe asks the kernel, with real sockets on loopback, what it supports: every
// registered protocol's own rows (Traits.Probe), then the pipe limit.
func Probe() []Capability {
	var caps []Capability
	for _, name := range order {
		if f := plugins[name].Traits().Probe; f != nil {
			caps = append(caps, f()...)
		}
	}
	if n, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		caps = append(caps, Capability{"pipe max size", strings.TrimSpace(string(n)) + " bytes (fs.pipe-max-size)", nil})
	} else {
		caps = append(caps, Capability{"pipe max size", "", err})
	}
	return caps
}

// ProbeSocket makes and closes a socket of the kind (socket(2)).
func ProbeSocket(typ, prot int) error {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, prot)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	return unix.Close(fd)
}

// ProbeOpt sets an int option on a fresh socket of the kind: setsockopt, because some
// options have no getsockopt on kernels that have them (UDP_GRO: set from 5.0, get from
// 5.12; docs/kernel.md#other-kernel-facts).
func ProbeOpt(typ, prot, level, opt, val int) error {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, prot)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	return os.NewSyscallError("setsockopt", unix.SetsockoptInt(fd, level, opt, val))
}

// ProbeSplice connects a loopback pair of the protocol and splices one page from a
// fresh mmap'd page (never rewritten) into it, then reads it back.
func ProbeSplice(typ, prot int) error {
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	sock := func() (int, error) {
		fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, prot)
		if err == nil {
			fds = append(fds, fd)
		}
		return fd, err
	}
	srv, err := sock()
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	lo := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Bind(srv, lo); err != nil {
		return os.NewSyscallError("bind", err)
	}
	sa, err := unix.Getsockname(srv)
	if err != nil {
		return os.NewSyscallError("getsockname", err)
	}
	cli, err := sock()
	if err != nil {
		return err
	}
	tv := unix.Timeval{Sec: 2} // a probe never hangs
	if err := errors.Join(unix.SetsockoptTimeval(srv, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv),
		unix.SetsockoptTimeval(cli, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)); err != nil {
		return os.NewSyscallError("setsockopt SO_RCVTIMEO/SO_SNDTIMEO", err)
	}
	rd := srv
	if typ == unix.SOCK_STREAM {
		if err := unix.Listen(srv, 1); err != nil {
			return os.NewSyscallError("listen", err)
		}
	}
	if err := unix.Connect(cli, sa); err != nil {
		return os.NewSyscallError("connect", err)
	}
	if typ == unix.SOCK_STREAM {
		if rd, _, err = unix.Accept4(srv, unix.SOCK_CLOEXEC); err != nil {
			return os.NewSyscallError("accept", err)
		}
		fds = append(fds, rd)
		if err := unix.SetsockoptTimeval(rd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return os.NewSyscallError("setsockopt SO_RCVTIMEO", err)
		}
	}
	page, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return os.NewSyscallError("mmap", err)
	}
	defer unix.Munmap(page)
	copy(page, "splicegen probe")
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return os.NewSyscallError("pipe2", err)
	}
	fds = append(fds, p[0], p[1])
	iov := []unix.Iovec{{Base: &page[0]}}
	iov[0].SetLen(len(page))
	if _, err := unix.Vmsplice(p[1], iov, 0); err != nil {
		return os.NewSyscallError("vmsplice", err)
	}
	n, err := unix.Splice(p[0], nil, cli, nil, len(page), 0)
	if err != nil {
		return os.NewSyscallError("splice", err)
	}
	buf := make([]byte, len(page))
	m, err := unix.Read(rd, buf)
	if err != nil {
		return os.NewSyscallError("read", err)
	}
	if m <= 0 || string(buf[:15]) != "splicegen probe" {
		return fmt.Errorf("spliced %d bytes but the peer read %d unexpected bytes", n, m)
	}
	return nil
}
