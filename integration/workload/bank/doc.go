// Package bank is the bank-transfer workload: accounts under a key prefix,
// transfers between two of them that keep the total, and the check that a
// member holds that total with no balance below zero. It reaches a cluster
// through package client alone and runs no loop of its own, so that galena
// demo, galena bench and the fault tests, each with its own way of driving
// clients and counting, run the same workload.
//
// A Bank is safe for concurrent use: it holds only its Config.
package bank
