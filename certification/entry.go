package certification

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/galenadb/galena/api/writesetpb"
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
func EncodeEntry(ws *writesetpb.WriteSet) ([]byte, error) {
	b := make([]byte, 1, 1+proto.Size(ws))
	b[0] = entryWriteSet
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, ws)
	if err != nil {
		return nil, fmt.Errorf("certification: encode write-set: %w", err)
	}
	return b, nil
}

// DecodeEntry parses a log entry made by EncodeEntry into ws.
func DecodeEntry(b []byte, ws *writesetpb.WriteSet) error {
	if len(b) == 0 || b[0] != entryWriteSet {
		return fmt.Errorf("%w: unknown entry type", ErrMalformedEntry)
	}
	if err := proto.Unmarshal(b[1:], ws); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedEntry, err)
	}
	return nil
}

// entryCheckpoint tags a log entry in which a member announces its running
// digest at a checkpoint seqno, for the others to compare with theirs.
const entryCheckpoint byte = 2

// Checkpoint is the running digest after every entry at or below Seqno.
type Checkpoint struct {
	Seqno  uint64
	Digest [32]byte
}

// maxMemberID bounds the member id in a checkpoint entry.
const maxMemberID = 255

// EncodeCheckpoint is the log entry in which member announces cp.
func EncodeCheckpoint(member string, cp Checkpoint) []byte {
	b := make([]byte, 0, 1+8+32+len(member))
	b = append(b, entryCheckpoint)
	b = binary.BigEndian.AppendUint64(b, cp.Seqno)
	b = append(b, cp.Digest[:]...)
	return append(b, member...)
}

// DecodeCheckpoint parses a log entry made by EncodeCheckpoint.
func DecodeCheckpoint(b []byte) (member string, cp Checkpoint, err error) {
	if len(b) < 1+8+32+1 || len(b) > 1+8+32+maxMemberID || b[0] != entryCheckpoint {
		return "", Checkpoint{}, fmt.Errorf("%w: not a checkpoint", ErrMalformedEntry)
	}
	cp.Seqno = binary.BigEndian.Uint64(b[1:9])
	copy(cp.Digest[:], b[9:41])
	return string(b[41:]), cp, nil
}

// IsCheckpoint reports whether a log entry is a checkpoint announcement
// (which may still be malformed) rather than a write-set.
func IsCheckpoint(b []byte) bool { return len(b) > 0 && b[0] == entryCheckpoint }
