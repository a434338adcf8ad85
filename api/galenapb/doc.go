// Package galenapb is generated from api/galena.proto by api/generate.sh:
// the KV and Cluster gRPC services and their messages. Members serve them
// (node/rpc); Go programs call them through package client.
package galenapb
