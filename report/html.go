package report

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The HTML report is one self-contained page: inline CSS and hand-written SVG, no
// scripts, no fetches. Every bar carries its value as text, so nothing needs hovering.

const css = `body{font:14px/1.4 system-ui,sans-serif;color:#222;margin:24px auto;max-width:1240px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
p.meta{color:#555;margin:0 0 12px}pre{background:#f6f6f6;padding:10px;overflow-x:auto;font-size:12px;line-height:1.3}
.charts{display:flex;flex-wrap:wrap;gap:12px}figure.chart{margin:0;border:1px solid #e4e4e4;background:#fff}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}tr.unsupported td{color:#888;font-style:italic}
.bad{color:#b00;font-weight:600}svg text{font-family:system-ui,sans-serif}`

// Chart colours (colour-blind safe pairs).
var palette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"}

// series is one bar colour in a chart; NaN is "no value" (no bar).
type series struct {
	name string
	vals []float64
}

// chart is a grouped bar chart: one group of bars per category.
type chart struct {
	title, yLabel, xLabel string
	cats                  []string
	notes                 []string // per category: shown instead of bars (e.g. "unsupported")
	series                []series
	format                func(float64) string
}

func esc(s string) string { return html.EscapeString(s) }

// niceStep picks a tick step of 1, 2 or 5 × 10^k giving about n ticks up to max.
// A value that is not a finite positive number of ordinary size (a hostile or broken
// results file: 1e-320, +Inf) gets step 1, so the tick loop always ends.
func niceStep(max float64, n int) float64 {
	if !(max > 1e-300 && max < 1e300) {
		return 1
	}
	raw := max / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// svg renders the chart.
func (c *chart) svg(b *bytes.Buffer) {
	const barW, gap, left, right, top, bottom, plotH = 34, 26, 72, 16, 58, 62, 220
	nser := max(len(c.series), 1)
	groupW := nser*barW + gap
	width := max(380, left+right+len(c.cats)*groupW)
	height := top + plotH + bottom
	maxV := 0.0
	for _, s := range c.series {
		for _, v := range s.vals {
			if !math.IsNaN(v) && v > maxV && v < 1e300 {
				maxV = v
			}
		}
	}
	step := niceStep(maxV*1.12, 5)
	ymax := math.Ceil(maxV*1.12/step) * step
	if ymax == 0 {
		ymax = step
	}
	y := func(v float64) float64 { return top + plotH - v/ymax*plotH }
	fmt.Fprintf(b, `<figure class="chart"><svg class="chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		width, height, width, height, esc(c.title))
	fmt.Fprintf(b, `<title>%s</title>`, esc(c.title))
	fmt.Fprintf(b, `<text class="title" x="%d" y="20" font-size="14" font-weight="600">%s</text>`, left-60, esc(c.title))
	// Legend, top left under the title.
	lx := left - 60
	for i, s := range c.series {
		fmt.Fprintf(b, `<g class="legend"><rect x="%d" y="30" width="12" height="12" fill="%s"/><text x="%d" y="40" font-size="12">%s</text></g>`,
			lx, palette[i%len(palette)], lx+16, esc(s.name))
		lx += 26 + 7*len(s.name)
	}
	// Grid, y ticks and the y axis title.
	for i, t := 0, 0.0; i <= 20 && t <= ymax+step/2; i, t = i+1, t+step { // about 6 ticks
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e6e6e6"/>`, left, width-right, y(t), y(t))
		fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`, left-6, y(t)+4, esc(c.format(t)))
	}
	fmt.Fprintf(b, `<text class="axis" transform="translate(14 %d) rotate(-90)" font-size="12" text-anchor="middle">%s</text>`, top+plotH/2, esc(c.yLabel))
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#444"/>`, left, width-right, top+plotH, top+plotH)
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#444"/>`, left, left, top, top+plotH)
	for ci, cat := range c.cats {
		gx := left + gap/2 + ci*groupW
		mid := gx + nser*barW/2
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12" text-anchor="middle">%s</text>`, mid, top+plotH+18, esc(cat))
		if ci < len(c.notes) && c.notes[ci] != "" {
			fmt.Fprintf(b, `<text class="note" x="%d" y="%d" font-size="11" fill="#888" text-anchor="middle">%s</text>`, mid, top+plotH-8, esc(c.notes[ci]))
			continue
		}
		for si, s := range c.series {
			v := s.vals[ci]
			if math.IsNaN(v) {
				continue
			}
			x := gx + si*barW
			fmt.Fprintf(b, `<rect class="bar" x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
				x+2, y(v), barW-4, top+plotH-y(v), palette[si%len(palette)], esc(s.name), esc(cat), esc(c.format(v)))
			fmt.Fprintf(b, `<text class="value" x="%d" y="%.1f" font-size="10" text-anchor="middle">%s</text>`, x+barW/2, y(v)-3, esc(c.format(v)))
		}
	}
	fmt.Fprintf(b, `<text class="axis" x="%d" y="%d" font-size="12" text-anchor="middle">%s</text>`, left+(width-left-right)/2, height-14, esc(c.xLabel))
	b.WriteString("</svg></figure>\n")
}

// si formats with k/M suffixes, three significant digits.
func si(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func fixed(prec int) func(float64) string {
	return func(v float64) string { return strconv.FormatFloat(v, 'f', prec, 64) }
}

// roundMs formats CPU milliseconds: whole numbers, with k above 10000.
func roundMs(v float64) string {
	if v >= 10000 {
		return si(v)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func groupTitle(g group) string {
	return fmt.Sprintf("%s, %d B%s", g.proto, g.size, streamsTag(g.streams))
}

// value returns f(s), or NaN when the cell has no measurement.
func value(s Summary, f func(Summary) float64) float64 {
	if notRun(s) != "" {
		return math.NaN()
	}
	return f(s)
}

func groupChart(g group, title, yLabel string, format func(float64) string, names []string, fs ...func(Summary) float64) *chart {
	c := &chart{title: groupTitle(g) + ": " + title, yLabel: yLabel, xLabel: "mode", format: format}
	for _, s := range g.sums {
		c.cats = append(c.cats, s.Mode)
		n := notRun(s)
		if s.Unsupported {
			n = "unsupported"
		}
		c.notes = append(c.notes, n)
	}
	for i, f := range fs {
		sr := series{name: names[i]}
		for _, s := range g.sums {
			sr.vals = append(sr.vals, value(s, f))
		}
		c.series = append(c.series, sr)
	}
	return c
}

// WriteHTML writes the report page.
func (f *File) WriteHTML(w io.Writer) error {
	var b bytes.Buffer
	title := "splicegen compare"
	if f.Env.Time != "" {
		title += " — " + f.Env.Time
	}
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>%s</title>\n<link rel=\"icon\" href=\"data:,\"/>\n<style>%s</style></head>\n<body>\n", esc(title), css)
	fmt.Fprintf(&b, "<h1>%s</h1>\n", esc(title))
	fmt.Fprintf(&b, `<p class="meta">%s · %s (%d CPUs) · %s · splicegen %s`, esc(f.Env.Kernel), esc(f.Env.CPU), f.Env.CPUs, esc(f.Env.Go), esc(f.Env.Splicegen))
	if len(f.Args) > 0 {
		fmt.Fprintf(&b, "<br/><code>splicegen %s</code>", esc(strings.Join(f.Args, " ")))
	}
	b.WriteString("</p>\n")
	f.htmlIntro(&b)

	gs := groups(f.Summary)
	b.WriteString("<h2 id=\"table\">Table (medians; as printed by compare)</h2>\n<pre class=\"seed\">")
	var t bytes.Buffer
	WriteTables(&t, f.Summary)
	b.WriteString(esc(strings.TrimLeft(t.String(), "\n")))
	b.WriteString("</pre>\n")

	section := func(id, h, p string, charts []*chart) {
		if len(charts) == 0 {
			return
		}
		fmt.Fprintf(&b, "<h2 id=\"%s\">%s</h2>\n<p>%s</p>\n<div class=\"charts\">\n", id, esc(h), p)
		for _, c := range charts {
			c.svg(&b)
		}
		b.WriteString("</div>\n")
	}
	var cpu, tput, pps []*chart
	for _, g := range gs {
		if !slices.ContainsFunc(g.sums, func(s Summary) bool { return notRun(s) == "" }) {
			continue // nothing measured: the cells are in the table and under integrity
		}
		cpu = append(cpu, groupChart(g, "CPU per GiB", "CPU ms per GiB moved (usr+sys)", roundMs,
			[]string{"sender", "receiver"},
			func(s Summary) float64 { return s.SndCPUGiB }, func(s Summary) float64 { return s.RcvCPUGiB }))
		tput = append(tput, groupChart(g, "throughput", "Gbit/s (received)", fixed(2), []string{"received Gbit/s"},
			func(s Summary) float64 { return s.GbitS }))
		pps = append(pps, groupChart(g, "message rate", "messages per second", si, []string{"sent", "received"},
			func(s Summary) float64 { return s.SndPPS }, func(s Summary) float64 { return s.RcvPPS }))
	}
	section("cpu", "CPU per GiB by mode", "Medians over the repeats; lower is cheaper. Each side is its own process "+
		"(getrusage), sender and receiver pinned to different CPUs.", cpu)
	section("throughput", "Throughput", "Received Gbit/s (median). On loopback the sender's CPU also runs the receive softirq.", tput)
	section("pps", "Message rate", "Messages (datagrams for UDP) per second, sent and received (medians).", pps)
	section("loss", "Loss", "Median loss in percent of the messages sent (datagram protocols; TCP and SCTP do not lose).", f.lossCharts())
	f.htmlIntegrity(&b)
	f.htmlRuns(&b)
	f.htmlEnv(&b)
	b.WriteString("</body></html>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func (f *File) htmlIntro(b *bytes.Buffer) {
	n, uns := 0, 0
	for _, s := range f.Summary {
		if s.Unsupported {
			uns++
		} else {
			n++
		}
	}
	fmt.Fprintf(b, "<p>%d cells measured, %d unsupported, %d runs. Sections: <a href=\"#table\">table</a> · <a href=\"#cpu\">CPU per GiB</a> · "+
		"<a href=\"#throughput\">throughput</a> · <a href=\"#pps\">message rate</a> · <a href=\"#loss\">loss</a> · "+
		"<a href=\"#integrity\">loss, corruption, fallbacks</a> · <a href=\"#runs\">runs</a> · <a href=\"#env\">environment</a></p>\n", n, uns, len(f.Runs))
}

// lossCharts: one chart per datagram protocol, modes by size.
func (f *File) lossCharts() []*chart {
	var out []*chart
	protos := map[string][]Summary{}
	var order []string
	for _, s := range f.Summary {
		if !datagram(s.Proto) {
			continue
		}
		if protos[s.Proto] == nil {
			order = append(order, s.Proto)
		}
		protos[s.Proto] = append(protos[s.Proto], s)
	}
	for _, p := range order {
		sums := protos[p]
		var modes []string
		var sizes []int
		for _, s := range sums {
			if !slices.Contains(modes, s.Mode) {
				modes = append(modes, s.Mode)
			}
			if !slices.Contains(sizes, s.Size) {
				sizes = append(sizes, s.Size)
			}
		}
		sort.Ints(sizes)
		c := &chart{title: p + ": loss by mode and size", yLabel: "loss % (median)", xLabel: "mode", cats: modes, format: lossFmt}
		for _, sz := range sizes {
			sr := series{name: fmt.Sprintf("%d B", sz)}
			for _, m := range modes {
				v := math.NaN()
				for _, s := range sums {
					if s.Mode == m && s.Size == sz && max(s.Streams, 1) == 1 {
						v = value(s, func(s Summary) float64 { return s.LossPct })
					}
				}
				sr.vals = append(sr.vals, v)
			}
			c.series = append(c.series, sr)
		}
		out = append(out, c)
	}
	return out
}

func lossFmt(v float64) string {
	if v == 0 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

func (f *File) htmlIntegrity(b *bytes.Buffer) {
	b.WriteString("<h2 id=\"integrity\">Loss, corruption, fallbacks and unsupported cells</h2>\n")
	b.WriteString("<p>Lost, duplicate and corrupt are summed over the repeats (corrupt counts only with <code>--verify</code>); " +
		"a fallback is a run that did not use its mode's path throughout (e.g. GSO demoted to sendmmsg, MSG_ZEROCOPY copied).</p>\n")
	b.WriteString("<table class=\"integrity\"><tr><th class=\"l\">proto</th><th class=\"l\">mode</th><th>size</th><th>streams</th><th>runs</th>" +
		"<th>failed</th><th>lost</th><th>duplicate</th><th>loss %</th><th>corrupt</th><th>fallbacks</th><th class=\"l\">note</th></tr>\n")
	for _, s := range f.Summary {
		if s.Unsupported {
			fmt.Fprintf(b, "<tr class=\"unsupported\"><td class=\"l\">%s</td><td class=\"l\">%s</td><td>%d</td><td>%d</td><td colspan=\"7\"></td><td class=\"l\">unsupported: %s</td></tr>\n",
				esc(s.Proto), esc(s.Mode), s.Size, max(s.Streams, 1), esc(s.Reason))
			continue
		}
		bad := func(n uint64) string {
			if n > 0 {
				return fmt.Sprintf("<span class=\"bad\">%d</span>", n)
			}
			return "0"
		}
		fmt.Fprintf(b, "<tr><td class=\"l\">%s</td><td class=\"l\">%s</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%s</td><td>%s</td><td>%d</td><td class=\"l\">%s</td></tr>\n",
			esc(s.Proto), esc(s.Mode), s.Size, max(s.Streams, 1), s.Runs, s.Failed, s.Lost, s.Duplicate, lossFmt(s.LossPct),
			bad(s.Corrupt), s.Fallbacks, esc(notRun(s)))
	}
	b.WriteString("</table>\n")
}

func (f *File) htmlRuns(b *bytes.Buffer) {
	b.WriteString("<h2 id=\"runs\">Runs</h2>\n<p>Every run in the order it ran (the CSV has the same rows).</p>\n")
	b.WriteString("<table class=\"runs\"><tr><th>#</th><th class=\"l\">proto</th><th class=\"l\">mode</th><th>size</th><th>streams</th><th>repeat</th>" +
		"<th>sender usr s</th><th>sender sys s</th><th>sender real s</th><th>sender ms/GiB</th><th>receiver ms/GiB</th><th>Gbit/s</th><th>sent pps</th><th>recv pps</th><th>loss %</th><th class=\"l\">error</th></tr>\n")
	for i, r := range f.Runs {
		fmt.Fprintf(b, "<tr><td>%d</td><td class=\"l\">%s</td><td class=\"l\">%s</td><td>%d</td><td>%d</td><td>%d</td>", i+1, esc(r.Proto), esc(r.Label()), r.Size, max(r.Streams, 1), r.Repeat)
		if r.Sender != nil && r.Receiver != nil {
			s, v := r.Sender, r.Receiver
			fmt.Fprintf(b, "<td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.0f</td><td>%.0f</td><td>%.2f</td><td>%.0f</td><td>%.0f</td><td>%s</td>",
				s.UsrMs/1000, s.SysMs/1000, s.RealMs/1000, s.CPUMsPerGiB, v.CPUMsPerGiB, v.GbitS, s.PPS, v.PPS, lossFmt(v.LossPct))
		} else {
			b.WriteString(strings.Repeat("<td></td>", 9))
		}
		fmt.Fprintf(b, "<td class=\"l\">%s</td></tr>\n", esc(r.Error))
	}
	b.WriteString("</table>\n")
}

func (f *File) htmlEnv(b *bytes.Buffer) {
	b.WriteString("<h2 id=\"env\">Environment</h2>\n<table class=\"env\">\n")
	row := func(k, v string) {
		fmt.Fprintf(b, "<tr><th class=\"l\">%s</th><td class=\"l\">%s</td></tr>\n", esc(k), esc(v))
	}
	row("kernel", f.Env.Kernel)
	row("CPU", fmt.Sprintf("%s (%d CPUs)", f.Env.CPU, f.Env.CPUs))
	row("Go", f.Env.Go)
	row("host", f.Env.Host)
	row("time", f.Env.Time)
	row("splicegen", f.Env.Splicegen)
	keys := make([]string, 0, len(f.Env.Sysctls))
	for k := range f.Env.Sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row(k, f.Env.Sysctls[k])
	}
	b.WriteString("</table>\n")
}
