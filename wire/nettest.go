package wire

import "encoding/binary"

// The seed's nettest wire format (docs/kernel.md#nettest-wire-format): every message is
// exactly --size bytes, a 16-byte header {u64 msg_size; u64 crc} in little-endian order,
// msg_size counting the whole message, then msg_size-16 payload bytes.
const NettestHeaderLen = 16

// cksumTable is the POSIX cksum table: polynomial 0x04C11DB7, MSB first.
var cksumTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// NettestCRC reproduces nettest's checksum exactly: the cksum table, init 0, no final
// XOR, no length, accumulated in a 64-bit unsigned long without masking, so bits above
// 32 end up set: crc = (crc << 8) ^ table[((crc >> 24) ^ b) & 0xFF].
func NettestCRC(crc uint64, p []byte) uint64 {
	for _, b := range p {
		crc = crc<<8 ^ uint64(cksumTable[byte(crc>>24)^b])
	}
	return crc
}

// PutNettest writes a nettest header for a message of msgSize bytes whose payload has crc.
func PutNettest(b []byte, msgSize int, crc uint64) {
	binary.LittleEndian.PutUint64(b[0:], uint64(msgSize))
	binary.LittleEndian.PutUint64(b[8:], crc)
}

// ParseNettest returns the message size and crc of a nettest header.
func ParseNettest(b []byte) (msgSize uint64, crc uint64, err error) {
	if len(b) < NettestHeaderLen {
		return 0, 0, ErrShortHeader
	}
	msgSize = binary.LittleEndian.Uint64(b[0:])
	crc = binary.LittleEndian.Uint64(b[8:])
	if msgSize < NettestHeaderLen || msgSize > MaxMessage {
		return 0, 0, ErrBadLength
	}
	return msgSize, crc, nil
}
