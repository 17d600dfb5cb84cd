package sink

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/logfan/logfan/internal/brokertest"

	"github.com/logfan/logfan/slogamqp"
)

var ts = time.Date(2026, 11, 29, 9, 0, 0, 123e6, time.UTC)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, body, ctype string
		msg, malformed    string
		level             slog.Level
		json              string
	}{
		{"slog record", `{"time":"2026-11-29T09:00:00.123Z","level":"WARN","msg":"hi","a":1}`, "application/json", "hi", "", slog.LevelWarn,
			`{"time":"2026-11-29T09:00:00.123Z","level":"WARN","msg":"hi","a":1}`},
		{"tutorial plain text", "Info: Hello World", "", "Info: Hello World", "", slog.LevelInfo,
			`{"time":"2026-11-29T09:00:00.123Z","level":"INFO","msg":"Info: Hello World"}`},
		{"pretty JSON becomes one line", "{\n  \"msg\": \"x\"\n}", "", "x", "", slog.LevelInfo, `{"msg":"x"}`},
		{"empty", "", "", "", "empty body", slog.LevelInfo,
			`{"time":"2026-11-29T09:00:00.123Z","level":"INFO","msg":"","malformed":"empty body"}`},
		{"bad UTF-8", "a\xffb", "", "a\uFFFDb", "invalid UTF-8", slog.LevelInfo,
			"{\"time\":\"2026-11-29T09:00:00.123Z\",\"level\":\"INFO\",\"msg\":\"a\uFFFDb\",\"malformed\":\"invalid UTF-8\"}"},
		{"bad JSON", `{"msg":`, "application/json", `{"msg":`, "invalid JSON", slog.LevelInfo,
			`{"time":"2026-11-29T09:00:00.123Z","level":"INFO","msg":"{\"msg\":","malformed":"invalid JSON"}`},
		{"JSON content type, text body", `plain`, "application/json", "plain", "invalid JSON", slog.LevelInfo,
			`{"time":"2026-11-29T09:00:00.123Z","level":"INFO","msg":"plain","malformed":"invalid JSON"}`},
		{"too long", strings.Repeat("x", 20), "", strings.Repeat("x", 10), "body of 20 bytes cut to 10", slog.LevelInfo,
			`{"time":"2026-11-29T09:00:00.123Z","level":"INFO","msg":"xxxxxxxxxx","malformed":"body of 20 bytes cut to 10"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Decode([]byte(tc.body), tc.ctype, ts, 10+len(tc.body)*boolInt(tc.name != "too long"))
			if r.Msg() != tc.msg || r.Malformed != tc.malformed || r.Level() != tc.level || string(r.JSON) != tc.json {
				t.Errorf("Decode(%q) = msg %q malformed %q level %v json %s", tc.body, r.Msg(), r.Malformed, r.Level(), r.JSON)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestAppendText(t *testing.T) {
	r := Decode([]byte(`{"time":"2026-11-29T09:00:00.123Z","level":"ERROR","msg":"disk\nfull\u001b[2J","dev":"sda 1","n":3,"ok":true,"g":{"h":{"k":"v"}},"e":""}`), "", ts, 1<<20)
	got := string(AppendText(nil, &r, false))
	want := `2026-11-29T09:00:00.123Z ERROR disk\nfull\x1b[2J dev="sda 1" n=3 ok=true g.h.k=v e=""` + "\n"
	if got != want {
		t.Errorf("text\n got %q\nwant %q", got, want)
	}
	colored := string(AppendText(nil, &r, true))
	if !strings.Contains(colored, "\x1b[31mERROR\x1b[0m") {
		t.Errorf("colour: %q", colored)
	}
}

// TestHostileRecordsStayOnOneLine feeds escape sequences, carriage
// returns, C1 controls and bidirectional overrides through both screen
// formats: none may reach the terminal raw.
func TestHostileRecordsStayOnOneLine(t *testing.T) {
	hostile := []string{
		"\x1b[31mred\x1b[0m", "line\r\nforged INFO admin logged in", "\u009b31m", "\u202eevil", "tab\there", "\x00\x07\x7f", "a\u2028b",
	}
	for _, h := range hostile {
		body, _ := json.Marshal(map[string]string{"msg": h, h: h})
		for _, b := range [][]byte{body, []byte(h)} {
			r := Decode(b, "", ts, 1<<20)
			for _, out := range [][]byte{AppendText(nil, &r, false), AppendJSON(nil, &r)} {
				checkSafeLine(t, b, out)
			}
		}
	}
}

func checkSafeLine(t *testing.T, in, out []byte) {
	t.Helper()
	line, ok := bytes.CutSuffix(out, []byte("\n"))
	if !ok || !utf8.Valid(line) {
		t.Fatalf("%q: output %q is not one valid line", in, out)
	}
	for _, r := range string(line) {
		if unsafe(r) {
			t.Fatalf("%q: output %q holds %U raw", in, out, r)
		}
	}
}

// FuzzDecodeFormat checks that any body decodes, and that both screen
// formats give one safe line; the JSON format must stay valid JSON.
func FuzzDecodeFormat(f *testing.F) {
	for _, s := range []string{
		`{"time":"2026-11-29T09:00:00Z","level":"INFO","msg":"hi","g":{"a":[1,{"b":null}]}}`,
		"Info: Hello World", "", "\xff\xfe", `{"msg":"\u001b[2J\u009b"}`, "{\"a\":\t1}", `{"level":"ERROR+3"}`,
		strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100),
	} {
		f.Add([]byte(s), "application/json")
		f.Add([]byte(s), "")
	}
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		r := Decode(body, ctype, ts, 4096)
		checkSafeLine(t, body, AppendText(nil, &r, false))
		js := AppendJSON(nil, &r)
		checkSafeLine(t, body, js)
		if !json.Valid(js) {
			t.Fatalf("%q: JSON output %q is not valid", body, js)
		}
	})
}

// FuzzReceive feeds deliveries, batches or not, with any headers, to the
// sink's receiving side: it never panics, keeps one record per line of a
// batch, and every record it keeps is one line of valid JSON.
func FuzzReceive(f *testing.F) {
	f.Add([]byte("{\"msg\":\"a\"}\n{\"msg\":\"b\"}"), slogamqp.ContentTypeNDJSON, "p1", int64(1))
	f.Add([]byte("{\"msg\":\"a\"}\n\nnot json\n\xff"), slogamqp.ContentTypeNDJSON, "p1", int64(-5))
	f.Add([]byte("Info: Hello World"), "", "", int64(0))
	f.Add([]byte(`{"msg":"x"}`), slogamqp.ContentTypeJSON, "p2", int64(1<<62))
	f.Fuzz(func(t *testing.T, body []byte, contentType, producer string, seq int64) {
		s, err := New(&Options{URL: "amqp://localhost/", Outputs: []Output{&memOutput{}}, Diag: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		headers := amqp.Table{slogamqp.HeaderProducer: producer, slogamqp.HeaderSeq: seq}
		s.receive(&amqp.Delivery{Body: body, ContentType: contentType, Headers: headers})
		s.receive(&amqp.Delivery{Body: body, ContentType: contentType, Headers: headers}) // a resend
		want := uint64(1)
		if contentType == slogamqp.ContentTypeNDJSON {
			want = uint64(bytes.Count(body, []byte("\n")) + 1)
		}
		st := s.Stats()
		if st.Received != 2*want || uint64(len(s.batch))+st.Duplicates != 2*want {
			t.Fatalf("%d records in the body: stats %v, %d kept", want, st, len(s.batch))
		}
		for i := range s.batch {
			line := append(s.batch[i].JSON, '\n')
			checkSafeLine(t, body, AppendJSON(nil, &s.batch[i]))
			if !json.Valid(s.batch[i].JSON) || bytes.Count(line, []byte("\n")) != 1 {
				t.Fatalf("record %q is not one line of valid JSON", s.batch[i].JSON)
			}
		}
	})
}

// TestFileAppends truncates the file under the sink, as logrotate's
// copytruncate does: the next record starts the file again, with no hole
// of zero bytes where the old offset was (O_APPEND).
func TestFileAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	if err := os.WriteFile(path, []byte("{\"kept\":true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(FileOptions{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	write := func(body string) {
		r := Decode([]byte(body), "", ts, 1<<20)
		if err := f.Write(&r); err != nil {
			t.Fatal(err)
		}
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"msg":"one"}`)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	write(`{"msg":"two"}`)
	if b, _ := os.ReadFile(path); string(b) != "{\"msg\":\"two\"}\n" {
		t.Errorf("file holds %q", b)
	}
}

func TestUseColor(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if UseColor(f) {
		t.Error("colour on a regular file")
	}
	tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no terminal")
	}
	defer tty.Close()
	t.Setenv("NO_COLOR", "")
	if !UseColor(tty) {
		t.Error("no colour on a terminal with NO_COLOR empty")
	}
	t.Setenv("NO_COLOR", "1")
	if UseColor(tty) {
		t.Error("colour with NO_COLOR=1")
	}
}

func TestBindingKeysDefaults(t *testing.T) {
	for _, tc := range []struct {
		keys []string
		kind string
		want []string
	}{
		{nil, "fanout", []string{""}},
		{nil, "topic", []string{"#"}},
		{nil, "direct", []string{"debug", "info", "warn", "error"}},
		{[]string{"error", "audit.*"}, "topic", []string{"error", "audit.*"}},
	} {
		if got := bindingKeys(tc.keys, tc.kind); !slices.Equal(got, tc.want) {
			t.Errorf("bindingKeys(%q, %s) = %q, want %q", tc.keys, tc.kind, got, tc.want)
		}
	}
}

// TestTextShowsDurations: the handler lists a record's durations in its
// headers, so the text screen shows took=1.5s where the JSON, and the
// file, keep the nanoseconds that were published.
func TestTextShowsDurations(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-durations")
	out := &memOutput{}
	start(t, Options{URL: url, Exchange: ex, Outputs: []Output{out}})
	h := newProducer(t, url, ex)
	slog.New(h).With(slog.Duration("uptime", 2*time.Hour)).Info("served",
		slog.Duration("took", 1500*time.Millisecond), slog.Int("n", 3), slog.Group("db", slog.Duration("wait", 250*time.Microsecond)))
	waitFor(t, "the record", func() bool { return len(out.all()) == 1 })
	r := out.all()[0]
	text := string(AppendText(nil, &r, false))
	for _, want := range []string{" uptime=2h0m0s ", " took=1.5s ", " n=3 ", " db.wait=250µs"} {
		if !strings.Contains(text, want) {
			t.Errorf("text %q lacks %q", text, want)
		}
	}
	if !strings.Contains(string(r.JSON), `"took":1500000000`) {
		t.Errorf("JSON %s: want the nanoseconds as published", r.JSON)
	}
}
