package checker

import (
	"fmt"
	"maps"
	"slices"
)

// BankConfig says what CheckBank checks a bank history against.
type BankConfig struct {
	// Total is the sum of all balances, which transfers preserve.
	Total int64
	// Final are the final reads, one ok bank read per member with Node set,
	// taken after the workload stopped and the cluster converged. Empty skips
	// the final-read check.
	Final []Op
}

// CheckBank checks the bank ops of h (other workloads are ignored):
//
//   - KindWrongTotal: an ok read, or a final read, whose balances do not sum
//     to cfg.Total;
//   - KindNegativeBalance: an ok read, or a final read, with a negative
//     balance;
//   - KindFinalDivergence: final reads that are not all equal.
//
// Transfers are not checked individually: each read is a snapshot of every
// account, so a transfer applied in part, twice, or to one side shows up as a
// wrong total. It returns an error wrapping ErrMalformed when an op, or a
// final read, is malformed.
func CheckBank(h []Op, cfg BankConfig) (Result, error) {
	idx, err := opsOf(h, WorkloadBank)
	if err != nil {
		return Result{}, err
	}
	if err := validateFinal(cfg.Final); err != nil {
		return Result{}, err
	}
	res := newResult()
	for _, i := range idx {
		if h[i].Type == TypeOK && h[i].Bank.F == BankRead {
			res.Counts["ok-reads"]++
			checkBalances(&res, OpRef{Index: i, Op: h[i]}, cfg.Total)
		}
	}
	for _, o := range cfg.Final {
		checkBalances(&res, OpRef{Index: -1, Op: o}, cfg.Total)
	}
	res.Counts["final-reads"] = len(cfg.Final)
	checkFinalDivergence(&res, cfg.Final)
	return res, nil
}

func validateFinal(final []Op) error {
	for i, o := range final {
		if err := o.Validate(); err != nil {
			return fmt.Errorf("final read %d: %w", i, err)
		}
		if o.Bank == nil || o.Bank.F != BankRead || o.Type != TypeOK {
			return fmt.Errorf("final read %d: %w: not an ok bank read", i, ErrMalformed)
		}
	}
	return nil
}

// checkBalances reports a read with the wrong total or a negative balance.
func checkBalances(res *Result, r OpRef, total int64) {
	var sum int64
	var negative []string
	balances := r.Op.Bank.Balances
	for _, acct := range slices.Sorted(maps.Keys(balances)) {
		sum += balances[acct]
		if balances[acct] < 0 {
			negative = append(negative, fmt.Sprintf("%s:%d", acct, balances[acct]))
		}
	}
	if sum != total {
		res.add(Anomaly{Kind: KindWrongTotal, Ops: []OpRef{r},
			Detail: fmt.Sprintf("read %s on %s sums to %d, want %d", refName(r.Index), r.Op.Node, sum, total)})
	}
	if len(negative) > 0 {
		res.add(Anomaly{Kind: KindNegativeBalance, Ops: []OpRef{r},
			Detail: fmt.Sprintf("read %s on %s has negative balances %v", refName(r.Index), r.Op.Node, negative)})
	}
}

// checkFinalDivergence reports final reads that differ from the first one.
func checkFinalDivergence(res *Result, final []Op) {
	if len(final) < 2 {
		return
	}
	first := final[0].Bank.Balances
	differ := false
	detail := fmt.Sprintf("final reads differ: %s %s", final[0].Node, formatBalances(first))
	for _, o := range final[1:] {
		if !maps.Equal(first, o.Bank.Balances) {
			differ = true
			detail += fmt.Sprintf(" vs %s %s", o.Node, formatBalances(o.Bank.Balances))
		}
	}
	if !differ {
		return
	}
	ops := make([]OpRef, len(final))
	for i, o := range final {
		ops[i] = OpRef{Index: -1, Op: o}
	}
	res.add(Anomaly{Kind: KindFinalDivergence, Ops: ops, Detail: detail})
}
