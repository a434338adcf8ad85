// Package nodetest runs in-process Galena clusters for tests: the clusters
// of package local, whose failures fail the test, with the waits and
// checks tests make of them.
package nodetest
