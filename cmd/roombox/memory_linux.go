package main

import "golang.org/x/sys/unix"

// noHugePages turns transparent huge pages off for this process and its threads. libx264
// asks for them (madvise MADV_HUGEPAGE) on each of its allocations of 1.75 MB or more: at
// 720p its picture buffers and every encoder thread's 3.7 MB output buffer, of which a
// frame writes a few kB, so each becomes a whole resident 2 MB page. Off, the daemon's
// anonymous memory at 720p30 in three layers is ~6 MB smaller for no CPU seen
// (docs/BENCHMARKS.md); the box is short of memory, not of TLB entries.
func noHugePages() error {
	return unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0)
}
