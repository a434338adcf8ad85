package groupcomm

import (
	"github.com/hashicorp/raft"
)

// boundedTransport bounds by bytes what one AppendEntries carries, which
// raft bounds by count only (MaxAppendEntries): a request whose entries
// exceed maxBytes is sent as consecutive smaller ones to the same follower,
// each no larger than maxBytes unless it holds a single entry. So a
// follower that catches up on large entries decodes at most
// max(maxBytes, one entry) per request, not MaxAppendEntries of them.
//
// Each part is a request raft could have sent itself with a smaller
// MaxAppendEntries: it names the previous part's last entry as its
// PrevLogEntry and carries the leader's commit index, which the follower
// caps at its own last entry. The caller sees one request: the last part's
// response when every part succeeded, otherwise the first failing part's
// error or response. A failure after earlier parts succeeded makes raft
// resend from the original request on, and the follower skips the entries
// it already holds.
type boundedTransport struct {
	donorTransport
	maxBytes int
}

// raft enables pre-vote and closes the transport on shutdown only for a
// transport that has those methods; the wrapper keeps them.
var (
	_ raft.WithPreVote = boundedTransport{}
	_ raft.WithClose   = boundedTransport{}
)

// AppendEntries sends args in parts of at most t.maxBytes.
func (t boundedTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest,
	resp *raft.AppendEntriesResponse) error {
	return appendInParts(args, resp, t.maxBytes, func(req *raft.AppendEntriesRequest, r *raft.AppendEntriesResponse) error {
		return t.donorTransport.AppendEntries(id, target, req, r)
	})
}

// appendInParts sends args through send in parts of at most maxBytes, one
// after the other, and stops at the first part that fails or is refused:
// resp is then that part's response, else the last part's.
func appendInParts(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse, maxBytes int,
	send func(*raft.AppendEntriesRequest, *raft.AppendEntriesResponse) error) error {
	parts := splitEntries(args.Entries, maxBytes)
	if parts == nil {
		return send(args, resp)
	}
	for i := range parts {
		req := appendPart(args, parts, i)
		var r raft.AppendEntriesResponse // a fresh one per part: each is decoded whole
		if err := send(req, &r); err != nil {
			return err
		}
		*resp = r
		if !r.Success || r.Term > req.Term {
			return nil // raft handles the refusal as if of its own request
		}
	}
	return nil
}

// AppendEntriesPipeline returns a pipeline that sends requests in parts
// too: raft's pipeline carries whatever was appended since its last send,
// which can be many entries when the follower is slow.
func (t boundedTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.donorTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return boundedPipeline{AppendPipeline: p, maxBytes: t.maxBytes}, nil
}

// boundedPipeline sends each part as a request of its own. Raft consumes
// every part's response from the pipeline and advances the follower's
// progress by each, in order, exactly as for requests it made itself.
type boundedPipeline struct {
	raft.AppendPipeline
	maxBytes int
}

func (p boundedPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	parts := splitEntries(args.Entries, p.maxBytes)
	if parts == nil {
		return p.AppendPipeline.AppendEntries(args, resp)
	}
	var f raft.AppendFuture
	for i := range parts {
		r := resp
		if i < len(parts)-1 {
			r = new(raft.AppendEntriesResponse)
		}
		var err error
		if f, err = p.AppendPipeline.AppendEntries(appendPart(args, parts, i), r); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// entryBytes is what an entry adds to a request, near enough: its data and
// extensions, which are all that can be large.
func entryBytes(l *raft.Log) int { return len(l.Data) + len(l.Extensions) }

// splitEntries cuts entries into runs of at most maxBytes, each of at least
// one entry, or returns nil when they fit in one request as they are.
func splitEntries(entries []*raft.Log, maxBytes int) [][]*raft.Log {
	total := 0
	for _, l := range entries {
		total += entryBytes(l)
	}
	if total <= maxBytes || len(entries) < 2 {
		return nil
	}
	var parts [][]*raft.Log
	start, size := 0, 0
	for i, l := range entries {
		n := entryBytes(l)
		if i > start && size+n > maxBytes {
			parts = append(parts, entries[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(parts, entries[start:])
}

// appendPart is the request carrying parts[i] of args: the same header,
// term and commit index, following the entry before the part.
func appendPart(args *raft.AppendEntriesRequest, parts [][]*raft.Log, i int) *raft.AppendEntriesRequest {
	req := *args
	req.Entries = parts[i]
	if i > 0 {
		prev := parts[i-1][len(parts[i-1])-1]
		req.PrevLogEntry, req.PrevLogTerm = prev.Index, prev.Term
	}
	return &req
}
