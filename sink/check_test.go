package sink

import (
	"reflect"
	"testing"

	"github.com/splicegen/splicegen/wire"
)

// stream builds native messages with --verify payloads for seqs.
func stream(size int, stream uint32, seqs ...uint64) []byte {
	var out []byte
	for _, s := range seqs {
		m := make([]byte, size)
		p := m[wire.HeaderLen:]
		wire.FillPattern(p, stream, s)
		h := wire.Header{Flags: wire.FlagVerify, Streams: 1, Stream: stream, Length: uint32(len(p)), Seq: s, CRC: wire.CRC32C(p)}
		h.Put(m)
		out = append(out, m...)
	}
	return out
}

func feedSplit(c *checker, b []byte, chunk int) {
	for len(b) > 0 {
		n := min(chunk, len(b))
		c.feed(b[:n])
		b = b[n:]
	}
}

func TestCheckerCleanAtEverySplit(t *testing.T) {
	b := stream(100, 3, 0, 1, 2, 3)
	for chunk := 1; chunk <= len(b); chunk++ {
		c := newChecker(wire.FormatNative, true, 0)
		feedSplit(c, b, chunk)
		st := c.end()
		if st.Messages != 4 || st.Corrupt+st.Lost+st.Duplicate+st.Truncated != 0 || st.Stream != 3 || st.MsgSize != 100 {
			t.Fatalf("chunk %d: %+v", chunk, st)
		}
	}
}

func TestCheckerAccounting(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		verify  bool
		want    StreamStats
		framing bool
	}{
		{"lost", stream(64, 0, 0, 1, 4, 5), true, StreamStats{Messages: 4, Lost: 2}, false},
		{"duplicate", stream(64, 0, 0, 1, 1, 2), true, StreamStats{Messages: 4, Duplicate: 1}, false},
		{"corrupt payload", func() []byte { b := stream(64, 0, 0, 1); b[64+50] ^= 1; return b }(), true, StreamStats{Messages: 2, Corrupt: 1}, false},
		{"corrupt ignored without verify", func() []byte { b := stream(64, 0, 0, 1); b[64+50] ^= 1; return b }(), false, StreamStats{Messages: 2}, false},
		{"stale payload, valid crc", func() []byte {
			// A message whose payload and CRC are seq 0's but whose header says seq 1:
			// what a recycled page looks like. The pattern check catches it.
			b := stream(64, 0, 0, 1)
			copy(b[64+wire.HeaderLen:], b[wire.HeaderLen:64])
			copy(b[64+32:64+36], b[32:36])
			return b
		}(), true, StreamStats{Messages: 2, Corrupt: 1}, false},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\nmore bytes here"), true, StreamStats{Corrupt: 1}, true},
		{"truncated", stream(64, 0, 0, 1)[:100], true, StreamStats{Messages: 1, Truncated: 36}, false},
	}
	for _, tc := range tests {
		c := newChecker(wire.FormatNative, tc.verify, 0)
		c.feed(tc.in)
		st := c.end()
		st.Bytes, st.MsgSize, st.Stream = 0, 0, 0
		if tc.framing != (st.Error != "") {
			t.Errorf("%s: error %q", tc.name, st.Error)
		}
		st.Error = ""
		if !reflect.DeepEqual(st, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, st, tc.want)
		}
	}
}

func TestCheckerNettest(t *testing.T) {
	size := 200
	var b []byte
	for s := range 3 {
		m := make([]byte, size)
		wire.FillPattern(m[16:], 0, uint64(s))
		wire.PutNettest(m, size, wire.NettestCRC(0, m[16:]))
		b = append(b, m...)
	}
	c := newChecker(wire.FormatNettest, true, size)
	feedSplit(c, b, 7)
	if st := c.end(); st.Messages != 3 || st.Corrupt != 0 {
		t.Fatalf("%+v", st)
	}
	b[size+20] ^= 1
	c = newChecker(wire.FormatNettest, true, size)
	c.feed(b)
	if st := c.end(); st.Corrupt != 1 {
		t.Fatalf("flipped byte: %+v", st)
	}
	c = newChecker(wire.FormatNettest, true, size+1)
	c.feed(b)
	if st := c.end(); st.Error == "" {
		t.Fatalf("size mismatch not reported: %+v", st)
	}
}

func FuzzChecker(f *testing.F) {
	f.Add(stream(64, 1, 0, 1, 2), uint8(5))
	f.Add([]byte("garbage"), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		for _, format := range []wire.Format{wire.FormatNative, wire.FormatNettest} {
			c := newChecker(format, true, 64)
			feedSplit(c, b, int(chunk)+1)
			if st := c.end(); st.Bytes != uint64(len(b)) {
				t.Fatalf("bytes %d != %d", st.Bytes, len(b))
			}
		}
	})
}

// Messages rotated over 3 SCTP stream ids: each lane's checker expects seqs lane,
// lane+3, ...; a gap on a lane is counted in messages, not seq units.
func TestCheckerLanes(t *testing.T) {
	lanes := uint32(3)
	msgs := func(seqs ...uint64) []byte {
		var out []byte
		for _, s := range seqs {
			m := make([]byte, 64)
			p := m[wire.HeaderLen:]
			wire.FillPattern(p, 0, s)
			h := wire.Header{Flags: wire.FlagVerify, Streams: 1, Length: uint32(len(p)), Seq: s, CRC: wire.CRC32C(p), Lanes: lanes}
			h.Put(m)
			out = append(out, m...)
		}
		return out
	}
	c := newChecker(wire.FormatNative, true, 0)
	c.lane = 1
	c.feed(msgs(1, 4, 7, 13)) // 10 missing
	st := c.end()
	if st.Messages != 4 || st.Lost != 1 || st.Duplicate != 0 || st.Corrupt != 0 {
		t.Fatalf("lane 1: %+v", st)
	}
	c = newChecker(wire.FormatNative, true, 0)
	c.lane = 2
	c.feed(msgs(2, 5, 5))
	if st := c.end(); st.Duplicate != 1 || st.Lost != 0 {
		t.Fatalf("lane 2: %+v", st)
	}
}
