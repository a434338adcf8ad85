//go:build faults

package node_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/galenadb/galena/certification/apply"
	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/nodetest"
)

// Tests of the members' fault hooks (apply.Faults), which only fault builds
// have: go test -tags faults (.ci/faults runs them).

// A member that certifies differently from the others stops once the
// others' checkpoint announcements show it; they go on.
func TestDivergedMemberStops(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	c := nodetest.MakeClusterWith(t, 3, func(i int, cfg *node.Config) {
		cfg.Apply.CheckpointInterval = 16
		if i == 2 {
			cfg.Apply.Faults.DivergeAt = 20
		}
	})
	c.Leader()
	cl := newClient(t, c.Endpoints()[0])
	for i := 0; ; i++ {
		select {
		case err := <-c.Nodes[2].Fatal():
			if !errors.Is(err, apply.ErrDiverged) {
				t.Fatalf("n3 stopped with %v, want ErrDiverged", err)
			}
			if st := c.Nodes[2].Status(); st.State != node.StateFailed {
				t.Fatalf("n3 is %s after diverging", st.State)
			}
			putN(t, cl, "g", 5)
			c.Stop(2)
			c.Start(2)
			requireStaysOut(t, c, 2, "diverged")
			putN(t, cl, "h", 5)
			return
		default:
		}
		if i > 2000 {
			t.Fatal("n3 did not notice it diverged")
		}
		if err := cl.Put(ctxT(t), []byte(fmt.Sprintf("f%d", i)), []byte("v")); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
}
