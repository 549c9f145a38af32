package daemon

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tern-iot/tern/internal/version"
	"github.com/tern-iot/tern/runtime/api"
)

// processStart is when this ternd process started (its packages'
// initialisation: within milliseconds of the exec).
var processStart = time.Now()

// inventory is the agent's inventory of itself (api.AgentInfo), gathered
// cheaply: what cannot change while ternd runs (version, architecture,
// board, kernel, boot time, store) once, at start; what can (free disk,
// resident memory) at most every inventoryEvery; the outbox's depth, a
// counter under a mutex, every time.
type inventory struct {
	root    string // "/" but in tests: where /proc is looked for
	dataDir string
	outbox  func() int // nil: no fleet connection

	once sync.Once
	mu   sync.Mutex
	info api.AgentInfo
	at   time.Time // when the costly parts were last read
}

// inventoryEvery bounds how often the inventory reads the file system's
// free space and the process's memory (a statfs and a /proc read).
const inventoryEvery = 5 * time.Second

// maxInventoryText bounds a text of the inventory read from the system.
const maxInventoryText = 128

func newInventory(root, dataDir, board, store string, outbox func() int) *inventory {
	inv := &inventory{root: root, dataDir: dataDir, outbox: outbox}
	inv.info = api.AgentInfo{Version: version.Version, Arch: version.Arch(), Board: board, Store: store, Started: processStart.UTC()}
	return inv
}

// Info returns the inventory now.
func (inv *inventory) Info() api.AgentInfo {
	inv.once.Do(func() {
		if m := readText(inv.root + "proc/device-tree/model"); m != "" {
			inv.info.Board = m
		}
		inv.info.Kernel = readText(inv.root + "proc/sys/kernel/osrelease")
		inv.info.Boot = bootTime(inv.root)
	})
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if now := time.Now(); inv.at.IsZero() || now.Sub(inv.at) >= inventoryEvery {
		inv.at = now
		inv.info.DiskFree = diskFree(inv.dataDir)
		inv.info.RSS = residentMemory(inv.root)
	}
	info := inv.info
	if inv.outbox != nil {
		info.OutboxDepth = inv.outbox()
	}
	return info
}

// readText reads a short text file of the system (/proc, /sys), trimmed
// of white space and NULs; "" if it cannot.
func readText(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(strings.Trim(string(b), "\x00\n "))
	if len(s) > maxInventoryText {
		s = s[:maxInventoryText]
	}
	return strings.ToValidUTF8(s, "?")
}

// bootTime is when the machine booted: /proc/stat's btime; zero if
// unknown.
func bootTime(root string) time.Time {
	f, err := os.Open(root + "proc/stat")
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("btime ")); ok {
			if n, err := strconv.ParseInt(string(bytes.TrimSpace(rest)), 10, 64); err == nil && n > 0 {
				return time.Unix(n, 0).UTC()
			}
		}
	}
	return time.Time{}
}

// diskFree is the free bytes, for an unprivileged process, on the file
// system of dir.
func diskFree(dir string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return uint64(st.Bavail) * uint64(st.Bsize)
}

// residentMemory is the process's resident set in bytes, from
// /proc/self/statm (its second field, in pages).
func residentMemory(root string) uint64 {
	b, err := os.ReadFile(root + "proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}
