package runtime_test

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	goruntime "runtime"

	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/jobs"
)

// How late a job starts after its not_before on an online device: 200
// jobs, 25 ms apart, each a command that returns at once; p50 and p99 of
// started - not_before, by the device's clock.
func BenchmarkJobStartLatency(b *testing.B) {
	for range b.N {
		rep := &jobRecorder{}
		a := startCommands(b, rep, nil)
		const n = 200
		first := time.Now().Add(2 * time.Second)
		for i := range n {
			j := commandJob(fmt.Sprintf("j%03d", i), "echo", `{}`)
			j.Spec.NotBefore = first.Add(time.Duration(i) * 25 * time.Millisecond)
			if err := a.OfferJob(j); err != nil {
				b.Fatal(err)
			}
		}
		testbound.WaitFor(b, "every job succeeded", func() bool {
			for i := range n {
				if rep.last(fmt.Sprintf("j%03d", i)).Phase != "succeeded" {
					return false
				}
			}
			return true
		})
		var late []time.Duration
		for _, j := range a.Jobs() {
			late = append(late, rep.last(j.Spec.ID).Started.Sub(j.Spec.NotBefore))
		}
		slices.Sort(late)
		b.ReportMetric(float64(late[len(late)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(late[len(late)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(late[0].Microseconds())/1000, "min-ms")
	}
}

// What 1,000 recurring jobs waiting for their time cost an idle device,
// side by side on one agent: process CPU over 10 s of idling before they
// came and after, and the heap they add after a collection.
func BenchmarkIdleWithJobs(b *testing.B) {
	for range b.N {
		rep := &jobRecorder{lastOnly: true}
		a := startCommands(b, rep, func(o *runtime.Options) { o.Logger = nil })
		time.Sleep(2 * time.Second) // loaded, reported, idle
		idle := func() time.Duration {
			before := cpu()
			time.Sleep(10 * time.Second)
			return cpu() - before
		}
		heap := func() uint64 {
			goruntime.GC()
			var ms goruntime.MemStats
			goruntime.ReadMemStats(&ms)
			return ms.HeapInuse
		}
		cpu0, heap0 := idle(), heap()
		tomorrow := time.Now().Add(24 * time.Hour)
		for i := range jobs.MaxJobs {
			j := commandJob(fmt.Sprintf("t%04d", i), "echo", `{}`)
			j.Spec.NotBefore, j.Spec.Cron = tomorrow, "0 4 * * *"
			if err := a.OfferJob(j); err != nil {
				b.Fatal(err)
			}
		}
		testbound.WaitFor(b, "every job waiting", func() bool {
			for i := range jobs.MaxJobs {
				if rep.last(fmt.Sprintf("t%04d", i)).Phase != "waiting" {
					return false
				}
			}
			return true
		})
		time.Sleep(2 * time.Second)
		heap1 := heap()
		cpu1 := idle()
		b.ReportMetric(float64(cpu0.Microseconds())/1000/10, "cpu-ms/s-0-jobs")
		b.ReportMetric(float64(cpu1.Microseconds())/1000/10, "cpu-ms/s-1000-jobs")
		b.ReportMetric(float64(int64(heap1)-int64(heap0))/(1<<10)/jobs.MaxJobs, "heap-KiB/job")
	}
}

// cpu is the process's CPU time so far, user and system.
func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
