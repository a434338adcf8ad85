// Package storage keeps Galena's data in badger/v4 in managed (MVCC) mode, where
// the version of a key is the seqno of the write-set that wrote it. It applies
// totally ordered write-set outcomes atomically with the applied-state record,
// serves snapshot reads and the latest-version lookups certification needs, and
// exports and imports the full state for state transfer. It knows nothing of
// Raft or gRPC.
//
// # Key layout
//
// Every badger key starts with one byte that names its key space:
//
//	'd' + user key       user data; version = seqno of the write-set; value = user value
//	'i' + write-set id   the outcome bytes of that write-set; version = its seqno
//	's' + "applied"      the applied-state record (AppliedState), always at version 1
//	'x' + seqno + n      a reap record: deletes and ids to forget (see forget.go)
//
// Get, Scan and LatestVersion only ever look inside 'd'; internal keys are never
// visible to users. Besides badger's files, Dir holds galena-durable (the
// durable state, see below), galena-boot (the boot it was last opened under)
// and, during Import, galena-import-in-progress.
//
// A delete is an ordinary version of its key whose badger UserMeta byte is
// metaTombstone (the one-byte "value or tombstone" header, kept by badger next
// to the value so values are stored verbatim), so LatestVersion sees deletes,
// Snapshot.WriteTo exports them with their version, and Get and Scan hide
// them. Badger's own delete markers are used only to forget deletes and id
// records once they are older than the certification window (Config.Window,
// see forget.go).
//
// The applied-state record is rewritten at the fixed version 1 rather than at
// a new version per batch, which would accumulate in one key within the
// retained history. Badger resolves two writes of the same key at the same
// version in favour of the newer write (memtables before tables, newer L0
// tables first, merge iterators prefer the newer source), the same rule that
// makes re-applying a record harmless.
//
// # Retention
//
// The last Config.Retain seqnos below the applied seqno, and what was
// current less than Config.RetainAge ago, stay readable;
// ApplyBatch raises MinReadable behind them, and compactions discard older
// versions (badger's discard timestamp with NumVersionsToKeep 1), never one
// a read in flight or a pinned Snapshot may see. See retain.go. Values in
// the value log (over 4 KiB) give their space back when the store rewrites
// the value-log files mostly discarded, every minute (vlog.go). Deletes and
// id records, which are a key's latest version, are forgotten once older
// than Config.Window, the certification window. See forget.go.
//
// # Applying and crash safety
//
// ApplyBatch validates the whole batch first (seqnos strictly increasing and
// above the applied seqno, non-empty keys within badger's limits); an invalid
// batch returns ErrInvalidBatch and writes nothing. It then writes in two steps:
//
//  1. every record's writes and id outcome through one managed badger
//     WriteBatch, each entry at version rec.Seqno (SetEntryAt). The WriteBatch
//     packs the entries of many records into a few transactions and splits them
//     itself when they exceed badger's transaction size; Flush waits until all
//     of them are in badger's write-ahead log.
//  2. only then, the applied-state record, in its own transaction.
//
// Badger writes requests to its write-ahead log in the order they are
// submitted and replays the log up to the first incomplete entry after a crash,
// so after kill -9 (the page cache survives) the applied record present on
// disk is never newer than the data it describes. Entries within one
// WriteBatch transaction are not atomic in badger (entries with explicit
// versions carry no transaction marker), which is why the applied record is
// never placed in the same transaction as data.
//
// Batches are not fsynced (SyncWrites=false): the caller's log holds every
// batch (Raft's, fsynced before a commit is acknowledged), and the store only
// has to tell which prefix of it is on disk. After a power loss the applied
// record cannot tell: badger writes its logs through shared mappings, the
// kernel writes pages back in any order, and without SyncWrites badger syncs
// a memtable's log neither after a write nor when it starts the next
// memtable, so the record can survive while data it covers is lost.
//
// The durable state tells. Sync
//
//  1. takes the applied state of the moment, whose batches are all in
//     badger's logs already;
//  2. syncs badger: DB.Sync (the active memtable's log and the value log
//     file being written; badger syncs a value log file when it moves on to
//     the next) and every memtable log still in Dir (memtables awaiting
//     their flush: a flush writes a synced table, then deletes the log),
//     then Dir;
//  3. only then records that state (seqno, MinReadable, Meta) in the file
//     galena-durable in Dir, written whole and synced (internal/atomicfile).
//
// So the durable state never covers a write that is not on disk, whatever
// is lost. Which state Open starts from depends on what can have been lost:
//
//   - Only the process died (kill -9): the page cache kept every write it
//     made, so the applied record is good, as before. Open syncs everything
//     and records the applied state as the durable one.
//   - The machine restarted since the store was last open (a power loss, a
//     kernel crash, or a reboot; Open tells by the kernel's boot id, which it
//     records in galena-boot in Dir): writes above the durable state may be
//     lost while the applied record claims them. Open starts from the
//     durable state: Applied() is the durable state, the applied record is
//     rewritten to it (and synced) before the new boot is recorded, so that
//     it never claims the lost writes again, and the caller applies
//     everything above it again.
//
// Applying again is harmless: writes above the durable state may be present,
// partially or wholly; they are written again with the same keys, versions
// and values, and badger resolves two writes of one key at one version in
// favour of the newer. A store with no durable state (new, or last opened
// before durable states existed) starts from its applied record. Open
// refuses a durable state ahead of the applied record: Dir would hold files
// of different stores. Where the boot id is unknown (outside Linux), every
// Open counts as after a machine restart.
//
// The store syncs in the background once Config.SyncEvery seqnos have been
// applied past the durable state (ApplyBatch only signals the store's sync
// goroutine, so the apply path never waits for the disk and reads no clock),
// whenever its owner calls Sync (certification does before a snapshot is
// complete, so before Raft compacts its log past the snapshot), at the end of
// Import (before its marker is removed) and in Close. A restart after a
// machine restart therefore applies again at most about SyncEvery seqnos;
// after kill -9 or Close, none. A failed sync is final for the process:
// Linux may drop pages it failed to write back and report a later fsync
// clean, so the durable state stays put, and the store forgets its boot, so
// that the next Open starts from the durable state even in the same boot.
//
// What can be lost, then: after kill -9, nothing; after a machine restart,
// writes above Durable().Seqno (data, id records and the applied record
// alike), never one at or below it. The caller's log must keep every entry
// above Durable().Seqno; Raft's does, since a snapshot syncs before it is
// complete.
//
// # Snapshots and state transfer
//
// Snapshot pins the current applied state. Its WriteTo streams, at that seqno,
// the latest version of every key (user keys and id records, deletes included)
// in this format (integers big-endian unless marked uvarint):
//
//	header   magic "GALENASN" | format uint32 (=1) | seqno uint64 | minReadable uint64 |
//	         len(meta) uvarint | meta
//	entry*   tag 1 | len(key) uvarint | key (with space byte) | version uvarint |
//	         flags byte (1 = tombstone) | len(value) uvarint | value
//	trailer  tag 0 | entry count uvarint | crc32c (Castagnoli) of every preceding byte
//
// Import checks the header before changing anything. It then drops everything
// (including the applied record), writes the entries in chunks of a few MiB
// with their original versions, checks the trailer, and writes the applied
// record last, with MinReadable = the stream's seqno (older versions were not
// transferred, so reads below it fail with ErrSnapshotTooOld), then syncs
// and records that state as the durable one. On disk, a marker file brackets
// the import; if the process dies in between, Open finds the marker, empties
// the store and forgets the durable state (the replaced store's, or the
// import's), so a store is never left half-imported with a claimed applied
// seqno. A failed import records the empty store's durable state before it
// removes the marker.
//
// # Concurrency
//
// All methods are safe for concurrent use. ApplyBatch calls are serialised,
// and so are Syncs. Reads (Get, Scan, LatestVersion, LookupID,
// Snapshot.WriteTo) and Sync run concurrently with each other and with
// ApplyBatch; a read at a snapshot at or below Applied().Seqno never observes
// a batch in progress. Import and Close are exclusive: they wait for calls in
// flight (a running WriteTo included), and calls that arrive meanwhile wait
// for them. After Close every method returns ErrClosed; after Import,
// snapshots taken earlier fail with ErrSnapshotTooOld. The store's one
// goroutine (background syncs) ends in Close.
package storage
