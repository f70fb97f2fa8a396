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

// Probe asks the kernel, with real sockets on loopback, what it supports.
func Probe() []Capability {
	var caps []Capability
	add := func(name, detail string, err error) { caps = append(caps, Capability{name, detail, err}) }
	for _, p := range []struct {
		name      string
		typ, prot int
	}{{"tcp", unix.SOCK_STREAM, 0}, {"udp", unix.SOCK_DGRAM, 0}, {"sctp", unix.SOCK_STREAM, unix.IPPROTO_SCTP}} {
		fd, err := unix.Socket(unix.AF_INET, p.typ|unix.SOCK_CLOEXEC, p.prot)
		if err == nil {
			unix.Close(fd)
		}
		add(p.name+" socket", "", sockErr(p.name, err))
		add("splice into "+p.name, "vmsplice+splice of one page over loopback", probeSplice(p.typ, p.prot))
	}
	if n, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		add("pipe max size", strings.TrimSpace(string(n))+" bytes (fs.pipe-max-size)", nil)
	} else {
		add("pipe max size", "", err)
	}
	add("UDP_SEGMENT (GSO)", "setsockopt on a UDP socket", probeOpt(unix.SOCK_DGRAM, unix.SOL_UDP, unix.UDP_SEGMENT, 1400))
	add("UDP_GRO", "setsockopt on a UDP socket", probeOpt(unix.SOCK_DGRAM, unix.SOL_UDP, unix.UDP_GRO, 1))
	add("SO_ZEROCOPY", "setsockopt on a TCP socket", probeOpt(unix.SOCK_STREAM, unix.SOL_SOCKET, unix.SO_ZEROCOPY, 1))
	return caps
}

// ErrNoSCTP is the kernel-lacks-SCTP answer.
var ErrNoSCTP = errors.New("SCTP not supported by this kernel: socket: protocol not supported; load the sctp module or use a kernel with CONFIG_IP_SCTP")

func sockErr(name string, err error) error {
	if err == nil {
		return nil
	}
	if name == "sctp" && (err == unix.EPROTONOSUPPORT || err == unix.ESOCKTNOSUPPORT) {
		return ErrNoSCTP
	}
	return os.NewSyscallError("socket", err)
}

func probeOpt(typ, level, opt, val int) error {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	return os.NewSyscallError("setsockopt", unix.SetsockoptInt(fd, level, opt, val))
}

// probeSplice connects a loopback pair of the protocol and splices one page from a
// fresh mmap'd page (never rewritten) into it, then reads it back.
func probeSplice(typ, prot int) error {
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
		return sockErr(map[int]string{0: "x", unix.IPPROTO_SCTP: "sctp"}[prot], err)
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
	tv := unix.Timeval{Sec: 2}
	unix.SetsockoptTimeval(srv, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	unix.SetsockoptTimeval(cli, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
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
		unix.SetsockoptTimeval(rd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
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
