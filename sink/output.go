package sink

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/DeRuina/timberjack"
)

// Output is where the sink writes records. The sink calls it from one
// goroutine at a time, and acknowledges records to the broker only after
// Flush returned nil.
type Output interface {
	Write(r *Record) error
	Flush() error
	// Reopen closes and reopens a file, for SIGHUP after an external
	// rotation; a no-op for the screen.
	Reopen() error
	Close() error
}

// Screen writes records as text or JSON lines to a terminal or a pipe.
type Screen struct {
	w     *bufio.Writer
	json  bool
	color bool
	buf   []byte
}

// NewScreen returns an Output writing to w in format (FormatText or
// FormatJSON). Color applies to text only; see UseColor.
func NewScreen(w io.Writer, format string, color bool) *Screen {
	return &Screen{w: bufio.NewWriterSize(w, 64<<10), json: format == FormatJSON, color: color}
}

// UseColor reports whether f is a terminal and NO_COLOR is unset.
func UseColor(f *os.File) bool {
	if _, ok := os.LookupEnv("NO_COLOR"); ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Write formats r into the screen's buffer.
func (s *Screen) Write(r *Record) error {
	if s.json {
		s.buf = AppendJSON(s.buf[:0], r)
	} else {
		s.buf = AppendText(s.buf[:0], r, s.color)
	}
	_, err := s.w.Write(s.buf)
	return err
}

// Flush writes out what is buffered.
func (s *Screen) Flush() error { return s.w.Flush() }

// Reopen does nothing: a screen has no file to reopen.
func (s *Screen) Reopen() error { return nil }

// Close flushes; it leaves the underlying writer open.
func (s *Screen) Close() error { return s.w.Flush() }

// FileOptions configures a File. Zero fields mean the defaults stated.
type FileOptions struct {
	Path       string      // the file to write; required
	MaxSizeMB  int         // rotate past this size; default 100
	MaxBackups int         // rotated files to keep; default all
	MaxAgeDays int         // delete rotated files older than this; default never
	Compress   bool        // gzip rotated files
	Mode       os.FileMode // mode of new files; default 0640
}

// File writes one JSON object per line (NDJSON), exactly the record as
// published, rotating by size. Rotation is timberjack's: it opens with
// O_APPEND, creates files with a chosen mode and, unlike lumberjack, stops
// its background goroutines on Close.
type File struct {
	opts FileOptions
	mu   sync.Mutex // Reopen may come from a signal while the sink writes
	lj   *timberjack.Logger
	w    *bufio.Writer
	line []byte
}

// NewFile checks at once that the file can be opened (creating it and
// its folder if needed), so that a bad path or a missing permission shows
// at start; a full disk shows later, as write errors that the sink retries.
func NewFile(opts FileOptions) (*File, error) {
	if opts.Mode == 0 {
		opts.Mode = 0o640
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
		return nil, err
	}
	fh, err := os.OpenFile(opts.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, opts.Mode)
	if err != nil {
		return nil, err
	}
	fh.Close()
	f := &File{opts: opts}
	f.open()
	return f, nil
}

func (f *File) open() {
	compression := "none"
	if f.opts.Compress {
		compression = "gzip"
	}
	f.lj = &timberjack.Logger{
		Filename:    f.opts.Path,
		MaxSize:     f.opts.MaxSizeMB,
		MaxBackups:  f.opts.MaxBackups,
		MaxAge:      f.opts.MaxAgeDays,
		Compression: compression,
		FileMode:    f.opts.Mode,
	}
	f.w = bufio.NewWriterSize(f.lj, 256<<10)
}

// Write buffers r as one line.
func (f *File) Write(r *Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	// A line reaches the rotating writer in one Write, which it never
	// splits across two files: flush first when it does not fit, and a
	// line longer than the buffer goes straight through.
	f.line = append(append(f.line[:0], r.JSON...), '\n')
	if f.w.Available() < len(f.line) {
		if err := f.w.Flush(); err != nil {
			return err
		}
	}
	_, err := f.w.Write(f.line)
	return err
}

// Flush writes out what is buffered.
func (f *File) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.w.Flush()
}

// Reopen flushes, closes the file and opens it again by name, creating it
// if an external rotation moved it away; it also clears a failed writer,
// so that the next write tries the disk again.
func (f *File) Reopen() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.w.Flush()
	if cerr := f.lj.Close(); err == nil {
		err = cerr
	}
	f.open()
	return err
}

// Close flushes and closes the file, and stops the rotation goroutine.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.w.Flush()
	if cerr := f.lj.Close(); err == nil {
		err = cerr
	}
	return err
}
