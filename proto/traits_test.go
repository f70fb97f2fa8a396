package proto

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/splicegen/splicegen/wire"
)

// streamTraits and dgramTraits are self-contained traits shaped like the real TCP and
// UDP plugins' (this package cannot import them: they import it).
func streamTraits() Traits {
	return Traits{
		Name:  "tcp",
		Kind:  KindStream,
		Modes: []string{"splice", "write", "sendfile", "zerocopy"},
		Sinks: []string{"read", "splice"},
		Refused: map[string]string{
			"gso":       "UDP_SEGMENT cuts datagrams, TCP segments on its own",
			"sink mmsg": "recvmmsg is the datagram sink",
		},
		DefaultSize: 64 << 10,
		LossFails:   true,
	}
}

func dgramTraits() Traits {
	return Traits{
		Name:  "udp",
		Kind:  KindDatagram,
		Modes: []string{"splice", "write", "mmsg", "gso", "zerocopy"},
		Sinks: []string{"mmsg"},
		Refused: map[string]string{
			"sendfile":    "one datagram per sendfile call",
			"sink read":   "datagrams are read with recvmmsg",
			"sink splice": "datagrams are read with recvmmsg",
		},
		DefaultSize: 1472,
		MaxSize:     65507,
		MaxSize6:    65527,
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindStream: "stream", KindMessage: "message", KindDatagram: "datagram", Kind(42): "kind?"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestTraitsMode(t *testing.T) {
	tr := streamTraits()
	for _, m := range tr.Modes {
		if err := tr.Mode(m); err != nil {
			t.Errorf("Mode(%q) = %v, want nil", m, err)
		}
	}

	// Refused: a usage error that carries the plugin's reason and lists the modes.
	err := tr.Mode("gso")
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("Mode(gso) = %v, want an ErrUsage", err)
	}
	for _, want := range []string{`"gso"`, "tcp", tr.Refused["gso"], "have splice, write, sendfile, zerocopy"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Mode(gso) = %q, want it to contain %q", err, want)
		}
	}

	// Unknown: the generic message, no reason.
	err = tr.Mode("bogus")
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("Mode(bogus) = %v, want an ErrUsage", err)
	}
	want := `usage: mode "bogus" is not implemented for tcp (have splice, write, sendfile, zerocopy)`
	if err.Error() != want {
		t.Errorf("Mode(bogus) = %q, want %q", err, want)
	}

	// A sink's refusal ("sink mmsg") is not a mode's.
	if err := tr.Mode("mmsg"); err == nil || strings.Contains(err.Error(), tr.Refused["sink mmsg"]) {
		t.Errorf("Mode(mmsg) = %v: want the generic refusal, not the sink's reason", err)
	}
	// Modes are matched exactly (the command line lower-cases nothing here).
	if err := tr.Mode("Splice"); err == nil {
		t.Error("Mode(Splice) = nil, want a refusal (modes are case-sensitive)")
	}
}

func TestTraitsSink(t *testing.T) {
	d := dgramTraits()
	if err := d.Sink("mmsg"); err != nil {
		t.Errorf("Sink(mmsg) = %v, want nil", err)
	}
	if got := d.DefaultSink(); got != "mmsg" {
		t.Errorf("DefaultSink() = %q, want mmsg", got)
	}
	err := d.Sink("read")
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("Sink(read) = %v, want an ErrUsage", err)
	}
	for _, want := range []string{"--sink read", "udp", d.Refused["sink read"], "(have mmsg)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Sink(read) = %q, want it to contain %q", err, want)
		}
	}
	err = d.Sink("nope")
	want := "usage: --sink nope is not available for udp (have mmsg)"
	if err == nil || err.Error() != want {
		t.Errorf("Sink(nope) = %v, want %q", err, want)
	}
	// A mode's refusal ("sendfile") is not a sink's.
	if err := d.Sink("sendfile"); err == nil || strings.Contains(err.Error(), d.Refused["sendfile"]) {
		t.Errorf("Sink(sendfile) = %v: want the generic refusal, not the mode's reason", err)
	}

	s := streamTraits()
	if got := s.DefaultSink(); got != "read" {
		t.Errorf("stream DefaultSink() = %q, want read", got)
	}
	for _, k := range []string{"read", "splice"} {
		if err := s.Sink(k); err != nil {
			t.Errorf("stream Sink(%q) = %v", k, err)
		}
	}
}

func TestTraitsWire(t *testing.T) {
	stream, dgram := streamTraits(), dgramTraits()
	msg := Traits{Name: "sctp", Kind: KindMessage}
	cases := []struct {
		name   string
		tr     Traits
		f      wire.Format
		verify bool
		bad    string // "" = accepted; else a piece of the error
	}{
		{"stream native verify", stream, wire.FormatNative, true, ""},
		{"stream nettest verify", stream, wire.FormatNettest, true, ""},
		{"stream nettest", stream, wire.FormatNettest, false, ""},
		{"stream raw", stream, wire.FormatRaw, false, ""},
		{"stream raw verify", stream, wire.FormatRaw, true, "--verify needs a framed format"},
		{"message nettest", msg, wire.FormatNettest, false, ""},
		{"dgram native verify", dgram, wire.FormatNative, true, ""},
		{"dgram raw", dgram, wire.FormatRaw, false, ""},
		{"dgram raw verify", dgram, wire.FormatRaw, true, "--verify needs a framed format"},
		{"dgram nettest", dgram, wire.FormatNettest, false, "byte-stream format"},
		{"dgram nettest verify", dgram, wire.FormatNettest, true, "over udp"},
	}
	for _, c := range cases {
		err := c.tr.Wire(c.f, c.verify)
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("%s: Wire = %v, want nil", c.name, err)
		case c.bad != "" && err == nil:
			t.Errorf("%s: Wire = nil, want an error with %q", c.name, c.bad)
		case c.bad != "" && (!errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("%s: Wire = %v, want an ErrUsage with %q", c.name, err, c.bad)
		}
	}
}

func TestTraitsMaxFor(t *testing.T) {
	d := dgramTraits()
	cases := []struct {
		tr   Traits
		addr string
		want int
	}{
		{d, "", 65507},
		{d, "127.0.0.1:9", 65507},
		{d, "[::1]:1", 65527},
		{d, "[2001:db8::1]:5201", 65527},
		{d, "[::ffff:127.0.0.1]:1", 65507}, // an IPv4-mapped address is IPv4
		{d, "localhost:1", 65507},          // a hostname is not resolved: IPv4's bound
		{d, "example.invalid:1", 65507},
		{d, "::1", 65507},                                        // no port: not host:port, so IPv4's bound
		{Traits{MaxSize: 1000}, "[::1]:1", 1000},                 // no MaxSize6: MaxSize for IPv6 too
		{Traits{}, "127.0.0.1:1", wire.MaxMessage},               // 0 means wire.MaxMessage
		{Traits{}, "[::1]:1", wire.MaxMessage},                   // both 0
		{Traits{MaxSize6: 2000}, "[::1]:1", 2000},                // IPv6 only
		{Traits{MaxSize6: 2000}, "127.0.0.1:1", wire.MaxMessage}, // IPv4 still 0
		{Traits{MaxSize: wire.MaxMessage + 1}, "", wire.MaxMessage},
		{Traits{MaxSize: 1, MaxSize6: 1 << 30}, "[::1]:1", wire.MaxMessage},
	}
	for _, c := range cases {
		if got := c.tr.MaxFor(c.addr); got != c.want {
			t.Errorf("Traits{MaxSize: %d, MaxSize6: %d}.MaxFor(%q) = %d, want %d", c.tr.MaxSize, c.tr.MaxSize6, c.addr, got, c.want)
		}
	}
}

func TestTraitsSize(t *testing.T) {
	d := dgramTraits()
	if err := d.Size(65507, ""); err != nil {
		t.Errorf("Size(65507, IPv4) = %v, want nil", err)
	}
	if err := d.Size(65527, "[::1]:1"); err != nil {
		t.Errorf("Size(65527, IPv6) = %v, want nil", err)
	}
	err := d.Size(65508, "")
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "to IPv4, 65507 bytes") {
		t.Errorf("Size(65508, \"\") = %v, want an ErrUsage naming IPv4 and 65507", err)
	}
	err = d.Size(65528, "[::1]:1")
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "to [::1]:1, 65527 bytes") {
		t.Errorf("Size(65528, [::1]:1) = %v, want an ErrUsage naming the address and 65527", err)
	}
	if err := d.Size(65508, "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "udp datagram to 127.0.0.1:1") {
		t.Errorf("Size(65508, 127.0.0.1:1) = %v", err)
	}

	s := streamTraits()
	if err := s.Size(wire.MaxMessage, "127.0.0.1:1"); err != nil {
		t.Errorf("stream Size(MaxMessage) = %v, want nil", err)
	}
	err = s.Size(wire.MaxMessage+1, "")
	want := fmt.Sprintf("usage: --size %d exceeds the maximum message of %d bytes (64 MiB)", wire.MaxMessage+1, wire.MaxMessage)
	if err == nil || err.Error() != want {
		t.Errorf("stream Size(MaxMessage+1) = %v, want %q", err, want)
	}
}

// fakePlugin is a test-only protocol for the registry.
type fakePlugin struct {
	name  string
	id    int
	probe func() []Capability
}

var errFake = errors.New("fake plugin: no sockets")

func (f fakePlugin) Traits() Traits {
	return Traits{Name: f.name, Kind: KindStream, Modes: []string{"write"}, Sinks: []string{"read"}, Probe: f.probe}
}
func (fakePlugin) Dial(context.Context, string, Options) (Conn, error) { return nil, errFake }
func (fakePlugin) Listen(string, Options) (Listener, error)            { return nil, errFake }
func (fakePlugin) FileListener(*os.File, Options) (Listener, error)    { return nil, errFake }

// emptyRegistry gives the test a registry of its own and restores the real one after.
func emptyRegistry(t *testing.T) {
	t.Helper()
	savedPlugins, savedOrder := plugins, order
	plugins, order = map[string]Plugin{}, nil
	t.Cleanup(func() { plugins, order = savedPlugins, savedOrder })
}

func TestRegisterOrderAndNames(t *testing.T) {
	emptyRegistry(t)
	if n := Names(); len(n) != 0 {
		t.Fatalf("Names() of an empty registry = %q", n)
	}
	Register(fakePlugin{name: "bravo", id: 1})
	Register(fakePlugin{name: "alpha", id: 2})
	Register(fakePlugin{name: "charlie", id: 3})
	Register(fakePlugin{name: "bravo", id: 4}) // a re-registration replaces, keeps its place
	if got, want := Names(), []string{"bravo", "alpha", "charlie"}; !slices.Equal(got, want) {
		t.Fatalf("Names() = %q, want %q (registration order, no duplicate)", got, want)
	}
	p, err := Lookup("bravo")
	if err != nil {
		t.Fatal(err)
	}
	if p.(fakePlugin).id != 4 {
		t.Errorf("Lookup(bravo) is registration %d, want the latest (4)", p.(fakePlugin).id)
	}
	// Names returns a copy.
	n := Names()
	n[0] = "mutated"
	if Names()[0] != "bravo" {
		t.Error("Names() shares its slice with the registry")
	}
}

func TestLookup(t *testing.T) {
	emptyRegistry(t)
	Register(fakePlugin{name: "alpha", id: 1})
	Register(fakePlugin{name: "beta", id: 2})
	for in, id := range map[string]int{"alpha": 1, "ALPHA": 1, "Beta": 2, "  beta\t": 2, "bEtA": 2} {
		p, err := Lookup(in)
		if err != nil {
			t.Errorf("Lookup(%q) = %v", in, err)
			continue
		}
		if got := p.(fakePlugin).id; got != id {
			t.Errorf("Lookup(%q) = plugin %d, want %d", in, got, id)
		}
	}
	for _, in := range []string{"gamma", "", "alpha2", "al pha"} {
		p, err := Lookup(in)
		if p != nil || !errors.Is(err, ErrUnknown) {
			t.Errorf("Lookup(%q) = %v, %v; want nil, ErrUnknown", in, p, err)
			continue
		}
		want := fmt.Sprintf("unknown protocol %q (have alpha, beta)", in)
		if err.Error() != want {
			t.Errorf("Lookup(%q) error = %q, want %q", in, err, want)
		}
	}
}

func TestProbeRunsEveryPluginInOrder(t *testing.T) {
	emptyRegistry(t)
	Register(fakePlugin{name: "one", probe: func() []Capability {
		return []Capability{{Name: "one a"}, {Name: "one b", Err: errFake}}
	}})
	Register(fakePlugin{name: "none"}) // no Probe: no rows
	Register(fakePlugin{name: "two", probe: func() []Capability { return []Capability{{Name: "two a", Detail: "d"}} }})
	caps := Probe()
	var names []string
	for _, c := range caps {
		names = append(names, c.Name)
	}
	if want := []string{"one a", "one b", "two a", "pipe max size"}; !slices.Equal(names, want) {
		t.Fatalf("Probe() rows = %q, want %q", names, want)
	}
	if !errors.Is(caps[1].Err, errFake) {
		t.Errorf("row %q lost its error: %v", caps[1].Name, caps[1].Err)
	}
	last := caps[len(caps)-1]
	if last.Err != nil || !strings.HasSuffix(last.Detail, " bytes (fs.pipe-max-size)") {
		t.Errorf("pipe row = %+v", last)
	}
}

func TestEndpointPassesTheListenError(t *testing.T) {
	f, addr, err := Endpoint(fakePlugin{name: "fake"}, "127.0.0.1:0", Options{})
	if !errors.Is(err, errFake) || f != nil || addr != "" {
		t.Errorf("Endpoint(failing plugin) = %v, %q, %v; want nil, \"\", errFake", f, addr, err)
	}
}

func TestKernelLacks(t *testing.T) {
	err := KernelLacks("FOO not supported by this kernel: load foo")
	if !errors.Is(err, ErrKernel) {
		t.Fatalf("KernelLacks(...) is not ErrKernel: %v", err)
	}
	if err.Error() != "FOO not supported by this kernel: load foo" {
		t.Errorf("KernelLacks(...).Error() = %q, want the message as given", err)
	}
	if errors.Is(err, ErrUsage) || errors.Is(err, ErrUnknown) {
		t.Error("KernelLacks(...) matches another sentinel")
	}
	wrapped := fmt.Errorf("dial: %w", err)
	if !errors.Is(wrapped, ErrKernel) || !errors.Is(wrapped, err) {
		t.Errorf("a wrapped KernelLacks error lost its identity: %v", wrapped)
	}
	// The same message is the same error (a package's sentinel can be compared);
	// another message is not.
	if !errors.Is(err, KernelLacks(err.Error())) || errors.Is(err, KernelLacks("other")) {
		t.Error("KernelLacks errors compare by message")
	}
	if errors.Is(errors.New(ErrKernel.Error()), ErrKernel) {
		t.Error("a plain error with ErrKernel's text must not be ErrKernel")
	}
}

func TestUsagef(t *testing.T) {
	err := Usagef("--size %d is %s", 3, "bad")
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("Usagef(...) is not ErrUsage: %v", err)
	}
	if err.Error() != "usage: --size 3 is bad" {
		t.Errorf("Usagef(...) = %q", err)
	}
	if errors.Is(err, ErrKernel) {
		t.Error("Usagef(...) is ErrKernel")
	}
	if !errors.Is(fmt.Errorf("send: %w", err), ErrUsage) {
		t.Error("a wrapped usage error lost ErrUsage")
	}
	// Arguments are formatted, never interpreted as format verbs.
	if err := Usagef("%s", "100%d"); err.Error() != "usage: 100%d" {
		t.Errorf("Usagef(%%s, 100%%d) = %q", err)
	}
}
