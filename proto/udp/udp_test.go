package udp_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/proto/prototest"
	"github.com/splicegen/splicegen/proto/udp"
	"golang.org/x/sys/unix"
)

const timeout = 5 * time.Second

func listenPacket(t *testing.T, addr string, o proto.Options) *udp.PacketConn {
	t.Helper()
	pc, err := udp.Plugin{}.ListenPacket(addr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	u, ok := pc.(*udp.PacketConn)
	if !ok {
		t.Fatalf("ListenPacket returned %T, want *udp.PacketConn", pc)
	}
	return u
}

func dial(t *testing.T, addr string, o proto.Options) *udp.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := udp.Plugin{}.Dial(ctx, addr, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	u, ok := c.(*udp.Conn)
	if !ok {
		t.Fatalf("Dial returned %T, want *udp.Conn", c)
	}
	return u
}

// roundTrip sends one datagram from c to pc and checks it arrives whole.
func roundTrip(t *testing.T, c proto.Conn, pc *udp.PacketConn, payload string) {
	t.Helper()
	if _, err := c.Write([]byte(payload)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	pc.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, 1<<16)
	n, from, err := pc.ReadFromUDP(b)
	if err != nil {
		t.Fatalf("ReadFromUDP: %v", err)
	}
	if string(b[:n]) != payload {
		t.Fatalf("received %d bytes (%.20q...), want the %d sent", n, b[:n], len(payload))
	}
	if from.String() != c.LocalAddr().String() {
		t.Errorf("datagram from %s, want the sender %s", from, c.LocalAddr())
	}
}

func TestDialListenPacket(t *testing.T) {
	pc := listenPacket(t, "127.0.0.1:0", proto.Options{})
	c := dial(t, pc.LocalAddr().String(), proto.Options{})
	if c.RemoteAddr().String() != pc.LocalAddr().String() {
		t.Errorf("Dial connected to %s, want %s", c.RemoteAddr(), pc.LocalAddr())
	}
	if prototest.Sockopt(t, c, unix.SOL_SOCKET, unix.SO_TYPE) != unix.SOCK_DGRAM || prototest.Sockopt(t, c, unix.SOL_SOCKET, unix.SO_PROTOCOL) != unix.IPPROTO_UDP {
		t.Error("Dial's socket is not a UDP socket")
	}
	roundTrip(t, c, pc, "one datagram")
	roundTrip(t, c, pc, strings.Repeat("x", 1472))
	if err := c.CloseWrite(); err != nil {
		t.Errorf("CloseWrite = %v, want nil (no half-close)", err)
	}
	var _ proto.Datagram = c // gen asks connected datagram sockets for these
}

func TestIPv6(t *testing.T) {
	pc := listenPacket(t, "[::1]:0", proto.Options{})
	if a := pc.LocalAddr().(*net.UDPAddr); !a.IP.Equal(net.IPv6loopback) || a.Port == 0 {
		t.Fatalf("bound to %s, want [::1]:port", a)
	}
	c := dial(t, pc.LocalAddr().String(), proto.Options{})
	roundTrip(t, c, pc, "over ::1")
	if got := c.MaxDatagram(); got != udp.MaxIPv6 {
		t.Errorf("MaxDatagram() to ::1 = %d, want %d", got, udp.MaxIPv6)
	}
	caps := c.Caps()
	if !caps.GSO || !caps.GRO || !caps.ZeroCopy {
		t.Errorf("IPv6 socket Caps() = %+v, want all on this kernel", caps)
	}
}

func TestMaxDatagram(t *testing.T) {
	for addr, want := range map[string]int{
		"":                    udp.MaxIPv4,
		"127.0.0.1:9":         udp.MaxIPv4,
		"[::1]:9":             udp.MaxIPv6,
		"[fe80::1]:9":         udp.MaxIPv6,
		"[::ffff:10.0.0.1]:9": udp.MaxIPv4,
		"localhost:9":         udp.MaxIPv4,
	} {
		if got := udp.MaxDatagram(addr); got != want {
			t.Errorf("MaxDatagram(%q) = %d, want %d", addr, got, want)
		}
	}
	if udp.MaxIPv4 != 65535-20-8 || udp.MaxIPv6 != 65535-8 {
		t.Errorf("MaxIPv4 %d, MaxIPv6 %d", udp.MaxIPv4, udp.MaxIPv6)
	}
	pc := listenPacket(t, "127.0.0.1:0", proto.Options{})
	if got := dial(t, pc.LocalAddr().String(), proto.Options{}).MaxDatagram(); got != udp.MaxIPv4 {
		t.Errorf("Conn.MaxDatagram() to 127.0.0.1 = %d, want %d", got, udp.MaxIPv4)
	}
	// The largest IPv4 datagram goes through loopback (MTU 65536); one byte more does not.
	c := dial(t, pc.LocalAddr().String(), proto.Options{SndBuf: 256 << 10})
	big := strings.Repeat("m", udp.MaxIPv4)
	roundTrip(t, c, pc, big)
	if _, err := c.Write([]byte(big + "!")); !errors.Is(err, unix.EMSGSIZE) {
		t.Errorf("Write of MaxIPv4+1 bytes = %v, want EMSGSIZE", err)
	}
}

func TestCaps(t *testing.T) {
	pc := listenPacket(t, "127.0.0.1:0", proto.Options{})
	c := dial(t, pc.LocalAddr().String(), proto.Options{})
	// Linux 6.18: UDP_SEGMENT (4.18), UDP_GRO (5.0), SO_ZEROCOPY on UDP (5.0).
	for name, caps := range map[string]proto.Caps{"Conn": c.Caps(), "PacketConn": pc.Caps()} {
		if !caps.GSO || !caps.GRO || !caps.ZeroCopy {
			t.Errorf("%s.Caps() = %+v, want GSO, GRO and ZeroCopy", name, caps)
		}
		if caps.GSOKilled || caps.GSOWhy != "" || caps.GROWhy != "" || caps.ZeroCopyWhy != "" {
			t.Errorf("%s.Caps() = %+v: reasons without a refusal", name, caps)
		}
	}
	// Probing leaves UDP_GRO off: the receiver turns it on only when asked.
	if pc.GRO() || prototest.Sockopt(t, pc, unix.SOL_UDP, unix.UDP_GRO) != 0 {
		t.Error("UDP_GRO is on without Options.GRO")
	}
}

func TestKillSwitches(t *testing.T) {
	t.Run("gso", func(t *testing.T) {
		t.Setenv(udp.EnvDisableGSO, "1")
		pc := listenPacket(t, "127.0.0.1:0", proto.Options{})
		c := dial(t, pc.LocalAddr().String(), proto.Options{})
		caps := c.Caps()
		if caps.GSO || !caps.GSOKilled || !strings.Contains(caps.GSOWhy, udp.EnvDisableGSO) {
			t.Errorf("Caps() with %s=1: %+v; want GSO off, killed, the variable named", udp.EnvDisableGSO, caps)
		}
		if !caps.GRO || !caps.ZeroCopy {
			t.Errorf("the GSO switch turned off more: %+v", caps)
		}
		roundTrip(t, c, pc, "fallback path still sends")
	})
	t.Run("gro", func(t *testing.T) {
		t.Setenv(udp.EnvDisableGRO, "1")
		pc := listenPacket(t, "127.0.0.1:0", proto.Options{})
		caps := pc.Caps()
		if caps.GRO || !strings.Contains(caps.GROWhy, udp.EnvDisableGRO) || !caps.GSO || caps.GSOKilled {
			t.Errorf("Caps() with %s=1: %+v", udp.EnvDisableGRO, caps)
		}
		_, err := udp.Plugin{}.ListenPacket("127.0.0.1:0", proto.Options{GRO: true})
		if err == nil || !strings.Contains(err.Error(), "--gro") || !strings.Contains(err.Error(), udp.EnvDisableGRO) {
			t.Errorf("ListenPacket(GRO) with GRO disabled = %v, want a --gro error naming the switch", err)
		}
	})
	t.Run("zerocopy", func(t *testing.T) {
		t.Setenv(udp.EnvDisableZeroCopy, "1")
		pc := listenPacket(t, "127.0.0.1:0", proto.Options{})
		caps := dial(t, pc.LocalAddr().String(), proto.Options{}).Caps()
		if caps.ZeroCopy || !strings.Contains(caps.ZeroCopyWhy, udp.EnvDisableZeroCopy) || !caps.GSO || !caps.GRO {
			t.Errorf("Caps() with %s=1: %+v", udp.EnvDisableZeroCopy, caps)
		}
	})
	t.Run("off", func(t *testing.T) {
		for _, env := range []string{udp.EnvDisableGSO, udp.EnvDisableGRO, udp.EnvDisableZeroCopy} {
			t.Setenv(env, "0")
		}
		pc := listenPacket(t, "127.0.0.1:0", proto.Options{})
		if caps := dial(t, pc.LocalAddr().String(), proto.Options{}).Caps(); !caps.GSO || !caps.GRO || !caps.ZeroCopy || caps.GSOKilled {
			t.Errorf("Caps() with the switches at 0: %+v, want everything on", caps)
		}
	})
}

func TestListenPacketGRO(t *testing.T) {
	pc := listenPacket(t, "127.0.0.1:0", proto.Options{GRO: true})
	if !pc.GRO() {
		t.Error("GRO() = false with Options.GRO")
	}
	// getsockopt(UDP_GRO) exists from Linux 5.12.
	if v := prototest.Sockopt(t, pc, unix.SOL_UDP, unix.UDP_GRO); v != 1 {
		t.Errorf("UDP_GRO = %d, want 1", v)
	}
	c := dial(t, pc.LocalAddr().String(), proto.Options{})
	roundTrip(t, c, pc, "gro on")
}

func TestReceiveBuffer(t *testing.T) {
	pc := listenPacket(t, "127.0.0.1:0", proto.Options{})
	got := prototest.Sockopt(t, pc, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if pc.RcvBuf() != got {
		t.Errorf("RcvBuf() = %d, SO_RCVBUF = %d", pc.RcvBuf(), got)
	}
	if got < udp.DefaultRcvBuf {
		t.Errorf("default receive buffer %d, want >= DefaultRcvBuf (%d)", got, udp.DefaultRcvBuf)
	}
	const asked = 1 << 20
	pc2 := listenPacket(t, "127.0.0.1:0", proto.Options{RcvBuf: asked})
	if got := pc2.RcvBuf(); got < asked || got != prototest.Sockopt(t, pc2, unix.SOL_SOCKET, unix.SO_RCVBUF) {
		t.Errorf("RcvBuf() with --rcvbuf %d = %d", asked, got)
	}
	// The sender's socket is not given the receiver's default.
	c := dial(t, pc.LocalAddr().String(), proto.Options{})
	if def, err := proto.Sysctl("net/core/rmem_default"); err == nil {
		if got := prototest.Sockopt(t, c, unix.SOL_SOCKET, unix.SO_RCVBUF); got != def {
			t.Errorf("sender SO_RCVBUF = %d, want rmem_default %d", got, def)
		}
	}
}

func TestFilePacketConn(t *testing.T) {
	parent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	f, err := parent.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pc, err := udp.Plugin{}.FilePacketConn(f, proto.Options{GRO: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	parent.Close() // the adopted dup lives on
	if pc.LocalAddr().String() != parent.LocalAddr().String() {
		t.Errorf("adopted socket at %s, want %s", pc.LocalAddr(), parent.LocalAddr())
	}
	if pc.RcvBuf() < udp.DefaultRcvBuf {
		t.Errorf("adopted socket RcvBuf() = %d, want >= %d (the receiver's default applied)", pc.RcvBuf(), udp.DefaultRcvBuf)
	}
	if !pc.GRO() || !pc.Caps().GRO {
		t.Errorf("adopted socket with Options.GRO: GRO() %v, Caps %+v", pc.GRO(), pc.Caps())
	}
	u := pc.(*udp.PacketConn)
	roundTrip(t, dial(t, pc.LocalAddr().String(), proto.Options{}), u, "to the child")

	// A dup again, as compare hands it on.
	f2, err := pc.File()
	if err != nil {
		t.Fatal(err)
	}
	f2.Close()
}

func TestBuffers(t *testing.T) {
	pc := listenPacket(t, "127.0.0.1:0", proto.Options{})
	c := dial(t, pc.LocalAddr().String(), proto.Options{})
	b, err := c.Buffers()
	if err != nil {
		t.Fatal(err)
	}
	if b.SndBuf <= 0 || b.RcvBuf <= 0 || b.SndBufMax <= 0 || b.PeerRcvBufMax <= 0 || b.Backlog <= 0 || b.Why == "" {
		t.Errorf("Buffers() = %+v: want every bound filled in", b)
	}
	if b.SndBuf != prototest.Sockopt(t, c, unix.SOL_SOCKET, unix.SO_SNDBUF) || b.RcvBuf != prototest.Sockopt(t, c, unix.SOL_SOCKET, unix.SO_RCVBUF) {
		t.Errorf("Buffers() = %+v, not the socket's", b)
	}
	if b.SndBufMax != b.SndBuf {
		t.Errorf("SndBufMax = %d, want SndBuf %d (UDP does not autotune)", b.SndBufMax, b.SndBuf)
	}
	if b.PeerRcvBufMax < 2*udp.DefaultRcvBuf {
		t.Errorf("PeerRcvBufMax = %d, want >= 2*DefaultRcvBuf", b.PeerRcvBufMax)
	}
	if rmemMax, err := proto.Sysctl("net/core/rmem_max"); err == nil && b.PeerRcvBufMax < 2*rmemMax {
		t.Errorf("PeerRcvBufMax = %d, want >= 2*rmem_max = %d", b.PeerRcvBufMax, 2*rmemMax)
	}
	if bl, err := proto.Sysctl("net/core/netdev_max_backlog"); err == nil && b.Backlog != bl {
		t.Errorf("Backlog = %d, want netdev_max_backlog %d", b.Backlog, bl)
	}
	// NOTE: b.RcvBufMax is left 0 by udp.Conn.Buffers (reported, not asserted here).

	// --rcvbuf on the sender raises the peer bound to match such a receiver.
	const big = 64 << 20
	b2, err := dial(t, pc.LocalAddr().String(), proto.Options{SndBuf: 1 << 20, RcvBuf: big}).Buffers()
	if err != nil {
		t.Fatal(err)
	}
	if b2.PeerRcvBufMax < 2*big {
		t.Errorf("PeerRcvBufMax with --rcvbuf %d = %d, want >= %d", big, b2.PeerRcvBufMax, 2*big)
	}
	if b2.SndBuf < 1<<20 || b2.SndBufMax != b2.SndBuf {
		t.Errorf("Buffers() with --sndbuf 1MiB = %+v", b2)
	}
}

func TestNoListener(t *testing.T) {
	if _, err := (udp.Plugin{}).Listen("127.0.0.1:0", proto.Options{}); err == nil || !strings.Contains(err.Error(), "ListenPacket") {
		t.Errorf("Listen = %v, want a pointer to ListenPacket", err)
	}
	if _, err := (udp.Plugin{}).FileListener(nil, proto.Options{}); err == nil || !strings.Contains(err.Error(), "FilePacketConn") {
		t.Errorf("FileListener = %v, want a pointer to FilePacketConn", err)
	}
	var _ proto.PacketPlugin = udp.Plugin{}
}

// A connected socket learns of a closed port: ICMP port unreachable comes back as
// ECONNREFUSED on a later call.
func TestConnRefused(t *testing.T) {
	pc := listenPacket(t, "127.0.0.1:0", proto.Options{})
	addr := pc.LocalAddr().String()
	pc.Close()
	c := dial(t, addr, proto.Options{})
	c.SetDeadline(time.Now().Add(timeout))
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = c.Write([]byte("anyone?"))
		if err == nil {
			_, err = c.Read(make([]byte, 16))
		}
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("writing to a closed port: %v, want ECONNREFUSED", err)
	}
}

func TestDialErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, addr := range []string{"127.0.0.1", "256.1.1.1:9", "127.0.0.1:99999"} {
		if c, err := (udp.Plugin{}).Dial(ctx, addr, proto.Options{}); err == nil {
			c.Close()
			t.Errorf("Dial(%q) succeeded", addr)
		}
	}
	if pc, err := (udp.Plugin{}).ListenPacket("127.0.0.1:x", proto.Options{}); err == nil {
		pc.Close()
		t.Error("ListenPacket on a bad address succeeded")
	}
}

func TestTraits(t *testing.T) {
	tr := udp.Plugin{}.Traits()
	if tr.Name != "udp" || tr.Kind != proto.KindDatagram || tr.LossFails || tr.Lanes {
		t.Errorf("Traits = %+v", tr)
	}
	if tr.DefaultSink() != "mmsg" {
		t.Errorf("DefaultSink() = %q", tr.DefaultSink())
	}
	for _, s := range []string{"read", "splice"} {
		if err := tr.Sink(s); err == nil || !strings.Contains(err.Error(), "recvmmsg") {
			t.Errorf("Sink(%q) = %v, want the recvmmsg reason", s, err)
		}
	}
	if err := tr.Mode("sendfile"); err == nil || !strings.Contains(err.Error(), tr.Refused["sendfile"]) {
		t.Errorf("Mode(sendfile) = %v", err)
	}
	if tr.MaxFor("") != udp.MaxIPv4 || tr.MaxFor("[::1]:1") != udp.MaxIPv6 {
		t.Errorf("MaxFor: %d / %d", tr.MaxFor(""), tr.MaxFor("[::1]:1"))
	}
	if err := tr.Size(tr.DefaultSize, ""); err != nil {
		t.Errorf("DefaultSize: %v", err)
	}
	for _, m := range strings.Split(tr.Compare.Modes, ",") {
		if err := tr.Mode(m); err != nil {
			t.Errorf("Compare mode %q: %v", m, err)
		}
	}
	if got, err := proto.Lookup("udp"); err != nil || got.Traits().Name != "udp" {
		t.Errorf("Lookup(udp) = %v, %v", got, err)
	}
}

func TestProbe(t *testing.T) {
	rows := udp.Plugin{}.Traits().Probe()
	want := []string{"udp socket", "splice into udp", "UDP_SEGMENT (GSO)", "UDP_GRO"}
	if len(rows) != len(want) {
		t.Fatalf("%d probe rows, want %d", len(rows), len(want))
	}
	for i, r := range rows {
		if r.Name != want[i] || r.Err != nil {
			t.Errorf("probe row %d = %q, %v; want %q, nil", i, r.Name, r.Err, want[i])
		}
	}
}
