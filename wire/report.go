package wire

import "encoding/binary"

// The receiver's report: on a native stream the receiver writes HelloLen bytes on the
// otherwise unused reverse direction right after accept — magic "SPGR", version, three
// reserved bytes, then (u64) the most its receive queue may hold: its locked SO_RCVBUF,
// or its autotune limit. The sender sizes its page ring with it (pages.Rule) instead of
// the worst case for a local peer.
const (
	HelloLen   = 16
	HelloMagic = 0x52475053 // "SPGR"
)

// PutHello writes a receiver report.
func PutHello(b []byte, rcvbufMax uint64) {
	binary.LittleEndian.PutUint32(b[0:], HelloMagic)
	b[4], b[5], b[6], b[7] = Version, 0, 0, 0
	binary.LittleEndian.PutUint64(b[8:], rcvbufMax)
}

// ParseHello reads a receiver report.
func ParseHello(b []byte) (uint64, error) {
	if len(b) < HelloLen {
		return 0, ErrShortHeader
	}
	if binary.LittleEndian.Uint32(b[0:]) != HelloMagic {
		return 0, ErrBadMagic
	}
	if b[4] != Version {
		return 0, ErrBadVersion
	}
	return binary.LittleEndian.Uint64(b[8:]), nil
}
