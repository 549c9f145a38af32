// Package wasmbuild builds job modules from Go source with the standard Go
// toolchain, as `tern module build`, `make plugins` and the tests do.
package wasmbuild

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// Build compiles the Go package in dir (a path or an import path) to a
// wasip1 reactor module at out.
func Build(dir, out string) error {
	cmd := exec.Command(goTool(), "build", "-trimpath", "-buildmode=c-shared", "-o", out, ".")
	if !isDir(dir) {
		cmd = exec.Command(goTool(), "build", "-trimpath", "-buildmode=c-shared", "-o", out, dir)
	} else {
		cmd.Dir = dir
	}
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("wasmbuild: go build %s for wasip1: %v\n%s", dir, err, stderr.String())
	}
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func goTool() string {
	if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" && isDir(filepath.Dir(p)) {
		return p
	}
	return "go"
}

var cache sync.Map // import path → *built

type built struct {
	once sync.Once
	wasm []byte
	err  error
}

// Cached builds an import path once per process and returns the module
// bytes; tests of many packages share it through their own process.
func Cached(importPath string) ([]byte, error) {
	v, _ := cache.LoadOrStore(importPath, &built{})
	b := v.(*built)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "tern-wasm-")
		if err != nil {
			b.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "m.wasm")
		if b.err = Build(importPath, out); b.err == nil {
			b.wasm, b.err = os.ReadFile(out)
		}
	})
	return b.wasm, b.err
}
