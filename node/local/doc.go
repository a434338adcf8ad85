// Package local runs a cluster of members in this process: on loopback
// addresses whose ports the kernel picks, each member's data in a directory
// of its own, every member built by node.New as galena start builds one.
// galena demo and galena bench --local run one; the tests run one through
// package nodetest.
//
// A Cluster is not safe for concurrent use: its waits and Failed read the
// members that Stop, Restart, Join and Replace change, so call them from
// one goroutine.
package local
