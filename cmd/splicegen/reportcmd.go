package main

import (
	"io"

	"github.com/spf13/pflag"
	"github.com/splicegen/splicegen/report"
)

// cmdReport re-renders saved compare results (one file), or shows two side by side with
// ratios (report A.json B.json: before/after a change, kernel A vs kernel B).
func cmdReport(args []string, stdout, stderr io.Writer) (int, error) {
	fs := pflag.NewFlagSet("report", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	var htmlFile, csvFile, jsonFile string
	fs.StringVar(&htmlFile, "html", "", "write the HTML report (two files: the side-by-side page) to this file")
	fs.StringVar(&csvFile, "csv", "", "write the CSV (one row per run; two files: one row per matched cell) to this file")
	fs.StringVar(&jsonFile, "json", "", "one file: write it back out (normalised)")
	c := &common{fs: fs}
	if done, err := c.parse(args, stdout, "splicegen report [flags] RESULTS.json [B.json]"); done || err != nil {
		return 0, err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return 0, usagef("want RESULTS.json, or A.json B.json, got %d arguments", fs.NArg())
	}
	var files []*report.File
	for _, name := range fs.Args() {
		f, err := report.ReadFile(name)
		if err != nil {
			return 0, usageErr{err.Error()}
		}
		files = append(files, f)
	}
	if len(files) == 1 {
		report.WriteTables(stdout, files[0].Summary)
		return 0, writeOutputs(files[0], jsonFile, csvFile, htmlFile, stdout)
	}
	if jsonFile != "" {
		return 0, usagef("--json takes one results file")
	}
	d := report.NewDiff(fs.Arg(0), files[0], fs.Arg(1), files[1])
	d.WriteText(stdout)
	for _, o := range []struct {
		name  string
		write func(io.Writer) error
	}{{csvFile, d.WriteCSV}, {htmlFile, d.WriteHTML}} {
		if o.name == "" {
			continue
		}
		if err := report.AtomicWrite(o.name, o.write); err != nil {
			return exitFailed, err
		}
		stdout.Write([]byte("saved " + o.name + "\n"))
	}
	return 0, nil
}
