package txn

import (
	"time"

	"github.com/galenadb/galena/certification"
	"github.com/prometheus/client_golang/prometheus"
)

// Values of the outcome label of galena_commit_duration_seconds.
const (
	outcomeCommitted = "committed"
	outcomeConflict  = "conflict"
	outcomeError     = "error"
)

// metrics are the Service's commit metrics; Service is a
// prometheus.Collector of them.
type metrics struct {
	duration      *prometheus.HistogramVec
	byOutcome     map[string]prometheus.Observer // duration's series, looked up once
	inflight      prometheus.GaugeFunc
	inflightBytes prometheus.GaugeFunc
	overloaded    prometheus.Counter
	noSpace       prometheus.Counter
	watchers      prometheus.GaugeFunc
	watchEvents   prometheus.Counter
	watchersCut   prometheus.Counter
}

func newMetrics(inflight, inflightBytes, watches func() int) *metrics {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "galena_commit_duration_seconds",
			Help: "Commit latency on this member, from admission to answer, by outcome: committed, " +
				"conflict (certification failed) or error (refused, or outcome unknown).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 17), // 0.5ms to 33s
		}, []string{"outcome"}),
		inflight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "galena_inflight_commits",
			Help: "Commits admitted on this member and not yet answered (at most MaxInflightCommits).",
		}, func() float64 { return float64(inflight()) }),
		inflightBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "galena_inflight_commit_bytes",
			Help: "Bytes of the write-sets of the commits admitted on this member and not yet answered (at most MaxInflightBytes, or one write-set).",
		}, func() float64 { return float64(inflightBytes()) }),
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "galena_commits_overloaded_total",
			Help: "Commits refused at once because MaxInflightCommits commits, or MaxInflightBytes bytes of write-sets, were in flight on this member.",
		}),
		noSpace: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "galena_commits_no_space_total",
			Help: "Commits refused at once because this member's data was over its space quota (--quota-bytes).",
		}),
		watchers: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "galena_watchers",
			Help: "Watches open on this member.",
		}, func() float64 { return float64(watches()) }),
		watchEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "galena_watch_events_sent_total",
			Help: "Events (one committed write-set's changes to a watched range each) sent to watches on this member.",
		}),
		watchersCut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "galena_watchers_cut_total",
			Help: "Watches this member ended because they fell behind the commits they follow (their buffer filled up), " +
				"it stopped holding their history (a state transfer) or it was cut off from the majority.",
		}),
	}
	m.byOutcome = map[string]prometheus.Observer{}
	for _, o := range []string{outcomeCommitted, outcomeConflict, outcomeError} {
		m.byOutcome[o] = m.duration.WithLabelValues(o) // every series exists from the start
	}
	return m
}

func (m *metrics) observeCommit(o certification.Outcome, err error, d time.Duration) {
	outcome := outcomeError
	switch {
	case err != nil:
	case o.Verdict == certification.Commit:
		outcome = outcomeCommitted
	case o.Verdict == certification.Conflict:
		outcome = outcomeConflict
	}
	m.byOutcome[outcome].Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (s *Service) Describe(ch chan<- *prometheus.Desc) {
	s.m.duration.Describe(ch)
	s.m.inflight.Describe(ch)
	s.m.inflightBytes.Describe(ch)
	s.m.overloaded.Describe(ch)
	s.m.noSpace.Describe(ch)
	s.m.watchers.Describe(ch)
	s.m.watchEvents.Describe(ch)
	s.m.watchersCut.Describe(ch)
}

// Collect implements prometheus.Collector: the member's commit latency
// (galena_commit_duration_seconds), commits in flight
// (galena_inflight_commits) and the bytes of their write-sets
// (galena_inflight_commit_bytes), and commits refused as overload
// (galena_commits_overloaded_total) or for want of space
// (galena_commits_no_space_total); and the watches open (galena_watchers),
// the events sent to them (galena_watch_events_sent_total) and the
// watches cut (galena_watchers_cut_total).
func (s *Service) Collect(ch chan<- prometheus.Metric) {
	s.m.duration.Collect(ch)
	s.m.inflight.Collect(ch)
	s.m.inflightBytes.Collect(ch)
	s.m.overloaded.Collect(ch)
	s.m.noSpace.Collect(ch)
	s.m.watchers.Collect(ch)
	s.m.watchEvents.Collect(ch)
	s.m.watchersCut.Collect(ch)
}
