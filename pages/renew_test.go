package pages

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// A page vmspliced into a pipe (as a queued datagram holds it) keeps its contents when a
// renewing ring writes the slot again a lap later; a ring that rewrites in place changes
// what the pipe holds (the hazard renewal exists for).
func TestRenewKeepsReferencedPages(t *testing.T) {
	for _, renew := range []bool{true, false} {
		r, err := New(PageSize, 4*PageSize)
		if err != nil {
			t.Fatal(err)
		}
		filled := 0
		if renew {
			if err := r.Renew(func(b []byte) { filled++; b[1] = 'f' }); err != nil {
				t.Fatal(err)
			}
		}
		var p [2]int
		if err := unix.Pipe(p[:]); err != nil {
			t.Fatal(err)
		}
		b, _ := r.Next()
		copy(b, bytes.Repeat([]byte("A"), len(b)))
		iov := []unix.Iovec{{Base: &b[0]}}
		iov[0].SetLen(len(b))
		if n, err := unix.Vmsplice(p[1], iov, 0); err != nil || n != len(b) {
			t.Fatalf("vmsplice %d %v", n, err)
		}
		for range r.Len() { // a lap: slot 0 comes round again
			b, _ = r.Next()
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			b[0] = 'B'
		}
		got := make([]byte, PageSize)
		if n, err := unix.Read(p[0], got); err != nil || n != PageSize {
			t.Fatalf("read %d %v", n, err)
		}
		unix.Close(p[0])
		unix.Close(p[1])
		if renew {
			if got[0] != 'A' || b[0] != 'B' || b[1] != 'f' || b[2] != 0 {
				t.Fatalf("renewing ring: pipe holds %q, slot %q", got[:3], b[:3])
			}
			if filled != 1 || r.RenewedBytes() < uint64(r.Bytes()) {
				t.Fatalf("fill called %d times, %d bytes renewed", filled, r.RenewedBytes())
			}
		} else if got[0] != 'B' {
			t.Fatalf("in-place ring: pipe holds %q, want the rewrite (the hazard)", got[:1])
		}
		r.Close()
	}
}

// A sendfile ring (memfd) cannot renew: its pages are the file's.
func TestRenewAnonymousOnly(t *testing.T) {
	r, err := NewPacked(1000, 10000, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Renew(nil) == nil {
		t.Fatal("a memfd ring accepted Renew")
	}
}
