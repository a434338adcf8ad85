package node

import (
	"github.com/prometheus/client_golang/prometheus"
)

// stateCodes number the member states as Galera's wsrep_local_state does
// (1 joining, 2 donor, 3 joined, 4 synced); the others are 0.
var stateCodes = map[string]float64{StateJoining: 1, StateDonor: 2, StateJoined: 3, StateSynced: 4}

// collector exports a member's status at scrape time, one Status call per
// scrape.
type collector struct {
	n                                           *Node
	state, primary, size, applied, lag, contact *prometheus.Desc
	commits, failures                           *prometheus.Desc
}

func newCollector(n *Node) *collector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &collector{
		n:        n,
		state:    d("galena_local_state", "Member state, numbered as Galera's wsrep_local_state: 1 JOINING, 2 DONOR, 3 JOINED, 4 SYNCED, 0 otherwise (NON_PRIMARY, FAILED)."),
		primary:  d("galena_cluster_status", "1 while the member is part of a majority with a live leader (primary), else 0."),
		size:     d("galena_cluster_size", "Members in the cluster configuration, voters and non-voters."),
		applied:  d("galena_last_committed", "Highest seqno applied on this member."),
		lag:      d("galena_apply_lag", "Committed entries not yet applied on this member."),
		contact:  d("galena_last_contact_seconds", "Seconds since the leader was last heard from; 0 on the leader, -1 if never."),
		commits:  d("galena_local_commits_total", "Write-sets this member certified as committed since it started."),
		failures: d("galena_local_cert_failures_total", "Write-sets this member certified as conflicts since it started."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.primary, c.size, c.applied, c.lag, c.contact, c.commits, c.failures} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.Status()
	primary, contact := 0.0, -1.0
	if s.Primary {
		primary = 1
	}
	if s.LastContact >= 0 {
		contact = s.LastContact.Seconds()
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(c.state, stateCodes[s.State])
	gauge(c.primary, primary)
	gauge(c.size, float64(len(s.Members)))
	gauge(c.applied, float64(s.Applied))
	gauge(c.lag, float64(s.ApplyLag))
	gauge(c.contact, contact)
	ch <- prometheus.MustNewConstMetric(c.commits, prometheus.CounterValue, float64(s.Commits))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(s.CertFailures))
}
