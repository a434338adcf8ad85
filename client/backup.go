package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"google.golang.org/grpc"
)

// ErrBadBackup means a backup arrived incomplete or altered: it ended
// before the member said it was done, or its size or SHA-256 differs from
// what the member sent.
var ErrBadBackup = errors.New("client: backup incomplete or corrupt")

// BackupInfo describes a backup: the state after Seqno, reached at the
// Raft log index Index, in Bytes bytes whose SHA-256 is SHA256.
type BackupInfo struct {
	Member string // the address it came from
	Seqno  uint64
	Index  uint64
	Bytes  int64
	SHA256 [sha256.Size]byte
}

// Backup streams a consistent copy of the state of the data member at addr,
// at one seqno, into w, and checks it arrived whole (size and SHA-256).
// The member goes on serving meanwhile. progress, if not nil, is called
// with the bytes written so far after each part. Like Status it probes the
// member on a connection of its own; it needs the admin role when the
// member verifies clients. galena restore seeds a new cluster from the
// copy.
func (c *Client) Backup(ctx context.Context, addr string, w io.Writer, progress func(written int64)) (BackupInfo, error) {
	info := BackupInfo{Member: addr}
	sum := sha256.New()
	err := c.probe(ctx, addr, func(ctx context.Context, conn *grpc.ClientConn) error {
		// The member's chunks are received whatever Config.MaxCallSize.
		recv := grpc.MaxCallRecvMsgSize(max(c.cfg.MaxCallSize, api.MaxBackupChunk+64<<10))
		stream, err := galenapb.NewClusterClient(conn).Backup(ctx, &galenapb.BackupRequest{}, recv)
		if err != nil {
			return err
		}
		for {
			m, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: the stream ended after %d bytes without the member's last message", ErrBadBackup, info.Bytes)
			}
			if err != nil {
				return err
			}
			if m.GetDone() {
				info.Seqno, info.Index = m.GetSeqno(), m.GetIndex()
				copy(info.SHA256[:], sum.Sum(nil))
				if m.GetBytes() != uint64(info.Bytes) || !bytes.Equal(m.GetSha256(), info.SHA256[:]) {
					return fmt.Errorf("%w: received %d bytes with SHA-256 %x, the member sent %d with %x",
						ErrBadBackup, info.Bytes, info.SHA256, m.GetBytes(), m.GetSha256())
				}
				return nil
			}
			if _, err := w.Write(m.GetData()); err != nil {
				return fmt.Errorf("client: backup: write: %w", err)
			}
			sum.Write(m.GetData())
			info.Bytes += int64(len(m.GetData()))
			if progress != nil {
				progress(info.Bytes)
			}
		}
	})
	if err != nil {
		return BackupInfo{}, err
	}
	return info, nil
}
