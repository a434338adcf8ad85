package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/galenadb/galena/client"
)

// These examples need a running cluster, so they are compiled but not run.

func Example() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7001", "127.0.0.1:7002"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if err := c.Put(ctx, []byte("greeting"), []byte("hello")); err != nil {
		log.Fatal(err)
	}
	v, err := c.Get(ctx, []byte("greeting"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", v)
}

func ExampleClient_Update() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7001"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	// Move 10 from one account to another; a conflict with a concurrent
	// transfer reruns the function on a fresh snapshot.
	err = c.Update(ctx, func(tx *client.Txn) error {
		var a, b int
		for key, dst := range map[string]*int{"alice": &a, "bob": &b} {
			v, err := tx.Get(ctx, []byte(key))
			if err != nil && !errors.Is(err, client.ErrNotFound) {
				return err
			}
			fmt.Sscan(string(v), dst)
		}
		if err := tx.Put([]byte("alice"), fmt.Append(nil, a-10)); err != nil {
			return err
		}
		return tx.Put([]byte("bob"), fmt.Append(nil, b+10))
	})
	if errors.Is(err, client.ErrIndeterminate) {
		log.Print("the transfer may or may not have happened: check before retrying")
	} else if err != nil {
		log.Fatal(err)
	}
}

func ExampleClient_View() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7001"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	err = c.View(ctx, func(tx *client.Txn) error {
		kvs, err := tx.Scan(ctx, []byte("user/"), []byte("user0"), 100)
		for _, kv := range kvs {
			fmt.Printf("%s = %s\n", kv.Key, kv.Value)
		}
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
}

func ExampleTxn_Commit() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7001"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	tx, err := c.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback()
	if err := tx.Put([]byte("k"), []byte("v")); err != nil {
		log.Fatal(err)
	}
	info, err := tx.Commit(ctx)
	var conflict *client.ConflictError
	switch {
	case err == nil:
		fmt.Println("committed at seqno", info.Seqno)
	case errors.As(err, &conflict):
		fmt.Printf("not applied: %q was written at seqno %d\n", conflict.Key, conflict.Seqno)
	case errors.Is(err, client.ErrIndeterminate):
		fmt.Println("outcome unknown")
	default:
		log.Fatal(err)
	}
}

func ExampleClient_AddMember() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7001"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	err = c.AddMember(ctx, "n4", "127.0.0.1:7004")
	switch {
	case errors.Is(err, client.ErrMemberExists):
		log.Fatal(err) // the message names the id or address in use
	case errors.Is(err, client.ErrIndeterminate):
		log.Print("no answer: check the member list before retrying")
	case err != nil:
		log.Fatal(err)
	}
	m, err := c.Members(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, mb := range m.Members {
		fmt.Println(mb.ID, mb.Addr, mb.Voter, mb.ID == m.LeaderID)
	}
}

// Keep a copy of every key under a prefix in step with the cluster: read
// the prefix in a transaction, then watch after its snapshot, so that the
// events apply exactly to what was read. The watch goes on across the
// failure of the member it is on.
func ExampleClient_Watch() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	prefix := []byte("user/")

	copyOf := map[string][]byte{}
	var at uint64
	err = c.View(ctx, func(tx *client.Txn) error {
		kvs, err := tx.Scan(ctx, prefix, client.PrefixEnd(prefix), 0)
		for _, kv := range kvs {
			copyOf[string(kv.Key)] = kv.Value
		}
		at = tx.Snapshot()
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	w, err := c.WatchPrefix(ctx, prefix, at)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	for {
		e, err := w.Next()
		if errors.Is(err, client.ErrUnavailable) {
			log.Printf("no member answers; trying again after seqno %d", w.Progress())
			time.Sleep(time.Second)
			continue
		}
		if err != nil {
			log.Fatal(err) // ErrSnapshotTooOld: the members no longer hold what followed; read the prefix again
		}
		for _, ch := range e.Changes {
			if ch.Deleted {
				delete(copyOf, string(ch.Key))
			} else {
				copyOf[string(ch.Key)] = ch.Value
			}
		}
		fmt.Printf("seqno %d: %d keys\n", e.Seqno, len(copyOf))
	}
}

// A doctor may go off call only while another stays on. Under snapshot
// isolation two doctors doing this at once on different members can both
// commit (write skew: each wrote only its own key), leaving nobody on
// call. Serializable, the second commit conflicts on the key it read, and
// Update reruns it on a snapshot where the first has gone off call.
func ExampleSerializable() {
	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7001"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	goOffCall := func(me, other string) error {
		return c.Update(ctx, func(tx *client.Txn) error {
			v, err := tx.Get(ctx, []byte("oncall/"+other))
			if err != nil {
				return err
			}
			if string(v) != "on" {
				return errors.New(other + " is off call: " + me + " stays")
			}
			return tx.Put([]byte("oncall/"+me), []byte("off"))
		}, client.Serializable())
	}
	if err := goOffCall("alice", "bob"); err != nil {
		log.Print(err)
	}
}
