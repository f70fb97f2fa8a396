package proto_test

import (
	"context"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/proto/tcp"
	"github.com/splicegen/splicegen/proto/udp"
	"golang.org/x/sys/unix"
)

// The path options reach the socket: read back with getsockopt on a dialed socket.
func TestPathOptions(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := proto.Path{TOS: 0xb8, TTL: 7, DF: true, Mark: 42, Dev: "lo", Bind: net.ParseIP("127.0.0.1"), Port: 0, FQRate: 1 << 20}
	for _, tc := range []struct {
		name   string
		dial   func(o proto.Options) (proto.Conn, error)
		v6     bool
		src    string
		levels [3]int
	}{
		{"udp4", func(o proto.Options) (proto.Conn, error) {
			return udp.Plugin{}.Dial(context.Background(), pc.LocalAddr().String(), o)
		}, false, "127.0.0.1", [3]int{unix.IP_TOS, unix.IP_TTL, unix.IP_MTU_DISCOVER}},
		{"tcp6", func(o proto.Options) (proto.Conn, error) {
			return tcp.Plugin{}.Dial(context.Background(), ln.Addr().String(), o)
		}, true, "::1", [3]int{unix.IPV6_TCLASS, unix.IPV6_UNICAST_HOPS, unix.IPV6_MTU_DISCOVER}},
	} {
		q := p
		q.Bind = net.ParseIP(tc.src)
		c, err := tc.dial(proto.Options{Path: q})
		if err != nil {
			t.Fatalf("%s: dial: %v", tc.name, err)
		}
		rc, _ := c.SyscallConn()
		lvl := unix.IPPROTO_IP
		if tc.v6 {
			lvl = unix.IPPROTO_IPV6
		}
		for i, want := range []int{0xb8, 7, unix.IP_PMTUDISC_DO} {
			if got, err := proto.GetInt(rc, lvl, tc.levels[i]); err != nil || got != want {
				t.Errorf("%s: option %d = %d, %v; want %d", tc.name, tc.levels[i], got, err, want)
			}
		}
		if got, err := proto.GetInt(rc, unix.SOL_SOCKET, unix.SO_MARK); err != nil || got != 42 {
			t.Errorf("%s: SO_MARK = %d, %v", tc.name, got, err)
		}
		var dev string
		proto.Control(rc, func(fd int) error {
			dev, err = unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
			return err
		})
		if dev != "lo" {
			t.Errorf("%s: SO_BINDTODEVICE = %q", tc.name, dev)
		}
		if h, _, _ := net.SplitHostPort(c.LocalAddr().String()); h != tc.src {
			t.Errorf("%s: source %s, want %s", tc.name, c.LocalAddr(), tc.src)
		}
		c.Close()
	}
}

// A fixed source port is used; a bind to an address of the other family is refused.
func TestPathBind(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	probe, _ := net.ListenPacket("udp", "127.0.0.1:0") // a free port to reuse
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	c, err := udp.Plugin{}.Dial(context.Background(), pc.LocalAddr().String(), proto.Options{Path: proto.Path{Port: port}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.LocalAddr().(*net.UDPAddr).Port; got != port {
		t.Errorf("source port %d, want %d", got, port)
	}
	c.Close()
	if _, err := (proto.Path{Bind: net.ParseIP("::1")}).Local(false); err == nil || !strings.Contains(err.Error(), "family") {
		t.Errorf("an IPv6 --bind to an IPv4 peer: %v", err)
	}
	if _, err := (proto.Path{Bind: net.ParseIP("10.0.0.1")}).Local(true); err == nil {
		t.Error("an IPv4 --bind to an IPv6 peer accepted")
	}
	for _, c := range []struct {
		p    proto.Path
		v6   bool
		want unix.Sockaddr
	}{
		{proto.Path{}, false, nil},
		{proto.Path{Bind: net.ParseIP("10.0.0.1"), Port: 7}, false, &unix.SockaddrInet4{Port: 7, Addr: [4]byte{10, 0, 0, 1}}},
		{proto.Path{Port: 9}, false, &unix.SockaddrInet4{Port: 9}},
		{proto.Path{Port: 9}, true, &unix.SockaddrInet6{Port: 9}},
		{proto.Path{Bind: net.ParseIP("::1")}, true, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}},
	} {
		if got, err := c.p.Local(c.v6); err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%+v.Local(%v) = %#v, %v; want %#v", c.p, c.v6, got, err, c.want)
		}
	}
}
