package apply

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/galenadb/galena/api/writesetpb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/storage"
	"go.uber.org/zap"
)

// Config configures an Applier.
type Config struct {
	// Certification configures the rule. Its limits must not exceed what
	// storage can hold; DefaultConfig sets them to storage's.
	Certification certification.Config
	Logger        *zap.Logger
	// OnOutcome, if set, is called on the apply goroutine once the outcome of
	// a write-set with an id is durable (its writes applied, if it committed).
	// It must not block.
	OnOutcome func(id []byte, o certification.Outcome)
	// OnApplied, if set, is called on the apply goroutine with the records
	// of each batch once they are applied (readable in storage), and the
	// batch's applied seqno; OnRestored, if set, once a snapshot replaced
	// the state, with its seqno. The records and their Writes slices are
	// reused afterwards (keys and values are not). They must not block.
	OnApplied  func(recs []storage.Record, seqno uint64)
	OnRestored func(seqno uint64)

	// Member is this member's id, as it signs its checkpoint announcements.
	Member string
	// CheckpointInterval: the running digest is recorded at every multiple of
	// it, and compared with the digests other members announce for the same
	// seqno (see certification.EncodeCheckpoint). Zero records none;
	// DefaultConfig sets DefaultCheckpointInterval.
	CheckpointInterval uint64
	// IsMember says whether an id belongs to a current member; announcements
	// signed with any other id are ignored (anyone who can forward an entry
	// could send one). Nil ignores every announcement.
	IsMember func(id string) bool
	// OnCheckpoint, if set, is called on the apply goroutine with each
	// checkpoint recorded; the member announces it through the log. It must
	// not block.
	OnCheckpoint func(certification.Checkpoint)

	// TimeCertify, if set, measures certification: Deliver calls it before
	// it certifies a batch, and the function it returns once the batch is
	// certified (before the storage write), with the number of write-sets
	// certified. Certification reads no clock itself, since no verdict may
	// depend on one; the caller's functions may. They run on the apply
	// goroutine and must not block.
	TimeCertify func() (done func(writeSets int))

	// Faults, in fault builds only, make the member misbehave on purpose;
	// in a release build the type is empty.
	Faults Faults
}

// DefaultCheckpointInterval is the CheckpointInterval of DefaultConfig.
const DefaultCheckpointInterval = 4096

// DefaultConfig returns the configuration members use: certification's,
// with the limits of a write-set set to what storage can hold, and a
// checkpoint every DefaultCheckpointInterval seqnos.
func DefaultConfig() Config {
	c := certification.DefaultConfig()
	c.MaxKeySize, c.MaxValueSize = storage.MaxKeySize, storage.MaxValueSize
	return Config{Certification: c, CheckpointInterval: DefaultCheckpointInterval}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if err := c.Certification.Validate(); err != nil {
		return err
	}
	if l := c.Certification; l.MaxKeySize > storage.MaxKeySize || l.MaxValueSize > storage.MaxValueSize {
		return fmt.Errorf("apply: MaxKeySize and MaxValueSize must not exceed storage's %d and %d bytes",
			storage.MaxKeySize, storage.MaxValueSize)
	}
	return nil
}

// Stats are the Applier's running counts since it was opened.
type Stats struct {
	Commits      uint64 // write-sets certified and applied
	CertFailures uint64 // write-sets that failed certification
	Duplicates   uint64 // repeated ids answered with their first outcome
}

// Applier certifies ordered write-sets and applies the committed ones to
// storage, one storage batch per delivered batch. It implements
// groupcomm.Deliverer. Deliver, Snapshot and Restore run on the apply
// goroutine; Stats, Digest and Applied are safe to call concurrently.
type Applier struct {
	cfg   Config
	lg    *zap.Logger
	store *storage.Store
	cert  *certification.Certifier
	cps   *checkpoints

	commits, failures, dups atomic.Uint64

	ws     writesetpb.WriteSet // reused decode buffer
	recs   []storage.Record
	writes []storage.Write // backs the batch's records' Writes, reused across batches
	ids    [][]byte
	outs   []certification.Outcome
}

var _ groupcomm.Deliverer = (*Applier)(nil)

// New returns an Applier that resumes from the store's applied state. It
// returns the error of Validate for a configuration that cannot work.
func New(cfg Config, store *storage.Store) (*Applier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cert, err := certification.NewCertifier(cfg.Certification, store)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	a := &Applier{cfg: cfg, lg: cfg.Logger, store: store, cert: cert,
		cps: newCheckpoints(cfg.CheckpointInterval, cfg.Member, cfg.Logger)}
	a.resume(store.Applied().Seqno)
	return a, nil
}

// resume prepares certification and checkpoints for a store whose state
// was applied through applied.
func (a *Applier) resume(applied uint64) {
	a.cert.Resume(applied)
	a.cps.resume(applied)
}

// Checkpoints returns the recent checkpoints, oldest first.
func (a *Applier) Checkpoints() []certification.Checkpoint { return a.cps.Recent() }

// Applied is the highest position whose application is durable (storage's
// durable state), as groupcomm.Deliverer asks: no restart resumes below it.
// Batches applied since may not be counted yet.
func (a *Applier) Applied() groupcomm.Position { return position(a.store.Durable()) }

// The applied-state record's Meta is the running digest followed by the log
// index its seqno was reached at (8 bytes, big-endian). A record of a digest
// alone was written before group commit, when every seqno was its index.
const metaSize = sha256.Size + 8

func encodeMeta(digest [sha256.Size]byte, index uint64) []byte {
	return binary.BigEndian.AppendUint64(digest[:], index)
}

// position is the log position an applied state records.
func position(st storage.AppliedState) groupcomm.Position {
	p := groupcomm.Position{Index: st.Seqno, Seqno: st.Seqno}
	if len(st.Meta) == metaSize {
		p.Index = binary.BigEndian.Uint64(st.Meta[sha256.Size:])
	}
	return p
}

// Stats returns the running counts.
func (a *Applier) Stats() Stats {
	return Stats{Commits: a.commits.Load(), CertFailures: a.failures.Load(), Duplicates: a.dups.Load()}
}

// Digest returns the applied position and the running digest of every
// (seqno, id, outcome) applied up to it. Members with equal seqnos must have
// equal digests.
func (a *Applier) Digest() (groupcomm.Position, [sha256.Size]byte) {
	st := a.store.Applied() // position and digest were stored together
	var d [sha256.Size]byte
	copy(d[:], st.Meta)
	return position(st), d
}

// Deliver certifies entries in order and applies the batch to storage.
func (a *Applier) Deliver(entries []groupcomm.Entry, last groupcomm.Position) error {
	applied := a.store.Applied()
	at := position(applied)
	if last.Index <= at.Index {
		return nil // delivered before a restart
	}
	a.recs, a.ids, a.outs, a.writes = a.recs[:0], a.ids[:0], a.outs[:0], a.writes[:0]
	var digest [sha256.Size]byte // the running digest is stored with the applied seqno
	copy(digest[:], applied.Meta)
	var timed func(int)
	if a.cfg.TimeCertify != nil {
		timed = a.cfg.TimeCertify()
	}
	for _, e := range entries {
		if e.Index <= at.Index {
			continue
		}
		if err := a.passCheckpoint(e.Seqno-1, digest); err != nil {
			return err
		}
		if certification.IsCheckpoint(e.Data) {
			member, cp, err := certification.DecodeCheckpoint(e.Data)
			if err != nil {
				return fmt.Errorf("apply: entry at seqno %d: %w", e.Seqno, err)
			}
			if a.cfg.IsMember != nil && a.cfg.IsMember(member) {
				a.cps.report(member, cp)
			}
			continue
		}
		rec, id, o, err := a.certify(e)
		if err != nil {
			return err
		}
		digest = chain(digest, rec.Seqno, rec.Outcome, e.Data)
		a.recs = append(a.recs, rec)
		a.ids = append(a.ids, id)
		a.outs = append(a.outs, o)
	}
	if err := a.passCheckpoint(last.Seqno, digest); err != nil {
		return err
	}
	if timed != nil {
		timed(len(a.recs))
	}
	st := storage.AppliedState{Seqno: last.Seqno, MinReadable: applied.MinReadable, Meta: encodeMeta(digest, last.Index)}
	if err := a.store.ApplyBatch(a.recs, st); err != nil {
		return fmt.Errorf("apply: batch through seqno %d: %w", last.Seqno, err)
	}
	a.cert.Persisted(last.Seqno)
	if a.cfg.OnApplied != nil {
		a.cfg.OnApplied(a.recs, last.Seqno)
	}
	a.report()
	return nil
}

// certify decides one entry and turns it into a storage record; it also
// returns the write-set's id and outcome for OnOutcome.
func (a *Applier) certify(e groupcomm.Entry) (storage.Record, []byte, certification.Outcome, error) {
	ws := &a.ws
	ws.Reset()
	if err := certification.DecodeEntry(e.Data, ws); err != nil {
		return storage.Record{}, nil, certification.Outcome{}, fmt.Errorf("apply: entry at seqno %d: %w", e.Seqno, err)
	}
	o, err := a.cert.Certify(ws, e.Seqno)
	if err != nil {
		return storage.Record{}, nil, certification.Outcome{}, err
	}
	o = a.cfg.Faults.outcome(e.Seqno, o)
	rec := storage.Record{Seqno: e.Seqno, ID: ws.GetId(), Outcome: certification.EncodeOutcome(o)}
	switch {
	case o.Duplicate:
		a.dups.Add(1)
		rec.ID = nil // keep the first outcome stored under the id
	case o.Verdict == certification.InvalidWriteSet:
		a.failures.Add(1)
		rec.ID = nil // storage may not hold the id; nothing to resend anyway
	case o.Verdict == certification.Commit:
		a.commits.Add(1)
		start := len(a.writes)
		for _, w := range ws.GetWrites() {
			a.writes = append(a.writes, storage.Write{Key: w.GetKey(), Value: w.GetValue(), Delete: w.GetDelete()})
		}
		rec.Writes = a.writes[start:len(a.writes):len(a.writes)]
	default:
		a.failures.Add(1)
	}
	return rec, ws.GetId(), o, nil
}

// report hands the batch's outcomes to OnOutcome.
func (a *Applier) report() {
	if a.cfg.OnOutcome == nil {
		return
	}
	for i, id := range a.ids {
		if len(id) > 0 {
			a.cfg.OnOutcome(id, a.outs[i])
		}
	}
}

// passCheckpoint records a checkpoint if seqno reached one, announces it,
// and stops the member if the previous one shows it diverged.
func (a *Applier) passCheckpoint(seqno uint64, digest [sha256.Size]byte) error {
	cp, ok, err := a.cps.pass(seqno, digest)
	if err != nil {
		a.lg.Error("stopping: this member's state diverged from the cluster's", zap.Error(err))
		return err
	}
	if ok && a.cfg.OnCheckpoint != nil {
		a.cfg.OnCheckpoint(cp)
	}
	return nil
}

// chain folds one certified write-set into the running digest: its seqno,
// the decision and the write-set's bytes as ordered.
func chain(prev [sha256.Size]byte, seqno uint64, outcome, entry []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(prev[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], seqno)
	h.Write(n[:])
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(outcome)))
	h.Write(l[:])
	h.Write(outcome)
	h.Write(entry)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// Snapshot pins the current state for a Raft snapshot or a state transfer.
func (a *Applier) Snapshot() (groupcomm.Snapshot, error) {
	sn, err := a.store.Snapshot()
	if err != nil {
		return nil, err
	}
	return snapshot{Snapshot: sn, store: a.store}, nil
}

type snapshot struct {
	*storage.Snapshot
	store *storage.Store
}

func (s snapshot) Index() uint64 { return position(s.State()).Index }
func (s snapshot) Seqno() uint64 { return s.State().Seqno }

// WriteTo syncs storage, which makes it durable up to at least the
// snapshot's position, then streams the snapshot. Raft compacts its log once
// the snapshot is complete, and no restart, even after a power loss, needs
// entries at or below it then.
func (s snapshot) WriteTo(w io.Writer) (int64, error) {
	if err := s.store.Sync(); err != nil {
		return 0, fmt.Errorf("apply: snapshot at index %d: %w", s.Index(), err)
	}
	return s.Snapshot.WriteTo(w)
}

// Restore replaces the state with a snapshot's. The stream names its own
// position; the caller checks that its index is the one it expected.
func (a *Applier) Restore(r io.Reader, _ uint64) error {
	st, err := a.store.Import(r)
	if err != nil {
		return fmt.Errorf("apply: restore: %w", err)
	}
	a.cert.Reset()
	a.resume(st.Seqno)
	if a.cfg.OnRestored != nil {
		a.cfg.OnRestored(st.Seqno)
	}
	a.lg.Debug("restored state from snapshot", zap.Uint64("seqno", st.Seqno))
	return nil
}
