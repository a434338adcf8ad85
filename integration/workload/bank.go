package workload

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
	"github.com/galenadb/galena/integration/workload/bank"
)

// bankWorkload records the bank of package bank: each transfer is an
// Update (retried on conflict) of bank.Transfer between two accounts of
// bank.Pick; reads are snapshot reads of every account (a View of
// bank.Balances) on the client's member. Transfers keep the total, and
// snapshot isolation keeps every snapshot's sum at the total and no
// balance negative.
type bankWorkload struct {
	b *bank.Bank
	// readRatio is the share of reads among the ops.
	readRatio float64
}

// newBankWorkload returns the bank workload of the accounts of cfg, a
// fifth of its ops reads.
func newBankWorkload(cfg bank.Config) (*bankWorkload, error) {
	b, err := bank.New(cfg)
	if err != nil {
		return nil, err
	}
	return &bankWorkload{b: b, readRatio: 0.2}, nil
}

// Name implements workload.
func (w *bankWorkload) Name() string { return checker.WorkloadBank }

// Setup implements Workload: it opens every account in one transaction.
func (w *bankWorkload) Setup(ctx context.Context, cl *client.Client) error {
	return w.b.Load(ctx, cl)
}

// Step implements Workload: a transfer or, one time in readRatio, a read.
func (w *bankWorkload) Step(ctx context.Context, cl *client.Client, rng *rand.Rand) checker.Op {
	if rng.Float64() < w.readRatio {
		return w.read(ctx, cl)
	}
	from, to, amount := w.b.Pick(rng)
	op := &checker.BankOp{F: checker.BankTransfer, From: w.b.Account(from), To: w.b.Account(to)}
	err := cl.Update(ctx, func(tx *client.Txn) (err error) {
		// Nothing is applied before the commit: an error here leaves the
		// transfer undone.
		op.Amount, err = w.b.Transfer(ctx, tx, from, to, amount)
		return notApplied(err)
	})
	return outcome(op, err, false)
}

// read reads every account in one snapshot on cl's member.
func (w *bankWorkload) read(ctx context.Context, cl *client.Client) checker.Op {
	op := &checker.BankOp{F: checker.BankRead}
	err := cl.View(ctx, func(tx *client.Txn) (err error) {
		op.Balances, err = w.b.Balances(ctx, tx)
		return err
	})
	if err != nil {
		op.Balances = nil
	}
	return outcome(op, err, true)
}

// Final implements Workload: one snapshot read of every account on s's
// member.
func (w *bankWorkload) Final(ctx context.Context, s *session) ([]checker.Op, error) {
	op := s.Do(func() checker.Op { return w.read(ctx, s.Client) })
	if op.Type != checker.TypeOK {
		return nil, fmt.Errorf("bank: final read on %s: %s", s.Node, op.Error)
	}
	return []checker.Op{op}, nil
}

// Check implements Workload: CheckBank against the total, with the final
// reads as BankConfig.Final.
func (w *bankWorkload) Check(h []checker.Op, final finalState) (checker.Result, error) {
	return checker.CheckBank(h, checker.BankConfig{Total: w.b.Total(), Final: final.Reads})
}
