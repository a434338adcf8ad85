// Package apply is a member's apply loop: it adapts the certification rule
// to groupcomm and storage.
//
// Applier implements groupcomm.Deliverer. For each batch of ordered entries
// it certifies the write-sets in log order with a certification.Certifier,
// then hands storage one batch: the committed writes at their seqnos, every
// outcome under its write-set's id, and the applied state (the last seqno
// and the running digest of every outcome). It records the digest at
// checkpoints, compares it with the ones other members announce through the
// log, and stops the member with ErrDiverged when a majority of them
// disagrees. Snapshot and Restore move the whole state for Raft.
//
// Deliver, Snapshot and Restore run on groupcomm's one apply goroutine, as
// does every callback in Config; the Applier starts no goroutine and reads
// no clock. See certification/DESIGN.md.
package apply
