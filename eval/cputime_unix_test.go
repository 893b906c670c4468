//go:build unix

package eval

import (
	"syscall"
	"time"
)

// processCPUTime is the user+system CPU time of this process so far: on a
// machine shared with other work it measures our cost where wall time
// cannot.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
