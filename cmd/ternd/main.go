// Command ternd is tern's device agent. See internal/daemon.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	// Layers' time windows name IANA zones; minimal board images (and
	// containers) often lack /usr/share/zoneinfo. About 450 kB.
	_ "time/tzdata"

	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/version"
	"github.com/tern-iot/tern/runtime"
)

const usage = `ternd: the tern device agent

Usage:
  ternd [run] [--config FILE]   run the agent (default config /etc/tern/ternd.yaml)
  ternd check-store DIR [N]     write N keys (default 30000) to a store in DIR,
                                reopen it and read them back
  ternd check-config FILE       check a configuration file without starting: unknown
                                keys, values, grants against the board
  ternd doctor [--board NAME]   check the board is set up for ternd, and say what to change
  ternd provision [--root DIR]  apply the first-boot file (/boot/firmware/tern.yaml or
                                /boot/tern.yaml) to /etc/tern, then remove it
  ternd version                 print the version
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version", "--version":
		fmt.Println(version.String("ternd"))
		return 0
	case "check-store":
		if len(args) < 1 {
			fmt.Fprint(os.Stderr, usage)
			return 2
		}
		n := 30000
		if len(args) > 1 {
			if _, err := fmt.Sscan(args[1], &n); err != nil || n <= 0 {
				fmt.Fprintf(os.Stderr, "ternd: check-store: N must be a positive number, got %q\n", args[1])
				return 2
			}
		}
		if err := daemon.CheckStore(args[0], n, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "ternd:", err)
			return 1
		}
		return 0
	case "doctor":
		fs := flag.NewFlagSet("ternd doctor", flag.ContinueOnError)
		board := fs.String("board", "", "the board to check (default: detect it from /proc/device-tree/model)")
		root := fs.String("root", "/", "filesystem root to look under (for checking a mounted SD card)")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if daemon.Doctor(os.Stdout, daemon.DoctorEnv{Root: *root, Board: *board}) > 0 {
			return 1
		}
		return 0
	case "provision":
		fs := flag.NewFlagSet("ternd provision", flag.ContinueOnError)
		root := fs.String("root", "/", "filesystem root (for provisioning a mounted SD card)")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		res, err := daemon.Provision(*root)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if res.From == "" {
			fmt.Println("ternd provision: no first-boot file; nothing to do")
			return 0
		}
		fmt.Printf("ternd provision: applied %s: wrote %s %v; removed %v\n", res.From, res.Config, res.Written, res.Removed)
		return 0
	case "check-config":
		if len(args) != 1 {
			fmt.Fprint(os.Stderr, usage)
			return 2
		}
		if err := daemon.CheckConfig(args[0]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("ternd check-config: %s is a valid configuration\n", args[0])
		return 0
	case "compile-module":
		// Not for people: ternd runs itself so to compile a new module
		// under a time and memory bound (runtime.Options.CompileCommand).
		return runtime.ServeCompile(args, os.Stdin, os.Stderr)
	case "run":
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "ternd: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	fs := flag.NewFlagSet("ternd", flag.ContinueOnError)
	config := fs.String("config", "/etc/tern/ternd.yaml", "configuration file")
	showVersion := fs.Bool("version", false, "print the version")
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Println(version.String("ternd"))
		return 0
	}
	// The packaged binary starts first; an updated one may take over,
	// before this one checks the configuration (which the updated one may
	// understand better).
	bootLog := daemon.NewLogger(os.Stderr, "text", slog.LevelInfo) // journald-aware before the configuration is read
	if exe := daemon.Boot(daemon.BootDataDir(*config), bootLog); exe != "" {
		bootLog.Info("starting the current agent binary", "binary", exe)
		err := syscall.Exec(exe, append([]string{exe}, os.Args[1:]...), append(os.Environ(), daemon.BootedEnv+"=1"))
		bootLog.Error("cannot start the current agent binary; running this one", "binary", exe, "err", err)
	}
	cfg, err := daemon.LoadConfig(*config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	log := daemon.NewLogger(os.Stderr, cfg.LogFormat, level)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, cfg, nil, log); err != nil {
		if errors.Is(err, daemon.ErrRestart) {
			log.Info("ternd restarts to switch binaries", "exit_code", daemon.ExitRestart)
			return daemon.ExitRestart
		}
		log.Error("ternd stopped", "err", err)
		return 1
	}
	return 0
}
