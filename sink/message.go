package sink

import (
	"errors"
	"fmt"

	"github.com/splicegen/splicegen/proto"
)

// The message sink (SCTP and other MessageReader protocols).

// maxSizes bounds the SCTP message-size histogram (sizes beyond it are not recorded).
// The histogram is a short slice, not a map: per message it is one compare against the
// first entry in the usual case (one or two sizes), and no hashing.
const maxSizes = 64

// drainMessages receives a message-oriented connection (SCTP): each stream id (lane)
// is its own ordered byte stream of splicegen messages, checked by its own checker, so
// a splicegen message split into several SCTP messages (a splice on Linux 6.1 sends
// one per pipe page) is reassembled before it is checked.
func (r *Receiver) drainMessages(mr proto.MessageReader) (StreamStats, error) {
	buf := make([]byte, readBuf)
	var lanes []*checker
	var sizes sizeCounts
	cur := 0
	var err error
	for {
		n, lane, eor, rerr := mr.ReadMessage(buf)
		if rerr != nil {
			err = rerr
			break
		}
		if n == 0 {
			break
		}
		for lane >= len(lanes) {
			lanes = append(lanes, nil)
		}
		ck := lanes[lane]
		if ck == nil {
			ck = newChecker(r.cfg.Format, r.cfg.Verify, r.cfg.Size)
			ck.lane = lane
			lanes[lane] = ck
		}
		ck.feed(buf[:n])
		r.progress.Add(uint64(n))
		r.learn(ck)
		cur += n
		if eor {
			sizes.count(cur)
			cur = 0
		}
	}
	var st StreamStats
	for i, ck := range lanes {
		if ck == nil {
			continue
		}
		ls := ck.end()
		st.Stream, st.MsgSize = ls.Stream, max(st.MsgSize, ls.MsgSize)
		st.add(ls)
		if st.Error == "" && ls.Error != "" {
			st.Error = fmt.Sprintf("sid %d: %s", i, ls.Error)
		}
		st.Lanes = append(st.Lanes, LaneStats{Lane: i, Messages: ls.Messages})
	}
	st.MsgSizes = sizes.toMap()
	if st.Error != "" && err == nil {
		err = errors.New(st.Error)
	}
	return st, err
}

type sizeCount struct {
	size int
	n    uint64
}

type sizeCounts []sizeCount

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

func (c sizeCounts) toMap() map[int]uint64 {
	m := make(map[int]uint64, len(c))
	for _, e := range c {
		m[e.size] = e.n
	}
	return m
}
