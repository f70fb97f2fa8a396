package sink

import (
	"errors"
	"fmt"

	"github.com/splicegen/splicegen/proto"
)

// The message sink (SCTP and other MessageReader protocols).

// maxLanes bounds the sub-streams a receiver tracks (SCTP: --sctp-streams' maximum).
const maxLanes = 65535

// drainMessages receives a message-oriented connection (SCTP): each stream id (lane)
// is its own ordered byte stream of splicegen messages, checked by its own checker, so
// a splicegen message split into several SCTP messages (a splice on Linux 6.1 sends
// one per pipe page) is reassembled before it is checked.
// The end frame comes on sub-stream 0 after the sender's last message; sub-streams are
// delivered independently, so the totals are checked over all of them at EOF.
func (r *Receiver) drainMessages(mr proto.MessageReader, f first, test uint64) (StreamStats, error) {
	buf := make([]byte, readBuf)
	var lanes []*checker
	var sizes sizeCounts
	var end *checker // sub-stream 0's checker once the end frame is in
	lat := r.latency(f.c)
	defer r.lat.add(lat)
	cur := 0
	var err error
	for i := 0; ; i++ {
		var n, lane int
		var eor bool
		var rerr error
		if i == 0 { // admission read the first piece
			n, lane, eor = copy(buf, f.b), f.lane, f.eor
		} else {
			n, lane, eor, rerr = mr.ReadMessage(buf)
		}
		if rerr != nil {
			err = rerr
			break
		}
		if n == 0 {
			break
		}
		if lane >= maxLanes {
			err = fmt.Errorf("sub-stream %d beyond the %d splicegen uses", lane, maxLanes)
			break
		}
		for lane >= len(lanes) {
			lanes = append(lanes, nil)
		}
		ck := lanes[lane]
		if ck == nil {
			ck = newChecker(r.cfg.Format, r.cfg.Verify, r.cfg.Size, test, true)
			ck.lane, ck.lat = lane, lat
			lanes[lane] = ck
		}
		before := ck.st.Messages
		ck.feed(buf[:n])
		r.progress.Add(uint64(n))
		r.msgs.Add(ck.st.Messages - before)
		ck.publish(&r.corrupt)
		if lane == 0 && ck.st.Ended {
			end = ck
		}
		cur += n
		if eor {
			sizes.count(cur)
			cur = 0
		}
		// The sender keeps the association open for the verdict (proto.FullCloser), so
		// the stream ends when the end frame and every message it counts are in: other
		// sub-streams may deliver after sub-stream 0's end frame.
		if end != nil && cur == 0 {
			var got uint64
			for _, l := range lanes {
				if l != nil {
					got += l.st.Messages
				}
			}
			if got >= end.st.SentMessages {
				break
			}
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
		if ls.Ended { // sub-stream 0 carries the end frame with the whole stream's totals
			st.Ended, st.SentMessages, st.SentBytes = true, ls.SentMessages, ls.SentBytes
		}
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
