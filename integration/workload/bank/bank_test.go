package bank

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node/nodetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*Config)
		want string // "" for valid
	}{
		{"default", func(*Config) {}, ""},
		{"no prefix", func(c *Config) { c.Prefix = "" }, "empty Prefix"},
		{"one account", func(c *Config) { c.Accounts = 1 }, "1 Accounts"},
		{"negative initial", func(c *Config) { c.Initial = -1 }, "negative Initial"},
		{"zero transfer", func(c *Config) { c.MaxTransfer = 0 }, "MaxTransfer 0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			_, err := New(cfg)
			if (err == nil) != (tt.want == "") || err != nil && (!errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("New = %v; want %q", err, tt.want)
			}
		})
	}
}

func TestPick(t *testing.T) {
	b, err := New(Config{Prefix: "p/", Accounts: 3, Initial: 1, MaxTransfer: 4})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[[2]int]bool{}
	for range 1000 {
		from, to, amount := b.Pick(rng)
		if from == to || from < 0 || to < 0 || from >= 3 || to >= 3 || amount < 1 || amount > 4 {
			t.Fatalf("Pick = %d, %d, %d", from, to, amount)
		}
		seen[[2]int{from, to}] = true
	}
	if len(seen) != 6 {
		t.Fatalf("%d ordered pairs drawn, want all 6", len(seen))
	}
	if got := string(b.Key(7)); got != "p/0007" {
		t.Fatalf("Key(7) = %q", got)
	}
}

func TestCheck(t *testing.T) {
	b, err := New(Config{Prefix: "p/", Accounts: 4, Initial: 10, MaxTransfer: 1})
	if err != nil {
		t.Fatal(err)
	}
	held := Tally("n1", map[string]int64{"0000": 5, "0001": 15, "0002": 10, "0003": 10})
	for _, tt := range []struct {
		name string
		h    Holding
		want string // "" when it holds
	}{
		{"held", held, ""},
		{"lost money", Tally("n2", map[string]int64{"0000": 5, "0001": 10, "0002": 10, "0003": 10}), "n2 holds 35 in 4 accounts (0 negative), want 40 in 4"},
		{"lost account", Tally("n3", map[string]int64{"0000": 20, "0001": 10, "0002": 10}), "n3 holds 40 in 3 accounts"},
		{"negative", Tally("n4", map[string]int64{"0000": -5, "0001": 25, "0002": 10, "0003": 10}), "(1 negative)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := b.Check([]Holding{held, tt.h})
			if (err == nil) != (tt.want == "") || err != nil && (!errors.Is(err, ErrNotHeld) || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Check = %v; want %q", err, tt.want)
			}
		})
	}
}

// Concurrent transfers through every member, some for more than the payer
// holds, keep the total on every member.
func TestTransfersKeepTotal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := nodetest.MakeCluster(t, 3)
	c.Leader()
	b, err := New(Config{Prefix: "acct/", Accounts: 5, Initial: 3, MaxTransfer: 5})
	if err != nil {
		t.Fatal(err)
	}
	clients := make([]*client.Client, 3)
	for i, ep := range c.Endpoints() {
		if clients[i], err = client.New(client.Config{Endpoints: []string{ep}}); err != nil {
			t.Fatal(err)
		}
		defer clients[i].Close()
	}
	ctx := t.Context()
	if err := b.Load(ctx, clients[0]); err != nil {
		t.Fatal(err)
	}
	c.EnsureSame() // every client is a new session: let its member apply the accounts
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 0))
			for range 20 {
				from, to, amount := b.Pick(rng)
				err := cl.Update(ctx, func(tx *client.Txn) error {
					_, err := b.Transfer(ctx, tx, from, to, amount)
					return err
				})
				if err != nil {
					t.Errorf("transfer: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	c.EnsureSame()
	var hs []Holding
	for i, cl := range clients {
		h, err := b.Read(ctx, cl, c.Nodes[i].ID(), client.Linearizable())
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if err := b.Check(hs); err != nil {
		t.Fatal(err)
	}
}
