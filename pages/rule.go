package pages

import (
	"fmt"
)

// Rule holds the live inputs of the ring size. The page-reuse rule (docs/design.md#page-reuse, measured
// in docs/kernel.md#page-reuse): the kernel may still reference, at once, what fits in our socket's
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
