package rpc

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"hash"

	"github.com/galenadb/galena/api"
	"github.com/galenadb/galena/api/galenapb"
	"go.uber.org/zap"
)

// backupChunk is the most data one Backup message carries.
const backupChunk = api.MaxBackupChunk

// Backup streams a consistent copy of the member's state (see
// groupcomm.Group.Backup) in messages of up to backupChunk bytes, then a
// last one with the copy's position, size and SHA-256. The copy pins the
// state while it is sent; the member goes on serving.
func (c *Cluster) Backup(_ *galenapb.BackupRequest, stream galenapb.Cluster_BackupServer) error {
	out := &chunkSender{stream: stream, sum: sha256.New()}
	w := bufio.NewWriterSize(out, backupChunk)
	at, err := c.m.Backup(w)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		c.cfg.Logger.Warn("backup failed", zap.Int64("bytes_sent", out.n), zap.Error(err))
		return toStatus(err)
	}
	c.cfg.Logger.Info("backup sent", zap.Uint64("seqno", at.Seqno), zap.Uint64("index", at.Index), zap.Int64("bytes", out.n))
	return stream.Send(&galenapb.BackupChunk{Done: true, Seqno: at.Seqno, Index: at.Index,
		Bytes: uint64(out.n), Sha256: out.sum.Sum(nil)})
}

// chunkSender sends what is written to it as Backup messages of at most
// backupChunk bytes.
type chunkSender struct {
	stream galenapb.Cluster_BackupServer
	sum    hash.Hash
	n      int64
}

func (s *chunkSender) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		part := p[:min(len(p), backupChunk)]
		// A copy: p is the writer's buffer, reused once Write returns,
		// and gRPC may read a sent message later.
		if err := s.stream.Send(&galenapb.BackupChunk{Data: bytes.Clone(part)}); err != nil {
			return written, err
		}
		s.sum.Write(part)
		s.n += int64(len(part))
		written += len(part)
		p = p[len(part):]
	}
	return written, nil
}
