package wire

import (
	"encoding/binary"
	"errors"
)

// Round trips (send --rtt N): the sender sets FlagRTT on every Nth message; the receiver
// writes that message's header back on the reverse path (a byte stream's reverse
// direction, or a datagram to the datagram's source) as an echo: the same header with
// FlagEcho as its only flag, Length 0 and CRC 0, EchoLen bytes. Its send time is the
// sender's own clock, so the sender's receive time minus it is a round trip on one clock.
// On a byte stream echoes precede the verdict; the magic tells them apart.
const (
	FlagRTT  = 1 << 2
	FlagEcho = 1 << 3
	EchoLen  = HeaderLen
)

// ErrBadEcho is a native header that is not an echo.
var ErrBadEcho = errors.New("not an echo frame")

// PutEcho writes the echo of message header h into b[:EchoLen].
func PutEcho(b []byte, h *Header) {
	e := *h
	e.Flags, e.Length, e.CRC = FlagEcho, 0, 0
	e.Put(b)
}

// ParseEcho decodes an echo from b[:EchoLen]. Garbage returns an error, never a panic.
func ParseEcho(b []byte, h *Header) error {
	if err := ParseHeader(b, h); err != nil {
		return err
	}
	if h.Flags != FlagEcho || h.Length != 0 || h.CRC != 0 {
		return ErrBadEcho
	}
	return nil
}

// IsVerdict reports whether b starts with the verdict's magic (the reverse path's last
// frame); false for an echo, garbage or fewer than 4 bytes.
func IsVerdict(b []byte) bool {
	return len(b) >= 4 && binary.LittleEndian.Uint32(b) == VerdictMagic
}
