package wire

import "bytes"

// The payload of message (stream, seq) is a rotation of one fixed pseudo-random block:
// byte k is block[(Offset(stream, seq) + k) mod patternLen]. Making it costs one memcpy,
// checking it one memcmp, and a receiver verifies it without storing anything. A page
// that still holds an older message's bytes differs from the expected rotation unless
// the two offsets collide (1 in 65536), and the header's sequence and CRC catch the rest.
const patternLen = 1 << 16

// pattern2 is the block twice, so any rotation of up to patternLen bytes is one slice.
var pattern2 = func() []byte {
	b := make([]byte, 2*patternLen)
	x := uint64(0x9e3779b97f4a7c15)
	for i := 0; i < patternLen; i += 8 {
		// xorshift64*: deterministic, so sender and receiver agree with no exchange.
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		v := x * 0x2545f4914f6cdd1d
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	copy(b[patternLen:], b[:patternLen])
	return b
}()

// Offset is the rotation of message (stream, seq): a splitmix64 finaliser of both.
func Offset(stream uint32, seq uint64) int {
	z := seq + uint64(stream)<<40 + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return int(z & (patternLen - 1))
}

// FillPattern writes the payload of (stream, seq) into p.
func FillPattern(p []byte, stream uint32, seq uint64) {
	fillAt(p, Offset(stream, seq))
}

func fillAt(p []byte, off int) {
	for len(p) > 0 {
		n := copy(p, pattern2[off:off+patternLen])
		p = p[n:]
	}
}

// CheckAt reports whether p equals the pattern rotated by off, starting at payload
// position pos (so a payload can be checked piece by piece as it arrives).
func CheckAt(p []byte, off int, pos int) bool {
	for len(p) > 0 {
		start := (off + pos) & (patternLen - 1)
		n := min(len(p), patternLen)
		if !bytes.Equal(p[:n], pattern2[start:start+n]) {
			return false
		}
		p = p[n:]
		pos += n
	}
	return true
}

// CheckPattern reports whether p is the whole payload of (stream, seq).
func CheckPattern(p []byte, stream uint32, seq uint64) bool {
	return CheckAt(p, Offset(stream, seq), 0)
}
