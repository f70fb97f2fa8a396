package gen

import (
	"slices"
	"strconv"
	"testing"

	"github.com/splicegen/splicegen/wire"
)

func size(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }

func TestParseMix(t *testing.T) {
	c, err := ParseMix("64:7,594:4,1518:1", false, size)
	if err != nil {
		t.Fatal(err)
	}
	// Smooth weighted round-robin: spread out, never three of a kind in a row here.
	a, b, d := 64, 594, 1518
	want := []int{a, b, a, a, b, a, d, a, b, a, b, a}
	if !slices.Equal(c, want) {
		t.Errorf("cycle %v, want %v", c, want)
	}
	if got := MixString(c); got != "64:7,594:4,1518:1" {
		t.Errorf("MixString = %q", got)
	}
	for _, tc := range []struct {
		v6   bool
		want string
	}{{false, "48:7,548:4,1472:1"}, {true, "48:7,528:4,1452:1"}} {
		c, err := ParseMix("IMIX", tc.v6, size)
		if err != nil || MixString(c) != tc.want {
			t.Errorf("imix (v6 %v) = %q, %v; want %s", tc.v6, MixString(c), err, tc.want)
		}
	}
	if c, err := ParseMix("1400", false, size); c != nil || err != nil {
		t.Errorf("a plain size parsed as a mix: %v, %v", c, err)
	}
	for _, bad := range []string{"64:0", "64:x", "x:1", "64:1,", ":1", "64:5000", "64:3000,128:3000", "0:1", "64:1:2"} {
		if c, err := ParseMix(bad, false, size); err == nil {
			t.Errorf("ParseMix(%q) = %v, want an error", bad, c)
		}
	}
}

// Every window of a cycle's length has the mix's sizes in its weights, whatever the start.
func TestMixWindows(t *testing.T) {
	c, _ := ParseMix("100:3,200:2,300:1", false, size)
	s := Spec{Mix: c, Size: 300}
	for start := uint64(0); start < 20; start++ {
		n := map[int]int{}
		for seq := start; seq < start+uint64(len(c)); seq++ {
			n[s.msgSize(seq)]++
		}
		if n[100] != 3 || n[200] != 2 || n[300] != 1 {
			t.Fatalf("window at %d: %v", start, n)
		}
	}
}

// The ring carries at least the rule's bytes in a lap of mixed messages.
func TestMixRing(t *testing.T) {
	c, _ := ParseMix("imix", false, size)
	s := Spec{Mix: c, Size: 1472, Format: wire.FormatNative, Mode: ModeWrite}
	if err := s.checkMix(); err != nil {
		t.Fatal(err)
	}
	for _, rule := range []int{1, 4000, 1 << 20, 10<<20 + 7} {
		n := s.ringScale(rule)
		slots := n / s.Size
		if n%s.Size != 0 || slots%len(c) != 0 {
			t.Fatalf("ring %d: not whole cycles of slots", n)
		}
		if lap := slots / len(c) * s.mixSum(); lap < rule+s.mixSum() {
			t.Errorf("rule %d: a lap carries %d bytes", rule, lap)
		}
	}
	s.Mode = ModeGSO
	if s.checkMix() == nil {
		t.Error("gso with a mix accepted")
	}
	s.Mode, s.Format = ModeWrite, wire.FormatRaw
	if s.checkMix() == nil {
		t.Error("raw format with a mix accepted")
	}
	s.Format, s.Mix = wire.FormatNative, []int{16, 1472}
	if s.checkMix() == nil {
		t.Error("a size below the header accepted")
	}
}
