package sink

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/splicegen/splicegen/wire"
)

// StreamStats are what one connection delivered.
type StreamStats struct {
	Stream     uint32 `json:"stream"`
	Bytes      uint64 `json:"bytes"`
	Messages   uint64 `json:"messages"`
	Lost       uint64 `json:"lost"`               // sequence numbers skipped
	Reordered  uint64 `json:"reordered"`          // arrived below the highest seen, not seen before
	Duplicate  uint64 `json:"duplicate"`          // seen twice
	Corrupt    uint64 `json:"corrupt"`            // bad header, checksum or payload
	Unverified uint64 `json:"unverified"`         // --verify, but the sender sent no checkable payload
	Truncated  uint64 `json:"truncated"`          // bytes of an unfinished last message (sender stopped mid-message)
	MsgSize    int    `json:"msg_size"`           // message size seen (header + payload)
	Late       uint64 `json:"late,omitempty"`     // datagrams older than the reorder window (dup or reorder: can't tell)
	SizeMin    int    `json:"size_min,omitempty"` // datagram sizes seen (UDP)
	SizeMax    int    `json:"size_max,omitempty"`
	// SCTP: messages per stream id and the sizes of the SCTP messages as read (a spliced
	// message may arrive as several SCTP messages: one per pipe page on Linux 6.1).
	Lanes    []LaneStats    `json:"lanes,omitempty"`
	MsgSizes map[int]uint64 `json:"sctp_msg_sizes,omitempty"`
	// Sizes counts the messages of each size (header + payload; native format): a size
	// mix's histogram. At most maxSizes sizes are kept.
	Sizes map[int]uint64 `json:"sizes,omitempty"`
	// End frame (native byte streams and messages): it arrived, and the sender's totals
	// it carried (data messages and bytes, the end frame not counted).
	Ended        bool   `json:"ended"`
	SentMessages uint64 `json:"sender_messages,omitempty"`
	SentBytes    uint64 `json:"sender_bytes,omitempty"`
	Error        string `json:"error,omitempty"`
}

// add sums o's counters into s.
func (s *StreamStats) add(o StreamStats) {
	s.Bytes += o.Bytes
	s.Messages += o.Messages
	s.Lost += o.Lost
	s.Reordered += o.Reordered
	s.Duplicate += o.Duplicate
	s.Corrupt += o.Corrupt
	s.Unverified += o.Unverified
	s.Truncated += o.Truncated
	s.Late += o.Late
	for k, n := range o.Sizes {
		if s.Sizes == nil {
			s.Sizes = map[int]uint64{}
		}
		s.Sizes[k] += n
	}
}

// maxSizes bounds a size histogram (sizes beyond it are not recorded).
const maxSizes = 64

// sizeCounts is a size histogram as a short slice, not a map: per message it is one
// compare against the first entry in the usual case (one or two sizes), and no hashing.
type sizeCounts []sizeCount

type sizeCount struct {
	size int
	n    uint64
}

func (c *sizeCounts) count(size int) {
	for i := range *c {
		if (*c)[i].size == size {
			(*c)[i].n++
			return
		}
	}
	if len(*c) < maxSizes {
		*c = append(*c, sizeCount{size, 1})
	}
}

// toMap is the histogram for JSON (nil when empty).
func (c sizeCounts) toMap() map[int]uint64 {
	if len(c) == 0 {
		return nil
	}
	m := make(map[int]uint64, len(c))
	for _, e := range c {
		m[e.size] = e.n
	}
	return m
}

// LaneStats counts one SCTP stream id's messages.
type LaneStats struct {
	Lane     int    `json:"sid"`
	Messages uint64 `json:"messages"`
}

// publish adds the corrupt messages found since the last call to a receiver's total
// (once per read: the total is read by --metrics).
func (c *checker) publish(total *atomic.Uint64) {
	if c.st.Corrupt != c.published {
		total.Add(c.st.Corrupt - c.published)
		c.published = c.st.Corrupt
	}
}

// checker parses one connection's byte stream incrementally: a header may straddle
// reads, a payload is checked piece by piece, nothing is stored or allocated.
type checker struct {
	format wire.Format
	verify bool
	size   int // message size when known in advance (nettest, raw)

	st          StreamStats
	sizes       sizeCounts // native message sizes
	lat         *latency   // one-way latency (native format; nil: not recorded)
	echo        *echoer    // reflects FlagRTT headers (byte streams; nil: none)
	published   uint64     // corrupt messages already added to the receiver's total
	now         int64      // the clock at this feed (ns), when lat is set
	hdr         [wire.HeaderLen]byte
	have        int // header bytes collected
	hlen        int // header length of the format
	h           wire.Header
	left        int // payload bytes still to come in this message
	pos         int // payload bytes seen of this message
	off         int // pattern rotation of this message
	crc         uint32
	ncrc        uint64
	match       bool // payload matched the pattern so far
	check       bool // this message's payload is being verified
	next        uint64
	step        uint64 // sequence step: lanes when messages rotate over SCTP stream ids, else 1
	lane        int    // the SCTP stream id this checker reads (0 otherwise)
	first       bool   // a header has been seen
	lost        bool   // framing lost: count bytes only
	nettestWant uint64
	test        uint64 // the test id every native header must carry (0: the first one's)
	lanesOK     bool   // the protocol has sub-streams: honour the header's lanes field
	inEnd       bool   // the current message is the end frame
	endBuf      [wire.EndPayloadLen]byte
}

// newChecker checks one stream of test (native format; 0: the first header's id).
// lanes: the protocol rotates messages over sub-streams (message kind), so the header's
// lanes field sets the sequence step; a byte-stream receiver ignores it.
func newChecker(format wire.Format, verify bool, size int, test uint64, lanes bool) *checker {
	return &checker{format: format, verify: verify, size: size, hlen: format.HeaderSize(), step: 1, st: StreamStats{MsgSize: size},
		test: test, lanesOK: lanes}
}

// feed consumes the next bytes of the stream.
func (c *checker) feed(p []byte) {
	if c.lat != nil {
		c.now = time.Now().UnixNano() // one clock read per read call (latency.go)
		c.lat.mu.Lock()
		defer c.lat.mu.Unlock()
	}
	c.st.Bytes += uint64(len(p))
	if c.format == wire.FormatRaw || c.lost {
		return
	}
	for len(p) > 0 {
		if c.left == 0 && c.have < c.hlen {
			n := copy(c.hdr[c.have:c.hlen], p)
			c.have += n
			p = p[n:]
			if c.have < c.hlen {
				return
			}
			if !c.header() {
				return
			}
			if c.left == 0 {
				c.finish()
			}
			continue
		}
		n := min(len(p), c.left)
		if c.inEnd {
			copy(c.endBuf[c.pos:], p[:n])
		} else if c.check {
			q := p[:n]
			if c.format == wire.FormatNative {
				c.crc = wire.UpdateCRC32C(c.crc, q)
				c.match = c.match && wire.CheckAt(q, c.off, c.pos)
			} else {
				c.ncrc = wire.NettestCRC(c.ncrc, q)
			}
		}
		c.pos += n
		c.left -= n
		p = p[n:]
		if c.left == 0 {
			c.finish()
		}
	}
}

// header decodes a complete header; false means framing is lost.
func (c *checker) header() bool {
	c.have = 0
	c.pos, c.crc, c.ncrc, c.match = 0, 0, 0, true
	switch c.format {
	case wire.FormatNative:
		if err := wire.ParseHeader(c.hdr[:], &c.h); err != nil {
			return c.breakFraming(err)
		}
		if c.test == 0 {
			c.test = c.h.TestID
		}
		switch {
		case c.h.TestID != c.test:
			return c.breakFraming(fmt.Errorf("test id changed from %016x to %016x", c.test, c.h.TestID))
		case c.st.Ended:
			return c.breakFraming(fmt.Errorf("data after the end frame"))
		case c.h.Flags&wire.FlagEnd != 0:
			if c.h.Length != wire.EndPayloadLen || c.first && c.h.Stream != c.st.Stream {
				return c.breakFraming(wire.ErrBadEnd)
			}
			c.st.Stream, c.inEnd, c.left, c.check = c.h.Stream, true, wire.EndPayloadLen, false
			return true
		}
		if !c.first {
			c.first, c.st.Stream, c.st.MsgSize = true, c.h.Stream, int(c.h.Length)+wire.HeaderLen
			if c.h.Lanes > 1 && c.lanesOK {
				// This lane carries seqs lane, lane+lanes, lane+2*lanes, ...
				c.step, c.next = uint64(c.h.Lanes), uint64(c.lane)
			}
		} else if c.h.Stream != c.st.Stream {
			return c.breakFraming(fmt.Errorf("stream id changed from %d to %d", c.st.Stream, c.h.Stream))
		}
		c.sequence(c.h.Seq)
		if c.echo != nil && c.h.Flags&wire.FlagRTT != 0 {
			c.echo.reflect(&c.h)
		}
		if c.lat != nil {
			c.lat.record(c.now, c.h.TimeNS)
		}
		c.left = int(c.h.Length)
		c.check = c.verify && c.h.Flags&wire.FlagVerify != 0
		if c.verify && !c.check {
			c.st.Unverified++
		}
		c.off = wire.Offset(c.h.Stream, c.h.Seq)
	case wire.FormatNettest:
		size, crc, err := wire.ParseNettest(c.hdr[:wire.NettestHeaderLen])
		if err == nil && c.size > 0 && int(size) != c.size {
			err = fmt.Errorf("message size %d, expected --size %d", size, c.size)
		}
		if err != nil {
			return c.breakFraming(err)
		}
		c.first, c.st.MsgSize = true, int(size)
		c.h.CRC = 0
		c.left = int(size) - wire.NettestHeaderLen
		c.check = c.verify
		c.ncrc = 0
		c.nettestWant = crc
	}
	return true
}

// sequence accounts one sequence number (TCP/SCTP: every gap or repeat is an error).
func (c *checker) sequence(seq uint64) {
	switch {
	case seq == c.next:
		c.next += c.step
	case seq > c.next:
		c.st.Lost += (seq - c.next + c.step - 1) / c.step
		c.next = seq + c.step
	default:
		c.st.Duplicate++
	}
}

func (c *checker) breakFraming(err error) bool {
	c.lost = true
	c.st.Corrupt++
	c.st.Error = fmt.Sprintf("framing lost after %d messages: %v", c.st.Messages, err)
	return false
}

// finish ends the current message.
func (c *checker) finish() {
	if c.inEnd {
		c.inEnd = false
		n, err := wire.ParseEnd(&c.h, c.endBuf[:])
		if err != nil {
			c.breakFraming(err)
			return
		}
		c.st.Ended, c.st.SentMessages, c.st.SentBytes = true, c.h.Seq, n
		c.st.Bytes -= wire.EndLen // the sender counts data bytes only
		return
	}
	c.st.Messages++
	if c.format == wire.FormatNative {
		c.sizes.count(int(c.h.Length) + wire.HeaderLen)
	}
	if !c.check {
		return
	}
	switch c.format {
	case wire.FormatNative:
		if c.crc != c.h.CRC || !c.match {
			c.st.Corrupt++
		}
	case wire.FormatNettest:
		if c.ncrc != c.nettestWant {
			c.st.Corrupt++
		}
	}
}

// end is called at EOF: an unfinished message is reported as truncated, not corrupt
// (a sender stopped mid-message by a deadline); raw streams count whole messages.
func (c *checker) end() StreamStats {
	if c.format == wire.FormatRaw {
		if c.size > 0 {
			c.st.Messages = c.st.Bytes / uint64(c.size)
			c.st.Truncated = c.st.Bytes % uint64(c.size)
		}
		return c.st
	}
	c.st.Sizes = c.sizes.toMap()
	switch {
	case c.lost:
	case c.left > 0:
		c.st.Truncated = uint64(c.hlen + c.pos)
	case c.have > 0:
		c.st.Truncated = uint64(c.have)
	}
	return c.st
}
