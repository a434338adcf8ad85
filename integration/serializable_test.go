package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
	"github.com/galenadb/galena/integration/nemesis"
	"github.com/galenadb/galena/integration/workload"
)

// isolations are the two ways a transaction may run, by name.
var isolations = []struct {
	name         string
	opt          client.TxnOption
	serializable bool
}{{"snapshot isolation", client.SnapshotIsolation(), false}, {"serializable", client.Serializable(), true}}

// interleave runs two transactions, each on its own member, so that both
// read before either commits: read, then write(tx, i, what read returned)
// for transaction i; then it commits the first and the second, in that
// order, and returns the second's commit error. Their snapshots are linearizable:
// they see what the test wrote before, through whichever member.
func interleave(t *testing.T, ctx context.Context, c1, c2 *client.Client, opt client.TxnOption,
	read func(*client.Txn) (int, error), write func(tx *client.Txn, i, seen int) error) error {
	t.Helper()
	var txs [2]*client.Txn
	var seen [2]int
	for i, c := range []*client.Client{c1, c2} {
		tx, err := c.Begin(ctx, opt, client.Linearizable())
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if seen[i], err = read(tx); err != nil {
			t.Fatal(err)
		}
		txs[i] = tx
	}
	for i, tx := range txs {
		if err := write(tx, i, seen[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := txs[0].Commit(ctx); err != nil {
		t.Fatalf("the first commit: %v", err)
	}
	_, err := txs[1].Commit(ctx)
	return err
}

// TestSerializableWriteSkew is the on-call doctors: each of two doctors
// goes off call if the other is on, each in a transaction on another
// member. Under snapshot isolation both commit and nobody is on call;
// serializable, the second fails with a conflict on the key it read, and
// one doctor stays on call.
func TestSerializableWriteSkew(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t, 2*time.Minute)
	c1, c2 := newClientOf(t, c, 0), newClientOf(t, c, 1)
	for _, iso := range isolations {
		t.Run(iso.name, func(t *testing.T) {
			prefix := "oncall/" + iso.name + "/"
			doctors := []string{prefix + "alice", prefix + "bob"}
			for _, d := range doctors {
				if err := c1.Put(ctx, []byte(d), []byte("on")); err != nil {
					t.Fatal(err)
				}
			}
			read := func(tx *client.Txn) (int, error) { // how many are on call
				on := 0
				for _, d := range doctors {
					v, err := tx.Get(ctx, []byte(d))
					if err != nil {
						return 0, err
					}
					if string(v) == "on" {
						on++
					}
				}
				return on, nil
			}
			write := func(tx *client.Txn, i, on int) error { // doctor i goes off call if another is on
				if on < 2 {
					return nil
				}
				return tx.Put([]byte(doctors[i]), []byte("off"))
			}
			err := interleave(t, ctx, c1, c2, iso.opt, read, write)
			onCall := 0
			for _, d := range doctors {
				v, gerr := newClientOf(t, c, 2).Get(ctx, []byte(d), client.Linearizable())
				if gerr != nil {
					t.Fatal(gerr)
				}
				if string(v) == "on" {
					onCall++
				}
			}
			var ce *client.ConflictError
			switch {
			case !iso.serializable && (err != nil || onCall != 0):
				t.Fatalf("under snapshot isolation: second commit %v, %d on call; want the write skew (both off)", err, onCall)
			case iso.serializable && (!errors.As(err, &ce) || !ce.Read || string(ce.Key) != doctors[0] || onCall != 1):
				t.Fatalf("serializable: second commit %v, %d on call; want a conflict on %s, read, and one on call", err, onCall, doctors[0])
			}
			if err != nil {
				t.Logf("%s: %v", iso.name, err)
			}
		})
	}
}

// TestSerializablePhantom is count-then-insert: a slot takes one booking,
// and two clients, each on its own member, count the slot's bookings (a
// scan of its prefix) and book it if it is free. Under snapshot isolation
// both commit and the slot is booked twice; serializable, the second fails
// with a conflict on the range it scanned, naming the other's booking.
func TestSerializablePhantom(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t, 2*time.Minute)
	c1, c2 := newClientOf(t, c, 0), newClientOf(t, c, 1)
	for _, iso := range isolations {
		t.Run(iso.name, func(t *testing.T) {
			slot := []byte("booking/" + iso.name + "/slot1/")
			names := []string{"ada", "bo"}
			read := func(tx *client.Txn) (int, error) { // the slot's bookings
				kvs, err := tx.Scan(ctx, slot, client.PrefixEnd(slot), 0)
				return len(kvs), err
			}
			write := func(tx *client.Txn, i, booked int) error { // client i books if free
				if booked > 0 {
					return nil
				}
				return tx.Put(append(slices.Clone(slot), names[i]...), []byte("booked"))
			}
			err := interleave(t, ctx, c1, c2, iso.opt, read, write)
			var kvs []client.KV
			if verr := newClientOf(t, c, 2).View(ctx, func(tx *client.Txn) (err error) {
				kvs, err = tx.Scan(ctx, slot, client.PrefixEnd(slot), 0)
				return err
			}, client.Linearizable()); verr != nil {
				t.Fatal(verr)
			}
			var ce *client.ConflictError
			switch {
			case !iso.serializable && (err != nil || len(kvs) != 2):
				t.Fatalf("under snapshot isolation: second commit %v, %d bookings; want the phantom (two)", err, len(kvs))
			case iso.serializable && (!errors.As(err, &ce) || ce.Range == nil || string(ce.Key) != string(slot)+names[0] || len(kvs) != 1):
				t.Fatalf("serializable: second commit %v, %d bookings; want a conflict in the range scanned on %s%s, and one booking",
					err, len(kvs), slot, names[0])
			}
			if err != nil {
				t.Logf("%s: %v", iso.name, err)
			}
		})
	}
}

// TestSerializableDoctorsUnderLoad runs many pairs of doctors at once,
// each doctor's transaction retried by Update on its own member until it
// commits: serializable, every pair keeps a doctor on call.
func TestSerializableDoctorsUnderLoad(t *testing.T) {
	c := startCluster(t, 3)
	ctx := testCtx(t, 2*time.Minute)
	const pairs = 40
	clients := []*client.Client{newClientOf(t, c, 0), newClientOf(t, c, 1)}
	doctor := func(p, d int) []byte { return fmt.Appendf(nil, "oncall-load/%02d/%d", p, d) }
	for p := range pairs {
		for d := range 2 {
			if err := clients[0].Put(ctx, doctor(p, d), []byte("on")); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	var attempts atomic.Int64
	errs := make(chan error, 2*pairs)
	for p := range pairs {
		for d := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- clients[d].Update(ctx, func(tx *client.Txn) error {
					attempts.Add(1)
					other, err := tx.Get(ctx, doctor(p, 1-d))
					if err != nil || string(other) != "on" {
						return err
					}
					return tx.Put(doctor(p, d), []byte("off"))
				}, client.Serializable(), client.Linearizable()) // sees the setup through either member
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Pairs that ran at once conflicted, and Update ran one side again:
	// without that, the run tested nothing.
	if n := attempts.Load(); n <= 2*pairs {
		t.Fatalf("%d attempts for %d transactions: no two doctors of a pair overlapped", n, 2*pairs)
	}
	converge(t, c) // the member read below holds every commit
	kvs, err := workload.Contents(ctx, c.Endpoint(2), "oncall-load/", nil)
	if err != nil {
		t.Fatal(err)
	}
	onCall := map[string]int{}
	for _, kv := range kvs {
		if string(kv.Value) == "on" {
			onCall[string(kv.Key[:len("oncall-load/00")])]++
		}
	}
	if len(kvs) != 2*pairs || len(onCall) != pairs {
		t.Fatalf("%d doctors, %d pairs with a doctor on call; want %d and %d", len(kvs), len(onCall), 2*pairs, pairs)
	}
}

// TestAppendUnderFaults runs the list-append workload in both modes, with
// kills, pauses and partitions of its own: no anomaly under snapshot
// isolation (G2 allowed), none at all serializable (G2 forbidden).
func TestAppendUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	seed := jepsenSeedOf(t)
	kinds := []string{"kill", "pause", "split"}
	for _, name := range []string{checker.WorkloadAppend, workload.AppendSerializable} {
		t.Run(name, func(t *testing.T) {
			rep := runJepsen(t, name, nemesis.FaultSpec{Nemesis: "kill,pause,split", Seed: seed})
			for _, k := range kinds {
				if !slices.Contains(rep.FaultKinds(), k) {
					t.Errorf("fault kind %s was not injected, took no effect or was not healed (injected: %v)", k, rep.FaultKinds())
				}
			}
		})
	}
}
