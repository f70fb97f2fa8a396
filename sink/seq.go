package sink

// seqWindow accounts one datagram stream's sequence numbers: received, lost, reordered,
// duplicate and late, with a sliding bitmap of the last window sequence numbers.
// Comparisons are serial-number arithmetic (RFC 1982 style, int64 of the difference),
// so the accounting is unchanged across a wrap of the 64-bit counter.
//
//   - seq at or above next: the numbers skipped are counted lost (for now); next = seq+1.
//   - seq within the window below next, not seen: reordered, and one loss is taken back.
//   - seq within the window, seen: duplicate.
//   - seq older than the window: late. A late datagram may be a duplicate or a very late
//     reorder; the window has forgotten which, so it changes neither lost nor duplicate.
type seqWindow struct {
	next uint64 // one past the highest sequence number seen
	bits [window / 64]uint64
	// counters
	received, lost, reordered, duplicate, late uint64
}

const window = 1 << 16 // sequence numbers remembered: 8 KiB per stream

// newSeqWindow expects start first; everything before start counts as already seen.
func newSeqWindow(start uint64) *seqWindow {
	w := &seqWindow{next: start}
	for i := range w.bits {
		w.bits[i] = ^uint64(0)
	}
	return w
}

func (w *seqWindow) bit(seq uint64) (word int, mask uint64) {
	i := seq % window
	return int(i / 64), 1 << (i % 64)
}

func (w *seqWindow) add(seq uint64) {
	w.received++
	d := int64(seq - w.next)
	switch {
	case d >= 0:
		w.lost += uint64(d)
		if d >= window {
			clear(w.bits[:])
		} else {
			for s := w.next; s != seq; s++ {
				i, m := w.bit(s)
				w.bits[i] &^= m
			}
		}
		i, m := w.bit(seq)
		w.bits[i] |= m
		w.next = seq + 1
	case d >= -window:
		i, m := w.bit(seq)
		if w.bits[i]&m != 0 {
			w.duplicate++
			return
		}
		w.bits[i] |= m
		w.reordered++
		w.lost--
	default:
		w.late++
	}
}

// end accounts the sender's final count (the end datagram's sequence: datagrams sent,
// numbered from 0): what never arrived after the highest seen is lost too.
func (w *seqWindow) end(final uint64) {
	if d := int64(final - w.next); d > 0 {
		w.lost += uint64(d)
		w.next = final
	}
}
