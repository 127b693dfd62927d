package fsm

import "time"

// MaxClockStep is the most one command may move the command clock forward.
// A proposer whose clock runs ahead (days, after a bad NTP step) would
// otherwise expire every remembered id at once, and the clock would never
// come back. With traffic of about a command a minute (the scheduled
// submit) the command clock still keeps pace with real time.
const MaxClockStep = time.Minute

// nextClock returns the command clock after a command stamped at: the
// largest At seen so far, but moved by at most MaxClockStep per command. It
// depends only on the log, so every node computes the same clock. The
// first command sets the clock outright (there is nothing to bound it by).
func nextClock(clock, at int64) int64 {
	switch {
	case clock == 0:
		return at
	case at <= clock:
		return clock
	case at-clock > MaxClockStep.Milliseconds():
		return clock + MaxClockStep.Milliseconds()
	default:
		return at
	}
}
