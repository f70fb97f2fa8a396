package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"

	_ "github.com/splicegen/splicegen/proto/udp"
)

func run(proto, mode string, size int, rep int, sndGiB, rcvGiB, gbit, pps, loss float64) *Run {
	r := &Run{Proto: proto, Mode: mode, Size: size, Streams: 1, Repeat: rep, Format: "native"}
	if mode == "write-hot" {
		r.Mode, r.HotBuffer = "write", true
	}
	r.Sender = &Sender{Side: Side{Bytes: 1 << 30, Messages: 1e6, UsrMs: 10, SysMs: sndGiB - 10, RealMs: 1000, CPUMsPerGiB: sndGiB, GbitS: gbit, PPS: pps}}
	r.Receiver = &Receiver{Side: Side{Bytes: 1 << 30, Messages: 1e6, UsrMs: 5, SysMs: rcvGiB - 5, RealMs: 1000, CPUMsPerGiB: rcvGiB, GbitS: gbit, PPS: pps}, LossPct: loss}
	return r
}

// sample is a small matrix: tcp splice/write-hot (3 repeats), gso on tcp unsupported,
// udp gso at 1472 with loss, and a failed udp run.
func sample() *File {
	runs := []*Run{
		run("tcp", "splice", 65536, 1, 300, 200, 25, 4e5, 0),
		run("tcp", "splice", 65536, 2, 330, 210, 24, 4e5, 0),
		run("tcp", "splice", 65536, 3, 320, 220, 26, 4e5, 0),
		run("tcp", "write-hot", 65536, 1, 250, 150, 30, 5e5, 0),
		run("udp", "gso", 1472, 1, 900, 1200, 9.5, 8e5, 0.5),
		{Proto: "udp", Mode: "write", Size: 1472, Streams: 1, Repeat: 1, Error: "receiver: peer gone"},
	}
	cells := []Cell{
		{Proto: "tcp", Mode: "splice", Size: 65536, Streams: 1},
		{Proto: "tcp", Mode: "write-hot", Size: 65536, Streams: 1},
		{Proto: "tcp", Mode: "gso", Size: 65536, Streams: 1, Unsupported: true, Reason: `mode "gso" is not implemented for tcp`},
		{Proto: "udp", Mode: "gso", Size: 1472, Streams: 1},
		{Proto: "udp", Mode: "write", Size: 1472, Streams: 1},
	}
	return &File{Env: Env{Kernel: "6.1 x86_64", CPU: "test <cpu> & co", CPUs: 2, Sysctls: map[string]string{"net.ipv4.tcp_wmem": "4096 16384 4194304"}},
		Runs: runs, Summary: Summarize(runs, cells)}
}

func TestSummarize(t *testing.T) {
	f := sample()
	if len(f.Summary) != 5 {
		t.Fatalf("%d summaries, want one per cell (5)", len(f.Summary))
	}
	s := f.Summary[0]
	if s.Runs != 3 || s.SndCPUGiB != 320 || s.RcvCPUGiB != 210 || s.GbitS != 25 {
		t.Fatalf("splice medians: %+v", s)
	}
	if math.Abs(s.SndSpread-30.0/320*100) > 1e-9 || math.Abs(s.RcvSpread-20.0/210*100) > 1e-9 {
		t.Fatalf("spreads %v %v", s.SndSpread, s.RcvSpread)
	}
	if f.Summary[1].Mode != "write-hot" || f.Summary[1].Runs != 1 {
		t.Fatalf("write-hot: %+v", f.Summary[1])
	}
	if u := f.Summary[2]; !u.Unsupported || u.Reason == "" || u.Runs != 0 {
		t.Fatalf("unsupported cell: %+v", u)
	}
	if w := f.Summary[4]; w.Runs != 0 || w.Failed != 1 {
		t.Fatalf("failed cell: %+v", w)
	}
	if Median([]float64{4, 1, 3, 2}) != 2.5 || Median(nil) != 0 {
		t.Fatal("Median")
	}
}

func TestWriteTables(t *testing.T) {
	var b bytes.Buffer
	WriteTables(&b, sample().Summary)
	out := b.String()
	for _, want := range []string{
		"tcp splice (median of 3):\n  sender:   usr=0.010s, sys=0.310s, real=1.000s",
		"mode           size      snd ms/GiB      rcv ms/GiB      snd sys ms rcv Gbit/s  corrupt",
		"splice        65536       320 ±  5%             210             310      25.00        0",
		`gso           65536   unsupported: mode "gso" is not implemented for tcp`,
		"write-hot/splice: sender sys 0.77x, sender CPU per GiB 0.78x, receiver CPU per GiB 0.71x",
		"gso        1472       800000       800000    0.500",
		"write      1472   no run measured (1 failed)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

func TestWriteCSV(t *testing.T) {
	f := sample()
	var b bytes.Buffer
	if err := f.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+len(f.Runs)+1 {
		t.Fatalf("%d rows, want header + %d runs + 1 unsupported", len(rows), len(f.Runs))
	}
	for i, r := range rows {
		if len(r) != len(CSVHeader) {
			t.Fatalf("row %d has %d fields, want %d", i, len(r), len(CSVHeader))
		}
	}
	if rows[4][0] != "ok" || rows[4][2] != "write-hot" || rows[6][0] != "error" || rows[7][0] != "unsupported" || !strings.Contains(rows[7][len(CSVHeader)-1], "gso") {
		t.Fatalf("rows: %q", rows)
	}
}

// parseHTML checks the page is well-formed (the generator writes XHTML-style markup so
// this holds) and counts elements by name and class.
func parseHTML(t *testing.T, page []byte) (count map[string]int, text string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(page))
	d.Strict = true
	count = map[string]int{}
	var tb strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			count[e.Name.Local]++
			for _, a := range e.Attr {
				if a.Name.Local == "class" {
					count["."+a.Value]++
				}
				if a.Name.Local == "src" || a.Name.Local == "href" && !strings.HasPrefix(a.Value, "#") && a.Value != "data:," {
					t.Errorf("external reference %s=%q", a.Name.Local, a.Value)
				}
			}
		case xml.CharData:
			tb.Write(e)
			tb.WriteByte('\n')
		}
	}
	return count, tb.String()
}

func TestWriteHTML(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b.Bytes(), []byte("<script")) {
		t.Error("the page has a script")
	}
	count, text := parseHTML(t, b.Bytes())
	// Two measured groups (tcp 65536, udp 1472) × CPU, throughput, pps + one UDP loss chart.
	if count["svg"] != 7 || count[".chart"] != 14 {
		t.Errorf("svg %d, .chart %d; want 7 charts", count["svg"], count[".chart"])
	}
	for _, want := range []string{
		"tcp, 65536 B: CPU per GiB", "udp, 1472 B: message rate", "udp: loss by mode and size",
		"CPU ms per GiB moved (usr+sys)", "Gbit/s (received)", "messages per second", "mode", // axes
		"sender", "receiver", "1472 B", // legends
		"320", "210", "800k", "0.5", // values on bars
		"unsupported", `unsupported: mode "gso" is not implemented for tcp`,
		"6.1 x86_64", "test <cpu> & co", "net.ipv4.tcp_wmem", "write-hot/splice",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// tcp: 2 measured modes × (2 CPU + 1 Gbit/s + 2 pps); udp: 1 × 5; loss: 1.
	if count[".bar"] != 2*5+5+1 {
		t.Errorf("%d bars", count[".bar"])
	}
}

func TestDiff(t *testing.T) {
	a, b := sample(), sample()
	b.Summary[0].SndCPUGiB = 160                                                                                      // B halves splice's sender CPU
	b.Summary = append(b.Summary, Summary{Proto: "udp", Mode: "mmsg", Size: 1472, Streams: 1, Runs: 1, SndCPUGiB: 1}) // only in B
	d := NewDiff("a.json", a, "b.json", b)
	if len(d.Rows) != 6 || d.Rows[5].A != nil || d.Rows[0].B == nil {
		t.Fatalf("rows %+v", d.Rows)
	}
	var out bytes.Buffer
	d.WriteText(&out)
	if !strings.Contains(out.String(), "     320      160   0.50x") || !strings.Contains(out.String(), "unsup.") {
		t.Errorf("text:\n%s", out.String())
	}
	var c bytes.Buffer
	if err := d.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&c).ReadAll()
	if err != nil || len(rows) != 7 || rows[1][6] != "0.5000" {
		t.Fatalf("csv %v %q", err, rows)
	}
	var h bytes.Buffer
	if err := d.WriteHTML(&h); err != nil {
		t.Fatal(err)
	}
	count, _ := parseHTML(t, h.Bytes())
	// Two groups (tcp 65536; udp 1472 incl. B's mmsg) × sender CPU, receiver CPU, Gbit/s.
	if count["svg"] != 6 || count["table"] != 1 {
		t.Errorf("diff page: svg %d, table %d", count["svg"], count["table"])
	}
}

// A results file is input like any other: whatever it holds, reading and rendering it
// (tables, CSV, HTML, a side-by-side diff, re-summarising its runs) never panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"runs":[null]}`))
	f.Add([]byte(`{"runs":[{"proto":"udp","mode":"gso","size":64,"sender":{"bytes":1},"receiver":{"lost":5}}],"summary":[{"proto":"udp","mode":"gso","size":64,"runs":1}]}`))
	f.Add([]byte(`{"summary":[{"proto":"tcp","mode":"splice","size":-1,"streams":-5,"unsupported":true,"reason":"=cmd"}]}`))
	var full bytes.Buffer
	sample().writeJSONForTest(&full)
	f.Add(full.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := Parse(b)
		if err != nil {
			return
		}
		WriteTables(io.Discard, fl.Summary)
		fl.WriteCSV(io.Discard)
		fl.WriteHTML(io.Discard)
		for _, r := range fl.Runs {
			Text(io.Discard, r)
		}
		var cells []Cell
		for _, s := range fl.Summary {
			cells = append(cells, Cell{Proto: s.Proto, Mode: s.Mode, Size: s.Size, Streams: s.Streams, Unsupported: s.Unsupported, Reason: s.Reason})
		}
		sums := Summarize(fl.Runs, cells)
		WriteTables(io.Discard, sums)
		d := NewDiff("a", fl, "b", fl)
		d.WriteText(io.Discard)
		d.WriteCSV(io.Discard)
		d.WriteHTML(io.Discard)
	})
}

func (f *File) writeJSONForTest(w io.Writer) {
	json.NewEncoder(w).Encode(f)
}

// CSV cells a spreadsheet would run as formulas are neutralised.
func TestCSVNeutralisesFormulas(t *testing.T) {
	f := &File{Summary: []Summary{{Proto: "tcp", Mode: "gso", Size: 1, Unsupported: true, Reason: "=HYPERLINK(\"http://x\")"}},
		Runs: []*Run{{Proto: "+tcp", Mode: "@write", Error: "-2+3"}}}
	var b bytes.Buffer
	if err := f.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows[1:] {
		for _, c := range row {
			if c != "" && strings.ContainsRune("=+-@", rune(c[0])) {
				t.Errorf("formula cell %q in %q", c, row)
			}
		}
	}
}
