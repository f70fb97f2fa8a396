package main

import (
	"net"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/splicegen/splicegen/gen"
	"github.com/splicegen/splicegen/proto"
)

// labFlags are send's lab-traffic flags: what the packets carry (--tos, --ttl, --df,
// --mark), where they leave from (--bind, --bind-dev, --cport), how datagrams spread over
// source ports (--flows) and the kernel's pacing (--fq-rate). They apply to every socket
// the sender opens; proto.Path sets them.
type labFlags struct {
	tos, ttl, mark, bind, dev, fqRate string
	cport, flows                      int
	df                                bool
}

func (l *labFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&l.tos, "tos", "", "IPv4 TOS / IPv6 traffic class byte, e.g. 0xb8 (DSCP 46, EF)")
	fs.StringVar(&l.ttl, "ttl", "", "IPv4 TTL / IPv6 hop limit, 1..255")
	fs.BoolVar(&l.df, "df", false, "don't fragment: DF on every packet; a datagram over the path MTU fails with EMSGSIZE")
	fs.StringVar(&l.mark, "mark", "", "SO_MARK on every socket (policy routing, nftables; needs CAP_NET_ADMIN)")
	fs.StringVar(&l.bind, "bind", "", "source address")
	fs.StringVar(&l.dev, "bind-dev", "", "send through this interface (SO_BINDTODEVICE)")
	fs.IntVar(&l.cport, "cport", 0, "first source port; streams (and flows) take consecutive ports")
	fs.IntVar(&l.flows, "flows", 0, "udp: each stream sends round-robin over this many sockets, consecutive source ports (RSS/ECMP)")
	fs.StringVar(&l.fqRate, "fq-rate", "", "kernel pacing per socket (SO_MAX_PACING_RATE, bits/s, e.g. 100M): TCP paces itself, others need the fq qdisc")
}

// apply checks the flags and puts them in the sender's options and spec.
func (l *labFlags) apply(o *proto.Options, spec *gen.Spec) error {
	p := &o.Path
	u8 := func(name, v string, lo uint64) (int, error) {
		n, err := strconv.ParseUint(v, 0, 8)
		if err != nil || n < lo {
			return 0, usagef("%s %q: want %d..255 (decimal or 0x hex)", name, v, lo)
		}
		return int(n), nil
	}
	var err error
	if l.tos != "" {
		if p.TOS, err = u8("--tos", l.tos, 0); err != nil {
			return err
		}
	}
	if l.ttl != "" {
		if p.TTL, err = u8("--ttl", l.ttl, 1); err != nil {
			return err
		}
	}
	if l.mark != "" {
		m, err := strconv.ParseUint(l.mark, 0, 32)
		if err != nil || m == 0 {
			return usagef("--mark %q: want 1..4294967295 (decimal or 0x hex)", l.mark)
		}
		p.Mark = uint32(m)
	}
	if l.bind != "" {
		if p.Bind = net.ParseIP(strings.Trim(l.bind, "[]")); p.Bind == nil {
			return usagef("--bind %q: want an IP address of this host", l.bind)
		}
	}
	if l.dev != "" && (len(l.dev) > 15 || strings.ContainsAny(l.dev, "/ \t\n")) {
		return usagef("--bind-dev %q: not an interface name", l.dev) // IFNAMSIZ 16, netdevice(7)
	}
	p.Dev, p.DF = l.dev, l.df
	spec.Flows = l.flows
	socks := max(1, l.flows) * spec.Streams
	if l.cport < 0 || l.cport > 65535 || l.cport > 0 && l.cport+socks-1 > 65535 {
		return usagef("--cport %d: the %d source ports must fit in 1..65535", l.cport, socks)
	}
	p.Port = l.cport
	if l.fqRate != "" {
		r, err := parseRate(l.fqRate)
		if err != nil || r < 8 {
			return usagef("--fq-rate %q: want a rate of at least 8 bits/s, e.g. 100M", l.fqRate)
		}
		p.FQRate = uint64(r / 8)
	}
	return nil
}

// localFlags are the flags that name this host's own address and interface: through a
// server they go to this host's sender only.
func (l *labFlags) localFlags() []string {
	var a []string
	if l.bind != "" {
		a = append(a, "--bind", l.bind)
	}
	if l.dev != "" {
		a = append(a, "--bind-dev", l.dev)
	}
	return a
}

// portOf is connection i's source port (gen.Dialer numbering: stream i/F, flow i%F).
func portOf(p proto.Path, i int) proto.Path {
	if p.Port != 0 {
		p.Port += i
	}
	return p
}

// mixOf names a spec's size mix ("" without one).
func mixOf(s gen.Spec) string {
	if len(s.Mix) == 0 {
		return ""
	}
	return gen.MixString(s.Mix)
}
