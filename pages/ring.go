// Package pages allocates the memory that splicegen hands to the kernel by reference
// (vmsplice, sendfile) and decides when a buffer may be written again.
//
// vmsplice(2) and sendfile(2) do not copy: the pipe, the socket's skbs and, on loopback,
// the receiver's queue point at these pages until the receiver has read them, and
// splice() returning says nothing about that. A buffer is therefore rewritten only after
// the whole ring has gone round once, and the ring is sized (Rule) so that one lap is
// more data than the kernel can hold in flight.
package pages

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring is a set of buffers in one mapping: private anonymous memory in transparent huge
// pages for vmsplice and write, or a memfd mapped MAP_SHARED for sendfile (the same bytes
// are user memory and file pages). Not for concurrent use: one ring per stream.
type Ring struct {
	fd      int
	mem     []byte
	huge    int // bytes of mem in transparent huge pages after populating
	bufSize int // one message rounded up to whole pages
	n       int
	next    int
	renew   *renewal // fresh pages every lap (Renew); nil: rewritten in place
}

// PageSize is the system page size.
var PageSize = os.Getpagesize()

// RoundUp rounds n up to a whole number of pages.
func RoundUp(n int) int { return (n + PageSize - 1) &^ (PageSize - 1) }

// MaxRingBytes caps one ring, MaxTotalBytes all of a sender's rings: bigger is an error
// naming the sizes, never a silent clamp (a smaller ring would be unsafe).
const (
	MaxRingBytes  = 2 << 30
	MaxTotalBytes = 8 << 30
)

// New maps a ring of at least ringBytes holding page-aligned buffers of msgSize bytes
// each (at least one buffer), in anonymous memory. The memory is populated at once so the
// data path never faults it in.
func New(msgSize, ringBytes int) (*Ring, error) {
	if msgSize <= 0 {
		return nil, fmt.Errorf("pages: message size %d", msgSize)
	}
	bufSize := RoundUp(msgSize)
	n := max(1, (ringBytes+bufSize-1)/bufSize)
	return newRing(bufSize, n, false)
}

// NewPacked maps a ring of at least ringBytes whose slots are exactly msgSize bytes,
// back to back (not page-aligned), and whose slot count is a multiple of batch, so that
// batch consecutive slots are one contiguous span (UDP GSO super-buffers). For small
// datagrams this keeps the rule's byte bound: a referenced datagram pins only its own
// slot's bytes, not a whole page per message (the kernel never writes our pages, and we
// rewrite a slot only after a lap). file: a memfd, for sendfile (Fd).
func NewPacked(msgSize, ringBytes, batch int, file bool) (*Ring, error) {
	if msgSize <= 0 || batch <= 0 {
		return nil, fmt.Errorf("pages: message size %d, batch %d", msgSize, batch)
	}
	n := max(1, (ringBytes+msgSize-1)/msgSize)
	n = (n + batch - 1) / batch * batch
	return newRing(msgSize, n, file)
}

func newRing(bufSize, n int, file bool) (*Ring, error) {
	total := RoundUp(n * bufSize)
	if total > MaxRingBytes {
		return nil, fmt.Errorf("page ring of %d MiB (%d buffers of %d KiB) exceeds the cap of %d MiB per stream; use smaller --sndbuf/--rcvbuf or --size",
			total>>20, n, bufSize>>10, MaxRingBytes>>20)
	}
	if !file {
		return mapAnon(bufSize, n, total)
	}
	// memfd_create(2): an anonymous shmem file; MFD_CLOEXEC so children don't inherit it.
	fd, err := unix.MemfdCreate("splicegen-ring", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	if err := unix.Ftruncate(fd, int64(total)); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("ftruncate", err)
	}
	// MAP_POPULATE faults every page in now ("touched once").
	mem, err := unix.Mmap(fd, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("mmap", err)
	}
	return &Ring{fd: fd, mem: mem, bufSize: bufSize, n: n}, nil
}

// mapAnon maps the ring in private anonymous memory and asks for transparent huge pages
// (madvise(2) MADV_HUGEPAGE; honoured when /sys/kernel/mm/transparent_hugepage/enabled
// is "always" or "madvise"), then faults it in with MADV_POPULATE_WRITE (Linux 5.14).
// Why: every message's pages are referenced by the kernel (get_page on vmsplice, put_page
// when the skb is freed) and, on loopback, copied by the receiver; a 45 MiB ring of 4 KiB
// pages is 11,520 struct pages and as many TLB entries, cold on every lap. A huge page is
// one folio refcount for 512 pages (mm/gup.c, try_grab_folio). Measured here (TCP 64 KiB,
// 2 GiB, pinned, docs/results.md#huge-page-ring): sender 400 → 310 ms/GiB, receiver 230
// → 175 ms/GiB; anonymous 4 KiB pages alone changed nothing. The page-reuse rule is
// unchanged: a referenced folio cannot be split or migrated, and a slot is rewritten only
// after a lap. MADV_DONTFORK: a child never shares the ring.
func mapAnon(bufSize, n, total int) (*Ring, error) {
	mem, err := unix.Mmap(-1, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	r := &Ring{fd: -1, mem: mem, bufSize: bufSize, n: n}
	_ = unix.Madvise(mem, unix.MADV_DONTFORK)
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE) // EINVAL without THP: 4 KiB pages, still safe
	before := anonHuge(mem)
	populate(mem)
	// A new mapping may merge with an earlier ring's (same flags, adjacent): count the
	// growth of the area's huge pages, not its total.
	r.huge = max(0, anonHuge(mem)-before)
	return r, nil
}

// populate faults mem in for writing, at once: MADV_POPULATE_WRITE (Linux 5.14), else a
// write to every page.
func populate(mem []byte) {
	if err := unix.Madvise(mem, unix.MADV_POPULATE_WRITE); err != nil {
		for i := 0; i < len(mem); i += PageSize {
			mem[i] = 0
		}
	}
}

// anonHuge is the AnonHugePages of the mapping in /proc/self/smaps that holds mem, in
// bytes (0 if it can't be read).
func anonHuge(mem []byte) int {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0
	}
	defer f.Close()
	addr := uint64(uintptr(unsafe.Pointer(&mem[0])))
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := vmaRange(line); ok {
			in = lo <= addr && addr < hi
			continue
		}
		if v, ok := strings.CutPrefix(line, "AnonHugePages:"); in && ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb << 10
		}
	}
	return 0
}

// vmaRange parses an smaps header line "lo-hi perms ...".
func vmaRange(line string) (lo, hi uint64, ok bool) {
	r, _, found := strings.Cut(line, " ")
	l, h, dash := strings.Cut(r, "-")
	if !found || !dash {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseUint(l, 16, 64)
	hi, err2 := strconv.ParseUint(h, 16, 64)
	return lo, hi, err1 == nil && err2 == nil
}

// Next returns the next buffer in round-robin order (msgSize bytes of it are used by the
// caller) and its offset in the memfd. It is the buffer used Len() messages ago.
// A renewing ring (Renew) gives it fresh pages first; check Err before writing it.
func (r *Ring) Next() (buf []byte, off int64) {
	i := r.next
	r.next++
	if r.next == r.n {
		r.next = 0
	}
	o := i * r.bufSize
	buf = r.mem[o : o+r.bufSize : o+r.bufSize]
	if r.renew != nil {
		r.renew.slot(r, o, buf, r.next == 0)
	}
	return buf, int64(o)
}

// Left is how many buffers Next returns before it wraps to buffer 0: a run of at most
// Left consecutive Next buffers of a packed ring is one contiguous span.
func (r *Ring) Left() int { return r.n - r.next }

// Buf returns buffer i without advancing the ring (for filling it at setup).
func (r *Ring) Buf(i int) []byte {
	o := i * r.bufSize
	return r.mem[o : o+r.bufSize : o+r.bufSize]
}

// Span returns n bytes of the ring from memfd offset off (consecutive slots).
func (r *Ring) Span(off int64, n int) []byte { return r.mem[off : off+int64(n) : off+int64(n)] }

// Len is the number of buffers; Bytes the mapped size; Fd the memfd (sendfile rings,
// else -1); HugeBytes how much of it the kernel gave in transparent huge pages.
func (r *Ring) Len() int       { return r.n }
func (r *Ring) Bytes() int     { return r.n * r.bufSize }
func (r *Ring) Fd() int        { return r.fd }
func (r *Ring) HugeBytes() int { return r.huge }

// Close unmaps the ring and closes the memfd. Pages still referenced by the kernel stay
// alive until it drops them (they are refcounted), so this is safe after the last send.
func (r *Ring) Close() error {
	var err error
	if r.mem != nil {
		err = unix.Munmap(r.mem)
		r.mem = nil
	}
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
	return err
}
