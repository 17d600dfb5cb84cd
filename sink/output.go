package sink

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DeRuina/timberjack"
)

// Output is where the sink writes records. The sink calls it from one
// goroutine at a time, and acknowledges records to the broker only after
// Flush returned nil. A record whose Write returned nil belongs to the
// output: the sink never gives it again, and after a failed Flush calls
// Flush again, which must go on where the last one stopped. An output may
// count torn lines with a method Torn() uint64, which Stats adds up.
type Output interface {
	Write(r *Record) error
	Flush() error
	// Reopen closes and reopens a file, for SIGHUP after an external
	// rotation; a no-op for the screen.
	Reopen() error
	Close() error
}

// Writing never writes a record twice to one output, and never leaves a
// torn line, whatever fails. An output buffers whole lines and writes them
// in one Write; after a short write (a full disk, a file size limit) it
// keeps exactly the lines not wholly written. A line cut halfway is cut
// back out of the file, or, where that is impossible, ended with a newline
// and counted as torn, and the retry writes it again whole on a line of
// its own. The sink retries by calling Flush (or Write, for records whose
// Write failed) again; a record whose Write returned nil is never given
// to the same output twice.

// flushAt is how much an output buffers before writing: a commit's worth
// of small records, in one write.
const flushAt = 256 << 10

// lines holds whole lines until they are written.
type lines struct {
	buf  []byte
	torn atomic.Uint64
}

// add buffers line and a newline, writing out what is held first when it
// is full. It returns an error, and does not take line, when that write
// failed.
func (l *lines) add(w io.Writer, line []byte, cut func(int64) error) error {
	if len(l.buf) > 0 && len(l.buf)+len(line) >= flushAt {
		if err := l.flush(w, cut); err != nil {
			return err
		}
	}
	l.buf = append(append(l.buf, line...), '\n')
	return nil
}

// flush writes out what is held. After a short write it keeps the lines
// not wholly written; cut, when not nil, removes the n bytes of a line cut
// halfway from the end of the file.
func (l *lines) flush(w io.Writer, cut func(n int64) error) error {
	if len(l.buf) == 0 {
		return nil
	}
	n, err := w.Write(l.buf)
	if err == nil && n == len(l.buf) {
		l.buf = l.buf[:0]
		return nil
	}
	if err == nil {
		err = io.ErrShortWrite
	}
	whole := bytes.LastIndexByte(l.buf[:n], '\n') + 1
	rest := l.buf[whole:]
	if frag := n - whole; frag > 0 && (cut == nil || cut(int64(frag)) != nil) {
		l.torn.Add(1)
		rest = append([]byte{'\n'}, rest...)
	}
	l.buf = append(l.buf[:0], rest...)
	return err
}

// Screen writes records as text or JSON lines to a terminal or a pipe.
type Screen struct {
	w     io.Writer
	json  bool
	color bool
	out   lines
	line  []byte
}

// NewScreen returns an Output writing to w in format (FormatText or
// FormatJSON). Color applies to text only; see UseColor.
func NewScreen(w io.Writer, format string, color bool) *Screen {
	return &Screen{w: w, json: format == FormatJSON, color: color}
}

// UseColor reports whether f is a terminal and NO_COLOR is unset or empty
// (no-color.org: only a value other than "" turns colour off).
func UseColor(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("NO_COLOR") == ""
}

// Write formats r into the screen's buffer.
func (s *Screen) Write(r *Record) error {
	if s.json {
		s.line = AppendJSON(s.line[:0], r)
	} else {
		s.line = AppendText(s.line[:0], r, s.color)
	}
	return s.out.add(s.w, bytes.TrimSuffix(s.line, []byte("\n")), nil)
}

// Flush writes out what is buffered.
func (s *Screen) Flush() error { return s.out.flush(s.w, nil) }

// Torn counts the lines that a failed write left cut (each written again
// whole on a line of its own).
func (s *Screen) Torn() uint64 { return s.out.torn.Load() }

// Reopen does nothing: a screen has no file to reopen.
func (s *Screen) Reopen() error { return nil }

// Close flushes; it leaves the underlying writer open.
func (s *Screen) Close() error { return s.Flush() }

// FileOptions configures a File. Zero fields mean the defaults stated.
type FileOptions struct {
	Path      string // the file to write; required
	MaxSizeMB int    // rotate past this size; default 100; negative: never by size
	// RotateEvery rotates by time too: at every multiple of it since local
	// midnight when it divides a day (24h: daily at midnight, 1h: on the
	// hour), else that long after the last rotation. Default: never.
	RotateEvery time.Duration
	MaxBackups  int         // rotated files to keep; default all
	MaxAgeDays  int         // delete rotated files older than this; default never
	Compress    bool        // gzip rotated files
	Mode        os.FileMode // mode of new files; default 0640
}

// File writes one JSON object per line (NDJSON), exactly the record as
// published, rotating by size. Rotation is timberjack's: it opens with
// O_APPEND, creates files with a chosen mode and, unlike lumberjack, stops
// its background goroutines on Close. It rotates only between writes, and
// every write holds whole lines, so no line is split across two files.
type File struct {
	opts   FileOptions
	mu     sync.Mutex // Reopen may come from a signal while the sink writes
	rotate *timberjack.Logger
	out    lines
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
	maxSize := f.opts.MaxSizeMB
	if maxSize < 0 {
		maxSize = math.MaxInt32 // two petabytes: never
	}
	f.rotate = &timberjack.Logger{
		Filename:    f.opts.Path,
		MaxSize:     maxSize,
		MaxBackups:  f.opts.MaxBackups,
		MaxAge:      f.opts.MaxAgeDays,
		Compression: compression,
		FileMode:    f.opts.Mode,
		LocalTime:   true,
	}
	if marks := clockMarks(f.opts.RotateEvery); marks != nil {
		f.rotate.RotateAt = marks
	} else {
		f.rotate.RotationInterval = f.opts.RotateEvery
	}
}

// clockMarks are the times of day ("15:04") at every multiple of every
// since midnight, when every is whole minutes dividing a day; else nil.
// Marks on the clock survive a restart or a reopen; an interval would
// start again from each.
func clockMarks(every time.Duration) []string {
	if every < time.Minute || every%time.Minute != 0 || (24*time.Hour)%every != 0 {
		return nil
	}
	var marks []string
	for t := time.Duration(0); t < 24*time.Hour; t += every {
		marks = append(marks, fmt.Sprintf("%02d:%02d", int(t.Hours()), int(t.Minutes())%60))
	}
	return marks
}

// cut removes the last n bytes of the file: a line a failed write cut
// halfway. The file is the current one, since rotation happens only
// before a write.
func (f *File) cut(n int64) error {
	fi, err := os.Stat(f.opts.Path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() < n {
		return errors.New("cannot cut back a torn line")
	}
	return os.Truncate(f.opts.Path, fi.Size()-n)
}

// Write buffers r as one line.
func (f *File) Write(r *Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.add(f.rotate, r.JSON, f.cut)
}

// Flush writes out what is buffered.
func (f *File) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.flush(f.rotate, f.cut)
}

// Torn counts the lines that a failed write left cut and could not cut
// back (each written again whole on a line of its own).
func (f *File) Torn() uint64 { return f.out.torn.Load() }

// Size is the current file's length.
func (f *File) Size() (int64, error) {
	fi, err := os.Stat(f.opts.Path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// CutBack truncates the current file to size if it is longer, and says by
// how much. A shorter file (rotated since) is left alone.
func (f *File) CutBack(size int64) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.opts.Path)
	if err != nil || fi.Size() <= size {
		return 0, err
	}
	return fi.Size() - size, os.Truncate(f.opts.Path, size)
}

// Sync makes what was flushed durable (fsync). Any descriptor of the file
// syncs it; timberjack keeps its own to itself.
func (f *File) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fh, err := os.Open(f.opts.Path)
	if err != nil {
		return err
	}
	defer fh.Close()
	return fh.Sync()
}

// Reopen writes out what is buffered, closes the file and opens it again
// by name, creating it if an external rotation moved it away. What it
// could not write stays buffered for the new file: Reopen never loses a
// line.
func (f *File) Reopen() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.out.flush(f.rotate, f.cut)
	if cerr := f.rotate.Close(); err == nil {
		err = cerr
	}
	f.open()
	return err
}

// Close flushes and closes the file, and stops the rotation goroutine.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.out.flush(f.rotate, f.cut)
	if cerr := f.rotate.Close(); err == nil {
		err = cerr
	}
	return err
}
