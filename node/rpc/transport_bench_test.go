package rpc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"

	"github.com/galenadb/galena/api/galenapb"
	"github.com/galenadb/galena/internal/cputime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// BenchmarkBatchTransport weighs the two ways to carry the Batch protocol:
// the gRPC bidirectional stream the member serves, and a lean framed
// protocol (each message a uvarint length and the protobuf bytes, straight
// on a TCP connection). Both ends run the same code over either: callers
// queue calls, one goroutine sends what is queued as one message, one
// reads messages and hands out their parts, and the member answers each
// call on a goroutine of its own. Only the transport differs. The calls
// are Gets answered with a 100-byte value, from 2, 8 or 48 callers on one
// connection (on 2 cores); cpu-µs/op is the process's CPU (client and
// member) per call.
func BenchmarkBatchTransport(b *testing.B) {
	for _, par := range []int{1, 4, 24} {
		for _, tr := range []struct {
			name  string
			start func(b *testing.B) batchClientStream
		}{{"grpc", startGRPCBatch}, {"framed", startFramedBatch}} {
			b.Run(fmt.Sprintf("callers=%d/%s", par*runtime.GOMAXPROCS(0), tr.name), func(b *testing.B) {
				benchBatchTransport(b, tr.start(b), par)
			})
		}
	}
}

func benchBatchTransport(b *testing.B, s batchClientStream, par int) {
	c := newBenchCaller(s)
	defer c.close()
	key := []byte("user/00000001")
	cpu := cputime.Used(b)
	b.SetParallelism(par)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := c.call(&galenapb.BatchCall{Request: &galenapb.BatchCall_Get{Get: &galenapb.GetRequest{Key: key}}})
			if err != nil {
				b.Error(err)
				return
			}
			if len(r.GetGet().GetValue()) != 100 {
				b.Errorf("reply %v, want a 100-byte value", r)
				return
			}
		}
	})
	b.StopTimer()
	cputime.ReportPerOp(b, cpu)
}

// batchClientStream and batchServerStream are the halves of a Batch
// stream, as gRPC's generated stream types have them.
type batchClientStream interface {
	Send(*galenapb.BatchRequest) error
	Recv() (*galenapb.BatchResponse, error)
	CloseSend() error
}

type batchServerStream interface {
	Recv() (*galenapb.BatchRequest, error)
	Send(*galenapb.BatchResponse) error
}

// serveBenchBatch is the member's side: every call on a goroutine of its
// own, the replies ready together in one message.
func serveBenchBatch(s batchServerStream) error {
	value := make([]byte, 100)
	replies := make(chan *galenapb.BatchReply, 1024)
	sent := make(chan error, 1)
	go func() {
		var err error
		for r := range replies {
			m := &galenapb.BatchResponse{Replies: []*galenapb.BatchReply{r}}
			for more := true; more; {
				select {
				case r, ok := <-replies:
					if more = ok; ok {
						m.Replies = append(m.Replies, r)
					}
				default:
					more = false
				}
			}
			if err == nil {
				err = s.Send(m)
			}
		}
		sent <- err
	}()
	var calls sync.WaitGroup
	var err error
	for {
		var req *galenapb.BatchRequest
		if req, err = s.Recv(); err != nil {
			break
		}
		for _, c := range req.GetCalls() {
			calls.Go(func() {
				replies <- &galenapb.BatchReply{Id: c.GetId(), Response: &galenapb.BatchReply_Get{
					Get: &galenapb.GetResponse{Found: true, Value: value, Snapshot: 1}}}
			})
		}
	}
	calls.Wait()
	close(replies)
	if serr := <-sent; errors.Is(err, io.EOF) {
		return serr
	}
	return err
}

// benchCaller is the client's side: callers wait for their reply by id.
type benchCaller struct {
	s    batchClientStream
	q    chan *galenapb.BatchCall
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan *galenapb.BatchReply
}

func newBenchCaller(s batchClientStream) *benchCaller {
	c := &benchCaller{s: s, q: make(chan *galenapb.BatchCall, 1024), done: make(chan struct{}),
		pending: make(map[uint64]chan *galenapb.BatchReply)}
	c.wg.Add(2)
	go c.send()
	go c.recv()
	return c
}

func (c *benchCaller) call(bc *galenapb.BatchCall) (*galenapb.BatchReply, error) {
	ch := make(chan *galenapb.BatchReply, 1)
	c.mu.Lock()
	c.next++
	bc.Id = c.next
	c.pending[bc.Id] = ch
	c.mu.Unlock()
	c.q <- bc
	r, ok := <-ch
	if !ok {
		return nil, errors.New("stream broke")
	}
	return r, nil
}

func (c *benchCaller) send() {
	defer c.wg.Done()
	for {
		var bc *galenapb.BatchCall
		select {
		case bc = <-c.q:
		case <-c.done:
			c.s.CloseSend()
			return
		}
		m := &galenapb.BatchRequest{Calls: []*galenapb.BatchCall{bc}}
		for len(c.q) > 0 && len(m.Calls) < 256 {
			m.Calls = append(m.Calls, <-c.q)
		}
		if err := c.s.Send(m); err != nil {
			return
		}
	}
}

func (c *benchCaller) recv() {
	defer c.wg.Done()
	for {
		m, err := c.s.Recv()
		if err != nil {
			c.mu.Lock()
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		for _, r := range m.GetReplies() {
			c.mu.Lock()
			ch := c.pending[r.GetId()]
			delete(c.pending, r.GetId())
			c.mu.Unlock()
			if ch != nil {
				ch <- r
			}
		}
	}
}

func (c *benchCaller) close() {
	close(c.done)
	c.wg.Wait()
}

// benchKV serves only Batch, with serveBenchBatch.
type benchKV struct {
	galenapb.UnimplementedKVServer
}

func (benchKV) Batch(s galenapb.KV_BatchServer) error { return serveBenchBatch(s) }

func startGRPCBatch(b *testing.B) batchClientStream {
	ln := benchListener(b)
	srv := grpc.NewServer()
	galenapb.RegisterKVServer(srv, benchKV{})
	go srv.Serve(ln)
	b.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	s, err := galenapb.NewKVClient(cc).Batch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func startFramedBatch(b *testing.B) batchClientStream {
	ln := benchListener(b)
	served := make(chan struct{})
	go func() {
		defer close(served)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		serveBenchBatch(&framedServer{framed{r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10)}})
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		nc.Close()
		ln.Close()
		<-served
	})
	return &framedClient{framed{r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10)}, nc}
}

func benchListener(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return ln
}

// framed carries protobuf messages, each as a uvarint length and its bytes.
type framed struct {
	r   *bufio.Reader
	w   *bufio.Writer
	out []byte
	in  []byte
}

func (f *framed) send(m proto.Message) error {
	var err error
	f.out = binary.AppendUvarint(f.out[:0], uint64(proto.Size(m)))
	if f.out, err = (proto.MarshalOptions{}).MarshalAppend(f.out, m); err != nil {
		return err
	}
	if _, err := f.w.Write(f.out); err != nil {
		return err
	}
	return f.w.Flush()
}

func (f *framed) recv(m proto.Message) error {
	n, err := binary.ReadUvarint(f.r)
	if err != nil {
		return err
	}
	if n > 4<<20 {
		return fmt.Errorf("message of %d bytes", n)
	}
	if uint64(cap(f.in)) < n {
		f.in = make([]byte, n)
	}
	f.in = f.in[:n]
	if _, err := io.ReadFull(f.r, f.in); err != nil {
		return err
	}
	return proto.Unmarshal(f.in, m)
}

type framedClient struct {
	framed
	nc net.Conn
}

func (c *framedClient) Send(m *galenapb.BatchRequest) error { return c.send(m) }

func (c *framedClient) Recv() (*galenapb.BatchResponse, error) {
	m := new(galenapb.BatchResponse)
	return m, c.recv(m)
}

func (c *framedClient) CloseSend() error { return c.nc.(*net.TCPConn).CloseWrite() }

type framedServer struct{ framed }

func (s *framedServer) Send(m *galenapb.BatchResponse) error { return s.send(m) }

func (s *framedServer) Recv() (*galenapb.BatchRequest, error) {
	m := new(galenapb.BatchRequest)
	return m, s.recv(m)
}
