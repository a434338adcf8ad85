package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/galenadb/galena/client"
	"github.com/galenadb/galena/internal/netem"
	"github.com/galenadb/galena/node"
	"github.com/galenadb/galena/node/local"
)

// galena demo --geo: a shop with users in Europe and Asia. Members eu and
// asia keep data; me, a third place between them, holds an arbitrator (or,
// with --third data, a data member). Every connection between members runs
// through a simulated long link (package netem); clients sit next to their
// region's member. Users change their profiles (the address in one region,
// the phone in the other, sometimes the same field in both at once), read
// profiles, check out (take an item from stock) and move between regions.

// The demo's regions, in member order.
var geoRegions = []string{"eu", "asia", "me"}

// geoOptions are the flags of `galena demo --geo`.
type geoOptions struct {
	Delays string // one-way delays between the regions: eu-asia=100ms,...
	Third  string // what runs in me: arbitrator or data
	Leader string // the member that should lead (--leader-preference), "writes" (--leader-follows-writes) or "" for wherever elections put it
	// EUShare is the fraction of the clients in eu; the others are in asia.
	EUShare float64
	Users   int
	Items   int
	Stock   int // of each item at the start
}

const defaultGeoDelays = "eu-asia=100ms,eu-me=40ms,asia-me=60ms"

// geoDelays are one-way delays between regions, by index in geoRegions.
type geoDelays [3][3]time.Duration

// parseGeoDelays reads "a-b=d,..." naming each pair of regions once.
func parseGeoDelays(s string) (geoDelays, error) {
	var d geoDelays
	var set [3][3]bool
	index := func(name string) int { return slices.Index(geoRegions, strings.TrimSpace(name)) }
	for part := range strings.SplitSeq(s, ",") {
		pair, v, ok := strings.Cut(part, "=")
		a, b, ok2 := strings.Cut(pair, "-")
		if !ok || !ok2 {
			return d, usagef("--delays: %q: want region-region=duration, e.g. eu-asia=100ms", part)
		}
		i, j := index(a), index(b)
		if i < 0 || j < 0 || i == j {
			return d, usagef("--delays: %q: regions are eu, asia and me, two different ones", part)
		}
		dur, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || dur < 0 || dur > 10*time.Second {
			return d, usagef("--delays: %q: want a duration in 0..10s", part)
		}
		if set[i][j] {
			return d, usagef("--delays: %s-%s is given twice", geoRegions[i], geoRegions[j])
		}
		d[i][j], d[j][i], set[i][j], set[j][i] = dur, dur, true, true
	}
	for i := range geoRegions {
		for j := i + 1; j < len(geoRegions); j++ {
			if !set[i][j] {
				return d, usagef("--delays: no delay given for %s-%s", geoRegions[i], geoRegions[j])
			}
		}
	}
	return d, nil
}

// validate checks o and returns its delays.
func (o geoOptions) validate() (geoDelays, error) {
	switch {
	case o.Third != "arbitrator" && o.Third != "data":
		return geoDelays{}, usagef("--third must be arbitrator or data, got %q", o.Third)
	case o.Leader != "" && o.Leader != "writes" && !slices.Contains(geoRegions, o.Leader):
		return geoDelays{}, usagef("--leader must be eu, asia, me or writes, got %q", o.Leader)
	case o.EUShare < 0 || o.EUShare > 1:
		return geoDelays{}, usagef("--eu-share must be in 0..1, got %v", o.EUShare)
	case o.Leader == "me" && o.Third == "arbitrator":
		return geoDelays{}, usagef("--leader me needs --third data: an arbitrator hands leadership over")
	case o.Users < 1 || o.Users > 10000:
		return geoDelays{}, usagef("--users must be in 1..10000, got %d", o.Users)
	case o.Items < 1 || o.Items > 10000:
		return geoDelays{}, usagef("--items must be in 1..10000, got %d", o.Items)
	}
	return parseGeoDelays(o.Delays)
}

// floor is the least a commit taken by the member of region r can wait
// when leader leads: a round trip from the leader to its nearest quorum,
// plus, from a follower, the trip to the leader and back.
func (d geoDelays) floor(r, leader int) time.Duration {
	var rtts []time.Duration
	for v := range geoRegions {
		if v != leader {
			rtts = append(rtts, 2*d[leader][v])
		}
	}
	slices.Sort(rtts)
	f := rtts[len(geoRegions)/2-1] // a majority of 3: the leader and the nearest other
	if r != leader {
		f += 2 * d[r][leader]
	}
	return f
}

// dialer returns member from's dialer: each connection to another member
// is delayed as the link between their regions.
func (d geoDelays) dialer(from int, addrs []string) func(string, time.Duration) (net.Conn, error) {
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return nil, err
		}
		to := slices.Index(addrs, addr)
		if to < 0 {
			return c, nil
		}
		return netem.Delay(c, d[from][to], d[to][from]), nil
	}
}

// profile is a user's record. Changes lists every change made to it, by
// id, so that a lost update shows as a missing id.
type profile struct {
	Address string   `json:"address"`
	Phone   string   `json:"phone"`
	Changes []string `json:"changes"`
}

func profileKey(u int) []byte { return fmt.Appendf(nil, "shop/profile/%04d", u) }
func stockKey(i int) []byte   { return fmt.Appendf(nil, "shop/stock/%04d", i) }

// regionStats is what one region's clients measured.
type regionStats struct {
	commits                map[string][]time.Duration // latencies of the commit calls, by the member that led as each ended
	reads, linReads, moves []time.Duration            // latencies: snapshot reads, linearizable reads, a moved user's first read
	conflicts, errors      int
	firstError             error
	missed                 int // moved users who did not see their own change
	acked                  map[int][]string
	maybe                  map[int][]string // changes whose outcome is unknown
	checkouts, uncertain   map[int]int      // items taken, acknowledged and unknown
}

func newRegionStats() *regionStats {
	return &regionStats{commits: map[string][]time.Duration{}, acked: map[int][]string{}, maybe: map[int][]string{},
		checkouts: map[int]int{}, uncertain: map[int]int{}}
}

func (s *regionStats) fail(err error) {
	s.errors++
	if s.firstError == nil {
		s.firstError = err
	}
}

func (s *regionStats) merge(o *regionStats) {
	for l, lat := range o.commits {
		s.commits[l] = append(s.commits[l], lat...)
	}
	s.reads, s.linReads, s.moves = append(s.reads, o.reads...), append(s.linReads, o.linReads...), append(s.moves, o.moves...)
	s.conflicts, s.missed = s.conflicts+o.conflicts, s.missed+o.missed
	s.errors += o.errors
	if s.firstError == nil {
		s.firstError = o.firstError
	}
	for u, ids := range o.acked {
		s.acked[u] = append(s.acked[u], ids...)
	}
	for u, ids := range o.maybe {
		s.maybe[u] = append(s.maybe[u], ids...)
	}
	for i, n := range o.checkouts {
		s.checkouts[i] += n
	}
	for i, n := range o.uncertain {
		s.uncertain[i] += n
	}
}

// shopper is one client loop of a region.
type shopper struct {
	region, id int
	o          geoOptions
	cl         *client.Client // of its region's member
	away       *client.Client // of the other region's member
	st         *regionStats
	leader     *atomic.Pointer[string] // the member leading now, as last seen
	rnd        *rand.Rand
	n          int
}

// run runs the shop's operations until ctx ends or, finishing the one in
// flight, until the time is up.
func (s *shopper) run(ctx context.Context, until time.Time) {
	for ctx.Err() == nil && time.Now().Before(until) {
		var err error
		switch p := s.rnd.IntN(100); {
		case p < 40:
			_, _, err = s.change(ctx, s.cl)
		case p < 60:
			err = s.checkout(ctx)
		case p < 90:
			err = s.read(ctx, false)
		case p < 95:
			err = s.read(ctx, true)
		default:
			err = s.move(ctx)
		}
		if err != nil && ctx.Err() == nil {
			s.st.fail(err)
			pause(ctx, errorPause)
		}
	}
}

// user picks a user: three in four live in this region.
func (s *shopper) user() int {
	u := s.rnd.IntN(max(s.o.Users/2, 1)) * 2
	if s.rnd.IntN(4) == 0 {
		u++ // the other region's
	}
	return (u + s.region) % s.o.Users
}

// change changes a user's profile through cl: eu writes addresses, asia
// phones, and one change in ten writes the other region's field. It
// retries conflicts and returns the change's id once acknowledged.
func (s *shopper) change(ctx context.Context, cl *client.Client) (user int, id string, err error) {
	u := s.user()
	s.n++
	id = fmt.Sprintf("%s-%d-%d", geoRegions[s.region], s.id, s.n)
	phone := s.region == 1
	if s.rnd.IntN(10) == 0 {
		phone = !phone
	}
	err = s.commit(ctx, cl, func(tx *client.Txn) error {
		p, err := readProfile(ctx, tx, u)
		if err != nil {
			return err
		}
		if phone {
			p.Phone = id
		} else {
			p.Address = id
		}
		p.Changes = append(p.Changes, id)
		v, err := json.Marshal(p)
		if err != nil {
			return err
		}
		return tx.Put(profileKey(u), v)
	})
	switch {
	case err == nil:
		s.st.acked[u] = append(s.st.acked[u], id)
	case errors.Is(err, client.ErrIndeterminate):
		s.st.maybe[u] = append(s.st.maybe[u], id)
	}
	return u, id, err
}

// errSoldOut ends a checkout that found no stock left: it commits nothing.
var errSoldOut = errors.New("sold out")

// checkout takes one of an item from stock, if any is left.
func (s *shopper) checkout(ctx context.Context) error {
	item := s.rnd.IntN(s.o.Items)
	err := s.commit(ctx, s.cl, func(tx *client.Txn) error {
		v, err := tx.Get(ctx, stockKey(item))
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(string(v))
		switch {
		case err != nil:
			return err
		case n <= 0:
			return errSoldOut
		}
		return tx.Put(stockKey(item), strconv.AppendInt(nil, int64(n-1), 10))
	})
	switch {
	case err == nil:
		s.st.checkouts[item]++
	case errors.Is(err, client.ErrIndeterminate):
		s.st.uncertain[item]++
	case errors.Is(err, errSoldOut):
		return nil
	}
	return err
}

// commit runs fn in transactions on cl until one commits, counting the
// conflicts and timing each commit call that succeeds.
func (s *shopper) commit(ctx context.Context, cl *client.Client, fn func(tx *client.Txn) error) error {
	for {
		began := time.Now()
		committed, err := commitOnce(ctx, cl, fn)
		switch {
		case err != nil:
			return err
		case committed:
			l := *s.leader.Load()
			s.st.commits[l] = append(s.st.commits[l], time.Since(began))
			return nil
		}
		s.st.conflicts++
	}
}

// read reads a profile at a snapshot of the region's member.
// With linearizable, it sees every commit acknowledged before it began,
// wherever: it asks the leader.
func (s *shopper) read(ctx context.Context, linearizable bool) error {
	u := s.rnd.IntN(s.o.Users)
	var opts []client.TxnOption
	if linearizable {
		opts = append(opts, client.Linearizable())
	}
	began := time.Now()
	_, err := s.cl.Get(ctx, profileKey(u), opts...)
	if err != nil && !errors.Is(err, client.ErrNotFound) {
		return err
	}
	if linearizable {
		s.st.linReads = append(s.st.linReads, time.Since(began))
	} else {
		s.st.reads = append(s.st.reads, time.Since(began))
	}
	return nil
}

// move is a user who changes their profile here, then travels: their
// session (Seen) goes with them, and their next read, in another region,
// must show their change.
func (s *shopper) move(ctx context.Context) error {
	u, id, err := s.change(ctx, s.cl)
	if err != nil {
		return err
	}
	there := s.away
	there.Observe(s.cl.Seen())
	began := time.Now()
	var p profile
	err = there.View(ctx, func(tx *client.Txn) (err error) {
		p, err = readProfile(ctx, tx, u)
		return err
	})
	if err != nil {
		return err
	}
	s.st.moves = append(s.st.moves, time.Since(began))
	if !slices.Contains(p.Changes, id) {
		s.st.missed++
	}
	return nil
}

// readProfile reads user u's profile in tx; an absent one is empty.
func readProfile(ctx context.Context, tx *client.Txn, u int) (profile, error) {
	var p profile
	v, err := tx.Get(ctx, profileKey(u))
	if errors.Is(err, client.ErrNotFound) {
		return p, nil
	}
	if err != nil {
		return p, err
	}
	return p, json.Unmarshal(v, &p)
}

// geoReport is what `galena demo --geo` measured and checked.
type geoReport struct {
	Delays   geoDelays
	Leaders  []string // the members that led while the shop ran, in turn
	Regions  []*regionStats
	Seqno    uint64 // applied by every data member when checked
	Changes  int    // profile changes acknowledged
	Lost     []string
	Unknown  int      // profile changes of unknown outcome
	Checkout int      // checkouts acknowledged
	Stock    []string // items whose stock does not add up, with why
	// FlowPaused is how long flow control held commits back, summed over
	// the members (each counts while it leads).
	FlowPaused time.Duration
}

// runGeo is `galena demo --geo`.
func runGeo(ctx context.Context, o demoOptions, g geoOptions, out, errOut io.Writer) (geoReport, error) {
	if err := o.validate(true); err != nil {
		return geoReport{}, err
	}
	delays, err := g.validate()
	if err != nil {
		return geoReport{}, err
	}
	inEU := int(math.Round(float64(o.Clients) * g.EUShare))
	if inEU < 1 || inEU >= o.Clients {
		return geoReport{}, usagef("--clients %d with --eu-share %v leaves a region without clients: each needs at least one", o.Clients, g.EUShare)
	}
	rep := geoReport{Delays: delays}
	errOut = &lockedWriter{w: errOut}
	c, err := startGeo(errOut, o.BasePort, delays, g)
	if err != nil {
		return rep, err
	}
	defer c.close(errOut)
	fmt.Fprintf(out, "galena demo --geo: eu %s, asia %s, me %s (%s); one-way delays %s\n",
		c.Endpoints()[0], c.Endpoints()[1], c.Endpoints()[2], g.Third, delays)
	setup, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	if err := c.WaitSynced(setup); err != nil {
		return rep, err
	}
	if g.Leader != "" && g.Leader != "writes" {
		if err := c.WaitLeader(setup, g.Leader); err != nil {
			return rep, err
		}
	}
	shoppers, closeAll, err := newShoppers(c.Endpoints(), o.Clients, inEU, g)
	if err != nil {
		return rep, err
	}
	defer closeAll()
	for i := range g.Items {
		if err := shoppers[0].cl.Put(setup, stockKey(i), strconv.AppendInt(nil, int64(g.Stock), 10)); err != nil {
			return rep, fmt.Errorf("load stock: %w", err)
		}
	}
	if _, err := c.WaitSame(setup); err != nil {
		return rep, err
	}
	leader := c.watchLeader(&rep.Leaders)
	defer leader.stop()
	fmt.Fprintf(errOut, "running the shop for %v with %d clients in eu and %d in asia...\n", o.Duration, inEU, len(shoppers)-inEU)
	began := time.Now()
	var wg sync.WaitGroup
	for _, s := range shoppers {
		s.leader = &leader.now
		wg.Go(func() { s.run(ctx, began.Add(o.Duration)) })
	}
	wg.Wait()
	leader.stop()
	rep.Regions = []*regionStats{newRegionStats(), newRegionStats()}
	for _, s := range shoppers {
		rep.Regions[s.region].merge(s.st)
	}
	verify, cancel := context.WithTimeout(context.WithoutCancel(ctx), setupTimeout)
	defer cancel()
	if err := rep.check(verify, c, g); err != nil {
		return rep, err
	}
	rep.print(out)
	if len(rep.Lost) > 0 || len(rep.Stock) > 0 {
		return rep, runError{fmt.Errorf("demo: %d acknowledged profile changes lost, %d items' stock wrong", len(rep.Lost), len(rep.Stock))}
	}
	if o.Exit || ctx.Err() != nil {
		return rep, nil
	}
	return rep, c.Wait(ctx)
}

// startGeo starts eu, asia and me on loopback, each connection between them
// delayed as their regions' link, with the timeouts of a wide-area network.
func startGeo(logOut io.Writer, basePort int, delays geoDelays, g geoOptions) (*localCluster, error) {
	return startLocalWith(logOut, local.Config{Members: len(geoRegions), IDs: geoRegions, BasePort: basePort, Member: func(i int, cfg *node.Config) {
		var addrs []string
		for _, p := range cfg.InitialCluster {
			addrs = append(addrs, p.Addr)
		}
		cfg.PeerDial = delays.dialer(i, addrs)
		cfg.Arbitrator = g.Third == "arbitrator" && geoRegions[i] == "me"
		cfg.Group = node.WANConfig().Group
		switch g.Leader {
		case "writes":
			cfg.Group.LeaderFollowsWrites = true
		case "":
		default:
			cfg.Group.LeaderPreference = []string{g.Leader}
		}
	}})
}

// leaderWatch follows which member leads while the shop runs.
type leaderWatch struct {
	now  atomic.Pointer[string]
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// watchLeader starts following the leader, every 50 ms, appending each
// new one to seen, until stop.
func (c *localCluster) watchLeader(seen *[]string) *leaderWatch {
	w := &leaderWatch{done: make(chan struct{})}
	look := func() {
		l := c.LeaderID()
		if l == "" {
			l = "none"
		}
		if len(*seen) == 0 || (*seen)[len(*seen)-1] != l {
			*seen = append(*seen, l)
		}
		w.now.Store(&l)
	}
	look()
	w.wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-t.C:
				look()
			}
		}
	})
	return w
}

// stop stops following and returns once the watcher has; seen is then
// final.
func (w *leaderWatch) stop() {
	w.once.Do(func() { close(w.done) })
	w.wg.Wait()
}

// newShoppers returns n shoppers, inEU of them in eu and the rest in asia,
// each with a client of its region's member and one of the other's.
func newShoppers(eps []string, n, inEU int, g geoOptions) ([]*shopper, func(), error) {
	regions := make([]int, n)
	var pairs []string // each shopper's region's member, then the other's
	for i := range regions {
		if i >= inEU {
			regions[i] = 1
		}
		pairs = append(pairs, eps[regions[i]], eps[1-regions[i]])
	}
	cls, err := pinnedClients(len(pairs), pairs, client.Config{})
	if err != nil {
		return nil, nil, err
	}
	var shoppers []*shopper
	for i, region := range regions {
		shoppers = append(shoppers, &shopper{region: region, id: i, o: g, cl: cls[2*i], away: cls[2*i+1],
			st: newRegionStats(), rnd: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))})
	}
	return shoppers, func() { closeClients(cls) }, nil
}

// check waits until every data member has applied the same seqno, then
// reads every profile and item from each of them: every acknowledged
// change must be there, and each item's stock must be what it started
// with less the checkouts (those of unknown outcome may or may not count).
func (r *geoReport) check(ctx context.Context, c *localCluster, g geoOptions) error {
	seq, err := c.WaitSame(ctx)
	if err != nil {
		return err
	}
	r.Seqno = seq
	for _, nd := range c.Nodes {
		r.FlowPaused += nd.Status().FlowControl.Paused
	}
	all := newRegionStats()
	for _, st := range r.Regions {
		all.merge(st)
	}
	for _, ids := range all.acked {
		r.Changes += len(ids)
	}
	for _, ids := range all.maybe {
		r.Unknown += len(ids)
	}
	for _, n := range all.checkouts {
		r.Checkout += n
	}
	for i, nd := range c.Nodes {
		if nd.Status().Arbitrator {
			continue
		}
		cl, err := client.New(client.Config{Endpoints: []string{c.Endpoints()[i]}})
		if err != nil {
			return err
		}
		defer cl.Close()
		cl.Observe(seq)
		err = cl.View(ctx, func(tx *client.Txn) error {
			for u := range g.Users {
				p, err := readProfile(ctx, tx, u)
				if err != nil {
					return err
				}
				for _, id := range all.acked[u] {
					if !slices.Contains(p.Changes, id) {
						r.Lost = append(r.Lost, fmt.Sprintf("%s: user %d change %s", nd.ID(), u, id))
					}
				}
			}
			for item := range g.Items {
				v, err := tx.Get(ctx, stockKey(item))
				if err != nil {
					return err
				}
				n, err := strconv.Atoi(string(v))
				if err != nil {
					r.Stock = append(r.Stock, fmt.Sprintf("%s: item %d holds %q, not a count", nd.ID(), item, v))
					continue
				}
				hi := g.Stock - all.checkouts[item]
				if n > hi || n < hi-all.uncertain[item] || n < 0 {
					r.Stock = append(r.Stock, fmt.Sprintf("%s: item %d holds %d, want %d (less up to %d of unknown outcome)", nd.ID(), item, n, hi, all.uncertain[item]))
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read back from %s: %w", nd.ID(), err)
		}
	}
	return nil
}

func (d geoDelays) String() string {
	var parts []string
	for i := range geoRegions {
		for j := i + 1; j < len(geoRegions); j++ {
			parts = append(parts, fmt.Sprintf("%s-%s %v", geoRegions[i], geoRegions[j], d[i][j]))
		}
	}
	return strings.Join(parts, ", ")
}

func (r *geoReport) print(w io.Writer) {
	fmt.Fprintf(w, "leader      %s\n", strings.Join(r.Leaders, ", then "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tLEADER\tCOMMITS\tP50\tP99\tFLOOR\tCONFLICTS\tREADS\tP50\tP99\tERRORS")
	for i, st := range r.Regions {
		slices.Sort(st.reads)
		first := true
		for _, l := range r.leaders() {
			lat := st.commits[l]
			if len(lat) == 0 {
				continue
			}
			slices.Sort(lat)
			floor := "-"
			if li := slices.Index(geoRegions, l); li >= 0 {
				floor = msf(r.Delays.floor(i, li))
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s", geoRegions[i], l, len(lat), msf(rank(lat, 0.5)), msf(rank(lat, 0.99)), floor)
			if first {
				fmt.Fprintf(tw, "\t%d\t%d\t%s\t%s\t%d", st.conflicts, len(st.reads), msf(rank(st.reads, 0.5)), msf(rank(st.reads, 0.99)), st.errors)
			}
			fmt.Fprintln(tw)
			first = false
		}
	}
	tw.Flush()
	var lin []string
	for i, st := range r.Regions {
		slices.Sort(st.linReads)
		l := fmt.Sprintf("%s %d", geoRegions[i], len(st.linReads))
		if len(st.linReads) > 0 {
			l += fmt.Sprintf(", p50 %s p99 %s", msf(rank(st.linReads, 0.5)), msf(rank(st.linReads, 0.99)))
		}
		lin = append(lin, l)
	}
	fmt.Fprintf(w, "lin. reads  %s (each asks the leader, which checks with a majority that it still leads)\n", strings.Join(lin, "; "))
	fmt.Fprintf(w, "flow        commits held back %v in all (flow control)\n", r.FlowPaused.Round(time.Millisecond))
	var moves []time.Duration
	missed := 0
	for _, st := range r.Regions {
		moves, missed = append(moves, st.moves...), missed+st.missed
		if st.firstError != nil {
			fmt.Fprintf(w, "first error %v\n", st.firstError)
		}
	}
	slices.Sort(moves)
	fmt.Fprintf(w, "moved       %d users read their profile in the other region: %d missed their own change; that read took p50 %s p99 %s\n",
		len(moves), missed, msf(rank(moves, 0.5)), msf(rank(moves, 0.99)))
	fmt.Fprintf(w, "profiles    %d changes acknowledged, %d lost (%d of unknown outcome)\n", r.Changes, len(r.Lost), r.Unknown)
	for _, l := range r.Lost {
		fmt.Fprintf(w, "  LOST %s\n", l)
	}
	fmt.Fprintf(w, "stock       %d checkouts acknowledged, %d items wrong\n", r.Checkout, len(r.Stock))
	for _, s := range r.Stock {
		fmt.Fprintf(w, "  WRONG %s\n", s)
	}
	fmt.Fprintf(w, "applied     seqno %d on every data member, digests equal\n", r.Seqno)
}

// leaders are the members that led, each once, in order.
func (r *geoReport) leaders() []string {
	var ls []string
	for _, l := range r.Leaders {
		if !slices.Contains(ls, l) {
			ls = append(ls, l)
		}
	}
	return ls
}

// msf formats d in milliseconds.
func msf(d time.Duration) string { return strconv.FormatFloat(ms(d), 'f', 1, 64) + "ms" }
