// Package wire holds every byte format a peer or a file can send splicegen: the native
// message header, the receiver's report, the end-of-test flag, the seed's nettest
// framing and the payload pattern. It imports nothing of the project; its parsers take
// hostile input (fuzzed in wire_test.go) and never allocate.
package wire

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Native header (docs/design.md#framing), little-endian, HeaderLen bytes:
//
//	off size field
//	  0   4  magic "SPGN"
//	  4   1  version (2)
//	  5   1  flags (FlagVerify: payload is Pattern(stream, seq) and CRC is set;
//	         FlagEnd: the stream's end frame, see PutEnd; FlagRTT, FlagEcho: echo.go)
//	  6   2  streams in the test (so a receiver knows how many connections to wait for)
//	  8   4  stream id
//	 12   4  payload length (message size - HeaderLen)
//	 16   8  sequence number (per stream, from 0)
//	 24   8  send timestamp: CLOCK_REALTIME, ns since the Unix epoch (time.Now) —
//	         comparable with the receiver's clock on one host (loopback, namespaces),
//	         across hosts only as far as their clocks are synchronised
//	 32   4  CRC32-C of the payload (0 unless FlagVerify)
//	 36   4  lanes: the stream's messages rotate over this many SCTP stream ids, message
//	         seq on stream id seq % lanes (0 or 1: no rotation; message protocols); on
//	         datagrams, over this many sending sockets (--flows; 0 or 1: one)
//	 40   8  test id: random, chosen by the sender; a receiver counts only its test's
//	         data (docs/design.md#trust)
const (
	HeaderLen = 48
	Magic     = 0x4e475053 // "SPGN" read as little-endian u32
	Version   = 2

	FlagVerify = 1 << 0
	FlagEnd    = 1 << 1
)

// Header is one decoded native header.
type Header struct {
	Flags   uint8
	Streams uint16
	Stream  uint32
	Length  uint32 // payload bytes after the header
	Seq     uint64
	TimeNS  int64
	CRC     uint32
	Lanes   uint32
	TestID  uint64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C is the payload checksum (hardware-accelerated by hash/crc32 on amd64/arm64).
func CRC32C(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// UpdateCRC32C continues a CRC32-C over the next piece of a payload.
func UpdateCRC32C(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

// Put writes h into b[:HeaderLen]. It does not allocate.
func (h *Header) Put(b []byte) {
	_ = b[HeaderLen-1]
	binary.LittleEndian.PutUint32(b[0:], Magic)
	b[4] = Version
	b[5] = h.Flags
	binary.LittleEndian.PutUint16(b[6:], h.Streams)
	binary.LittleEndian.PutUint32(b[8:], h.Stream)
	binary.LittleEndian.PutUint32(b[12:], h.Length)
	binary.LittleEndian.PutUint64(b[16:], h.Seq)
	binary.LittleEndian.PutUint64(b[24:], uint64(h.TimeNS))
	binary.LittleEndian.PutUint32(b[32:], h.CRC)
	binary.LittleEndian.PutUint32(b[36:], h.Lanes)
	binary.LittleEndian.PutUint64(b[40:], h.TestID)
}

// Header parse errors. They are values so that the receive path does not allocate.
var (
	ErrShortHeader = errors.New("short header")
	ErrBadMagic    = errors.New("bad magic (not a splicegen native stream: check --format)")
	ErrBadVersion  = errors.New("unsupported header version")
	ErrBadLength   = errors.New("payload length out of range")
)

// MaxMessage is the largest message (header included) splicegen sends or accepts.
const MaxMessage = 64 << 20

// ParseHeader decodes b[:HeaderLen]. Garbage returns an error, never a panic.
func ParseHeader(b []byte, h *Header) error {
	if len(b) < HeaderLen {
		return ErrShortHeader
	}
	if binary.LittleEndian.Uint32(b[0:]) != Magic {
		return ErrBadMagic
	}
	if b[4] != Version {
		return ErrBadVersion
	}
	h.Flags = b[5]
	h.Streams = binary.LittleEndian.Uint16(b[6:])
	h.Stream = binary.LittleEndian.Uint32(b[8:])
	h.Length = binary.LittleEndian.Uint32(b[12:])
	h.Seq = binary.LittleEndian.Uint64(b[16:])
	h.TimeNS = int64(binary.LittleEndian.Uint64(b[24:]))
	h.CRC = binary.LittleEndian.Uint32(b[32:])
	h.Lanes = binary.LittleEndian.Uint32(b[36:])
	h.TestID = binary.LittleEndian.Uint64(b[40:])
	if h.Length > MaxMessage-HeaderLen {
		return ErrBadLength
	}
	return nil
}

// NewTestID is a fresh random test id, never 0 (0 is "none"). crypto/rand.Read does not
// fail (Go 1.24+: it never returns an error).
func NewTestID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}
