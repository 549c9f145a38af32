package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// NewLogger is ternd's logger on w (its stderr): format "text" (or "")
// or "json", at level. When w is journald's stream (UnderJournal), each
// line starts with its sd-daemon priority (<3> error, <4> warn, <6>
// info, <7> debug), which journald strips and keeps as the entry's
// priority (journalctl -p warning), and text lines carry no time of
// their own: journald stamps every entry. JSON lines keep their "time":
// a JSON line is meant to be read as a whole by a program, and
// journald's stamp is not in it (docs/observability.md, "Logs").
func NewLogger(w *os.File, format string, level slog.Leveler) *slog.Logger {
	journal := UnderJournal(w)
	opts := &slog.HandlerOptions{Level: level}
	if journal && format != "json" {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	var out io.Writer = w
	var pw *priorityWriter
	if journal {
		pw = &priorityWriter{w: w}
		out = pw
	}
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(out, opts)
	} else {
		h = slog.NewTextHandler(out, opts)
	}
	if pw != nil {
		h = priorityHandler{Handler: h, w: pw}
	}
	return slog.New(h)
}

// UnderJournal reports whether f is journald's stream: systemd sets
// JOURNAL_STREAM to the device and inode ("dev:ino") of the stream it
// connects a service's stdout and stderr to, and the variable passes on
// to children whose stderr may be something else (a pipe, a file), so
// f's own device and inode must match.
func UnderJournal(f *os.File) bool {
	dev, ino, ok := strings.Cut(os.Getenv("JOURNAL_STREAM"), ":")
	if !ok {
		return false
	}
	d, err1 := strconv.ParseUint(dev, 10, 64)
	i, err2 := strconv.ParseUint(ino, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == d && uint64(st.Ino) == i
}

// priority is the sd-daemon prefix of a level (sd-daemon(3)).
func priority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}

// priorityWriter prefixes each record's line with the priority the
// handler set for it. A handler writes a record with one Write; mu is
// held from setting the prefix to that Write.
type priorityWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *priorityWriter) Write(b []byte) (int, error) {
	p.buf = append(append(p.buf[:0], p.prefix...), b...)
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}

// priorityHandler sets its writer's prefix for each record it handles.
type priorityHandler struct {
	slog.Handler
	w *priorityWriter
}

func (h priorityHandler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.w.prefix = priority(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h priorityHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return priorityHandler{Handler: h.Handler.WithAttrs(as), w: h.w}
}

func (h priorityHandler) WithGroup(name string) slog.Handler {
	return priorityHandler{Handler: h.Handler.WithGroup(name), w: h.w}
}
