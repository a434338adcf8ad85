package bank

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/galenadb/galena/client"
)

// Errors of the bank. Match them with errors.Is.
var (
	// ErrInvalidConfig means a Config is not usable; New says which field.
	ErrInvalidConfig = errors.New("bank: invalid config")
	// ErrNotBalance means an account holds a value that is not a decimal
	// integer.
	ErrNotBalance = errors.New("bank: not a balance")
	// ErrNotHeld means a member does not hold the bank's total in its
	// accounts, or holds a negative balance.
	ErrNotHeld = errors.New("bank: total not held")
)

// Config says what the accounts are.
type Config struct {
	// Prefix is the key prefix of the accounts: account i is Prefix
	// followed by i in four digits ("acct/0007"). No other key may start
	// with it.
	Prefix string
	// Accounts is the number of accounts, at least 2.
	Accounts int
	// Initial is each account's balance when Load opens it, at least 0.
	Initial int64
	// MaxTransfer bounds a transfer: Pick draws its amount from
	// 1..MaxTransfer.
	MaxTransfer int64
}

// DefaultConfig returns the accounts of the fault tests: 8 of 10 under
// "bank/", transfers of 1 to 5.
func DefaultConfig() Config {
	return Config{Prefix: "bank/", Accounts: 8, Initial: 10, MaxTransfer: 5}
}

// Validate reports the first problem of c as an error wrapping
// ErrInvalidConfig.
func (c Config) Validate() error {
	switch {
	case c.Prefix == "":
		return fmt.Errorf("%w: empty Prefix", ErrInvalidConfig)
	case c.Accounts < 2:
		return fmt.Errorf("%w: %d Accounts, want at least 2", ErrInvalidConfig, c.Accounts)
	case c.Initial < 0:
		return fmt.Errorf("%w: negative Initial %d", ErrInvalidConfig, c.Initial)
	case c.MaxTransfer < 1:
		return fmt.Errorf("%w: MaxTransfer %d, want at least 1", ErrInvalidConfig, c.MaxTransfer)
	}
	return nil
}

// Bank is a set of accounts whose total transfers keep.
type Bank struct {
	cfg Config
}

// New validates cfg and returns a Bank of it.
func New(cfg Config) (*Bank, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Bank{cfg: cfg}, nil
}

// Accounts is the number of accounts.
func (b *Bank) Accounts() int { return b.cfg.Accounts }

// Total is the sum of every balance, which transfers keep.
func (b *Bank) Total() int64 { return int64(b.cfg.Accounts) * b.cfg.Initial }

// Account is the name of account i: its key without the prefix.
func (b *Bank) Account(i int) string { return fmt.Sprintf("%04d", i) }

// Key is the key of account i.
func (b *Bank) Key(i int) []byte { return []byte(b.cfg.Prefix + b.Account(i)) }

// Load opens every account with the initial balance, in one transaction
// through cl.Update.
func (b *Bank) Load(ctx context.Context, cl *client.Client) error {
	initial := []byte(strconv.FormatInt(b.cfg.Initial, 10))
	return cl.Update(ctx, func(tx *client.Txn) error {
		for i := range b.cfg.Accounts {
			if err := tx.Put(b.Key(i), initial); err != nil {
				return err
			}
		}
		return nil
	})
}

// Pick draws a transfer from rng: two different accounts, uniformly, and
// an amount in 1..MaxTransfer.
func (b *Bank) Pick(rng *rand.Rand) (from, to int, amount int64) {
	from, to = rng.IntN(b.cfg.Accounts), rng.IntN(b.cfg.Accounts-1)
	if to >= from {
		to++
	}
	return from, to, 1 + rng.Int64N(b.cfg.MaxTransfer)
}

// Transfer moves amount from account from to account to in tx, or what
// the payer holds when that is less, and returns what it moved. It writes
// nothing when it moves nothing. An absent account is an error, as is a
// value that is not a balance (ErrNotBalance). The caller commits tx.
func (b *Bank) Transfer(ctx context.Context, tx *client.Txn, from, to int, amount int64) (int64, error) {
	payer, err := b.balance(ctx, tx, from)
	if err != nil {
		return 0, err
	}
	payee, err := b.balance(ctx, tx, to)
	if err != nil {
		return 0, err
	}
	moved := min(amount, payer)
	if moved <= 0 {
		return 0, nil
	}
	if err := tx.Put(b.Key(from), []byte(strconv.FormatInt(payer-moved, 10))); err != nil {
		return 0, err
	}
	if err := tx.Put(b.Key(to), []byte(strconv.FormatInt(payee+moved, 10))); err != nil {
		return 0, err
	}
	return moved, nil
}

func (b *Bank) balance(ctx context.Context, tx *client.Txn, i int) (int64, error) {
	v, err := tx.Get(ctx, b.Key(i))
	if err != nil {
		return 0, fmt.Errorf("bank: read %s: %w", b.Key(i), err)
	}
	return parse(b.Key(i), v)
}

func parse(key, v []byte) (int64, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: account %s holds %q", ErrNotBalance, key, v)
	}
	return n, nil
}

// Balances reads every account at tx's snapshot, by name: whatever keys
// the prefix holds, so that a lost or extra account shows. A value that is
// not a balance is an error (ErrNotBalance).
func (b *Bank) Balances(ctx context.Context, tx *client.Txn) (map[string]int64, error) {
	prefix := []byte(b.cfg.Prefix)
	kvs, err := tx.Scan(ctx, prefix, client.PrefixEnd(prefix), 0)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(kvs))
	for _, kv := range kvs {
		n, err := parse(kv.Key, kv.Value)
		if err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(string(kv.Key), b.cfg.Prefix)] = n
	}
	return out, nil
}

// Holding is what one member holds, as one snapshot read it.
type Holding struct {
	Member   string // the member read, as the caller names it
	Accounts int
	Total    int64
	Negative int // accounts below zero
}

// Tally sums the balances read on member.
func Tally(member string, balances map[string]int64) Holding {
	h := Holding{Member: member, Accounts: len(balances)}
	for _, n := range balances {
		h.Total += n
		if n < 0 {
			h.Negative++
		}
	}
	return h
}

// Read reads every account through cl, at one snapshot of a View with
// opts, and tallies them as member's.
func (b *Bank) Read(ctx context.Context, cl *client.Client, member string, opts ...client.TxnOption) (Holding, error) {
	var bs map[string]int64
	err := cl.View(ctx, func(tx *client.Txn) (err error) {
		bs, err = b.Balances(ctx, tx)
		return err
	}, opts...)
	if err != nil {
		return Holding{Member: member}, fmt.Errorf("bank: read the accounts on %s: %w", member, err)
	}
	return Tally(member, bs), nil
}

// CheckHolding returns an error wrapping ErrNotHeld unless h has every
// account, their sum is the total and none is negative.
func (b *Bank) CheckHolding(h Holding) error {
	if h.Total == b.Total() && h.Accounts == b.cfg.Accounts && h.Negative == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s holds %d in %d accounts (%d negative), want %d in %d",
		ErrNotHeld, h.Member, h.Total, h.Accounts, h.Negative, b.Total(), b.cfg.Accounts)
}

// Check is the bank's invariant over members' holdings: each holds the
// total in every account, none negative. It returns the errors of
// CheckHolding joined, nil when all hold.
func (b *Bank) Check(hs []Holding) error {
	var errs []error
	for _, h := range hs {
		errs = append(errs, b.CheckHolding(h))
	}
	return errors.Join(errs...)
}
