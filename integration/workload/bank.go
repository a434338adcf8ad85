package workload

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
)

// bankWorkload moves money between accounts: each transfer is an Update
// (retried on conflict) that reads two balances and moves a random amount,
// at most the source's balance, from one to the other; reads are snapshot
// reads of every account (a View scanning the account prefix) on the
// client's member. Transfers keep the total, and snapshot isolation keeps
// every snapshot's sum at the total and no balance negative.
type bankWorkload struct {
	// Accounts is the number of accounts; default 8.
	Accounts int
	// Initial is each account's opening balance; default 10.
	Initial int64
	// MaxTransfer bounds one transfer's amount; default 5.
	MaxTransfer int64
	// ReadRatio is the share of reads among the ops; default 0.2.
	ReadRatio float64
}

const bankPrefix = "bank/"

func (w *bankWorkload) defaults() {
	if w.Accounts == 0 {
		w.Accounts = 8
	}
	if w.Initial == 0 {
		w.Initial = 10
	}
	if w.MaxTransfer == 0 {
		w.MaxTransfer = 5
	}
	if w.ReadRatio == 0 {
		w.ReadRatio = 0.2
	}
}

// Name implements workload.
func (w *bankWorkload) Name() string { return checker.WorkloadBank }

// total is the sum of all balances.
func (w *bankWorkload) total() int64 { w.defaults(); return int64(w.Accounts) * w.Initial }

func (w *bankWorkload) account(i int) string { return fmt.Sprintf("a%d", i) }

func bankKey(acct string) []byte { return []byte(bankPrefix + acct) }

// Setup implements Workload: it opens every account in one transaction.
func (w *bankWorkload) Setup(ctx context.Context, cl *client.Client) error {
	w.defaults()
	return cl.Update(ctx, func(tx *client.Txn) error {
		for i := range w.Accounts {
			if err := tx.Put(bankKey(w.account(i)), []byte(strconv.FormatInt(w.Initial, 10))); err != nil {
				return err
			}
		}
		return nil
	})
}

// Step implements Workload: a transfer or, with ReadRatio, a read.
func (w *bankWorkload) Step(ctx context.Context, cl *client.Client, rng *rand.Rand) checker.Op {
	w.defaults()
	if rng.Float64() < w.ReadRatio {
		op := &checker.BankOp{F: checker.BankRead}
		err := cl.View(ctx, func(tx *client.Txn) (err error) {
			op.Balances, err = w.readAll(ctx, tx)
			return err
		})
		if err != nil {
			op.Balances = nil
		}
		return outcome(op, err, true)
	}
	from := rng.IntN(w.Accounts)
	to := (from + 1 + rng.IntN(w.Accounts-1)) % w.Accounts
	op := &checker.BankOp{F: checker.BankTransfer, From: w.account(from), To: w.account(to)}
	want := 1 + rng.Int64N(w.MaxTransfer)
	err := cl.Update(ctx, func(tx *client.Txn) error {
		fb, err := getInt(ctx, tx, bankKey(op.From))
		if err != nil {
			return notApplied(err)
		}
		tb, err := getInt(ctx, tx, bankKey(op.To))
		if err != nil {
			return notApplied(err)
		}
		op.Amount = min(want, fb)
		if op.Amount <= 0 {
			op.Amount = 0
			return nil // nothing to move: a transaction without writes
		}
		if err := tx.Put(bankKey(op.From), []byte(strconv.FormatInt(fb-op.Amount, 10))); err != nil {
			return notApplied(err)
		}
		return tx.Put(bankKey(op.To), []byte(strconv.FormatInt(tb+op.Amount, 10)))
	})
	return outcome(op, err, false)
}

// readAll reads every account in tx's snapshot.
func (w *bankWorkload) readAll(ctx context.Context, tx *client.Txn) (map[string]int64, error) {
	kvs, err := tx.Scan(ctx, []byte(bankPrefix), prefixEnd([]byte(bankPrefix)), 0)
	if err != nil {
		return nil, err
	}
	balances := make(map[string]int64, len(kvs))
	for _, kv := range kvs {
		n, err := strconv.ParseInt(string(kv.Value), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bank: account %q holds %q: %w", kv.Key, kv.Value, err)
		}
		balances[string(bytes.TrimPrefix(kv.Key, []byte(bankPrefix)))] = n
	}
	return balances, nil
}

// Final implements Workload: one snapshot read of every account on s's
// member.
func (w *bankWorkload) Final(ctx context.Context, s *session) ([]checker.Op, error) {
	op := s.Do(func() checker.Op {
		read := &checker.BankOp{F: checker.BankRead}
		err := s.Client.View(ctx, func(tx *client.Txn) (err error) {
			read.Balances, err = w.readAll(ctx, tx)
			return err
		})
		return outcome(read, err, true)
	})
	if op.Type != checker.TypeOK {
		return nil, fmt.Errorf("bank: final read on %s: %s", s.Node, op.Error)
	}
	return []checker.Op{op}, nil
}

// Check implements Workload: CheckBank against the total, with the final
// reads as BankConfig.Final.
func (w *bankWorkload) Check(h []checker.Op, final finalState) (checker.Result, error) {
	return checker.CheckBank(h, checker.BankConfig{Total: w.total(), Final: final.Reads})
}

// getInt reads a decimal integer; an absent key is an error.
func getInt(ctx context.Context, tx *client.Txn, key []byte) (int64, error) {
	v, err := tx.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q holds %q: %w", key, v, err)
	}
	return n, nil
}
