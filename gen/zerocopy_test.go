package gen

import "testing"

func TestZCTrackerInOrder(t *testing.T) {
	var z zcTracker
	for range 5 {
		z.sent()
	}
	if z.doneThrough(0) {
		t.Fatal("nothing completed yet")
	}
	z.complete(0, 2, false)
	if !z.doneThrough(2) || z.doneThrough(3) || z.base != 3 {
		t.Fatalf("after [0,2]: base %d", z.base)
	}
	z.complete(3, 4, true)
	if !z.doneThrough(4) || z.copied != 2 || z.completions != 5 {
		t.Fatalf("%+v", z.base)
	}
}

func TestZCTrackerOutOfOrderAndWrap(t *testing.T) {
	var z zcTracker
	z.next, z.base = 1<<32-3, 1<<32-3 // ids ...fffd, fffe, ffff, 0, 1, 2
	ids := make([]uint32, 6)
	for i := range ids {
		ids[i] = z.sent()
	}
	if ids[3] != 0 {
		t.Fatalf("ids do not wrap: %v", ids)
	}
	z.complete(0, 1, false) // after the wrap, before the older ids
	if z.doneThrough(ids[0]) || z.doneThrough(1) {
		t.Fatal("out-of-order completion advanced base")
	}
	z.complete(1<<32-3, 1<<32-1, true) // the range before the wrap
	if !z.doneThrough(1) || z.doneThrough(2) || z.base != 2 {
		t.Fatalf("base %d, want 2", z.base)
	}
	z.complete(1<<32-1, 2, false) // a coalesced range crossing the wrap, partly seen
	if !z.doneThrough(2) || z.base != 3 || z.next != 3 {
		t.Fatalf("base %d next %d", z.base, z.next)
	}
	if z.copied != 3 {
		t.Fatalf("copied %d, want 3", z.copied)
	}
}

func TestZCTrackerFull(t *testing.T) {
	var z zcTracker
	for !z.full() {
		z.sent()
	}
	if z.next != zcWindow-1 {
		t.Fatalf("full at %d", z.next)
	}
	z.complete(0, 0, false)
	if z.full() {
		t.Fatal("still full after a completion")
	}
}
