package sdk_test

import (
	"strings"
	"testing"

	"github.com/tern-iot/tern/sdk"
)

func TestManifestValidate(t *testing.T) {
	good := sdk.Manifest{Name: "m", Version: "1", ABI: sdk.ABIVersion,
		Jobs:    []sdk.JobSpec{{Name: "j", Path: "/a/:x", Op: sdk.Any}},
		Sensors: []sdk.SensorSpec{{Name: "s", Path: "/a", IntervalMS: 100}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		edit func(*sdk.Manifest)
		want string
	}{
		"no name":     {func(m *sdk.Manifest) { m.Name = "" }, "name and a version"},
		"other ABI":   {func(m *sdk.Manifest) { m.ABI = 99 }, "ABI 99"},
		"bad op":      {func(m *sdk.Manifest) { m.Jobs[0].Op = "frob" }, "unknown op"},
		"dup job":     {func(m *sdk.Manifest) { m.Jobs = append(m.Jobs, m.Jobs[0]) }, "unique"},
		"sensor=job":  {func(m *sdk.Manifest) { m.Sensors[0].Name = "j" }, "unique"},
		"no interval": {func(m *sdk.Manifest) { m.Sensors[0].IntervalMS = 0 }, "interval"},
	} {
		m := good
		m.Jobs = append([]sdk.JobSpec(nil), good.Jobs...)
		m.Sensors = append([]sdk.SensorSpec(nil), good.Sensors...)
		tc.edit(&m)
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

func TestOpMatches(t *testing.T) {
	if !sdk.Any.Matches(sdk.Delete) || !sdk.Create.Matches(sdk.Create) || sdk.Update.Matches(sdk.Create) {
		t.Fatal("Op.Matches is wrong")
	}
}

func TestErrnoText(t *testing.T) {
	if !strings.Contains(sdk.ErrnoNotGranted.Error(), "not granted") || !strings.Contains(sdk.Errno(42).Error(), "42") {
		t.Fatal("errno text")
	}
}
