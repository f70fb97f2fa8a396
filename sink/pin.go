package sink

import (
	"unsafe"

	"github.com/splicegen/splicegen/proto"
	"golang.org/x/sys/unix"
)

// pin connects the socket to the test's source (udp(7)) when the first datagram says
// the test is one stream from one socket (streams 1, lanes ≤ 1: a --flows sender writes
// its socket count in lanes), as iperf3's server does: the receive path then finds the
// socket and its route in early demux (udp_v4_early_demux, net/ipv4/udp.c) instead of a
// route lookup per datagram, paid on loopback and veth by the sending CPU's softirq
// (docs/results.md#udp-runs). Other sources are then refused (ECONNREFUSED at their
// sender), not counted as strays. Only with cfg.Connect; unpin undoes it at the end.
func (r *DgramReceiver) pin() {
	if r.from == nil {
		return
	}
	sa := *r.from
	n := uintptr(unix.SizeofSockaddrInet6)
	if sa.Family == unix.AF_INET {
		n = unix.SizeofSockaddrInet4
	}
	proto.Control(r.rc, func(fd int) error {
		_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), n)
		r.pinned = e == 0
		return nil
	})
}

// unpin dissolves pin's association (connect(2) to AF_UNSPEC).
func (r *DgramReceiver) unpin() {
	if !r.pinned {
		return
	}
	sa := unix.RawSockaddr{Family: unix.AF_UNSPEC}
	proto.Control(r.rc, func(fd int) error {
		unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrAny)
		return nil
	})
	r.pinned = false
}
