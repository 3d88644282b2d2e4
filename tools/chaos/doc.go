// Package chaos holds the chaos test of the whole platform (issue 16): the
// five services as separate processes, two replicas of each, over a
// three-node NATS cluster with R3 streams, while replicas are killed
// (SIGKILL) at random and NATS nodes are stopped and started again. The
// package has no code of its own; see chaos_test.go and README.md.
package chaos
