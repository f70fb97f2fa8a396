package wire

import "fmt"

// Format is the wire format of a message.
type Format int

const (
	FormatNative  Format = iota // Header + payload
	FormatNettest               // the seed's nettest: {u64 msg_size; u64 crc} + payload
	FormatRaw                   // no header: payload only
)

func (f Format) String() string {
	switch f {
	case FormatNative:
		return "native"
	case FormatNettest:
		return "nettest"
	case FormatRaw:
		return "raw"
	}
	return fmt.Sprintf("format(%d)", int(f))
}

// ParseFormat parses a --format value.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "native", "":
		return FormatNative, nil
	case "nettest":
		return FormatNettest, nil
	case "raw":
		return FormatRaw, nil
	}
	return 0, fmt.Errorf("unknown format %q (want native, nettest or raw)", s)
}

// HeaderSize is the header length of the format.
func (f Format) HeaderSize() int {
	switch f {
	case FormatNative:
		return HeaderLen
	case FormatNettest:
		return NettestHeaderLen
	}
	return 0
}
