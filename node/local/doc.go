// Package local runs a cluster of members in this process: on loopback
// addresses whose ports the kernel picks, each member's data in a directory
// of its own, every member built by node.New as galena start builds one.
// galena demo and galena bench --local run one; the tests run one through
// package nodetest.
//
// A Cluster's methods that start or stop members are not safe for
// concurrent use with each other; its waits and Failed may run alongside
// them.
package local
