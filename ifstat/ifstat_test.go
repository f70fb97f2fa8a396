package ifstat

import (
	"net"
	"testing"
)

// Loopback: the route to 127.0.0.1 leaves by "lo", and datagrams sent to it show in its
// counters (each datagram is one packet on lo: no GSO here).
func TestLoopback(t *testing.T) {
	l, err := Route(net.ParseIP("127.0.0.1"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.Name != "lo" {
		t.Fatalf("route to 127.0.0.1: %+v, want lo", l)
	}
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	c, err := net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := Socket(c, AddrIP(c.RemoteAddr()), AddrIP(c.LocalAddr()))
	if err != nil || s != l {
		t.Fatalf("socket's interface %+v (%v), want %+v", s, err, l)
	}
	all0, err := ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	c0, err := Read(l.Index)
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 500, 100
	for range n {
		if _, err := c.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	c1, err := Read(l.Index)
	if err != nil {
		t.Fatal(err)
	}
	all1, _ := ReadAll()
	for _, d := range []Counters{c1.Sub(c0), all1[l.Index].Sub(all0[l.Index])} {
		if d.TxPackets < n || d.RxPackets < n || d.TxBytes < n*(size+28) || d.RxBytes < n*(size+28) {
			t.Fatalf("lo changed by %+v after %d datagrams of %d bytes", d, n, size)
		}
	}
}

func TestAddrIP(t *testing.T) {
	for _, c := range []struct {
		a    net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 1}, "10.0.0.1"},
		{&net.UDPAddr{IP: net.ParseIP("::1"), Port: 1}, "::1"},
		{fakeAddr("10.0.0.2/10.0.0.3:5500"), "10.0.0.2"},
		{nil, "<nil>"},
		{(*net.TCPAddr)(nil), "<nil>"},
	} {
		if got := AddrIP(c.a).String(); got != c.want {
			t.Errorf("AddrIP(%v) = %s, want %s", c.a, got, c.want)
		}
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "sctp" }
func (a fakeAddr) String() string  { return string(a) }
