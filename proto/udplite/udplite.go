// Package udplite is a test-only fourth protocol: UDP-Lite (RFC 3828, IPPROTO_UDPLITE)
// through the UDP plugin's code, with its own traits. It is not registered by the
// splicegen command; a test imports it to prove that a protocol plugs in without an edit
// outside its folder (cmd/splicegen/fourth_test.go).
package udplite

import (
	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/proto/udp"
	"golang.org/x/sys/unix"
)

func init() { proto.Register(Plugin{udp.Plugin{Prot: unix.IPPROTO_UDPLITE}}) }

// Plugin is UDP's plugin on IPPROTO_UDPLITE.
type Plugin struct{ udp.Plugin }

// Traits: UDP's, less what UDP-Lite refuses: GSO (udp_send_skb answers EIO for
// UDP-Lite, net/ipv4/udp.c) and MSG_ZEROCOPY (SO_ZEROCOPY is EOPNOTSUPP on it,
// net/core/sock.c). Checksum coverage stays the kernel default: the whole datagram.
func (Plugin) Traits() proto.Traits { return traits }

var traits = func() proto.Traits {
	t := udp.Plugin{}.Traits()
	t.Name = "udplite"
	t.Modes = []string{"splice", "write", "mmsg"}
	t.Refused = map[string]string{
		"gso":         "the kernel answers EIO to UDP_SEGMENT sends on UDP-Lite",
		"zerocopy":    "SO_ZEROCOPY is EOPNOTSUPP on UDP-Lite",
		"sendfile":    t.Refused["sendfile"],
		"sink read":   t.Refused["sink read"],
		"sink splice": t.Refused["sink splice"],
	}
	t.Compare = proto.CompareDefaults{Modes: "mmsg,write,splice", Sizes: "64,1472", Limit: "--time=1s"}
	t.Probe = udp.Probe("udplite", unix.IPPROTO_UDPLITE)
	return t
}()
