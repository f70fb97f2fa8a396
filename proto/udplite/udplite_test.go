package udplite_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/proto/udp"
	"github.com/splicegen/splicegen/proto/udplite"
	"golang.org/x/sys/unix"
)

const timeout = 5 * time.Second

// plugin is UDP-Lite as the rest of splicegen finds it: by name, after the package's init.
func plugin(t *testing.T) proto.PacketPlugin {
	t.Helper()
	p, err := proto.Lookup("udplite")
	if err != nil {
		t.Fatalf("Lookup(udplite): %v (registered: %q)", err, proto.Names())
	}
	pp, ok := p.(proto.PacketPlugin)
	if !ok {
		t.Fatalf("udplite plugin %T is not a PacketPlugin", p)
	}
	return pp
}

func TestRegistered(t *testing.T) {
	p := plugin(t)
	lp, ok := p.(udplite.Plugin)
	if !ok {
		t.Fatalf("Lookup(udplite) = %T, want udplite.Plugin", p)
	}
	if lp.Prot != unix.IPPROTO_UDPLITE {
		t.Errorf("registered plugin's Prot = %d, want IPPROTO_UDPLITE (%d)", lp.Prot, unix.IPPROTO_UDPLITE)
	}
	for _, name := range []string{"UDPLite", " udplite "} {
		if _, err := proto.Lookup(name); err != nil {
			t.Errorf("Lookup(%q): %v", name, err)
		}
	}
	// UDP itself is still UDP (the variant registers under its own name).
	u, err := proto.Lookup("udp")
	if err != nil || u.Traits().Name != "udp" {
		t.Errorf("Lookup(udp) = %v, %v", u, err)
	}
}

func protocol(t *testing.T, c syscall.Conn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	v, err := proto.GetInt(rc, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// roundTrip binds a UDP-Lite receiver on bind, dials it at dialAddr(bound address) and
// sends one datagram.
func roundTrip(t *testing.T, bind string, dialAddr func(net.Addr) string) {
	t.Helper()
	p := plugin(t)
	pc, err := p.ListenPacket(bind, proto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if got := protocol(t, pc); got != unix.IPPROTO_UDPLITE {
		t.Errorf("receiver SO_PROTOCOL = %d, want %d (UDP-Lite)", got, unix.IPPROTO_UDPLITE)
	}
	if pc.RcvBuf() < udp.DefaultRcvBuf {
		t.Errorf("receiver RcvBuf() = %d, want >= %d", pc.RcvBuf(), udp.DefaultRcvBuf)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addr := dialAddr(pc.LocalAddr())
	c, err := p.Dial(ctx, addr, proto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := protocol(t, c); got != unix.IPPROTO_UDPLITE {
		t.Errorf("sender SO_PROTOCOL = %d, want %d (UDP-Lite)", got, unix.IPPROTO_UDPLITE)
	}
	if _, err := c.Write([]byte("lite datagram")); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, 256)
	n, from, err := pc.(net.PacketConn).ReadFrom(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:n]) != "lite datagram" {
		t.Errorf("received %q", b[:n])
	}
	if fp, lp := from.(*net.UDPAddr).Port, c.LocalAddr().(*net.UDPAddr).Port; fp != lp {
		t.Errorf("datagram from port %d, sender is on %d", fp, lp)
	}
	d, ok := c.(proto.Datagram)
	if !ok {
		t.Fatalf("Dial returned %T, not a proto.Datagram", c)
	}
	if want := udp.MaxDatagram(addr); d.MaxDatagram() != want {
		t.Errorf("MaxDatagram() to %s = %d, want %d", addr, d.MaxDatagram(), want)
	}
	// SO_ZEROCOPY is EOPNOTSUPP on UDP-Lite (net/core/sock.c).
	t.Logf("UDP-Lite caps: %+v", d.Caps())
	if caps := d.Caps(); caps.ZeroCopy || caps.ZeroCopyWhy == "" {
		t.Errorf("UDP-Lite Caps() = %+v, want ZeroCopy off with the kernel's reason", caps)
	}
}

func TestRoundTripIPv4(t *testing.T) {
	roundTrip(t, "127.0.0.1:0", func(a net.Addr) string { return a.String() })
}

func TestRoundTripIPv6(t *testing.T) {
	roundTrip(t, "[::1]:0", func(a net.Addr) string { return a.String() })
}

// ":port" binds the IPv6 wildcard with IPV6_V6ONLY off: an IPv4 sender reaches it.
func TestRoundTripDualStack(t *testing.T) {
	roundTrip(t, ":0", func(a net.Addr) string {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.(*net.UDPAddr).Port))
	})
}

func TestFilePacketConn(t *testing.T) {
	p := plugin(t)
	parent, err := p.ListenPacket("127.0.0.1:0", proto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	f, err := parent.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pc, err := p.FilePacketConn(f, proto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if got := protocol(t, pc); got != unix.IPPROTO_UDPLITE {
		t.Errorf("adopted SO_PROTOCOL = %d", got)
	}
	if pc.LocalAddr().String() != parent.LocalAddr().String() {
		t.Errorf("adopted at %s, want %s", pc.LocalAddr(), parent.LocalAddr())
	}
}

func TestDialErrors(t *testing.T) {
	p := plugin(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, addr := range []string{"127.0.0.1", "nosuchhost.invalid:1"} {
		if c, err := p.Dial(ctx, addr, proto.Options{}); err == nil {
			c.Close()
			t.Errorf("Dial(%q) succeeded", addr)
		}
	}
	// Bind to an address in use (same protocol, same port).
	pc, err := p.ListenPacket("127.0.0.1:0", proto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, err = p.ListenPacket(pc.LocalAddr().String(), proto.Options{})
	if !errors.Is(err, unix.EADDRINUSE) || !strings.Contains(err.Error(), "bind") {
		t.Errorf("ListenPacket on a bound port = %v, want bind: EADDRINUSE", err)
	}
}

func TestTraits(t *testing.T) {
	tr := plugin(t).Traits()
	ut := udp.Plugin{}.Traits()
	if tr.Name != "udplite" || tr.Kind != proto.KindDatagram || tr.LossFails {
		t.Errorf("Traits = %+v", tr)
	}
	for m, why := range map[string]string{"gso": "EIO", "zerocopy": "EOPNOTSUPP"} {
		err := tr.Mode(m)
		if !errors.Is(err, proto.ErrUsage) || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "udplite") {
			t.Errorf("Mode(%q) = %v, want a refusal naming udplite and %s", m, err, why)
		}
	}
	for _, m := range []string{"splice", "write", "mmsg"} {
		if err := tr.Mode(m); err != nil {
			t.Errorf("Mode(%q) = %v", m, err)
		}
	}
	// UDP's other refusals carry over.
	for _, k := range []string{"sendfile", "sink read", "sink splice"} {
		if tr.Refused[k] == "" || tr.Refused[k] != ut.Refused[k] {
			t.Errorf("Refused[%q] = %q, want UDP's %q", k, tr.Refused[k], ut.Refused[k])
		}
	}
	if tr.DefaultSink() != "mmsg" || tr.MaxFor("") != udp.MaxIPv4 || tr.MaxFor("[::1]:1") != udp.MaxIPv6 {
		t.Errorf("sink %q, max %d/%d: want UDP's", tr.DefaultSink(), tr.MaxFor(""), tr.MaxFor("[::1]:1"))
	}
	for _, m := range strings.Split(tr.Compare.Modes, ",") {
		if err := tr.Mode(m); err != nil {
			t.Errorf("Compare mode %q: %v", m, err)
		}
	}
	// The variant's traits do not leak into UDP's.
	if err := ut.Mode("gso"); err != nil {
		t.Errorf("udp Mode(gso) = %v after udplite's traits were built", err)
	}
}

func TestProbe(t *testing.T) {
	rows := plugin(t).Traits().Probe()
	want := []string{"udplite socket", "splice into udplite", "UDP_SEGMENT (GSO)", "UDP_GRO"}
	if len(rows) != len(want) {
		t.Fatalf("%d probe rows, want %d", len(rows), len(want))
	}
	for i, r := range rows {
		if r.Name != want[i] {
			t.Errorf("probe row %d = %q, want %q", i, r.Name, want[i])
		}
		if strings.HasSuffix(r.Name, "socket") && r.Err != nil {
			t.Errorf("probe row %q: %v", r.Name, r.Err)
		}
		if r.Detail != "" && strings.Contains(r.Detail, "socket") && !strings.Contains(r.Detail, "udplite") {
			t.Errorf("probe row %q detail %q does not name udplite", r.Name, r.Detail)
		}
	}
}
