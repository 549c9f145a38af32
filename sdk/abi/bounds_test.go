package abi_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tern-iot/tern/sdk/abi"
)

// bigManifest is a valid manifest with every field at its limit where one
// field alone can be, and the counts at theirs.
func bigManifest() abi.Manifest {
	m := abi.Manifest{
		Name: strings.Repeat("n", abi.MaxNameBytes), Version: strings.Repeat("v", abi.MaxVersionBytes), ABI: abi.ABIVersion,
		Resources: []string{"gpio", "i2c", "serial", "gpio", "i2c", "serial", "gpio", "i2c", "serial", "gpio", "i2c", "serial", "gpio", "i2c", "serial", "gpio"},
	}
	for i := range abi.MaxJobs {
		m.Jobs = append(m.Jobs, abi.JobSpec{Name: fmt.Sprintf("j%d", i), Path: "/a/:x", Op: abi.Any})
	}
	m.Jobs[0].Name = strings.Repeat("j", abi.MaxNameBytes)
	m.Jobs[0].Path = "/" + strings.Repeat("p", abi.MaxPathBytes-1)
	m.Jobs[0].Description = strings.Repeat("d", abi.MaxDescriptionBytes)
	for i := range abi.MaxSensors {
		m.Sensors = append(m.Sensors, abi.SensorSpec{Name: fmt.Sprintf("s%d", i), Path: "/s", IntervalMS: 1000})
	}
	m.Sensors[0].Name = strings.Repeat("s", abi.MaxNameBytes)
	m.Sensors[0].Path = "/" + strings.Repeat("q", abi.MaxPathBytes-1)
	return m
}

// exactly is a valid manifest of MaxManifestBytes as JSON, plus extra.
func exactly(t *testing.T, extra int) abi.Manifest {
	t.Helper()
	m := abi.Manifest{Name: "m", Version: "1", ABI: abi.ABIVersion}
	size := func() int {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	for size() < abi.MaxManifestBytes+extra {
		m.Jobs = append(m.Jobs, abi.JobSpec{Name: fmt.Sprintf("j%d", len(m.Jobs)), Path: "/a", Op: abi.Any, Description: strings.Repeat("d", abi.MaxDescriptionBytes)})
	}
	last := &m.Jobs[len(m.Jobs)-1]
	last.Description = last.Description[:len(last.Description)-(size()-abi.MaxManifestBytes-extra)]
	if got := size(); got != abi.MaxManifestBytes+extra {
		t.Fatalf("built a manifest of %d bytes, want %d", got, abi.MaxManifestBytes+extra)
	}
	return m
}

func TestManifestBounds(t *testing.T) {
	if err := bigManifest().Validate(); err != nil {
		t.Fatalf("the largest legal fields and counts: %v", err)
	}
	if err := exactly(t, 0).Validate(); err != nil {
		t.Fatalf("a manifest of exactly %d bytes: %v", abi.MaxManifestBytes, err)
	}
	if err := exactly(t, 1).Validate(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d bytes as JSON, at most %d", abi.MaxManifestBytes+1, abi.MaxManifestBytes)) {
		t.Fatalf("a manifest one byte too big: err = %v", err)
	}
	huge := strings.Repeat("x", 600<<10)
	for name, tc := range map[string]struct {
		edit func(*abi.Manifest)
		want string
	}{
		"name":            {func(m *abi.Manifest) { m.Name += "n" }, "sdk: manifest: name is 129 bytes, at most 128"},
		"huge name":       {func(m *abi.Manifest) { m.Name = huge }, "sdk: manifest: name is 614400 bytes, at most 128"},
		"version":         {func(m *abi.Manifest) { m.Version += "v" }, "version is 65 bytes, at most 64"},
		"job name":        {func(m *abi.Manifest) { m.Jobs[3].Name = huge }, "jobs[3].name is 614400 bytes, at most 128"},
		"job path":        {func(m *abi.Manifest) { m.Jobs[0].Path += "p" }, "jobs[0].path is 1025 bytes, at most 1024"},
		"job description": {func(m *abi.Manifest) { m.Jobs[0].Description += "d" }, "jobs[0].description is 1025 bytes, at most 1024"},
		"job op":          {func(m *abi.Manifest) { m.Jobs[1].Op = abi.Op(huge) }, "jobs[1].op is 614400 bytes, at most 32"},
		"job kind":        {func(m *abi.Manifest) { m.Jobs[1].Kind = abi.Kind(huge) }, "jobs[1].kind is 614400 bytes"},
		"job condition":   {func(m *abi.Manifest) { m.Jobs[1].Condition = huge }, "jobs[1].condition is 614400 bytes"},
		"job effect":      {func(m *abi.Manifest) { m.Jobs[1].Effect = huge }, "jobs[1].effect is 614400 bytes"},
		"sensor name":     {func(m *abi.Manifest) { m.Sensors[0].Name += "s" }, "sensors[0].name is 129 bytes, at most 128"},
		"sensor path":     {func(m *abi.Manifest) { m.Sensors[5].Path = huge }, "sensors[5].path is 614400 bytes, at most 1024"},
		"resource":        {func(m *abi.Manifest) { m.Resources[2] = huge }, "resources[2].kind is 614400 bytes, at most 32"},
		"jobs":            {func(m *abi.Manifest) { m.Jobs = append(m.Jobs, abi.JobSpec{Name: "extra", Path: "/x", Op: abi.Any}) }, "257 jobs, at most 256"},
		"sensors": {func(m *abi.Manifest) {
			m.Sensors = append(m.Sensors, abi.SensorSpec{Name: "extra", Path: "/x", IntervalMS: 1})
		}, "65 sensors, at most 64"},
		"resources":          {func(m *abi.Manifest) { m.Resources = append(m.Resources, "gpio") }, "17 resources, at most 16"},
		"names the module":   {func(m *abi.Manifest) { m.Name = "relay"; m.Version += "v" }, "sdk: module relay: manifest: version is 65 bytes"},
		"unknown op, quoted": {func(m *abi.Manifest) { m.Jobs[1].Op = abi.Op(strings.Repeat("o", 32)) }, "unknown op"},
	} {
		t.Run(name, func(t *testing.T) {
			m := bigManifest()
			tc.edit(&m)
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if len(err.Error()) > 1024 {
				t.Fatalf("the error is %d bytes: it must not quote what it refuses", len(err.Error()))
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"", 0, ""},
		{"short", 5, "short"},
		{"short", 100, "short"},
		{"abcdef", 3, "abc…(cut 3 bytes)"},
		{"abcd", 3, "abc…(cut 1 byte)"},
		{"abc", -1, "…(cut 3 bytes)"},
		{"héllo", 2, "h…(cut 5 bytes)"}, // é is 2 bytes: not cut in half
		{"h\xff\xffllo", 2, "h\xff…(cut 4 bytes)"},
		{"日本語", 4, "日…(cut 6 bytes)"},
		{strings.Repeat("x", 100000), 10, "xxxxxxxxxx…(cut 99990 bytes)"},
	} {
		if got := abi.Truncate(tc.s, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

// Whatever a module sends, Truncate keeps a prefix of it, whole runes of
// valid UTF-8 stay valid, and the result is bounded.
func FuzzTruncate(f *testing.F) {
	f.Add("héllo wörld", 3)
	f.Add("\xf0\x9f\x98", 2)
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := abi.Truncate(s, n)
		if len(s) <= max(n, 0) {
			if got != s {
				t.Fatalf("Truncate(%q, %d) = %q, want it unchanged", s, n, got)
			}
			return
		}
		kept, _, ok := strings.Cut(got, "…(cut ")
		if !ok || !strings.HasPrefix(s, kept) || len(kept) > max(n, 0) || len(got) > max(n, 0)+34 {
			t.Fatalf("Truncate(%q, %d) = %q", s, n, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Truncate(%q, %d) = %q is not UTF-8", s, n, got)
		}
	})
}
