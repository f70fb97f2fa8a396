package report

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// DiffRow is one cell in two result files; A or B is nil when that file lacks it.
type DiffRow struct {
	Key  Key
	A, B *Summary
}

// Diff is two compare results side by side (before/after a change, kernel A vs B), cells
// matched by (proto, mode label, size, streams).
type Diff struct {
	NameA, NameB string
	A, B         *File
	Rows         []DiffRow
}

// NewDiff matches the cells of a and b: a's order first, then cells only b has.
func NewDiff(nameA string, a *File, nameB string, b *File) *Diff {
	d := &Diff{NameA: nameA, NameB: nameB, A: a, B: b}
	idx := map[Key]int{}
	for i := range a.Summary {
		s := &a.Summary[i]
		idx[s.Key()] = len(d.Rows)
		d.Rows = append(d.Rows, DiffRow{Key: s.Key(), A: s})
	}
	for i := range b.Summary {
		s := &b.Summary[i]
		if j, ok := idx[s.Key()]; ok {
			d.Rows[j].B = s
			continue
		}
		d.Rows = append(d.Rows, DiffRow{Key: s.Key(), B: s})
	}
	return d
}

// measured reports whether s has figures.
func measured(s *Summary) bool { return s != nil && notRun(*s) == "" }

// ratio is b/a, NaN when either is missing or a is 0.
func ratio(a, b *Summary, f func(*Summary) float64) float64 {
	if !measured(a) || !measured(b) || f(a) == 0 {
		return math.NaN()
	}
	return f(b) / f(a)
}

// diffMetrics are the columns of the side-by-side view.
var diffMetrics = []struct {
	name, unit string
	f          func(*Summary) float64
	fmt        func(float64) string
	ratio      bool
}{
	{"sender CPU", "ms/GiB", func(s *Summary) float64 { return s.SndCPUGiB }, fixed(0), true},
	{"receiver CPU", "ms/GiB", func(s *Summary) float64 { return s.RcvCPUGiB }, fixed(0), true},
	{"throughput", "Gbit/s", func(s *Summary) float64 { return s.GbitS }, fixed(2), true},
	{"received", "pps", func(s *Summary) float64 { return s.RcvPPS }, si, true},
	{"loss", "%", func(s *Summary) float64 { return s.LossPct }, fixed(3), false},
}

func cellText(s *Summary, f func(*Summary) float64, format func(float64) string) string {
	switch {
	case s == nil:
		return "-"
	case s.Unsupported:
		return "unsup."
	case !measured(s):
		return "n/a"
	}
	return format(f(s))
}

func ratioText(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}

func envLine(f *File) string {
	return fmt.Sprintf("%s, %s, %s", f.Env.Kernel, f.Env.Time, f.Env.CPU)
}

// WriteText prints the side-by-side table: A, B and B/A per metric.
func (d *Diff) WriteText(w io.Writer) {
	fmt.Fprintf(w, "A: %s (%s)\nB: %s (%s)\n\n", d.NameA, envLine(d.A), d.NameB, envLine(d.B))
	fmt.Fprintf(w, "%-5s %-10s %8s %3s", "proto", "mode", "size", "P")
	for _, m := range diffMetrics {
		h := m.name + " " + m.unit
		if m.ratio {
			fmt.Fprintf(w, " | %-25s", h+" A, B, B/A")
		} else {
			fmt.Fprintf(w, " | %-17s", h+" A, B")
		}
	}
	fmt.Fprintln(w)
	var notes []string
	for _, r := range d.Rows {
		fmt.Fprintf(w, "%-5s %-10s %8d %3d", r.Key.Proto, r.Key.Mode, r.Key.Size, r.Key.Streams)
		for _, m := range diffMetrics {
			a, b := cellText(r.A, m.f, m.fmt), cellText(r.B, m.f, m.fmt)
			if m.ratio {
				fmt.Fprintf(w, " | %8s %8s %7s", a, b, ratioText(ratio(r.A, r.B, m.f)))
			} else {
				fmt.Fprintf(w, " | %8s %8s", a, b)
			}
		}
		fmt.Fprintln(w)
		for _, s := range []struct {
			n string
			s *Summary
		}{{"A", r.A}, {"B", r.B}} {
			if s.s != nil && s.s.Unsupported {
				notes = append(notes, fmt.Sprintf("%s %s %d B in %s: unsupported: %s", r.Key.Proto, r.Key.Mode, r.Key.Size, s.n, s.s.Reason))
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(notes, "\n"))
	}
	fmt.Fprintln(w, "\nB/A below 1: B used less CPU per GiB (better) or moved less (throughput, pps: worse).")
}

// WriteCSV writes one row per matched cell: A, B and B/A per metric.
func (d *Diff) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := []string{"proto", "mode", "size", "streams"}
	for _, m := range []string{"sender_cpu_ms_per_gib", "receiver_cpu_ms_per_gib", "gbit_s", "receiver_pps", "loss_pct"} {
		head = append(head, m+"_a", m+"_b", m+"_ratio")
	}
	cw.Write(head)
	num := func(s *Summary, f func(*Summary) float64) string {
		if !measured(s) {
			return ""
		}
		return strconv.FormatFloat(f(s), 'f', 3, 64)
	}
	for _, r := range d.Rows {
		row := []string{r.Key.Proto, r.Key.Mode, strconv.Itoa(r.Key.Size), strconv.Itoa(r.Key.Streams)}
		for _, m := range diffMetrics {
			rt := ""
			if v := ratio(r.A, r.B, m.f); !math.IsNaN(v) {
				rt = strconv.FormatFloat(v, 'f', 4, 64)
			}
			row = append(row, num(r.A, m.f), num(r.B, m.f), rt)
		}
		cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

// WriteHTML writes the side-by-side page: the table and, per protocol and size, charts of
// A against B.
func (d *Diff) WriteHTML(w io.Writer) error {
	var b bytes.Buffer
	title := "splicegen: " + d.NameA + " vs " + d.NameB
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>%s</title>\n<link rel=\"icon\" href=\"data:,\"/>\n<style>%s</style></head>\n<body>\n<h1>%s</h1>\n",
		esc(title), css, esc(title))
	fmt.Fprintf(&b, "<p class=\"meta\">A: %s (%s)<br/>B: %s (%s)</p>\n", esc(d.NameA), esc(envLine(d.A)), esc(d.NameB), esc(envLine(d.B)))
	b.WriteString("<h2>Side by side</h2>\n<table class=\"diff\"><tr><th class=\"l\">proto</th><th class=\"l\">mode</th><th>size</th><th>streams</th>")
	for _, m := range diffMetrics {
		fmt.Fprintf(&b, "<th>%s A</th><th>%s B</th>", esc(m.name+" "+m.unit), esc(m.name+" "+m.unit))
		if m.ratio {
			b.WriteString("<th>B/A</th>")
		}
	}
	b.WriteString("</tr>\n")
	for _, r := range d.Rows {
		fmt.Fprintf(&b, "<tr><td class=\"l\">%s</td><td class=\"l\">%s</td><td>%d</td><td>%d</td>", esc(r.Key.Proto), esc(r.Key.Mode), r.Key.Size, r.Key.Streams)
		for _, m := range diffMetrics {
			fmt.Fprintf(&b, "<td>%s</td><td>%s</td>", esc(cellText(r.A, m.f, m.fmt)), esc(cellText(r.B, m.f, m.fmt)))
			if m.ratio {
				fmt.Fprintf(&b, "<td>%s</td>", ratioText(ratio(r.A, r.B, m.f)))
			}
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table>\n<h2>Charts</h2>\n<div class=\"charts\">\n")
	// One chart pair per (proto, size, streams), categories = modes.
	var keys []Key
	rows := map[Key][]DiffRow{}
	for _, r := range d.Rows {
		k := Key{Proto: r.Key.Proto, Size: r.Key.Size, Streams: r.Key.Streams}
		if rows[k] == nil {
			keys = append(keys, k)
		}
		rows[k] = append(rows[k], r)
	}
	for _, k := range keys {
		for _, m := range diffMetrics[:3] {
			c := &chart{title: fmt.Sprintf("%s, %d B%s: %s", k.Proto, k.Size, streamsTag(k.Streams), m.name), yLabel: m.name + " (" + m.unit + ")",
				xLabel: "mode", format: m.fmt}
			sa, sb := series{name: "A"}, series{name: "B"}
			for _, r := range rows[k] {
				c.cats = append(c.cats, r.Key.Mode)
				va, vb := math.NaN(), math.NaN()
				if measured(r.A) {
					va = m.f(r.A)
				}
				if measured(r.B) {
					vb = m.f(r.B)
				}
				sa.vals, sb.vals = append(sa.vals, va), append(sb.vals, vb)
				note := ""
				if math.IsNaN(va) && math.IsNaN(vb) {
					note = "not measured"
				}
				c.notes = append(c.notes, note)
			}
			c.series = []series{sa, sb}
			c.svg(&b)
		}
	}
	b.WriteString("</div>\n</body></html>\n")
	_, err := w.Write(b.Bytes())
	return err
}
