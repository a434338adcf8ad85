#!/usr/bin/env bash
# Regenerates writesetpb/ from writeset.proto (messages only: the write-set,
# which also travels in the replicated log) and galenapb/ from galena.proto
# (the services and their messages; it imports writeset.proto). Needs protoc
# (Debian: apt-get install protobuf-compiler) and the two Go plugins,
# installed from the Go module proxy at the versions the committed code was
# made with:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
set -euo pipefail
cd "$(dirname "$0")"
protoc --go_out=writesetpb --go_opt=paths=source_relative \
  writeset.proto
protoc --go_out=galenapb --go_opt=paths=source_relative \
  --go-grpc_out=galenapb --go-grpc_opt=paths=source_relative \
  galena.proto
