package node_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/node"
)

// Over its quota, a member refuses at once every commit that puts a value,
// with a message that says what to do, while it serves reads and deletes;
// once under again it takes commits by itself.
func TestQuotaRefusesPutsUntilUnder(t *testing.T) {
	c := cluster(t, 1)
	cl := newClient(t, c.Endpoints()...)
	ctx := ctxT(t)
	if err := cl.Put(ctx, []byte("kept"), []byte("v")); err != nil {
		t.Fatal(err)
	}

	node.SetQuota(c.Nodes[0], 1) // every data directory is over a byte
	var err error
	c.WaitFor(30*time.Second, "a put refused for want of space", func() bool {
		err = cl.Put(ctx, []byte("more"), []byte("v"))
		return errors.Is(err, client.ErrNoSpace)
	})
	for _, want := range []string{"over its quota of 1 B", "--quota-bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if v, err := cl.Get(ctx, []byte("kept")); err != nil || string(v) != "v" {
		t.Fatalf("Get over the quota = %q, %v; want v", v, err)
	}
	if err := cl.Delete(ctx, []byte("kept")); err != nil {
		t.Fatalf("Delete over the quota: %v", err)
	}

	node.SetQuota(c.Nodes[0], 1<<50)
	c.WaitFor(30*time.Second, "puts taken again once under the quota", func() bool {
		err = cl.Put(ctx, []byte("more"), []byte("v"))
		return err == nil
	})
}
