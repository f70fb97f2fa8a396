package main

import (
	"fmt"
	"io"

	"github.com/splicegen/splicegen/proto"
)

func cmdProbe(args []string, stdout io.Writer) (int, error) {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, "usage: splicegen probe\n\nOne line per capability of this kernel, tested with real sockets on loopback.")
		return exitOK, nil
	}
	if len(args) > 0 {
		return 0, usagef("probe takes no arguments")
	}
	for _, c := range proto.Probe() {
		status := "yes"
		if c.Err != nil {
			status = "no: " + c.Err.Error()
		}
		if c.Detail != "" && c.Err == nil {
			status += ", " + c.Detail
		}
		fmt.Fprintf(stdout, "%-20s %s\n", c.Name, status)
	}
	return exitOK, nil
}
