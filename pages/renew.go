package pages

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Renewal: a ring for a lossy datagram path (UDP splice) cannot be made safe by its size.
// A datagram may wait in a full queue (a local receiver's, a qdisc's) while every later
// one is dropped, so the kernel may still reference a slot after any number of laps. Measured (docs/kernel.md#page-reuse, udp): 61440-byte UDP splice over ::1 with a
// 90 MiB ring, 4 runs of 10 corrupt: the receiver read seq 63 carrying seq 1535's pages
// (1535 = 63 + 1472 slots). So such a ring is never written in place after its first
// lap: before a slot is written again, its pages are dropped from our mapping
// (madvise(2) MADV_DONTNEED) and faulted in afresh (MADV_POPULATE_WRITE). Pages the
// pipe or an skb still hold keep their old contents (get_page refcount; the zap only
// removes our page-table entries, mm/memory.c zap_pte_range), our next write lands on a
// new page: no completion notification is needed. Renewal goes a huge page (2 MiB) at a
// time, so a large ring stays in huge pages and costs two madvise calls per 2 MiB sent
// (a ring under 2 MiB, or its unaligned ends, cost a pair per lap and per partial chunk).
type renewal struct {
	fill  func(buf []byte) // rewrites a slot's constant payload (nil: the caller writes it all)
	lap   bool             // the ring has wrapped: its pages may be referenced
	fresh int              // bytes [0, fresh) of mem are renewed this lap
	bytes uint64           // bytes renewed so far
	err   error
}

// chunk is the renewal step: a PMD-sized transparent huge page on x86-64 and arm64 (4 KiB
// base pages).
const chunk = 2 << 20

// Renew makes the ring give fresh pages every lap (see renewal). fill, if not nil, is
// called on every slot Next returns after the first lap, to rewrite the payload the
// zeroed pages lost. Anonymous rings only (not a sendfile memfd).
func (r *Ring) Renew(fill func(buf []byte)) error {
	if r.fd >= 0 {
		return os.ErrInvalid
	}
	r.renew = &renewal{fill: fill}
	return nil
}

// Err is the first renewal failure: the slot Next returned is not fresh and must not be
// written.
func (r *Ring) Err() error {
	if r.renew == nil {
		return nil
	}
	return r.renew.err
}

// RenewedBytes is how many bytes of ring were renewed (0 if the ring does not renew).
func (r *Ring) RenewedBytes() uint64 {
	if r.renew == nil {
		return 0
	}
	return r.renew.bytes
}

// slot renews buf (at offset o) before the caller writes it, if the ring has wrapped;
// wrapped: Next just handed out the last slot, so the next slot begins a new lap.
func (w *renewal) slot(r *Ring, o int, buf []byte, wrapped bool) {
	if w.lap && w.err == nil {
		if o+len(buf) > w.fresh {
			w.renewTo(r, o+len(buf))
		}
		if w.err == nil && w.fill != nil {
			w.fill(buf)
		}
	}
	if wrapped {
		w.lap, w.fresh = true, 0
	}
}

// renewTo renews from where this lap's renewal stopped (a page boundary past every slot
// already handed out this lap) to the huge page boundary past byte end.
func (w *renewal) renewTo(r *Ring, end int) {
	base := uintptr(unsafe.Pointer(&r.mem[0]))
	hi := min(int((base+uintptr(end)+chunk-1)&^(chunk-1)-base), len(r.mem))
	span := r.mem[w.fresh:hi]
	if err := unix.Madvise(span, unix.MADV_DONTNEED); err != nil {
		w.err = os.NewSyscallError("madvise(MADV_DONTNEED)", err)
		return
	}
	populate(span)
	w.bytes += uint64(len(span))
	w.fresh = hi
}
