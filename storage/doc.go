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
//
// Get, Scan and LatestVersion only ever look inside 'd'; internal keys are never
// visible to users.
//
// A delete is an ordinary version of its key whose badger UserMeta byte is
// metaTombstone (the one-byte "value or tombstone" header, kept by badger next
// to the value so values are stored verbatim). Badger's own delete markers are
// never used, so LatestVersion sees deletes, Snapshot.WriteTo exports them with
// their version, and Get and Scan hide them.
//
// The applied-state record is rewritten at the fixed version 1 rather than at
// a new version per batch: NumVersionsToKeep is unbounded (no MVCC GC yet), so
// a per-batch version would accumulate forever in one key. Badger resolves two
// writes of the same key at the same version in favour of the newer write
// (memtables before tables, newer L0 tables first, merge iterators prefer the
// newer source), the same rule that makes re-applying a record harmless.
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
// so after kill -9 the applied record present on disk is never newer than the
// data it describes. Writes above Applied().Seqno may survive partially; they
// are re-applied later with the same keys, versions and values, which leaves
// the store identical. Entries within one WriteBatch transaction are not atomic
// in badger (entries with explicit versions carry no transaction marker), which
// is why the applied record is never placed in the same transaction as data.
// Writes are not fsynced (SyncWrites=false): durability comes from the Raft log,
// which is replayed above Applied().Seqno after a restart.
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
// transferred, so reads below it fail with ErrSnapshotTooOld). On disk, a
// marker file brackets the import; if the process dies in between, Open finds
// the marker and empties the store, so a store is never left half-imported
// with a claimed applied seqno.
//
// # Concurrency
//
// All methods are safe for concurrent use. ApplyBatch calls are serialised.
// Reads (Get, Scan, LatestVersion, LookupID, Snapshot.WriteTo) run
// concurrently with each other and with ApplyBatch; a read at a snapshot at or
// below Applied().Seqno never observes a batch in progress. Import and Close
// are exclusive: they wait for calls in flight (a running WriteTo included),
// and calls that arrive meanwhile wait for them. After Close every method
// returns ErrClosed; after Import, snapshots taken earlier fail with
// ErrSnapshotTooOld.
package storage
