package pages

import (
	"os"
	"strings"
	"testing"
	"unsafe"
)

func TestRingRoundRobin(t *testing.T) {
	r, err := New(10000, 5*RoundUp(10000)-1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Len() != 5 || r.Bytes() != 5*RoundUp(10000) {
		t.Fatalf("len %d bytes %d", r.Len(), r.Bytes())
	}
	var offs []int64
	for range 2 * r.Len() {
		b, off := r.Next()
		if uintptr(unsafe.Pointer(&b[0]))%uintptr(PageSize) != 0 || off%int64(PageSize) != 0 {
			t.Fatalf("buffer at offset %d is not page-aligned", off)
		}
		if len(b) != RoundUp(10000) {
			t.Fatalf("buffer len %d", len(b))
		}
		b[0] = byte(off) // writable
		offs = append(offs, off)
	}
	for i := range r.Len() {
		if offs[i] != offs[i+r.Len()] || (i > 0 && offs[i] == offs[i-1]) {
			t.Fatalf("not round robin: %v", offs)
		}
	}
}

func TestRingMinimumAndCap(t *testing.T) {
	r, err := New(100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 1 {
		t.Fatalf("want 1 buffer, got %d", r.Len())
	}
	r.Close()
	if _, err := New(1<<20, MaxRingBytes+1); err == nil {
		t.Fatal("ring above the cap accepted")
	}
	if _, err := New(0, 100); err == nil {
		t.Fatal("size 0 accepted")
	}
}

func TestRuleBytes(t *testing.T) {
	r := Rule{SndBuf: 4 << 20, PeerRcvBuf: 32 << 20, Pipe: 64 << 10, Msg: 64 << 10, MarginPct: 25}
	sum := (4<<20 + 32<<20 + 64<<10)
	if got, want := r.Bytes(), sum+sum/4+64<<10; got != want {
		t.Fatalf("Bytes = %d, want %d", got, want)
	}
	// The measured table (docs/kernel.md#page-reuse): autotuned buffers needed 32 MiB; the rule must cover it.
	if r.Bytes() < 32<<20 {
		t.Fatal("rule below the measured clean ring")
	}
}

// TestRingMemory: vmsplice/write rings are anonymous and, where the kernel offers
// transparent huge pages, in them (the measured saving, docs/results.md#huge-page-ring);
// sendfile rings are a memfd.
func TestRingMemory(t *testing.T) {
	r, err := NewPacked(65536, 8<<20, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Fd() != -1 {
		t.Fatalf("anonymous ring has fd %d", r.Fd())
	}
	thp, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(thp), "[never]") {
		t.Logf("no transparent huge pages on this kernel (%q, %v): huge bytes %d", thp, err, r.HugeBytes())
	} else if r.HugeBytes() < 4<<20 {
		t.Fatalf("THP is %q but only %d of %d bytes are huge", strings.TrimSpace(string(thp)), r.HugeBytes(), r.Bytes())
	}
	// A second ring, mapped where it may merge with the first, counts only its own.
	r2, err := NewPacked(65536, 8<<20, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if r2.HugeBytes() > r2.Bytes() || r.HugeBytes() > 0 && r2.HugeBytes() < 4<<20 {
		t.Fatalf("second ring reports %d huge bytes of %d (first: %d)", r2.HugeBytes(), r2.Bytes(), r.HugeBytes())
	}
	f, err := NewPacked(65536, 1<<20, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Fd() < 0 {
		t.Fatal("sendfile ring has no memfd")
	}
	for i := range f.Len() {
		f.Buf(i)[0] = 1
	}
}
