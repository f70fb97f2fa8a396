package gen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Native header (DESIGN.md §Framing), little-endian, HeaderLen bytes:
//
//	off size field
//	  0   4  magic "SPGN"
//	  4   1  version (1)
//	  5   1  flags (FlagVerify: payload is Pattern(stream, seq) and CRC is set)
//	  6   2  streams in the test (so a receiver knows how many connections to wait for)
//	  8   4  stream id
//	 12   4  payload length (message size - HeaderLen)
//	 16   8  sequence number (per stream, from 0)
//	 24   8  send timestamp, ns since the Unix epoch
//	 32   4  CRC32-C of the payload (0 unless FlagVerify)
//	 36   4  lanes: the stream's messages rotate over this many SCTP stream ids, message
//	         seq on stream id seq % lanes (0 or 1: no rotation)
const (
	HeaderLen = 40
	Magic     = 0x4e475053 // "SPGN" read as little-endian u32
	Version   = 1

	FlagVerify = 1 << 0
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
	if h.Length > MaxMessage-HeaderLen {
		return ErrBadLength
	}
	return nil
}

// Format is the wire format of a message.
type Format int

const (
	FormatNative  Format = iota // Header + payload
	FormatNettest               // the seed's nettest: {u64 msg_size; u64 crc} + payload
	FormatRaw                   // no header: payload only
)

func (f Format) String() string {
	switch f {
	case FormatNative:
		return "native"
	case FormatNettest:
		return "nettest"
	case FormatRaw:
		return "raw"
	}
	return fmt.Sprintf("format(%d)", int(f))
}

// ParseFormat parses a --format value.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "native", "":
		return FormatNative, nil
	case "nettest":
		return FormatNettest, nil
	case "raw":
		return FormatRaw, nil
	}
	return 0, fmt.Errorf("unknown format %q (want native, nettest or raw)", s)
}

// HeaderSize is the header length of the format.
func (f Format) HeaderSize() int {
	switch f {
	case FormatNative:
		return HeaderLen
	case FormatNettest:
		return NettestHeaderLen
	}
	return 0
}

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
