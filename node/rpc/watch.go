package rpc

import (
	"context"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/txn"
	"google.golang.org/protobuf/proto"
)

// maxWatchMessage is the size a Watch response is cut at, between events:
// an event larger than it goes alone.
const maxWatchMessage = 1 << 20

// Watch streams the committed changes to a range (see txn.Service.Watch).
// Once Closing is closed the stream ends with SHUTTING_DOWN, and the client
// goes on watching elsewhere.
func (s *KV) Watch(req *galenapb.WatchRequest, stream galenapb.KV_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	closing := make(chan struct{})
	go func() {
		select {
		case <-s.Closing:
			close(closing)
			cancel()
		case <-ctx.Done():
		}
	}()
	err := s.svc.Watch(ctx, req.GetStart(), req.GetEnd(), req.GetAfter(), req.GetMinSeqno(),
		func(events []txn.Event, progress uint64) error { return sendEvents(stream, events, progress) })
	select {
	case <-closing:
		return toStatus(txn.ErrShuttingDown)
	default:
		return toStatus(err)
	}
}

// sendEvents sends events in messages of about maxWatchMessage, the last
// one with progress.
func sendEvents(stream galenapb.KV_WatchServer, events []txn.Event, progress uint64) error {
	resp := &galenapb.WatchResponse{}
	size := 0
	for _, e := range events {
		pe := &galenapb.WatchEvent{Seqno: e.Seqno, Changes: make([]*galenapb.Change, len(e.Changes))}
		for i, c := range e.Changes {
			pe.Changes[i] = &galenapb.Change{Key: c.Key, Value: c.Value, Delete: c.Delete}
		}
		n := proto.Size(pe)
		if len(resp.Events) > 0 && size+n > maxWatchMessage {
			resp.Progress = resp.Events[len(resp.Events)-1].GetSeqno()
			if err := stream.Send(resp); err != nil {
				return err
			}
			resp, size = &galenapb.WatchResponse{}, 0
		}
		resp.Events, size = append(resp.Events, pe), size+n
	}
	resp.Progress = progress
	return stream.Send(resp)
}
