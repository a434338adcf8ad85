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
			err := a.Deliver([]groupcomm.Entry{{Index: 1, Data: mustEncode(t, tc.ws)}}, 1)
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

// Checkpoint announcements carry any member id (txn.Service.Admit only
// decodes them), so whoever can forward an entry to the leader can announce
// under ids that are not members. Those are ignored: however many there are,
// they cannot outvote the real members and stop a member with ErrDiverged.
func TestAnnouncementsFromNonMembersDoNotStopAMember(t *testing.T) {
	const interval = 8
	isMember := func(id string) bool { return id == "n1" || id == "n2" || id == "n3" }
	a, _, _ := memApplier(t, Config{Certification: testConfig(64, 8), Member: "n1", CheckpointInterval: interval, IsMember: isMember})
	var log []groupcomm.Entry
	for i := uint64(1); i <= interval; i++ {
		log = append(log, groupcomm.Entry{Index: i, Data: mustEncode(t, ws(fmt.Sprint("w", i), i-1, "k"))})
	}
	if err := a.Deliver(log, interval); err != nil {
		t.Fatal(err)
	}
	cps := a.Checkpoints()
	if len(cps) != 1 || cps[0].Seqno != interval {
		t.Fatalf("checkpoints %+v", cps)
	}
	honest, forged := cps[0], certification.Checkpoint{Seqno: interval, Digest: [32]byte{0xba, 0xd}}
	log = log[:0]
	for i, m := range []string{"n2", "n3", "x1", "x2", "x3", "x4"} {
		cp := honest
		if m[0] == 'x' {
			cp = forged
		}
		log = append(log, groupcomm.Entry{Index: interval + 1 + uint64(i), Data: certification.EncodeCheckpoint(m, cp)})
	}
	log = append(log, groupcomm.Entry{Index: 2*interval + 1, Data: mustEncode(t, ws("next", interval, "k"))})
	if err := a.Deliver(log, 2*interval+1); errors.Is(err, ErrDiverged) {
		t.Fatalf("a member agreeing with every real member stopped: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
}
