package gen

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/wire"
)

// Size mixes (--size 64:7,594:4,1518:1 or --size imix): message sizes in a fixed cycle.
// The cycle is a smooth weighted round-robin (each size as evenly spread as its weight
// allows: 7:4:1 gives a b a a b a c a b a a b), so any stretch of the run has the mix's
// proportions, not runs of equal sizes; message seq has size Mix[seq % len(Mix)].

// MaxMixCycle bounds the cycle: weights sum to at most this many messages.
const MaxMixCycle = 4096

// IMIX is the simple IMIX (Ostinato's): Ethernet frames of 64, 594 and 1518 bytes
// (14-byte header and 4-byte FCS included) at 7:4:1.
var IMIX = [][2]int{{64, 7}, {594, 4}, {1518, 1}}

// frameOverhead is what an Ethernet frame adds around a UDP payload: 18 bytes of
// Ethernet (header and FCS), the IP header (20 or 40) and 8 of UDP.
func frameOverhead(v6 bool) int {
	if v6 {
		return 18 + 40 + 8
	}
	return 18 + 20 + 8
}

// ParseMix parses a size mix: "imix", or SIZE:WEIGHT pairs joined by commas (sizes as
// --size takes them, parsed by size). It returns the cycle, or nil for a single size
// without a weight (s is then an ordinary --size). imix sizes are frame sizes made UDP
// payloads for the peer's family (v6), the smallest raised to the native header.
func ParseMix(s string, v6 bool, size func(string) (int64, error)) ([]int, error) {
	var pairs [][2]int
	switch {
	case strings.EqualFold(s, "imix"):
		for _, p := range IMIX {
			pairs = append(pairs, [2]int{max(wire.HeaderLen, p[0]-frameOverhead(v6)), p[1]})
		}
	case !strings.Contains(s, ":"):
		return nil, nil
	default:
		for _, f := range strings.Split(s, ",") {
			sz, w, ok := strings.Cut(f, ":")
			n, err := size(sz)
			if err != nil || !ok {
				return nil, proto.Usagef("--size %q: want SIZE:WEIGHT[,SIZE:WEIGHT...] or imix", s)
			}
			k, err := strconv.Atoi(w)
			if err != nil || k < 1 || k > MaxMixCycle || n < 1 || n > 1<<30 {
				return nil, proto.Usagef("--size %q: want sizes of 1B..1GiB and weights of 1..%d", s, MaxMixCycle)
			}
			pairs = append(pairs, [2]int{int(n), k})
		}
	}
	return mixCycle(pairs)
}

// mixCycle lays the weighted sizes out as a smooth weighted round-robin: each turn every
// size gains its weight, the one with the most credit goes and pays the total.
func mixCycle(pairs [][2]int) ([]int, error) {
	total := 0
	for _, p := range pairs {
		total += p[1]
	}
	if len(pairs) == 0 || total > MaxMixCycle {
		return nil, proto.Usagef("a size mix's weights must sum to 1..%d", MaxMixCycle)
	}
	credit := make([]int, len(pairs))
	cycle := make([]int, 0, total)
	for range total {
		best := 0
		for i, p := range pairs {
			credit[i] += p[1]
			if credit[i] > credit[best] {
				best = i
			}
		}
		credit[best] -= total
		cycle = append(cycle, pairs[best][0])
	}
	return cycle, nil
}

// mixSum is the bytes of one cycle.
func (s *Spec) mixSum() int {
	sum := 0
	for _, n := range s.Mix {
		sum += n
	}
	return sum
}

// meanSize is the mean message size (Size without a mix).
func (s *Spec) meanSize() float64 {
	if len(s.Mix) == 0 {
		return float64(s.Size)
	}
	return float64(s.mixSum()) / float64(len(s.Mix))
}

// checkMix checks a mix against the spec: Size must be its largest size (the ring's
// slot), and what the mix can't be sent with is refused.
func (s *Spec) checkMix() error {
	if len(s.Mix) == 0 {
		return nil
	}
	largest := 0
	for _, n := range s.Mix {
		if n < wire.HeaderLen {
			return proto.Usagef("size %d in the mix is below the native header's %d bytes", n, wire.HeaderLen)
		}
		largest = max(largest, n)
	}
	switch {
	case largest != s.Size:
		return fmt.Errorf("gen: a mix's Size must be its largest size")
	case s.Format != wire.FormatNative:
		return proto.Usagef("a size mix needs the native format (the receiver reads each message's size from its header)")
	case s.Mode == ModeGSO:
		return proto.Usagef("a size mix can't use --mode gso (one super-buffer has one segment size): use mmsg")
	}
	return nil
}

// ringScale grows a safe ring of n bytes for the mix: the rule bounds bytes in flight,
// and a lap of slots (each the largest size) carries fewer bytes when smaller messages
// fill them, so the ring gets enough whole cycles to carry n bytes, plus one.
func (s *Spec) ringScale(n int) int {
	if len(s.Mix) == 0 {
		return n
	}
	cycles := (n+s.mixSum()-1)/s.mixSum() + 1
	return cycles * len(s.Mix) * s.Size
}

// msgSize is message seq's size.
func (s *Spec) msgSize(seq uint64) int {
	if len(s.Mix) == 0 {
		return s.Size
	}
	return s.Mix[seq%uint64(len(s.Mix))]
}

// MixString prints a mix as its sizes and weights, smallest first, e.g. "48:7,548:4,1472:1".
func MixString(cycle []int) string {
	var order []int
	count := map[int]int{}
	for _, n := range cycle {
		if count[n] == 0 {
			order = append(order, n)
		}
		count[n]++
	}
	slices.Sort(order)
	var b strings.Builder
	for i, n := range order {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%d", n, count[n])
	}
	return b.String()
}
