package apply

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/galenadb/galena/api/writesetpb"
	"github.com/galenadb/galena/certification"
	"github.com/galenadb/galena/groupcomm"
	"github.com/galenadb/galena/storage"
)

// Entries no member proposes (txn.Service.Admit refuses them on the leader)
// but that a log may still carry: every member must treat them alike and go
// on, as ErrInvalidWriteSet documents.

func memApplier(t *testing.T, cfg Config) (*Applier, *storage.Store, *recorder) {
	t.Helper()
	st, err := storage.Open(storage.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec := &recorder{}
	cfg.OnOutcome = rec.on
	a, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	return a, st, rec
}

// A write-set storage cannot hold is refused by certification with the
// InvalidWriteSet verdict on every member; the apply loop goes on.
func TestUnstorableWriteSetIsRefusedNotFatal(t *testing.T) {
	for _, tc := range []struct {
		name string
		ws   *writesetpb.WriteSet
	}{
		{"id over storage.MaxKeySize", &writesetpb.WriteSet{Id: bytes.Repeat([]byte("i"), storage.MaxKeySize+1),
			Writes: []*writesetpb.Write{{Key: []byte("k"), Value: []byte("v")}}}},
		{"value over storage.MaxValueSize", &writesetpb.WriteSet{Id: []byte("big"),
			Writes: []*writesetpb.Write{{Key: []byte("k"), Value: make([]byte, storage.MaxValueSize+1)}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, st, rec := memApplier(t, Config{Certification: testConfig(64, 8)})
			err := a.Deliver([]groupcomm.Entry{{Index: 1, Seqno: 1, Data: mustEncode(t, tc.ws)}}, pos(1))
			if err != nil {
				t.Fatalf("Deliver = %v; want the write-set refused with a verdict", err)
			}
			if st.Applied().Seqno != 1 || len(rec.outcomes) != 1 || !strings.Contains(rec.outcomes[0], ":invalid-write-set/") {
				t.Fatalf("applied %d, outcomes %v", st.Applied().Seqno, rec.outcomes)
			}
		})
	}
}

// The Applier's limits are storage's, and so are the rule's own defaults;
// an Applier refuses limits storage could not honour.
func TestLimitsAreStorages(t *testing.T) {
	if c := DefaultConfig().Certification; c.MaxKeySize != storage.MaxKeySize || c.MaxValueSize != storage.MaxValueSize {
		t.Fatalf("limits %d and %d; storage holds %d and %d", c.MaxKeySize, c.MaxValueSize, storage.MaxKeySize, storage.MaxValueSize)
	}
	if c := certification.DefaultConfig(); c.MaxKeySize != storage.MaxKeySize || c.MaxValueSize != storage.MaxValueSize {
		t.Fatalf("certification's default limits %d and %d; storage holds %d and %d", c.MaxKeySize, c.MaxValueSize, storage.MaxKeySize, storage.MaxValueSize)
	}
	cfg := DefaultConfig()
	cfg.Certification.MaxValueSize = storage.MaxValueSize + 1
	if err := cfg.Validate(); err == nil {
		t.Fatal("Validate accepted a value limit over storage's")
	}
}

// hostileInterval is the checkpoint interval of pastFirstCheckpoint's Applier.
const hostileInterval = 8

// pastFirstCheckpoint returns member n1 of n1, n2 and n3, which has applied
// one write-set per seqno through its first checkpoint.
func pastFirstCheckpoint(t *testing.T) *Applier {
	t.Helper()
	isMember := func(id string) bool { return id == "n1" || id == "n2" || id == "n3" }
	a, _, _ := memApplier(t, Config{Certification: testConfig(64, 8), Member: "n1", CheckpointInterval: hostileInterval, IsMember: isMember})
	var log []groupcomm.Entry
	for i := uint64(1); i <= hostileInterval; i++ {
		log = append(log, groupcomm.Entry{Index: i, Seqno: i, Data: mustEncode(t, ws(fmt.Sprint("w", i), i-1, "k"))})
	}
	if err := a.Deliver(log, pos(hostileInterval)); err != nil {
		t.Fatal(err)
	}
	return a
}

// Checkpoint announcements carry any member id (txn.Service.Admit only
// decodes them), so whoever can forward an entry to the leader can announce
// under ids that are not members. Those are ignored: however many there are,
// they cannot outvote the real members and stop a member with ErrDiverged.
func TestAnnouncementsFromNonMembersDoNotStopAMember(t *testing.T) {
	a := pastFirstCheckpoint(t)
	cps := a.Checkpoints()
	if len(cps) != 1 || cps[0].Seqno != hostileInterval {
		t.Fatalf("checkpoints %+v", cps)
	}
	honest, forged := cps[0], certification.Checkpoint{Seqno: hostileInterval, Digest: [32]byte{0xba, 0xd}}
	var log []groupcomm.Entry
	for i, m := range []string{"n2", "n3", "x1", "x2", "x3", "x4"} {
		cp := honest
		if m[0] == 'x' {
			cp = forged
		}
		log = append(log, groupcomm.Entry{Index: hostileInterval + 1 + uint64(i), Seqno: hostileInterval + 1 + uint64(i), Data: certification.EncodeCheckpoint(m, cp)})
	}
	log = append(log, groupcomm.Entry{Index: 2*hostileInterval + 1, Seqno: 2*hostileInterval + 1, Data: mustEncode(t, ws("next", hostileInterval, "k"))})
	if err := a.Deliver(log, pos(2*hostileInterval+1)); errors.Is(err, ErrDiverged) {
		t.Fatalf("a member agreeing with every real member stopped: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
}

// A member whose digest at a checkpoint differs from the one two other
// members announce, and that no member agrees with, stops with ErrDiverged
// once the log passes the next checkpoint.
func TestOutvotedMemberStops(t *testing.T) {
	a := pastFirstCheckpoint(t)
	other := certification.Checkpoint{Seqno: hostileInterval, Digest: [32]byte{0x07}}
	log := []groupcomm.Entry{
		{Index: hostileInterval + 1, Seqno: hostileInterval + 1, Data: certification.EncodeCheckpoint("n2", other)},
		{Index: hostileInterval + 2, Seqno: hostileInterval + 2, Data: certification.EncodeCheckpoint("n3", other)},
		{Index: 2*hostileInterval + 1, Seqno: 2*hostileInterval + 1, Data: mustEncode(t, ws("next", hostileInterval, "k"))},
	}
	if err := a.Deliver(log, pos(2*hostileInterval+1)); !errors.Is(err, ErrDiverged) {
		t.Fatalf("Deliver = %v; want ErrDiverged", err)
	}
}
