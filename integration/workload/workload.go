package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/integration/checker"
	"github.com/galenadb/galena/integration/workload/bank"
)

// workload is one kind of Jepsen-style test: what the clients do and how the
// history is checked. A workload's methods are safe for concurrent use (Step
// is called by every client at once).
type workload interface {
	// Name is the workload's name, as New and Names know it.
	Name() string
	// Setup prepares the cluster's data before the clients start, through
	// cl, a client of every member.
	Setup(ctx context.Context, cl *client.Client) error
	// Step runs one operation with cl (a client bound to one member), and
	// returns it with its payload, outcome (see classify) and error text;
	// Run records its process, member and times.
	Step(ctx context.Context, cl *client.Client, rng *rand.Rand) checker.Op
	// Final takes the final reads on the member of s, once the cluster
	// converged, recording each through s.Do. A read that fails is an error.
	Final(ctx context.Context, s *session) ([]checker.Op, error)
	// Check checks the clients' history h against the final state.
	Check(h []checker.Op, final finalState) (checker.Result, error)
}

// follower is a workload that also follows the cluster while its clients
// run, with goroutines and clients of its own (the watch workload's
// watchers). Run starts them once the setup reached every member, and
// stops them before it returns, whatever failed; the workload's Final may
// stop them before.
type follower interface {
	// Follow starts following c's members; what it starts runs until Stop
	// or until ctx ends.
	Follow(ctx context.Context, c Cluster) error
	// Stop stops what Follow started, waits for it and closes its clients.
	// It may be called more than once, and without Follow.
	Stop()
}

// finalState is what Run gathered once the clients stopped and the cluster
// converged.
type finalState struct {
	// Reads are the final reads of every member (workload.Final), in member
	// order.
	Reads []checker.Op
	// Contents are every member's keys and values, by member index (nil for
	// a member not running, never nil for one that was read).
	Contents [][]client.KV
	// Dir is where a checker may write artefacts (such as a visualization).
	Dir string
}

// session is a client bound to one member, with the process id and member
// id its operations are recorded under.
type session struct {
	Client  *client.Client
	Process int
	Node    string
	rec     *recorder
}

// Do records the operation fn runs: it is invoked now and completes, when
// fn returns, with the outcome, payload and error text of the Op fn
// returns; its process, member and times are the session's and the
// recorder's.
func (s *session) Do(fn func() checker.Op) checker.Op {
	inv := s.rec.invoke(s.Process, s.Node, nil)
	return inv.completeOp(fn())
}

// Names are the workloads New knows, in the default order.
var Names = []string{checker.WorkloadBank, checker.WorkloadAppend, checker.WorkloadSet, checker.WorkloadRegister,
	checker.WorkloadWatch, AppendSerializable}

// New returns a new workload, with default settings, by name.
func newWorkload(name string) (workload, error) {
	switch name {
	case checker.WorkloadBank:
		return newBankWorkload(bank.DefaultConfig())
	case checker.WorkloadAppend:
		return &appendWorkload{}, nil
	case AppendSerializable:
		return &appendWorkload{Serializable: true}, nil
	case checker.WorkloadSet:
		return &setWorkload{}, nil
	case checker.WorkloadRegister:
		return &registerWorkload{}, nil
	case checker.WorkloadWatch:
		return &watchWorkload{}, nil
	}
	return nil, fmt.Errorf("workload: unknown workload %q (want one of %s)", name, strings.Join(Names, ", "))
}

// errNotFound reports whether err is the client's not-found.
func errNotFound(err error) bool { return errors.Is(err, client.ErrNotFound) }
