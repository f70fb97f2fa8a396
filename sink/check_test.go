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
		c := newChecker(wire.FormatNative, true, 0, 0, false)
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
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: example.org\r\n\r\nmore bytes here, and more"), true, StreamStats{Corrupt: 1}, true},
		{"truncated", stream(64, 0, 0, 1)[:100], true, StreamStats{Messages: 1, Truncated: 36}, false},
	}
	for _, tc := range tests {
		c := newChecker(wire.FormatNative, tc.verify, 0, 0, false)
		c.feed(tc.in)
		st := c.end()
		if n := st.Sizes[64]; n != st.Messages || len(st.Sizes) > 1 {
			t.Errorf("%s: sizes %v for %d messages of 64 bytes", tc.name, st.Sizes, st.Messages)
		}
		st.Bytes, st.MsgSize, st.Stream, st.Sizes = 0, 0, 0, nil
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
	c := newChecker(wire.FormatNettest, true, size, 0, false)
	feedSplit(c, b, 7)
	if st := c.end(); st.Messages != 3 || st.Corrupt != 0 {
		t.Fatalf("%+v", st)
	}
	b[size+20] ^= 1
	c = newChecker(wire.FormatNettest, true, size, 0, false)
	c.feed(b)
	if st := c.end(); st.Corrupt != 1 {
		t.Fatalf("flipped byte: %+v", st)
	}
	c = newChecker(wire.FormatNettest, true, size+1, 0, false)
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
			c := newChecker(format, true, 64, 0, false)
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
	c := newChecker(wire.FormatNative, true, 0, 0, true)
	c.lane = 1
	c.feed(msgs(1, 4, 7, 13)) // 10 missing
	st := c.end()
	if st.Messages != 4 || st.Lost != 1 || st.Duplicate != 0 || st.Corrupt != 0 {
		t.Fatalf("lane 1: %+v", st)
	}
	c = newChecker(wire.FormatNative, true, 0, 0, true)
	c.lane = 2
	c.feed(msgs(2, 5, 5))
	if st := c.end(); st.Duplicate != 1 || st.Lost != 0 {
		t.Fatalf("lane 2: %+v", st)
	}
}

// The end frame: totals recorded, bytes not counted as data, data after it is corrupt;
// a header of another test id breaks framing; a byte stream ignores the lanes field.
func TestCheckerEndFrameAndTestID(t *testing.T) {
	const test = 0xabc
	msg := func(seq uint64, lanes uint32) []byte {
		m := make([]byte, 100)
		p := m[wire.HeaderLen:]
		wire.FillPattern(p, 0, seq)
		h := wire.Header{Flags: wire.FlagVerify, Streams: 1, Length: uint32(len(p)), Seq: seq, CRC: wire.CRC32C(p), Lanes: lanes, TestID: test}
		h.Put(m)
		return m
	}
	end := func(msgs, bytes uint64) []byte {
		b := make([]byte, wire.EndLen)
		wire.PutEnd(b, wire.Header{Streams: 1, TestID: test}, msgs, bytes)
		return b
	}
	var b []byte
	for s := range uint64(5) {
		b = append(b, msg(s, 3)...) // lanes 3: ignored by a byte-stream checker
	}
	b = append(b, end(5, 500)...)
	for _, chunk := range []int{1, 7, 48, 100, 1 << 20} {
		c := newChecker(wire.FormatNative, true, 0, test, false)
		feedSplit(c, b, chunk)
		st := c.end()
		if !st.Ended || st.SentMessages != 5 || st.SentBytes != 500 || st.Messages != 5 || st.Bytes != 500 || st.Corrupt+st.Lost+st.Duplicate != 0 {
			t.Fatalf("chunk %d: %+v", chunk, st)
		}
	}
	c := newChecker(wire.FormatNative, true, 0, test, false)
	c.feed(append(append([]byte{}, b...), msg(5, 1)...))
	if st := c.end(); st.Corrupt != 1 || st.Error == "" {
		t.Fatalf("data after the end frame: %+v", st)
	}
	c = newChecker(wire.FormatNative, true, 0, test+1, false)
	c.feed(b)
	if st := c.end(); st.Corrupt != 1 || st.Messages != 0 {
		t.Fatalf("another test's header: %+v", st)
	}
	bad := end(5, 500)
	bad[wire.HeaderLen] ^= 0xff
	c = newChecker(wire.FormatNative, true, 0, test, false)
	c.feed(append(msg(0, 1), bad...))
	if st := c.end(); st.Ended || st.Corrupt != 1 {
		t.Fatalf("bad end frame: %+v", st)
	}
}

// The verdict over a whole test.
func TestVerdict(t *testing.T) {
	ok := StreamStats{Messages: 5, Bytes: 500, Ended: true, SentMessages: 5, SentBytes: 500}
	native := Config{Format: wire.FormatNative, Sink: SinkRead, Verify: true}
	for _, c := range []struct {
		name string
		s    Stats
		cfg  Config
		loss bool
		code int
	}{
		{"complete", Stats{Streams: []StreamStats{ok}, Expected: 1}, native, true, 0},
		{"no end frame", Stats{Streams: []StreamStats{{Messages: 5, Bytes: 500}}, Expected: 1}, native, true, 1},
		{"missing stream", Stats{Streams: []StreamStats{ok}, Expected: 2}, native, true, 1},
		{"totals differ", Stats{Streams: []StreamStats{{Messages: 4, Bytes: 400, Ended: true, SentMessages: 5, SentBytes: 500}}, Expected: 1}, native, true, 3},
		{"corrupt", Stats{Streams: []StreamStats{{Messages: 5, Bytes: 500, Ended: true, SentMessages: 5, SentBytes: 500, Corrupt: 1}}, Expected: 1}, native, true, 3},
		{"lost on tcp", Stats{Streams: []StreamStats{{Messages: 5, Bytes: 500, Ended: true, SentMessages: 5, SentBytes: 500, Lost: 1}}, Expected: 1}, native, true, 3},
		{"unverified", Stats{Streams: []StreamStats{{Messages: 5, Bytes: 500, Ended: true, SentMessages: 5, SentBytes: 500, Unverified: 5}}, Expected: 1}, native, true, 3},
		{"interrupted", Stats{Streams: []StreamStats{ok}, Expected: 1, Interrupted: true}, native, true, 1},
		{"udp loss, ended", Stats{Streams: []StreamStats{{Messages: 5, Lost: 2}}, Expected: 1, Ended: true}, Config{Format: wire.FormatNative, Sink: SinkMmsg}, false, 0},
		{"udp no end", Stats{Streams: []StreamStats{{Messages: 5}}, Expected: 1}, Config{Format: wire.FormatNative, Sink: SinkMmsg}, false, 1},
		{"raw: not provable", Stats{Streams: []StreamStats{{Messages: 5, Bytes: 500}}, Expected: 1}, Config{Format: wire.FormatRaw, Sink: SinkRead}, true, 0},
	} {
		if code, why := c.s.Verdict(c.cfg, c.loss); code != c.code {
			t.Errorf("%s: verdict %d (%s), want %d", c.name, code, why, c.code)
		}
	}
}
