package runtime

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tern-iot/tern/runtime/plan"
)

// A module actuates only through its own grants. Host functions enforce
// that for the module's own calls; what is here closes the ways around
// them: a method expanding into another module's jobs, a sensor writing
// where another module's jobs work, and one piece of hardware granted to
// two modules (RATIONALE.md, "The sandbox").

// hardware lists what a set of grants names, one key per line, I2C
// device or serial port, in a form two grants of the same thing share
// ("gpio GPIO17", "i2c i2c1:0x48", "serial ttyS0"): rates and baud
// rates are how a thing may be used, not which thing.
func hardware(g Grants) []string {
	var keys []string
	for _, l := range g.GPIO {
		name, _, _ := strings.Cut(l, "@")
		keys = append(keys, "gpio "+name)
	}
	for _, d := range g.I2C {
		bus, addr, _ := strings.Cut(d, ":")
		if n, err := strconv.ParseUint(addr, 0, 16); err == nil {
			addr = fmt.Sprintf("%#x", n)
		}
		keys = append(keys, "i2c "+bus+":"+addr)
	}
	for _, p := range g.Serial {
		name, _, _ := strings.Cut(p, "@")
		keys = append(keys, "serial "+name)
	}
	return keys
}

// checkSharedGrants refuses two modules granted the same hardware, unless
// shared names it (as a grant would: "GPIO4", "i2c1:0x48", "ttyS0"): two
// modules driving one relay fight over it, and neither's grant then
// bounds what the line does.
func checkSharedGrants(specs []ModuleSpec, shared []string) error {
	ok := map[string]bool{}
	for _, k := range hardware(Grants{GPIO: shared, I2C: shared, Serial: shared}) {
		ok[k] = true
	}
	owner := map[string]string{}
	for _, s := range specs {
		for _, k := range hardware(s.Grants) {
			if o, taken := owner[k]; taken && o != s.Name && !ok[k] {
				what, name, _ := strings.Cut(k, " ")
				return fmt.Errorf("runtime: %s %s is granted to modules %s and %s: grant it to one, or list %q under shared_grants in ternd.yaml if both may drive it", what, name, o, s.Name, name)
			}
			owner[k] = s.Name
		}
	}
	return nil
}

// mayExpand lets a method of one module expand into a job of another
// only when the other module's hardware is all granted to the first too,
// or the first's configuration names the other under expand. Otherwise a
// module with no grant on a relay's line could switch it by expanding
// into the relay module's job.
func (ms *modset) mayExpand(method, job *plan.Job) error {
	from, err := ms.module(method.Module)
	if err != nil {
		return err
	}
	if slices.Contains(from.spec.Expand, job.Module) {
		return nil
	}
	to, err := ms.module(job.Module)
	if err != nil {
		return err
	}
	own := hardware(from.spec.Grants)
	for _, k := range hardware(to.spec.Grants) {
		if !slices.Contains(own, k) {
			what, name, _ := strings.Cut(k, " ")
			return fmt.Errorf("%s may not expand into %s: module %s is granted %s %s, which %s is not (allow it with expand: [%s] for module %s in ternd.yaml)",
				method.Name(), job.Name(), job.Module, what, name, method.Module, job.Module, method.Module)
		}
	}
	return nil
}

// checkSensors refuses a module whose sensor would write where another
// module's jobs work or another module's sensor writes: the two would
// fight over the place (a relay module switching back what a foreign
// sensor wrote, without end).
func (ms *modset) checkSensors(mod *module) error {
	for _, other := range ms.mods {
		if other.name == mod.name {
			continue
		}
		for _, s := range mod.sensors {
			for _, j := range other.jobs {
				if j.Pattern.Overlaps(s.path) {
					return fmt.Errorf("runtime: module %s: sensor %s writes %s, where module %s's job %s works (%s): a sensor writes only where its own module's jobs work",
						mod.name, s.spec.Name, s.path, other.name, j.Spec.Name, j.Pattern)
				}
			}
			for _, o := range other.sensors {
				if s.path.HasPrefix(o.path) || o.path.HasPrefix(s.path) {
					return fmt.Errorf("runtime: module %s: sensor %s writes %s, where module %s's sensor %s writes (%s)",
						mod.name, s.spec.Name, s.path, other.name, o.spec.Name, o.path)
				}
			}
		}
		// The other way round: this module's jobs where another's sensor writes.
		for _, j := range mod.jobs {
			for _, o := range other.sensors {
				if j.Pattern.Overlaps(o.path) {
					return fmt.Errorf("runtime: module %s: job %s works on %s, where module %s's sensor %s writes (%s): a sensor writes only where its own module's jobs work",
						mod.name, j.Spec.Name, j.Pattern, other.name, o.spec.Name, o.path)
				}
			}
		}
	}
	return nil
}
