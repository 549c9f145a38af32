package abi_test

import (
	"strings"
	"testing"

	"github.com/tern-iot/tern/sdk/abi"
)

func TestManifestValidate(t *testing.T) {
	good := abi.Manifest{Name: "m", Version: "1", ABI: abi.ABIVersion,
		Jobs:    []abi.JobSpec{{Name: "j", Path: "/a/:x", Op: abi.Any}},
		Sensors: []abi.SensorSpec{{Name: "s", Path: "/a", IntervalMS: 100}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		edit func(*abi.Manifest)
		want string
	}{
		"no name":     {func(m *abi.Manifest) { m.Name = "" }, "name and a version"},
		"other ABI":   {func(m *abi.Manifest) { m.ABI = 99 }, "ABI 99"},
		"bad op":      {func(m *abi.Manifest) { m.Jobs[0].Op = "frob" }, "unknown op"},
		"dup job":     {func(m *abi.Manifest) { m.Jobs = append(m.Jobs, m.Jobs[0]) }, "unique"},
		"sensor=job":  {func(m *abi.Manifest) { m.Sensors[0].Name = "j" }, "unique"},
		"no interval": {func(m *abi.Manifest) { m.Sensors[0].IntervalMS = 0 }, "interval"},
		"busy facts":  {func(m *abi.Manifest) { m.Sensors[0].Busy, m.Sensors[0].Facts = true, true }, "a busy sensor or a facts sensor, not both"},
	} {
		m := good
		m.Jobs = append([]abi.JobSpec(nil), good.Jobs...)
		m.Sensors = append([]abi.SensorSpec(nil), good.Sensors...)
		tc.edit(&m)
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

func TestOpMatches(t *testing.T) {
	if !abi.Any.Matches(abi.Delete) || !abi.Create.Matches(abi.Create) || abi.Update.Matches(abi.Create) {
		t.Fatal("Op.Matches is wrong")
	}
}

func TestErrnoText(t *testing.T) {
	if !strings.Contains(abi.ErrnoNotGranted.Error(), "not granted") || !strings.Contains(abi.Errno(42).Error(), "42") {
		t.Fatal("errno text")
	}
}
