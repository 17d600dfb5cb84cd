package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func numCPU() int { return runtime.NumCPU() }

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

// peakRSS returns a process's peak resident set size in kB (VmHWM), or -1.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

// resetPeakRSS starts a new peak for this process (Linux 4.0+), after
// handing back the memory an earlier scenario left behind.
func resetPeakRSS() {
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// cpuSeconds returns the user and system CPU time a process has used.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which may hold spaces, in parentheses.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// listenerPID finds the process listening on port (the broker, when it
// runs on this machine), from /proc/net/tcp and each process's sockets;
// 0 when it cannot be seen (another machine, or no right to look).
func listenerPID(port int) int {
	inode := ""
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(table)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// local address, state 0A (LISTEN), inode
			if len(f) > 9 && f[3] == "0A" && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
				inode = f[9]
			}
		}
	}
	if inode == "" {
		return 0
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + p.Name() + "/fd")
		for _, fd := range fds {
			if target, _ := os.Readlink("/proc/" + p.Name() + "/fd/" + fd.Name()); target == "socket:["+inode+"]" {
				return pid
			}
		}
	}
	return 0
}

// dataDir is the broker's data folder, seen from its open files (the
// quorum WAL lives under it); "" when it cannot be seen.
func dataDir(pid int) string {
	if pid == 0 {
		return ""
	}
	fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	for _, fd := range fds {
		target, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
		if dir, _, ok := strings.Cut(target, "/quorum/"); ok {
			return dir
		}
	}
	return ""
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// diskPeak samples dir's size every 100ms until stop, and returns its
// largest growth. Growth counts from the smallest size seen before it, not
// from the first: the broker may still be deleting an earlier scenario's
// queue files as this one starts, which would hide this one's.
func diskPeak(dir string, stop <-chan struct{}) <-chan int64 {
	peak := make(chan int64, 1)
	go func() {
		base, most := dirBytes(dir), int64(0)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			size := dirBytes(dir)
			base = min(base, size)
			most = max(most, size-base)
			select {
			case <-stop:
				peak <- most
				return
			case <-t.C:
			}
		}
	}()
	return peak
}
