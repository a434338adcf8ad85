package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

// Output formats of -w/--write-out.
const (
	formatSimple = "simple" // one line per item, fields separated by tabs
	formatTable  = "table"  // aligned columns under a header
	formatJSON   = "json"   // one JSON object per line
)

// outputFlags are -w/--write-out and its older spelling --json.
type outputFlags struct {
	format string
	json   bool
}

// addOutputFlags adds -w/--write-out, with default def, and --json.
func addOutputFlags(cmd *cobra.Command, f *outputFlags, def string) {
	cmd.Flags().StringVarP(&f.format, "write-out", "w", def, "output format: simple, table or json")
	cmd.Flags().BoolVar(&f.json, "json", false, "the same as -w json")
}

// get returns the format asked for, or a usage error.
func (f outputFlags) get(cmd *cobra.Command) (string, error) {
	switch {
	case f.json && cmd.Flags().Changed("write-out") && f.format != formatJSON:
		return "", usagef("--json and -w %s exclude each other", f.format)
	case f.json:
		return formatJSON, nil
	case f.format == formatSimple || f.format == formatTable || f.format == formatJSON:
		return f.format, nil
	}
	return "", usagef("-w %q: want simple, table or json", f.format)
}

// jsonKV is a key and its value in JSON output: text when it is UTF-8,
// else base64 under key_base64 or value_base64, so any bytes come through.
type jsonKV struct {
	Key         string  `json:"key,omitempty"`
	KeyBase64   string  `json:"key_base64,omitempty"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 string  `json:"value_base64,omitempty"`
	Deleted     bool    `json:"deleted,omitempty"`
}

// newJSONKV is key with value, or with deleted set.
func newJSONKV(key, value []byte, deleted bool) jsonKV {
	var kv jsonKV
	kv.Key, kv.KeyBase64 = textOrBase64(key)
	if deleted {
		kv.Deleted = true
		return kv
	}
	v, b64 := textOrBase64(value)
	if b64 == "" {
		kv.Value = &v // an empty value too
	}
	kv.ValueBase64 = b64
	return kv
}

// field is b as one field of simple or table output: as is when it is
// UTF-8 without tabs, line breaks or other control characters and does not
// start with a double quote, else Go-quoted ("a\tb"), so every line splits
// into its fields at tabs whatever the bytes.
func field(b []byte) string {
	plain := utf8.Valid(b) && !bytes.HasPrefix(b, []byte(`"`)) &&
		!bytes.ContainsFunc(b, func(r rune) bool { return r < 0x20 || r == 0x7f })
	if plain {
		return string(b)
	}
	return strconv.Quote(string(b))
}

// kvWriter writes key-value pairs in a format.
type kvWriter struct {
	format string
	w      *bufio.Writer
	tw     *tabwriter.Writer
	enc    *json.Encoder
}

func newKVWriter(w io.Writer, format string) *kvWriter {
	kw := &kvWriter{format: format, w: bufio.NewWriter(w)}
	switch format {
	case formatTable:
		kw.tw = tabwriter.NewWriter(kw.w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(kw.tw, "KEY\tVALUE")
	case formatJSON:
		kw.enc = json.NewEncoder(kw.w)
	}
	return kw
}

func (kw *kvWriter) write(key, value []byte) error {
	switch kw.format {
	case formatJSON:
		return kw.enc.Encode(newJSONKV(key, value, false))
	case formatTable:
		_, err := fmt.Fprintf(kw.tw, "%s\t%s\n", field(key), field(value))
		return err
	}
	_, err := fmt.Fprintf(kw.w, "%s\t%s\n", field(key), field(value))
	return err
}

func (kw *kvWriter) flush() error {
	if kw.tw != nil {
		if err := kw.tw.Flush(); err != nil {
			return err
		}
	}
	return kw.w.Flush()
}

// writeTable writes rows under header, aligned (table) or tab-separated
// without the header (simple); trailing blanks are trimmed.
func writeTable(w io.Writer, format string, header []string, rows [][]string) error {
	var buf bytes.Buffer
	if format == formatSimple {
		for _, r := range rows {
			fmt.Fprintln(&buf, strings.Join(r, "\t"))
		}
		_, err := w.Write(buf.Bytes())
		return err
	}
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(buf.String()) {
		if _, err := fmt.Fprintln(w, strings.TrimRight(line, " \n")); err != nil {
			return err
		}
	}
	return nil
}
