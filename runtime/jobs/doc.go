// Package jobs decides when a device runs its jobs: one-shot and scheduled
// work (issue 17, docs/jobs.md), as against targets, which are desired
// state. It is the device's scheduler, a pure function of a job's [Spec],
// what happened to it so far ([State]), the device's clock and whether
// that clock is synchronised, and the phases of the jobs it depends on:
// [Decide] says whether to run the job now, wait (until when, and why), or
// give it up (expired, or never to run because a dependency ended badly).
//
// [Book] keeps the device's jobs in its store: on the disk before the
// device acknowledges them, a newer version an edit or a cancel, a job
// that was running when the power went interrupted (or queued again if it
// said it may be), and at most [MaxJobs] of them.
//
// Decide holds no goroutine and reads no clock of its own, so it is tested
// against any time, time zone and clock jump; the caller persists State
// and asks again when the decision's time comes, or when anything it
// depends on changes.
//
// The rules that matter on a board without a real-time clock (a Raspberry
// Pi boots at the time it last saved, and jumps when NTP answers):
//
//   - A job with a wall-clock time (not_before, a cron schedule) waits for
//     the clock to be synchronised, and says so ([PhaseWaitingClock]); a
//     job to run now does not.
//   - A recurring job remembers the scheduled time of its last run, not
//     the clock's reading then: a clock that jumps back does not make the
//     same run come again, and a clock that jumps ahead past several runs
//     runs the latest once and counts the others as missed
//     ([State.Missed]), never silently.
package jobs
