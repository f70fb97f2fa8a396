package proto

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Path holds the IP-level options of a sending socket (lab traffic: send's --tos, --ttl,
// --df, --mark, --bind, --bind-dev, --cport, --fq-rate): what its packets carry and
// where they leave from. The zero value changes nothing.
type Path struct {
	TOS    int    // IP_TOS / IPV6_TCLASS, 1..255 (0: the default, which is 0)
	TTL    int    // IP_TTL / IPV6_UNICAST_HOPS, 1..255 (0: the kernel's default)
	DF     bool   // IP_MTU_DISCOVER = IP_PMTUDISC_DO: DF on every packet, never fragment locally
	Mark   uint32 // SO_MARK (0: none)
	Dev    string // SO_BINDTODEVICE
	Bind   net.IP // source address (nil: the route's)
	Port   int    // source port (0: ephemeral)
	FQRate uint64 // SO_MAX_PACING_RATE in bytes/s (0: none)
}

// Set applies the options to fd, an IPv6 socket when v6, before bind/connect. Each
// option's man page: ip(7) IP_TOS, IP_TTL, IP_MTU_DISCOVER; ipv6(7) IPV6_TCLASS,
// IPV6_UNICAST_HOPS, IPV6_MTU_DISCOVER; socket(7) SO_MARK (CAP_NET_ADMIN),
// SO_BINDTODEVICE, SO_MAX_PACING_RATE (enforced by the fq qdisc, and by TCP's own
// pacing without it: tc-fq(8), net/ipv4/tcp_output.c tcp_needs_internal_pacing),
// SO_REUSEADDR (a fixed --cport may still have a socket in TIME_WAIT).
func (p Path) Set(fd int, v6 bool) error {
	type opt struct {
		on               bool
		level, name, val int
		what             string
	}
	lvl, tos, ttl, mtu, do := unix.IPPROTO_IP, unix.IP_TOS, unix.IP_TTL, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO
	if v6 {
		lvl, tos, ttl, mtu, do = unix.IPPROTO_IPV6, unix.IPV6_TCLASS, unix.IPV6_UNICAST_HOPS, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO
	}
	for _, o := range []opt{
		{p.TOS > 0, lvl, tos, p.TOS, "--tos"},
		{p.TTL > 0, lvl, ttl, p.TTL, "--ttl"},
		{p.DF, lvl, mtu, do, "--df"},
		{p.Mark != 0, unix.SOL_SOCKET, unix.SO_MARK, int(p.Mark), "--mark (SO_MARK needs CAP_NET_ADMIN)"},
		{p.Port != 0, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, "--cport"},
	} {
		if !o.on {
			continue
		}
		if err := unix.SetsockoptInt(fd, o.level, o.name, o.val); err != nil {
			return fmt.Errorf("%s: setsockopt: %w", o.what, err)
		}
	}
	if p.FQRate > 0 {
		if err := unix.SetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, p.FQRate); err != nil {
			return fmt.Errorf("--fq-rate: setsockopt SO_MAX_PACING_RATE: %w", err)
		}
	}
	if p.Dev != "" {
		if err := unix.BindToDevice(fd, p.Dev); err != nil {
			return fmt.Errorf("--bind-dev %s: %w", p.Dev, err)
		}
	}
	return nil
}

// Local is the source address to bind for a peer of family v6 (nil: none to bind).
func (p Path) Local(v6 bool) (unix.Sockaddr, error) {
	if p.Bind == nil && p.Port == 0 {
		return nil, nil
	}
	if p.Bind != nil && (p.Bind.To4() != nil) == v6 {
		return nil, fmt.Errorf("--bind %s: not of the peer's address family", p.Bind)
	}
	if !v6 {
		sa := &unix.SockaddrInet4{Port: p.Port}
		copy(sa.Addr[:], p.Bind.To4()) // nil (only --cport): the wildcard
		return sa, nil
	}
	sa := &unix.SockaddrInet6{Port: p.Port}
	copy(sa.Addr[:], p.Bind.To16())
	return sa, nil
}

// LocalAddr is Local for Go's net.Dialer (network "tcp" or "udp"; nil: none).
func (p Path) LocalAddr(network string) net.Addr {
	if p.Bind == nil && p.Port == 0 {
		return nil
	}
	if network == "udp" {
		return &net.UDPAddr{IP: p.Bind, Port: p.Port}
	}
	return &net.TCPAddr{IP: p.Bind, Port: p.Port}
}

// BindLocal binds fd to the path's source address, if any (before connect).
func (p Path) BindLocal(fd int, v6 bool) error {
	sa, err := p.Local(v6)
	if err != nil || sa == nil {
		return err
	}
	return bindErr(p, unix.Bind(fd, sa))
}

// bindErr names the flag behind a failed bind.
func bindErr(p Path, err error) error {
	if err == nil {
		return nil
	}
	what := "--bind " + p.Bind.String()
	if p.Bind == nil {
		what = "--cport " + strconv.Itoa(p.Port)
	} else if p.Port != 0 {
		what += " --cport " + strconv.Itoa(p.Port)
	}
	return fmt.Errorf("%s: %w", what, os.NewSyscallError("bind", err))
}

// v6Network reports whether a Go dial network ("tcp4", "udp6", ...) is IPv6.
func v6Network(network string) bool {
	return len(network) > 0 && network[len(network)-1] == '6'
}
