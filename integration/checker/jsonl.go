package checker

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// WriteHistory writes h to w as JSON lines, one op per line, in order.
// It returns the first error from w.
func WriteHistory(w io.Writer, h []Op) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i, o := range h {
		if err := enc.Encode(o); err != nil {
			return fmt.Errorf("checker: write op %d: %w", i, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("checker: write history: %w", err)
	}
	return nil
}

// ReadHistory reads a history written by WriteHistory, skipping blank lines.
// A line that is not a valid Op is an error wrapping ErrMalformed and naming
// the line; errors from r are returned wrapped.
func ReadHistory(r io.Reader) ([]Op, error) {
	br := bufio.NewReader(r)
	var h []Op
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("checker: read history: %w", err)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			o, derr := decodeOp(b)
			if derr != nil {
				return nil, fmt.Errorf("line %d: %w", line, derr)
			}
			h = append(h, o)
		}
		if err != nil {
			return h, nil
		}
	}
}

func decodeOp(b []byte) (Op, error) {
	var o Op
	if err := json.Unmarshal(b, &o); err != nil {
		return Op{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return o, o.Validate()
}
