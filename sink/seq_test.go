package sink

import (
	"math"
	"testing"
)

func TestSeqWindow(t *testing.T) {
	const W = window
	wrap := uint64(math.MaxUint64 - 2) // three before the wrap
	tests := []struct {
		name  string
		start uint64
		seqs  []uint64
		final uint64 // end datagram's count (0: none)
		// want received, lost, reordered, duplicate, late
		want [5]uint64
	}{
		{"in order", 0, []uint64{0, 1, 2, 3}, 4, [5]uint64{4, 0, 0, 0, 0}},
		{"gap", 0, []uint64{0, 1, 4, 5}, 6, [5]uint64{4, 2, 0, 0, 0}},
		{"head loss", 0, []uint64{3, 4}, 5, [5]uint64{2, 3, 0, 0, 0}},
		{"tail loss from the end count", 0, []uint64{0, 1}, 5, [5]uint64{2, 3, 0, 0, 0}},
		{"tail loss unknown without end", 0, []uint64{0, 1}, 0, [5]uint64{2, 0, 0, 0, 0}},
		{"reorder takes a loss back", 0, []uint64{0, 2, 1, 3}, 4, [5]uint64{4, 0, 1, 0, 0}},
		{"swap pairs", 0, []uint64{1, 0, 3, 2}, 4, [5]uint64{4, 0, 2, 0, 0}},
		{"duplicate", 0, []uint64{0, 1, 1, 2}, 3, [5]uint64{4, 0, 0, 1, 0}},
		{"duplicate of the first", 0, []uint64{0, 0}, 1, [5]uint64{2, 0, 0, 1, 0}},
		{"late duplicate after reorder", 0, []uint64{0, 2, 1, 2, 1}, 3, [5]uint64{5, 0, 1, 2, 0}},
		{"below start is a duplicate", 5, []uint64{5, 4}, 6, [5]uint64{2, 0, 0, 1, 0}},
		{"wrap in order", wrap, []uint64{wrap, wrap + 1, wrap + 2, wrap + 3, 0 + 1, 2}, wrap + 6, [5]uint64{6, 0, 0, 0, 0}},
		{"wrap with gap and reorder", wrap, []uint64{wrap, wrap + 2, 1, wrap + 1, 2}, wrap + 6, [5]uint64{5, 1, 1, 0, 0}},
		{"wrap duplicate", wrap, []uint64{wrap + 2, 0, wrap + 2}, wrap + 4, [5]uint64{3, 2, 0, 1, 0}},
		{"late beyond the window", 0, []uint64{0, 1, W + 5, 1}, W + 6, [5]uint64{4, W + 3, 0, 0, 1}},
		{"reorder at the window edge", 0, []uint64{0, W, 1}, W + 1, [5]uint64{3, W - 2, 1, 0, 0}},
		{"huge jump clears the window", 0, []uint64{0, 10 * W, 10*W - 1}, 10*W + 1, [5]uint64{3, 10*W - 2, 1, 0, 0}},
	}
	for _, tc := range tests {
		w := newSeqWindow(tc.start)
		for _, s := range tc.seqs {
			w.add(s)
		}
		if tc.final != 0 {
			w.end(tc.final)
		}
		got := [5]uint64{w.received, w.lost, w.reordered, w.duplicate, w.late}
		if got != tc.want {
			t.Errorf("%s: received, lost, reordered, duplicate, late = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Every arrival order of a small set gives received = sent - lost + duplicates.
func TestSeqWindowConservation(t *testing.T) {
	perm := []uint64{5, 0, 3, 1, 9, 2, 2, 7, 4, 8, 6, 0}
	w := newSeqWindow(0)
	for _, s := range perm {
		w.add(s)
	}
	w.end(12)
	if w.received-w.duplicate+w.lost != 12 || w.lost != 2 || w.duplicate != 2 {
		t.Fatalf("%+v", *w)
	}
}
