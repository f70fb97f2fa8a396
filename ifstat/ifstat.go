// Package ifstat finds the interface a test's packets use and reads its counters, over
// rtnetlink (rtnetlink(7)) in this process's network namespace: the namespace of its
// sockets. /sys/class/net is not read: it shows the namespace sysfs was mounted in.
package ifstat

import (
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link is one interface.
type Link struct {
	Index int
	Name  string
}

// Counters are an interface's packet and byte counters (IFLA_STATS64). They count the
// whole interface: every flow on it, not only the test's.
type Counters struct {
	RxPackets, RxBytes, TxPackets, TxBytes uint64
}

// Sub is c - b: the change between two readings.
func (c Counters) Sub(b Counters) Counters {
	return Counters{c.RxPackets - b.RxPackets, c.RxBytes - b.RxBytes, c.TxPackets - b.TxPackets, c.TxBytes - b.TxBytes}
}

// Route returns the interface of the route to dst from src (nil: any) with fwmark mark,
// as `ip route get DST from SRC mark MARK` gives it. A local or loopback dst gives "lo".
func Route(dst, src net.IP, mark uint32) (Link, error) {
	if v4 := dst.To4(); v4 != nil {
		dst = v4
	}
	opt := &netlink.RouteGetOptions{Mark: mark}
	if src != nil && !src.IsUnspecified() {
		if v4 := src.To4(); v4 != nil && dst.To4() != nil {
			src = v4
		}
		opt.SrcAddr = src
	}
	rs, err := netlink.RouteGetWithOptions(dst, opt)
	if err != nil {
		return Link{}, fmt.Errorf("route to %s: %w", dst, err)
	}
	if len(rs) == 0 || rs[0].LinkIndex <= 0 {
		return Link{}, fmt.Errorf("route to %s: no interface", dst)
	}
	return byIndex(rs[0].LinkIndex)
}

// Socket returns the interface a connected socket sends by: its bound device
// (SO_BINDTOIFINDEX, socket(7)) if it has one, else the route to its peer from its local
// address with its SO_MARK (policy routing sees both).
func Socket(c syscall.Conn, peer, local net.IP) (Link, error) {
	var dev, mark int
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			dev, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX)
			mark, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK)
		})
	}
	if dev > 0 {
		return byIndex(dev)
	}
	return Route(peer, local, uint32(mark))
}

func byIndex(i int) (Link, error) {
	l, err := netlink.LinkByIndex(i)
	if err != nil {
		return Link{}, fmt.Errorf("interface %d: %w", i, err)
	}
	return Link{i, l.Attrs().Name}, nil
}

// Read returns interface index's counters now.
func Read(index int) (Counters, error) {
	l, err := netlink.LinkByIndex(index)
	if err != nil {
		return Counters{}, fmt.Errorf("interface %d: %w", index, err)
	}
	return counters(l)
}

// ReadAll returns every interface's counters now, by index (one RTM_GETLINK dump): for
// a receiver, which learns the peer, and so the interface, only after the data began.
func ReadAll() (map[int]Counters, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("interfaces: %w", err)
	}
	m := make(map[int]Counters, len(ls))
	for _, l := range ls {
		if c, err := counters(l); err == nil {
			m[l.Attrs().Index] = c
		}
	}
	return m, nil
}

func counters(l netlink.Link) (Counters, error) {
	s := l.Attrs().Statistics
	if s == nil {
		return Counters{}, fmt.Errorf("interface %s: no statistics", l.Attrs().Name)
	}
	return Counters{s.RxPackets, s.RxBytes, s.TxPackets, s.TxBytes}, nil
}

// AddrIP is a socket address's IP (an SCTP address's first; nil: none).
func AddrIP(a net.Addr) net.IP {
	switch a := a.(type) {
	case nil:
		return nil
	case *net.TCPAddr:
		if a != nil {
			return a.IP
		}
		return nil
	case *net.UDPAddr:
		if a != nil {
			return a.IP
		}
		return nil
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		host = a.String()
	}
	host, _, _ = strings.Cut(host, "/") // SCTP: "IP1/IP2:PORT"
	return net.ParseIP(host)
}
