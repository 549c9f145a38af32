package wasmhost

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"
)

// The "tern" module has the functions sdk/ABI.md lists, with the
// signatures it gives, and no others: hostFuncs types them by hand.
func TestHostFuncsAsABISays(t *testing.T) {
	doc, err := os.ReadFile("../../../sdk/ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Host functions")
	if !ok {
		t.Fatal(`sdk/ABI.md has no "## Host functions" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	// | `gpio_write` | `(name_ptr i32, name_len i32, level i32) -> i32` | ...
	row := regexp.MustCompile("(?m)^\\| `(\\w+)` \\| `\\(([^)]*)\\) -> \\(?([^)`]*)\\)?` \\|")
	want := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		var params []string
		for p := range strings.SplitSeq(m[2], ",") {
			if f := strings.Fields(p); len(f) > 0 {
				params = append(params, f[len(f)-1])
			}
		}
		want[m[1]] = "(" + strings.Join(params, ", ") + ") -> (" + m[3] + ")"
	}
	if len(want) < 10 {
		t.Fatalf("read %d host functions from sdk/ABI.md: %v", len(want), want)
	}

	ctx := context.Background()
	h, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	got := map[string]string{}
	for name, def := range h.rt.Module("tern").ExportedFunctionDefinitions() {
		got[name] = "(" + typeNames(def.ParamTypes()) + ") -> (" + typeNames(def.ResultTypes()) + ")"
	}
	for name, sig := range want {
		if got[name] != sig {
			t.Errorf("%s: the host has %q, sdk/ABI.md says %q", name, got[name], sig)
		}
	}
	for name, sig := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s %s: the host has it, sdk/ABI.md does not list it", name, sig)
		}
	}
}

func typeNames(ts []api.ValueType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = api.ValueTypeName(t)
	}
	return strings.Join(names, ", ")
}
