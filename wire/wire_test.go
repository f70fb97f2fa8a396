package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{},
		{Flags: FlagVerify, Streams: 4, Stream: 3, Length: 65536 - HeaderLen, Seq: 1<<63 + 5, TimeNS: 1700000000123456789, CRC: 0xdeadbeef, Lanes: 7},
		{Streams: 65535, Stream: 1<<32 - 1, Length: MaxMessage - HeaderLen, Seq: 1<<64 - 1, TimeNS: -1},
	} {
		var b [HeaderLen]byte
		h.Put(b[:])
		var got Header
		if err := ParseHeader(b[:], &got); err != nil {
			t.Fatalf("%+v: %v", h, err)
		}
		if got != h {
			t.Errorf("round trip: got %+v, want %+v", got, h)
		}
	}
}

func TestParseHeaderErrors(t *testing.T) {
	good := func() []byte {
		var b [HeaderLen]byte
		(&Header{Length: 100}).Put(b[:])
		return b[:]
	}
	tests := []struct {
		name string
		mod  func([]byte) []byte
		want error
	}{
		{"short", func(b []byte) []byte { return b[:HeaderLen-1] }, ErrShortHeader},
		{"empty", func(b []byte) []byte { return nil }, ErrShortHeader},
		{"magic", func(b []byte) []byte { b[0] ^= 1; return b }, ErrBadMagic},
		{"version", func(b []byte) []byte { b[4] = 9; return b }, ErrBadVersion},
		{"length", func(b []byte) []byte { b[15] = 0xff; return b }, ErrBadLength},
	}
	for _, tc := range tests {
		var h Header
		if err := ParseHeader(tc.mod(good()), &h); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	var b [HeaderLen]byte
	(&Header{Flags: 1, Streams: 2, Stream: 1, Length: 24, Seq: 7}).Put(b[:])
	f.Add(b[:])
	f.Add([]byte("SPGN"))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, p []byte) {
		var h Header
		if err := ParseHeader(p, &h); err == nil {
			var out [HeaderLen]byte
			h.Put(out[:])
			if !bytes.Equal(out[:], p[:HeaderLen]) {
				t.Fatalf("accepted header does not round trip")
			}
		}
		ParseNettest(p)
	})
}

func TestCRC32C(t *testing.T) {
	// The CRC-32C check value (RFC 3720 B.4 / the "123456789" catalogue entry).
	if got := CRC32C([]byte("123456789")); got != 0xe3069283 {
		t.Fatalf("CRC32C = %#x, want 0xe3069283", got)
	}
	p := []byte("hello, splice world")
	if UpdateCRC32C(CRC32C(p[:5]), p[5:]) != CRC32C(p) {
		t.Fatal("incremental CRC differs")
	}
}

func TestNettestCRC(t *testing.T) {
	// POSIX cksum("123456789") = 930766865: our raw accumulator, then cksum's length
	// byte and final inversion, must give it on the low 32 bits.
	raw := NettestCRC(0, []byte("123456789"))
	full := NettestCRC(raw, []byte{9})
	if got := ^uint32(full); got != 930766865 {
		t.Fatalf("cksum = %d, want 930766865", got)
	}
	// nettest keeps bits above 32 (64-bit unsigned long, no mask).
	if raw>>32 == 0 {
		t.Fatalf("raw nettest crc %#x has no high bits; nettest's unmasked accumulator does", raw)
	}
	if NettestCRC(0, nil) != 0 {
		t.Fatal("empty payload crc must be 0")
	}
	var b [NettestHeaderLen]byte
	PutNettest(b[:], 8192, raw)
	size, crc, err := ParseNettest(b[:])
	if err != nil || size != 8192 || crc != raw {
		t.Fatalf("nettest header round trip: %d %#x %v", size, crc, err)
	}
	PutNettest(b[:], 3, 0)
	if _, _, err := ParseNettest(b[:]); !errors.Is(err, ErrBadLength) {
		t.Fatalf("size 3 accepted: %v", err)
	}
}

func TestPattern(t *testing.T) {
	for _, n := range []int{0, 1, 7, 4096, patternLen - 1, patternLen, patternLen + 1, 3*patternLen + 17} {
		p := make([]byte, n)
		FillPattern(p, 2, 99)
		if !CheckPattern(p, 2, 99) {
			t.Fatalf("n=%d: own pattern fails the check", n)
		}
		// Piece by piece, at every split point of a few sizes.
		off := Offset(2, 99)
		for _, cut := range []int{1, 13, 4096} {
			if cut >= n {
				continue
			}
			if !CheckAt(p[:cut], off, 0) || !CheckAt(p[cut:], off, cut) {
				t.Fatalf("n=%d cut=%d: split check fails", n, cut)
			}
		}
		if n > 0 {
			if CheckPattern(p, 2, 100) && Offset(2, 100) != off {
				t.Fatalf("n=%d: seq 100 accepted seq 99's payload", n)
			}
			p[n/2] ^= 0x40
			if CheckPattern(p, 2, 99) {
				t.Fatalf("n=%d: flipped byte not detected", n)
			}
		}
	}
	if Offset(0, 1) == Offset(0, 2) && Offset(0, 2) == Offset(0, 3) {
		t.Fatal("offsets do not vary with seq")
	}
	if Offset(1, 5) == Offset(2, 5) && Offset(3, 5) == Offset(4, 5) {
		t.Fatal("offsets do not vary with stream")
	}
}

// Every decoder a peer can feed (header, receiver report, end frame, verdict, nettest
// header): garbage returns an error, never a panic, and whatever decodes re-encodes to
// the same bytes.
func FuzzDecoders(f *testing.F) {
	var h [EndLen]byte
	PutEnd(h[:], Header{Streams: 2, Stream: 1, TestID: 42}, 7, 7000)
	f.Add(h[:])
	var v [VerdictLen]byte
	(&Verdict{Code: 3, TestID: 1, Messages: 2, Bytes: 3, Problems: 4}).Put(v[:])
	f.Add(v[:])
	var r [HelloLen]byte
	PutHello(r[:], 1<<20)
	f.Add(r[:])
	var e [EchoLen]byte
	PutEcho(e[:], &Header{Flags: FlagRTT | FlagVerify, Streams: 1, Length: 100, Seq: 30, TimeNS: 5, CRC: 9, TestID: 3})
	f.Add(e[:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var hd Header
		if ParseEcho(b, &hd) == nil {
			var out [EchoLen]byte
			PutEcho(out[:], &hd)
			if !bytes.Equal(out[:], b[:EchoLen]) || IsVerdict(b) {
				t.Fatalf("echo round trip: %x -> %x", b[:EchoLen], out)
			}
		}
		if ParseHeader(b, &hd) == nil {
			var out [HeaderLen]byte
			hd.Put(out[:])
			if !bytes.Equal(out[:], b[:HeaderLen]) {
				t.Fatalf("header round trip: %x -> %+v -> %x", b[:HeaderLen], hd, out)
			}
			if hd.Flags&FlagEnd != 0 && len(b) >= EndLen {
				if n, err := ParseEnd(&hd, b[HeaderLen:]); err == nil {
					var e [EndLen]byte
					PutEnd(e[:], hd, hd.Seq, n)
					if !bytes.Equal(e[HeaderLen:], b[HeaderLen:EndLen]) {
						t.Fatalf("end frame round trip")
					}
				}
			}
		}
		var vd Verdict
		if ParseVerdict(b, &vd) == nil {
			var out [VerdictLen]byte
			vd.Put(out[:])
			if !bytes.Equal(out[:], b[:VerdictLen]) {
				t.Fatalf("verdict round trip: %x -> %x", b[:VerdictLen], out)
			}
		}
		if n, err := ParseHello(b); err == nil {
			var out [HelloLen]byte
			PutHello(out[:], n)
			if !bytes.Equal(out[8:], b[8:HelloLen]) {
				t.Fatalf("report round trip")
			}
		}
		if size, crc, err := ParseNettest(b); err == nil {
			var out [NettestHeaderLen]byte
			PutNettest(out[:], int(size), crc)
			if !bytes.Equal(out[:], b[:NettestHeaderLen]) {
				t.Fatalf("nettest round trip")
			}
		}
	})
}

func TestEndAndVerdict(t *testing.T) {
	var b [EndLen]byte
	PutEnd(b[:], Header{Streams: 3, Stream: 2, TestID: 0xfeed, Lanes: 9}, 1234, 1234*1000)
	var h Header
	if err := ParseHeader(b[:], &h); err != nil {
		t.Fatal(err)
	}
	n, err := ParseEnd(&h, b[HeaderLen:])
	if err != nil || n != 1234*1000 || h.Seq != 1234 || h.TestID != 0xfeed || h.Lanes != 0 || h.Flags != FlagEnd {
		t.Fatalf("end: %+v %d %v", h, n, err)
	}
	b[HeaderLen] ^= 1
	if _, err := ParseEnd(&h, b[HeaderLen:]); err != ErrBadEnd {
		t.Fatalf("corrupt end frame accepted: %v", err)
	}
	want := Verdict{Code: 1, TestID: 7, Messages: 8, Bytes: 9, Problems: 10}
	var vb [VerdictLen]byte
	want.Put(vb[:])
	var got Verdict
	if err := ParseVerdict(vb[:], &got); err != nil || got != want {
		t.Fatalf("verdict %+v %v", got, err)
	}
	vb[5] = 2
	if err := ParseVerdict(vb[:], &got); err != ErrBadVerdict {
		t.Fatalf("code 2 accepted: %v", err)
	}
}

func TestEcho(t *testing.T) {
	m := Header{Flags: FlagRTT | FlagVerify, Streams: 4, Stream: 2, Length: 1000, Seq: 300, TimeNS: 1700000000123456789, CRC: 77, Lanes: 3, TestID: 0xfeed}
	var b [EchoLen]byte
	PutEcho(b[:], &m)
	var h Header
	if err := ParseEcho(b[:], &h); err != nil || h.Flags != FlagEcho || h.Seq != 300 || h.TimeNS != m.TimeNS || h.Stream != 2 ||
		h.TestID != 0xfeed || h.Length != 0 || h.CRC != 0 || IsVerdict(b[:]) {
		t.Fatalf("echo %+v %v", h, err)
	}
	var d [HeaderLen]byte
	m.Put(d[:]) // a data header is not an echo
	if err := ParseEcho(d[:], &h); err != ErrBadEcho {
		t.Fatalf("data header taken for an echo: %v", err)
	}
	if err := ParseEcho(b[:EchoLen-1], &h); err != ErrShortHeader {
		t.Fatalf("short echo: %v", err)
	}
	var v [VerdictLen]byte
	(&Verdict{TestID: 1}).Put(v[:])
	if !IsVerdict(v[:]) || IsVerdict(v[:3]) || ParseEcho(append(v[:], make([]byte, 8)...), &h) == nil {
		t.Fatal("verdict and echo not told apart")
	}
}
