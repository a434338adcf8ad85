package storage

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Snapshot stream format; see the package comment.
const (
	streamMagic         = "GALENASN"
	streamFormat uint32 = 1

	tagEnd   byte = 0
	tagEntry byte = 1

	flagTombstone byte = 1

	maxMetaSize   = 1 << 20
	streamBufSize = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// streamWriter encodes a snapshot stream into a buffered writer, keeping the
// running crc32c and the first error.
type streamWriter struct {
	w   *bufio.Writer
	crc uint32
	n   int64
	err error
	buf [binary.MaxVarintLen64]byte
}

func newStreamWriter(w io.Writer) *streamWriter {
	return &streamWriter{w: bufio.NewWriterSize(w, streamBufSize)}
}

func (sw *streamWriter) write(p []byte) {
	if sw.err != nil {
		return
	}
	sw.crc = crc32.Update(sw.crc, castagnoli, p)
	n, err := sw.w.Write(p)
	sw.n += int64(n)
	sw.err = err
}

func (sw *streamWriter) byte(b byte) {
	sw.buf[0] = b
	sw.write(sw.buf[:1])
}

func (sw *streamWriter) uvarint(v uint64) {
	sw.write(sw.buf[:binary.PutUvarint(sw.buf[:], v)])
}

func (sw *streamWriter) uint64(v uint64) {
	sw.write(binary.BigEndian.AppendUint64(sw.buf[:0], v))
}

func (sw *streamWriter) bytes(p []byte) {
	sw.uvarint(uint64(len(p)))
	sw.write(p)
}

func (sw *streamWriter) header(st *AppliedState) {
	sw.write([]byte(streamMagic))
	sw.write(binary.BigEndian.AppendUint32(sw.buf[:0], streamFormat))
	sw.uint64(st.Seqno)
	sw.uint64(st.MinReadable)
	sw.bytes(st.Meta)
}

func (sw *streamWriter) entry(key []byte, version uint64, flags byte, value []byte) {
	sw.byte(tagEntry)
	sw.bytes(key)
	sw.uvarint(version)
	sw.byte(flags)
	sw.bytes(value)
}

// trailer ends the stream with the entry count and checksum, and flushes.
func (sw *streamWriter) trailer(count uint64) error {
	sw.byte(tagEnd)
	sw.uvarint(count)
	sw.write(binary.BigEndian.AppendUint32(sw.buf[:0], sw.crc))
	if sw.err == nil {
		sw.err = sw.w.Flush()
	}
	return sw.err
}

// streamEntry is one decoded entry: key includes the space byte.
type streamEntry struct {
	key     []byte
	version uint64
	flags   byte
	value   []byte
}

// ioErrReader remembers the underlying reader's last non-EOF error, so that
// decode failures can be told apart from I/O failures.
type ioErrReader struct {
	r   io.Reader
	err error
}

func (e *ioErrReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// streamReader decodes a snapshot stream, keeping the running crc32c of every
// byte consumed.
type streamReader struct {
	src *ioErrReader
	r   *bufio.Reader
	crc uint32
	buf [8]byte
}

func newStreamReader(r io.Reader) *streamReader {
	src := &ioErrReader{r: r}
	return &streamReader{src: src, r: bufio.NewReaderSize(src, streamBufSize)}
}

// classify turns a decode error into ErrBadSnapshot, or an I/O error of the
// underlying reader into a plain wrapped error.
func (sr *streamReader) classify(err error) error {
	if sr.src.err != nil {
		return fmt.Errorf("storage: import: read stream: %w", sr.src.err)
	}
	if errors.Is(err, ErrBadSnapshot) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated", ErrBadSnapshot)
	}
	return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
}

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadSnapshot}, args...)...)
}

// ReadByte implements io.ByteReader for binary.ReadUvarint.
func (sr *streamReader) ReadByte() (byte, error) {
	b, err := sr.r.ReadByte()
	if err != nil {
		return 0, err
	}
	sr.buf[0] = b
	sr.crc = crc32.Update(sr.crc, castagnoli, sr.buf[:1])
	return b, nil
}

func (sr *streamReader) full(p []byte) error {
	if _, err := io.ReadFull(sr.r, p); err != nil {
		if err == io.EOF && len(p) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	sr.crc = crc32.Update(sr.crc, castagnoli, p)
	return nil
}

func (sr *streamReader) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(sr)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return v, err
}

func (sr *streamReader) uint64() (uint64, error) {
	if err := sr.full(sr.buf[:8]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(sr.buf[:8]), nil
}

// bytes reads a length-prefixed byte string of at most max bytes.
func (sr *streamReader) bytes(max int64, what string) ([]byte, error) {
	n, err := sr.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, badf("%s of %d bytes exceeds %d", what, n, max)
	}
	p := make([]byte, n)
	return p, sr.full(p)
}

// header reads and checks the stream header.
func (sr *streamReader) header() (AppliedState, error) {
	var st AppliedState
	var magic [len(streamMagic)]byte
	if err := sr.full(magic[:]); err != nil {
		return st, err
	}
	if string(magic[:]) != streamMagic {
		return st, badf("bad magic %q", magic[:])
	}
	if err := sr.full(sr.buf[:4]); err != nil {
		return st, err
	}
	if f := binary.BigEndian.Uint32(sr.buf[:4]); f != streamFormat {
		return st, badf("unsupported format %d", f)
	}
	var err error
	if st.Seqno, err = sr.uint64(); err != nil {
		return st, err
	}
	if st.MinReadable, err = sr.uint64(); err != nil {
		return st, err
	}
	if st.Meta, err = sr.bytes(maxMetaSize, "meta"); err != nil {
		return st, err
	}
	if len(st.Meta) == 0 {
		st.Meta = nil
	}
	return st, nil
}

// next reads the next entry; end is true at the trailer's tag.
func (sr *streamReader) next(maxValue int64) (e streamEntry, end bool, err error) {
	tag, err := sr.ReadByte()
	if err != nil {
		return e, false, err
	}
	switch tag {
	case tagEnd:
		return e, true, nil
	case tagEntry:
	default:
		return e, false, badf("unknown tag %d", tag)
	}
	if e.key, err = sr.bytes(MaxKeySize+1, "key"); err != nil {
		return e, false, err
	}
	if e.version, err = sr.uvarint(); err != nil {
		return e, false, err
	}
	if e.flags, err = sr.ReadByte(); err != nil {
		return e, false, err
	}
	e.value, err = sr.bytes(maxValue, "value")
	return e, false, err
}

// trailer reads the entry count and checksum after tagEnd and checks them
// against count entries read, and that nothing follows.
func (sr *streamReader) trailer(count uint64) error {
	n, err := sr.uvarint()
	if err != nil {
		return err
	}
	if n != count {
		return badf("trailer says %d entries, stream had %d", n, count)
	}
	want := sr.crc
	if err := sr.full(sr.buf[:4]); err != nil {
		return err
	}
	if got := binary.BigEndian.Uint32(sr.buf[:4]); got != want {
		return badf("checksum %08x, computed %08x", got, want)
	}
	if _, err := sr.r.ReadByte(); err != io.EOF {
		if err != nil {
			return err
		}
		return badf("data after trailer")
	}
	return nil
}

// checkEntry validates e, the entry after prev, in a stream at seqno.
func checkEntry(e *streamEntry, prev []byte, seqno uint64) error {
	switch {
	case len(e.key) < 2 || (e.key[0] != spaceData && e.key[0] != spaceID):
		return badf("bad key %q", e.key)
	case prev != nil && bytes.Compare(e.key, prev) <= 0:
		return badf("key %q out of order", e.key)
	case e.version == 0 || e.version > seqno:
		return badf("key %q: version %d outside [1, %d]", e.key, e.version, seqno)
	case e.flags&^flagTombstone != 0 || (e.flags != 0 && e.key[0] != spaceData):
		return badf("key %q: bad flags %#x", e.key, e.flags)
	case e.flags&flagTombstone != 0 && len(e.value) != 0:
		return badf("key %q: tombstone with a value", e.key)
	}
	return nil
}
