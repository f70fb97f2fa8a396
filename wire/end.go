package wire

import (
	"encoding/binary"
	"errors"
)

// The end frame: a stream's last message (byte streams, messages and datagrams alike) is
// a native header with FlagEnd, Seq = the data messages the stream sent, and an 8-byte
// payload: the data bytes it sent (u64), covered by the header's CRC32-C. A receiver
// that sees it knows the stream is complete and can check the totals; one that reaches
// EOF without it knows the sender is gone (docs/design.md#end-of-test).
const (
	EndPayloadLen = 8
	EndLen        = HeaderLen + EndPayloadLen
)

// ErrBadEnd is an end frame whose payload is not 8 bytes or fails its checksum.
var ErrBadEnd = errors.New("malformed end frame")

// PutEnd writes the end frame of a stream that sent msgs messages of bytes bytes into
// b[:EndLen]; h carries the test id, streams, stream id and time.
func PutEnd(b []byte, h Header, msgs, bytes uint64) {
	binary.LittleEndian.PutUint64(b[HeaderLen:], bytes)
	h.Flags, h.Seq, h.Length, h.Lanes = FlagEnd, msgs, EndPayloadLen, 0
	h.CRC = CRC32C(b[HeaderLen:EndLen])
	h.Put(b)
}

// ParseEnd checks an end frame's payload against its header h and returns the data
// bytes the sender reported.
func ParseEnd(h *Header, payload []byte) (bytes uint64, err error) {
	if h.Flags&FlagEnd == 0 || h.Length != EndPayloadLen || len(payload) < EndPayloadLen || CRC32C(payload[:EndPayloadLen]) != h.CRC {
		return 0, ErrBadEnd
	}
	return binary.LittleEndian.Uint64(payload), nil
}

// The verdict: after a byte-stream or message test the receiver writes VerdictLen bytes
// back on every stream of the test (the reverse direction), so the sender exits with the
// receiver's verdict: magic "SPGV", version, the exit code (0 complete and intact, 1
// incomplete, 3 integrity failure), two reserved bytes, then u64 test id, messages and
// bytes received (the whole test), and problems (corrupt + lost + duplicate + reordered).
const (
	VerdictLen   = 40
	VerdictMagic = 0x56475053 // "SPGV"
)

// Verdict is one decoded verdict.
type Verdict struct {
	Code                              uint8
	TestID, Messages, Bytes, Problems uint64
}

// ErrBadVerdict is a verdict with a code splicegen does not define.
var ErrBadVerdict = errors.New("unknown verdict code")

// Put writes v into b[:VerdictLen].
func (v *Verdict) Put(b []byte) {
	_ = b[VerdictLen-1]
	binary.LittleEndian.PutUint32(b[0:], VerdictMagic)
	b[4], b[5], b[6], b[7] = Version, v.Code, 0, 0
	binary.LittleEndian.PutUint64(b[8:], v.TestID)
	binary.LittleEndian.PutUint64(b[16:], v.Messages)
	binary.LittleEndian.PutUint64(b[24:], v.Bytes)
	binary.LittleEndian.PutUint64(b[32:], v.Problems)
}

// ParseVerdict decodes b[:VerdictLen]. Garbage returns an error, never a panic.
func ParseVerdict(b []byte, v *Verdict) error {
	if len(b) < VerdictLen {
		return ErrShortHeader
	}
	if binary.LittleEndian.Uint32(b[0:]) != VerdictMagic {
		return ErrBadMagic
	}
	if b[4] != Version {
		return ErrBadVersion
	}
	v.Code = b[5]
	if v.Code != 0 && v.Code != 1 && v.Code != 3 || b[6] != 0 || b[7] != 0 {
		return ErrBadVerdict
	}
	v.TestID = binary.LittleEndian.Uint64(b[8:])
	v.Messages = binary.LittleEndian.Uint64(b[16:])
	v.Bytes = binary.LittleEndian.Uint64(b[24:])
	v.Problems = binary.LittleEndian.Uint64(b[32:])
	return nil
}
