package rpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/galenadb/galena/api/galenapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A backup goes out in messages of at most backupChunk bytes, even when
// the member writes more at once, and ends with its position, size and
// checksum; an arbitrator refuses to be backed up.
func TestBackupStream(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (5*backupChunk/2)/16)
	addr := serveCluster(t, newTestCluster(t, "n1", &fakeMember{backup: data}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []byte
	var last *galenapb.BackupChunk
	err := dialInsecure(ctx, addr, func(ctx context.Context, c galenapb.ClusterClient) error {
		stream, err := c.Backup(ctx, &galenapb.BackupRequest{})
		if err != nil {
			return err
		}
		for {
			m, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if len(m.GetData()) > backupChunk {
				t.Errorf("a message of %d bytes, want at most %d", len(m.GetData()), backupChunk)
			}
			got = append(got, m.GetData()...)
			last = m
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(got, data) || !last.GetDone() || last.GetSeqno() != 9 || last.GetIndex() != 7 ||
		last.GetBytes() != uint64(len(data)) || !bytes.Equal(last.GetSha256(), sum[:]) {
		t.Fatalf("received %d bytes (equal %v), last message %v; want %d bytes at seqno 9, index 7, with their SHA-256",
			len(got), bytes.Equal(got, data), last, len(data))
	}

	arb := serveCluster(t, newTestCluster(t, "arb", &fakeMember{}))
	err = dialInsecure(ctx, arb, func(ctx context.Context, c galenapb.ClusterClient) error {
		stream, err := c.Backup(ctx, &galenapb.BackupRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		return err
	})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("backup of an arbitrator: %v, want FailedPrecondition", err)
	}
}
