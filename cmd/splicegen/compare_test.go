package main

import (
	"bytes"
	"encoding/csv"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/splicegen/splicegen/report"
)

// The matrix: tcp,udp,sctp × splice,write,gso × one size. gso on tcp, splice/write on
// sctp (no SCTP here) and sizes above UDP's maximum are listed, not dropped; the files
// are written; report re-renders the same table and CSV.
func TestCompareMatrix(t *testing.T) {
	t.Setenv("SPLICEGEN_TEST_AS_CLI", "1")
	dir := t.TempDir()
	r := runArgs("compare", "-p", "tcp,udp,sctp", "-m", "splice,write,gso", "-s", "1472,65536", "--bytes", "4MiB", "--repeat", "1",
		"--json", dir+"/r.json", "--csv", dir+"/r.csv", "--html", dir+"/r.html")
	if r.code != 0 {
		t.Fatalf("exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	f, err := report.ReadFile(dir + "/r.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Summary) != 3*3*2 {
		t.Fatalf("%d summary cells, want 18", len(f.Summary))
	}
	measured, unsupported := 0, map[string]string{}
	for _, s := range f.Summary {
		if s.Unsupported {
			unsupported[s.Proto+" "+s.Mode+" "+strconv.Itoa(s.Size)] = s.Reason
		} else if s.Runs == 1 {
			measured++
		}
	}
	for _, k := range []string{"tcp gso 1472", "tcp gso 65536", "udp splice 65536", "udp gso 65536", "sctp gso 1472"} {
		if unsupported[k] == "" {
			t.Errorf("%s not listed as unsupported: %v", k, unsupported)
		}
	}
	if !haveSCTP() && !strings.Contains(unsupported["sctp write 1472"], "SCTP not supported by this kernel") {
		t.Errorf("sctp write: %q", unsupported["sctp write 1472"])
	}
	if measured+len(unsupported) != 18 || len(f.Runs) != measured {
		t.Fatalf("measured %d, unsupported %d, runs %d", measured, len(unsupported), len(f.Runs))
	}
	if !strings.Contains(r.stdout, `unsupported: mode "gso" is not implemented for tcp`) {
		t.Errorf("table lacks the unsupported row:\n%s", r.stdout)
	}
	// report re-renders exactly compare's tables.
	rr := runArgs("report", dir+"/r.json", "--csv", dir+"/r2.csv", "--html", dir+"/r2.html")
	if rr.code != 0 {
		t.Fatalf("report: exit %d %s", rr.code, rr.stderr)
	}
	table := strings.TrimSuffix(rr.stdout, "saved "+dir+"/r2.csv\nsaved "+dir+"/r2.html\n")
	if len(table) < 200 || !strings.Contains(r.stdout, table) {
		t.Errorf("report's table is not compare's:\n%s\n---\n%s", table, r.stdout)
	}
	c1, _ := os.ReadFile(dir + "/r.csv")
	c2, _ := os.ReadFile(dir + "/r2.csv")
	rows, err := csv.NewReader(bytes.NewReader(c1)).ReadAll()
	if err != nil || !bytes.Equal(c1, c2) || len(rows) != 1+len(f.Runs)+len(unsupported) {
		t.Errorf("csv: %v, same %v, %d rows", err, bytes.Equal(c1, c2), len(rows))
	}
	h, _ := os.ReadFile(dir + "/r.html")
	if n := strings.Count(string(h), `<svg class="chart"`); n < 6 {
		t.Errorf("%d charts in the page", n)
	}
	// Two files: side by side with ratios (a file against itself: 1.00x).
	d := runArgs("report", dir+"/r.json", dir+"/r.json", "--html", dir+"/d.html")
	if d.code != 0 || !strings.Contains(d.stdout, "1.00x") || !strings.Contains(d.stdout, "unsup.") {
		t.Errorf("diff: exit %d %s\n%s", d.code, d.stderr, d.stdout)
	}
}

// Ctrl-C during a compare: exit 1, and the files hold what was measured.
func TestCompareInterrupted(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(exe, "compare", "-p", "udp", "-m", "mmsg", "-s", "1472", "-t", "1s", "--repeat", "5",
		"--json", dir+"/r.json", "--csv", dir+"/r.csv", "--html", dir+"/r.html")
	cmd.Env = append(os.Environ(), "SPLICEGEN_TEST_AS_CLI=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1:\n%s", err, out.String())
	}
	f, err := report.ReadFile(dir + "/r.json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(f.Runs) < 1 || len(f.Runs) >= 5 || !strings.Contains(out.String(), "interrupted after") {
		t.Fatalf("%d runs saved:\n%s", len(f.Runs), out.String())
	}
	for _, name := range []string{"r.csv", "r.html"} {
		if st, err := os.Stat(dir + "/" + name); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A child that fails never hangs compare: the sender exits before connecting, its
// receiver (still waiting for a connection) is stopped within seconds, the run is
// recorded as failed with the sender's error, and compare exits 1.
func TestCompareChildFails(t *testing.T) {
	t.Setenv("SPLICEGEN_TEST_AS_CLI", "1")
	t.Setenv("SPLICEGEN_TEST_SEND_FAILS", "1")
	start := time.Now()
	r := runArgs("compare", "-m", "splice,write", "--bytes", "1MiB", "--repeat", "1")
	if r.code != 1 || !strings.Contains(r.stdout, "injected failure before connecting") || strings.Count(r.stdout, "error:") != 2 {
		t.Fatalf("exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("compare took %v", d)
	}
	// A flag wrong for every cell is caught by send's own parser before anything runs.
	r = runArgs("compare", "--sndbuf", "12", "-m", "splice", "--bytes", "1MiB", "--repeat", "1")
	if r.code != 2 || !strings.Contains(r.stderr, "--sndbuf") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("--sndbuf 12: exit %d: %q", r.code, r.stderr)
	}
}
