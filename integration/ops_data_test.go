package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/harness"
)

// dataSet is a bulk data set: n values of size bytes under prefix/, each a
// pure function of its key, so it can be checked without keeping it.
type dataSet struct {
	prefix string
	n      int
	size   int
	perTxn int // values per transaction
}

// bulkValueSize is the size of a bulk value: 64 KiB, well under the 1 MiB
// limit, so a transaction carries several.
const bulkValueSize = 64 << 10

// newDataSet is a data set of about mb megabytes (at least one value) of
// 64 KiB values, eight to a transaction (512 KiB write-sets).
func newDataSet(prefix string, mb int) dataSet {
	return dataSet{prefix: prefix, n: max(1, mb<<20/bulkValueSize), size: bulkValueSize, perTxn: 8}
}

// Bytes is the size of the data set's values.
func (d dataSet) Bytes() int64 { return int64(d.n) * int64(d.size) }

// MB is Bytes in megabytes.
func (d dataSet) MB() float64 { return float64(d.Bytes()) / (1 << 20) }

func (d dataSet) key(i int) []byte { return fmt.Appendf(nil, "%s/%07d", d.prefix, i) }

// value is key's value: pseudo-random bytes seeded by the key, so storage
// cannot compress them away.
func (d dataSet) value(key []byte) []byte {
	h := fnv.New64a()
	h.Write(key)
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], h.Sum64())
	v := make([]byte, d.size)
	rand.NewChaCha8(seed).Read(v)
	return v
}

// load writes the data set through cl with writers concurrent writers.
func (d dataSet) load(ctx context.Context, cl *client.Client, writers int) error {
	var next atomic.Int64
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for {
				first := int(next.Add(int64(d.perTxn))) - d.perTxn
				if first >= d.n || ctx.Err() != nil {
					return
				}
				if err := d.write(ctx, cl, first); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// write commits values first.. of one transaction.
func (d dataSet) write(ctx context.Context, cl *client.Client, first int) error {
	err := idempotent(ctx, func() error {
		return cl.Update(ctx, func(tx *client.Txn) error {
			for i := first; i < min(d.n, first+d.perTxn); i++ {
				k := d.key(i)
				if err := tx.Put(k, d.value(k)); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("write %s..: %w", d.key(first), err)
	}
	return nil
}

// idempotentTries bounds idempotent's attempts.
const idempotentTries = 5

// idempotent runs a write that may safely be made twice (it puts values
// that are a pure function of their keys) and makes it again when its
// outcome was ErrIndeterminate, as a client may: a bulk load on short Raft
// timeouts can lose its leader, which leaves the commits in flight open.
func idempotent(ctx context.Context, write func() error) error {
	var err error
	for range idempotentTries {
		if err = write(); !errors.Is(err, client.ErrIndeterminate) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// verifyPageSize is how many values one scan of verify reads (1 MiB).
const verifyPageSize = 16

// verify reads the whole data set back from member i alone, a page at a
// time, and checks that it holds exactly the data set's keys and values.
func (d dataSet) verify(ctx context.Context, c *harness.Cluster, i int) error {
	cl, err := c.Client(c.Endpoint(i))
	if err != nil {
		return err
	}
	defer cl.Close()
	start, end := []byte(d.prefix+"/"), []byte(d.prefix+"0") // '0' follows '/'
	n := 0
	for {
		var kvs []client.KV
		err := cl.View(ctx, func(tx *client.Txn) (err error) {
			kvs, err = tx.Scan(ctx, start, end, verifyPageSize)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: scan from %q: %w", c.ID(i), start, err)
		}
		for _, kv := range kvs {
			if want := d.key(n); !bytes.Equal(kv.Key, want) {
				return fmt.Errorf("%s: key %q where %q belongs", c.ID(i), kv.Key, want)
			}
			if !bytes.Equal(kv.Value, d.value(kv.Key)) {
				return fmt.Errorf("%s: wrong value of %q (%d bytes)", c.ID(i), kv.Key, len(kv.Value))
			}
			n++
		}
		if len(kvs) < verifyPageSize {
			break
		}
		start = append(bytes.Clone(kvs[len(kvs)-1].Key), 0)
	}
	if n != d.n {
		return fmt.Errorf("%s holds %d values of %s/, want %d", c.ID(i), n, d.prefix, d.n)
	}
	return nil
}
