// Package prototest holds helpers the plugins' tests share.
package prototest

import (
	"strings"
	"syscall"
	"testing"

	"github.com/splicegen/splicegen/proto"
)

// Sockopt reads an int socket option of c, failing the test on error.
func Sockopt(t testing.TB, c syscall.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	v, err := proto.GetInt(rc, level, opt)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Traits checks what every plugin's traits must hold: compare's default modes are modes
// the protocol runs (a "-hot" label is write/mmsg/gso from one buffer), the default size
// fits its limit, and Lookup finds it by its name in any case (its package's init
// registered it).
func Traits(t testing.TB, tr proto.Traits) {
	t.Helper()
	for _, m := range strings.Split(tr.Compare.Modes, ",") {
		if err := tr.Mode(strings.TrimSuffix(m, "-hot")); err != nil {
			t.Errorf("compare's default mode %q: %v", m, err)
		}
	}
	if err := tr.Size(tr.DefaultSize, ""); err != nil {
		t.Errorf("default size: %v", err)
	}
	if p, err := proto.Lookup(strings.ToUpper(tr.Name)); err != nil || p.Traits().Name != tr.Name {
		t.Errorf("Lookup(%s) = %v, %v", strings.ToUpper(tr.Name), p, err)
	}
}
