package sctp_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/splicegen/splicegen/proto"
	"github.com/splicegen/splicegen/proto/prototest"
	"github.com/splicegen/splicegen/proto/sctp"
	"golang.org/x/sys/unix"
)

const timeout = 5 * time.Second

// kernelHasSCTP reports whether this kernel opens an SCTP socket. Tests that need one
// run a real association when it does and assert the clear refusal when it does not:
// neither case skips.
func kernelHasSCTP() bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	if err == nil {
		unix.Close(fd)
	}
	return err == nil
}

// wantNoKernel checks err is the kernel-lacks-SCTP answer.
func wantNoKernel(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded on a kernel without SCTP", what)
	}
	if !errors.Is(err, proto.ErrKernel) {
		t.Errorf("%s = %v, want an error that is proto.ErrKernel", what, err)
	}
	if !errors.Is(err, sctp.ErrNoSCTP) || err.Error() != sctp.ErrNoSCTP.Error() {
		t.Errorf("%s = %q, want ErrNoSCTP's text %q", what, err, sctp.ErrNoSCTP)
	}
	if errors.Is(err, proto.ErrUsage) {
		t.Errorf("%s = %v: a missing kernel feature is not a usage error", what, err)
	}
}

func TestErrNoSCTP(t *testing.T) {
	if !errors.Is(sctp.ErrNoSCTP, proto.ErrKernel) {
		t.Error("ErrNoSCTP is not proto.ErrKernel")
	}
	for _, want := range []string{"SCTP not supported by this kernel", "CONFIG_IP_SCTP", "sctp module"} {
		if !strings.Contains(sctp.ErrNoSCTP.Error(), want) {
			t.Errorf("ErrNoSCTP = %q, want it to say %q", sctp.ErrNoSCTP, want)
		}
	}
}

func TestDialListenWithoutKernel(t *testing.T) {
	if kernelHasSCTP() {
		t.Log("this kernel has SCTP: TestAssociation covers Dial and Listen")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, addr := range []string{"127.0.0.1:9", "[::1]:9", "127.0.0.1/127.0.0.2:9"} {
		c, err := sctp.Plugin{}.Dial(ctx, addr, proto.Options{})
		if c != nil {
			c.Close()
		}
		wantNoKernel(t, "Dial("+addr+")", err)
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", ":0"} {
		ln, err := sctp.Plugin{}.Listen(addr, proto.Options{})
		if ln != nil {
			ln.Close()
		}
		wantNoKernel(t, "Listen("+addr+")", err)
	}
	// The receiver's endpoint for compare's children fails the same way.
	f, addr, err := proto.Endpoint(sctp.Plugin{}, "127.0.0.1:0", proto.Options{})
	if f != nil || addr != "" {
		t.Errorf("Endpoint = %v, %q on a kernel without SCTP", f, addr)
	}
	wantNoKernel(t, "Endpoint", err)
}

// An address error is reported as such, before any socket is made.
func TestBadAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, addr := range []string{"127.0.0.1", "127.0.0.1:notaport"} {
		if _, err := (sctp.Plugin{}).Dial(ctx, addr, proto.Options{}); err == nil || errors.Is(err, proto.ErrKernel) {
			t.Errorf("Dial(%q) = %v, want an address error", addr, err)
		}
		if _, err := (sctp.Plugin{}).Listen(addr, proto.Options{}); err == nil || errors.Is(err, proto.ErrKernel) {
			t.Errorf("Listen(%q) = %v, want an address error", addr, err)
		}
	}
}

func TestTraits(t *testing.T) {
	tr := sctp.Plugin{}.Traits()
	if tr.Name != "sctp" || tr.Kind != proto.KindMessage || !tr.Lanes || !tr.LossFails {
		t.Errorf("Traits = %+v: want sctp, KindMessage, Lanes, LossFails", tr)
	}
	if tr.Notes["splice"] == "" {
		t.Error(`Notes["splice"] is empty: the kernel copies splice into SCTP and the run must say so`)
	}
	if len(tr.Sinks) != 1 || tr.Sinks[0] != "read" || tr.DefaultSink() != "read" {
		t.Errorf("Sinks = %q, want only read", tr.Sinks)
	}
	if tr.Refused["sink splice"] == "" {
		t.Error(`no reason for "sink splice"`)
	}
	err := tr.Sink("splice")
	if !errors.Is(err, proto.ErrUsage) || !strings.Contains(err.Error(), tr.Refused["sink splice"]) {
		t.Errorf("Sink(splice) = %v, want the reason %q", err, tr.Refused["sink splice"])
	}
	for _, m := range []string{"splice", "write"} {
		if err := tr.Mode(m); err != nil {
			t.Errorf("Mode(%q) = %v", m, err)
		}
	}
	for _, m := range []string{"sendfile", "zerocopy", "mmsg", "gso"} {
		if err := tr.Mode(m); err == nil || tr.Refused[m] == "" || !strings.Contains(err.Error(), tr.Refused[m]) {
			t.Errorf("Mode(%q) = %v, want a refusal with its reason", m, err)
		}
	}
	if err := tr.Size(tr.DefaultSize, ""); err != nil || tr.MaxFor("[::1]:1") != tr.MaxFor("") {
		t.Errorf("sizes: %v, max %d/%d", err, tr.MaxFor(""), tr.MaxFor("[::1]:1"))
	}
	prototest.Traits(t, tr)
}

func TestProbe(t *testing.T) {
	rows := sctp.Plugin{}.Traits().Probe()
	if len(rows) != 2 || rows[0].Name != "sctp socket" || rows[1].Name != "splice into sctp" {
		t.Fatalf("probe rows = %+v", rows)
	}
	if !kernelHasSCTP() {
		for _, r := range rows {
			if r.Err != sctp.ErrNoSCTP {
				t.Errorf("probe row %q: %v, want ErrNoSCTP", r.Name, r.Err)
			}
		}
		return
	}
	if rows[0].Err != nil {
		t.Errorf("probe row %q on a kernel with SCTP: %v", rows[0].Name, rows[0].Err)
	}
}

// TestAssociation runs a real association where the kernel has SCTP (the project's VM
// suite); without SCTP it asserts the refusal instead.
func TestAssociation(t *testing.T) {
	if !kernelHasSCTP() {
		_, err := sctp.Plugin{}.Listen("127.0.0.1:0", proto.Options{})
		wantNoKernel(t, "Listen", err)
		return
	}
	ln, err := sctp.Plugin{}.Listen("127.0.0.1:0", proto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   proto.Conn
		err error
	}
	acc := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		acc <- res{c, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := sctp.Plugin{}.Dial(ctx, ln.Addr().String(), proto.Options{Lanes: 3, PPID: 42, NoDelay: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var s proto.Conn
	select {
	case r := <-acc:
		if r.err != nil {
			t.Fatal(r.err)
		}
		s = r.c
	case <-time.After(timeout):
		ln.Close()
		t.Fatal("no association accepted in 5s")
	}
	defer s.Close()
	c.SetDeadline(time.Now().Add(timeout))
	s.SetDeadline(time.Now().Add(timeout))

	laner, ok := c.(proto.Laner)
	if !ok || laner.Lanes() != 3 {
		t.Fatalf("Dial's conn %T: Laner %v", c, ok)
	}
	mr, ok := s.(proto.MessageReader)
	if !ok {
		t.Fatalf("accepted conn %T is not a MessageReader", s)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for lane, msg := range []string{"zero", "one", "two"} {
		if err := proto.Control(rc, func(fd int) error { return laner.SetLane(uintptr(fd), lane) }); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 64)
		n, got, eor, err := mr.ReadMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		if string(b[:n]) != msg || got != lane || !eor {
			t.Errorf("ReadMessage = %q lane %d eor %v; want %q lane %d eor true", b[:n], got, eor, msg, lane)
		}
	}
	b, err := c.Buffers()
	if err != nil || b.SndBuf <= 0 || b.RcvBuf <= 0 || b.PeerRcvBufMax <= 0 || b.Why == "" {
		t.Errorf("Buffers() = %+v, %v", b, err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	n, _, _, err := mr.ReadMessage(make([]byte, 64))
	if n != 0 || (err != nil && !errors.Is(err, io.EOF)) {
		t.Errorf("ReadMessage after the peer's shutdown = %d, %v; want EOF (0, nil)", n, err)
	}
}
