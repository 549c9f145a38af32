package testbench

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// maxTimeline bounds the timeline lines the text report prints per
// scenario; the JSON report has them all.
const maxTimeline = 80

// WriteReport writes the human report of results: per scenario its
// timeline, each assertion's verdict and reason, the devices and timings;
// then a summary line.
func WriteReport(w io.Writer, results []*Result) {
	passed := 0
	var total time.Duration
	for _, r := range results {
		total += r.Duration
		verdict := "PASS"
		if !r.Passed {
			verdict = "FAIL"
		} else {
			passed++
		}
		fmt.Fprintf(w, "\n=== %s %s", verdict, r.Name)
		if r.File != "" {
			fmt.Fprintf(w, " (%s)", r.File)
		}
		fmt.Fprintf(w, "\n    setup %v, run %v, seed %d (--seed %d replays its random choices)\n", r.Setup.Round(10*time.Millisecond), (r.Duration - r.Setup).Round(10*time.Millisecond), r.Seed, r.Seed)
		if r.Error != "" {
			fmt.Fprintf(w, "    error: %s\n", r.Error)
		}
		if len(r.Timeline) > 0 {
			fmt.Fprintln(w, "  timeline:")
			for i, e := range r.Timeline {
				if i == maxTimeline {
					fmt.Fprintf(w, "    … %d more (see --json)\n", len(r.Timeline)-maxTimeline)
					break
				}
				fmt.Fprintf(w, "    %8s  %-20s %s\n", fmtAt(e.At), e.What, strings.TrimSpace(e.Device+" "+e.Detail))
			}
		}
		if len(r.Assertions) > 0 {
			fmt.Fprintln(w, "  assertions:")
			for _, a := range r.Assertions {
				v := "PASS"
				if !a.Passed {
					v = "FAIL"
				}
				line := ""
				if a.Line > 0 {
					line = fmt.Sprintf(" (line %d)", a.Line)
				}
				fmt.Fprintf(w, "    %s  %s%s\n          %s; checked from %s, took %v\n", v, a.Name, line, a.Reason, fmtAt(a.At), a.Took.Round(10*time.Millisecond))
			}
		}
		if len(r.Devices) > 0 {
			fmt.Fprintln(w, "  devices:")
			for _, d := range r.Devices {
				state := "not converged"
				if d.Converged {
					state = "converged"
				}
				fmt.Fprintf(w, "    %-12s v%-3d %-13s %-8s %4d events (last seq %d)  modules %s\n", d.ID, d.TargetVersion, state, d.Phase, d.Events, d.LastSeq, modules(d.Modules))
				if d.Error != "" {
					fmt.Fprintf(w, "                 error: %s\n", firstLine(d.Error))
				}
				for _, l := range d.Log {
					fmt.Fprintf(w, "                 log: %s\n", firstLine(l))
				}
			}
		}
		n := len(r.Assertions)
		fmt.Fprintf(w, "  %s: %d of %d assertions passed in %v\n", verdict, n-r.Failed(), n, r.Duration.Round(10*time.Millisecond))
	}
	fmt.Fprintf(w, "\ntestbench: %d of %d scenarios passed in %v\n", passed, len(results), total.Round(10*time.Millisecond))
}

func modules(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"@"+v)
	}
	return strings.Join(parts, ",")
}

// JUnit XML, as CI systems read it (the Ant/Surefire schema): one
// testsuite per scenario, one testcase per assertion.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
	SystemOut string      `xml:"system-out,omitempty"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes results as JUnit XML. A scenario that could not run
// is a testcase with an error.
func WriteJUnit(w io.Writer, results []*Result) error {
	var all junitSuites
	var total time.Duration
	for _, r := range results {
		s := junitSuite{Name: r.Name, Time: secs(r.Duration), Timestamp: r.Started.UTC().Format(time.RFC3339)}
		for _, a := range r.Assertions {
			c := junitCase{Name: a.Name, Classname: "testbench." + r.Name, Time: secs(a.Took)}
			if !a.Passed {
				c.Failure = &junitProblem{Message: firstLine(a.Reason), Type: "assertion", Body: a.Reason}
				s.Failures++
			}
			s.Cases = append(s.Cases, c)
		}
		if r.Error != "" {
			s.Cases = append(s.Cases, junitCase{Name: "scenario runs", Classname: "testbench." + r.Name, Time: secs(r.Duration),
				Error: &junitProblem{Message: firstLine(r.Error), Type: "error", Body: r.Error}})
			s.Errors++
		}
		s.Tests = len(s.Cases)
		var out strings.Builder
		for _, e := range r.Timeline {
			fmt.Fprintf(&out, "%8s  %-20s %s\n", fmtAt(e.At), e.What, strings.TrimSpace(e.Device+" "+e.Detail))
		}
		s.SystemOut = out.String()
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Errors += s.Errors
		total += r.Duration
		all.Suites = append(all.Suites, s)
	}
	all.Time = secs(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return fmt.Errorf("testbench: JUnit report: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}
