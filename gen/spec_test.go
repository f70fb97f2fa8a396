package gen

import (
	"errors"
	"testing"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/proto/tcp"
	"github.com/splicegen/splicegen/proto/udp"
	"github.com/splicegen/splicegen/wire"
)

func TestSpecCheck(t *testing.T) {
	tr := tcp.Plugin{}.Traits()
	const addr = "127.0.0.1:5500"
	ok := Spec{Mode: ModeSplice, Size: 65536, Duration: 1e9, Streams: 1}
	if err := ok.Check(tr, addr); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Spec){
		func(s *Spec) { s.Mode = "teleport" },
		func(s *Spec) { s.Size = 0 },
		func(s *Spec) { s.Size = wire.HeaderLen - 1 },
		func(s *Spec) { s.Size = wire.MaxMessage + 1 },
		func(s *Spec) { s.Streams = 0 },
		func(s *Spec) { s.Count = 5 },
		func(s *Spec) { s.Duration = 0 },
		func(s *Spec) { s.Format, s.Verify = wire.FormatRaw, true },
		func(s *Spec) { s.Format, s.Size = wire.FormatNettest, 15 },
		func(s *Spec) { s.IO = "spin" },
		func(s *Spec) { s.Mode = ModeGSO }, // a mode TCP does not run
	}
	for i, mod := range bad {
		s := ok
		mod(&s)
		if err := s.Check(tr, addr); !errors.Is(err, proto.ErrUsage) {
			t.Errorf("case %d (%+v): got %v, want a usage error", i, s, err)
		}
	}
	// Against a datagram protocol: nettest is refused, sizes are bounded by the family.
	ut := udp.Plugin{}.Traits()
	dg := Spec{Mode: ModeWrite, Size: 1472, Duration: 1e9, Streams: 1}
	for _, c := range []struct {
		mod  func(*Spec)
		addr string
		ok   bool
	}{
		{func(s *Spec) {}, addr, true},
		{func(s *Spec) { s.Format = wire.FormatNettest }, addr, false},
		{func(s *Spec) { s.Size = udp.MaxIPv4 }, addr, true},
		{func(s *Spec) { s.Size = udp.MaxIPv4 + 1 }, addr, false},
		{func(s *Spec) { s.Size = udp.MaxIPv4 + 1 }, "[::1]:5500", true},
		{func(s *Spec) { s.Size = udp.MaxIPv6 + 1 }, "[::1]:5500", false},
		{func(s *Spec) { s.Mode = ModeSendfile }, addr, false},
	} {
		s := dg
		c.mod(&s)
		if err := s.Check(ut, c.addr); (err == nil) != c.ok {
			t.Errorf("udp %+v to %s: %v", s, c.addr, err)
		}
	}
}

func TestMessagesSplit(t *testing.T) {
	s := Spec{Size: 1000, Bytes: 10001, Streams: 3}
	var sum int64
	for i := range 3 {
		sum += s.messages(i)
	}
	if sum != 11 || s.messages(0) != 4 || s.messages(2) != 3 {
		t.Fatalf("split of 11 messages over 3 streams: %d %d %d", s.messages(0), s.messages(1), s.messages(2))
	}
	if (&Spec{Size: 1, Duration: 1, Streams: 2}).messages(1) != -1 {
		t.Fatal("time-limited stream must have no message limit")
	}
}
