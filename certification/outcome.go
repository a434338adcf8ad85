package certification

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// outcomeFormat versions the stored encoding of an Outcome.
const outcomeFormat = 1

// EncodeOutcome is the stable byte form of o that storage keeps under the
// write-set id and that the running digest covers.
func EncodeOutcome(o Outcome) []byte {
	b := make([]byte, 0, 2+2*binary.MaxVarintLen64+len(o.Key))
	b = append(b, outcomeFormat, byte(o.Verdict))
	b = binary.AppendUvarint(b, o.Seqno)
	b = binary.AppendUvarint(b, o.KeySeqno)
	return append(b, o.Key...)
}

// DecodeOutcome parses what EncodeOutcome made.
func DecodeOutcome(b []byte) (Outcome, error) {
	if len(b) < 2 || b[0] != outcomeFormat {
		return Outcome{}, errors.New("certification: malformed stored outcome")
	}
	o := Outcome{Verdict: Verdict(b[1])}
	b = b[2:]
	var n int
	if o.Seqno, n = binary.Uvarint(b); n <= 0 {
		return Outcome{}, errors.New("certification: malformed stored outcome seqno")
	}
	b = b[n:]
	if o.KeySeqno, n = binary.Uvarint(b); n <= 0 {
		return Outcome{}, errors.New("certification: malformed stored outcome key seqno")
	}
	if len(b[n:]) > 0 {
		o.Key = append([]byte(nil), b[n:]...)
	}
	if o.Verdict < Commit || o.Verdict > InvalidWriteSet {
		return Outcome{}, fmt.Errorf("certification: stored outcome has unknown verdict %d", o.Verdict)
	}
	return o, nil
}
