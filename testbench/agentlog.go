package testbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// ring keeps an agent's last warnings.
type ring struct {
	mu   sync.Mutex
	max  int
	kept []string
}

func (g *ring) Write(p []byte) (int, error) {
	if strings.Contains(string(p), "without a signature check") {
		return len(p), nil // the testbench runs without operator keys, on purpose
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.kept = append(g.kept, strings.TrimSpace(string(p)))
	if len(g.kept) > g.max {
		g.kept = g.kept[len(g.kept)-g.max:]
	}
	return len(p), nil
}

func (g *ring) lines() []string {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.kept)
}

// agentHandler keeps warnings in g and, with all set, writes everything
// there too, prefixed with the agent's id.
func agentHandler(g *ring, all io.Writer, id string) slog.Handler {
	warn := slog.NewTextHandler(g, &slog.HandlerOptions{Level: slog.LevelWarn, ReplaceAttr: dropTime})
	if all == nil {
		return warn
	}
	return multiHandler{warn, slog.NewTextHandler(all, &slog.HandlerOptions{Level: slog.LevelInfo}).WithAttrs([]slog.Attr{slog.String("agent", id)})}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

type multiHandler []slog.Handler

func (m multiHandler) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range m {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (m multiHandler) Handle(ctx context.Context, rec slog.Record) error {
	var errs []error
	for _, h := range m {
		if h.Enabled(ctx, rec.Level) {
			errs = append(errs, h.Handle(ctx, rec.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (m multiHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (m multiHandler) WithGroup(name string) slog.Handler {
	out := make(multiHandler, len(m))
	for i, h := range m {
		out[i] = h.WithGroup(name)
	}
	return out
}

// processLog takes a ternd process's output: its warnings and errors go
// to warn (for the report), everything to all (--agent-log) prefixed with
// the agent's id.
type processLog struct {
	id   string
	warn *ring
	all  io.Writer

	mu      sync.Mutex
	partial []byte
}

func (l *processLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			if _, msg, ok := strings.Cut(line, " level="); ok {
				line = "level=" + msg // without the time, as in-process warnings
			}
			l.warn.Write([]byte(line))
		}
		if l.all != nil {
			fmt.Fprintf(l.all, "agent=%s %s\n", l.id, line)
		}
	}
}
