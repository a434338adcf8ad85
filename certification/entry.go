package certification

import (
	"errors"
	"fmt"

	"github.com/galenadb/galena/api/galenapb"
	"google.golang.org/protobuf/proto"
)

// entryWriteSet tags a log entry that carries one protobuf WriteSet. The tag
// leaves room for other kinds of entries without guessing from the bytes.
const entryWriteSet byte = 1

// ErrMalformedEntry is returned for a log entry that does not decode. A
// committed entry that does not decode means corruption: the apply loop
// stops rather than guess.
var ErrMalformedEntry = errors.New("certification: malformed log entry")

// EncodeEntry is the log entry that carries ws.
func EncodeEntry(ws *galenapb.WriteSet) ([]byte, error) {
	b := make([]byte, 1, 1+proto.Size(ws))
	b[0] = entryWriteSet
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, ws)
	if err != nil {
		return nil, fmt.Errorf("certification: encode write-set: %w", err)
	}
	return b, nil
}

// DecodeEntry parses a log entry made by EncodeEntry into ws.
func DecodeEntry(b []byte, ws *galenapb.WriteSet) error {
	if len(b) == 0 || b[0] != entryWriteSet {
		return fmt.Errorf("%w: unknown entry type", ErrMalformedEntry)
	}
	if err := proto.Unmarshal(b[1:], ws); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedEntry, err)
	}
	return nil
}
