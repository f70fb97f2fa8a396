package pages

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Rule holds the live inputs of the ring size. The page-reuse rule (DESIGN.md, measured
// in KERNEL-FACTS.md): the kernel may still reference, at once, what fits in our socket's
// send buffer, the local receiver's receive buffer (loopback skbs point at our pages until
// the receiver reads them) and our pipe; a ring bigger than their sum, with margin, is
// never rewritten while referenced. The seed's "2 x send buffer" corrupted on loopback.
type Rule struct {
	SndBuf     int    `json:"sndbuf"`      // largest our send buffer can get (effective, or autotune max)
	PeerRcvBuf int    `json:"peer_rcvbuf"` // largest the local peer's receive buffer can get
	Pipe       int    `json:"pipe"`        // our pipe's capacity
	Msg        int    `json:"msg"`         // one message: the buffer being filled
	MarginPct  int    `json:"margin_pct"`  // added on top of the sum
	Why        string `json:"why"`         // where SndBuf and PeerRcvBuf came from
}

// DefaultMarginPct is the margin on top of the rule's sum.
const DefaultMarginPct = 25

// Bytes is the safe ring size: (sndbuf + peer rcvbuf + pipe) * (1 + margin) + one message.
func (r Rule) Bytes() int {
	sum := r.SndBuf + r.PeerRcvBuf + r.Pipe
	return sum + sum*r.MarginPct/100 + r.Msg
}

func (r Rule) String() string {
	return fmt.Sprintf("ring rule: sndbuf %s + peer rcvbuf %s + pipe %s, +%d%%, + message %s = %s (%s)",
		Human(r.SndBuf), Human(r.PeerRcvBuf), Human(r.Pipe), r.MarginPct, Human(r.Msg), Human(r.Bytes()), r.Why)
}

// Human prints a byte count in binary units.
func Human(n int) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.4gMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.4gKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// Sysctl3 reads a three-value sysctl such as net/ipv4/tcp_wmem ("min default max").
func Sysctl3(name string) ([3]int, error) {
	var v [3]int
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return v, err
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return v, fmt.Errorf("%s: want 3 values, got %q", name, b)
	}
	for i := range f {
		if v[i], err = strconv.Atoi(f[i]); err != nil {
			return v, fmt.Errorf("%s: %v", name, err)
		}
	}
	return v, nil
}

// Sysctl reads a one-value sysctl such as net/core/rmem_max.
func Sysctl(name string) (int, error) {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
