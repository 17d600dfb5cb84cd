// Package logrecord turns a record that slog.JSONHandler wrote back into a
// slog.Record, keeping the order of its attributes.
package logrecord

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"time"
)

// maxDepth bounds how deep nested objects become groups; deeper values stay
// raw JSON text, so hostile input cannot make decoding recurse without end.
const maxDepth = 32

// Parse decodes one JSON object. Top-level "time", "level" and "msg" become
// the record's time, level and message when they have the form that
// slog.JSONHandler gives them; every other member becomes an attribute, and
// nested objects become groups.
func Parse(body []byte) (slog.Record, error) {
	var r slog.Record
	attrs, err := object(body, 0, func(key string, raw json.RawMessage) bool {
		switch key {
		case slog.TimeKey:
			var t time.Time
			if json.Unmarshal(raw, &t) == nil {
				r.Time = t
				return true
			}
		case slog.LevelKey:
			var s string
			if json.Unmarshal(raw, &s) == nil && r.Level.UnmarshalText([]byte(s)) == nil {
				return true
			}
		case slog.MessageKey:
			if json.Unmarshal(raw, &r.Message) == nil {
				return true
			}
		}
		return false
	})
	if err != nil {
		return slog.Record{}, err
	}
	r.AddAttrs(attrs...)
	return r, nil
}

// Object decodes a JSON object into attributes, in their order; top, when
// not nil, may claim a top-level member instead, which is then left out.
func Object(data []byte, top func(key string, raw json.RawMessage) bool) ([]slog.Attr, error) {
	return object(data, 0, top)
}

// Value is a JSON value as an attribute's: objects become groups.
func Value(raw json.RawMessage) slog.Value { return value(raw, 0) }

// object decodes a JSON object into attributes. top, when not nil, may
// claim a member instead.
func object(data []byte, depth int, top func(string, json.RawMessage) bool) ([]slog.Attr, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var attrs []slog.Attr
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if top != nil && top(key, raw) {
			continue
		}
		attrs = append(attrs, slog.Attr{Key: key, Value: value(raw, depth)})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return attrs, nil
}

func value(raw json.RawMessage, depth int) slog.Value {
	switch raw[0] {
	case '{':
		if depth < maxDepth {
			if attrs, err := object(raw, depth+1, nil); err == nil {
				return slog.GroupValue(attrs...)
			}
		}
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return slog.StringValue(s)
		}
	case 't', 'f':
		return slog.BoolValue(raw[0] == 't')
	case 'n':
		return slog.AnyValue(nil)
	case '[':
		// slog has no list kind: an array stays its JSON text, a string
		// (below), rather than a lossy []any.
	default:
		if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return slog.Int64Value(i)
		}
		if f, err := strconv.ParseFloat(string(raw), 64); err == nil {
			return slog.Float64Value(f)
		}
	}
	return slog.StringValue(string(raw))
}
