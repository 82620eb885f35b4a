package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/meshentry/meshentry/internal/testutil/netns"
)

// echoService answers UnaryCall with the request's payload and FullDuplexCall with each message
// it receives, prefixed, so the test sees the backend answered and streams both ways.
type echoService struct {
	testgrpc.UnimplementedTestServiceServer
}

func (echoService) UnaryCall(_ context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	body := append([]byte("backend:"), in.GetPayload().GetBody()...)
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: body}}, nil
}

func (echoService) FullDuplexCall(s testgrpc.TestService_FullDuplexCallServer) error {
	for {
		in, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		body := append([]byte("backend:"), in.GetPayload().GetBody()...)
		if err := s.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: body}}); err != nil {
			return err
		}
	}
}

// TestCapturedGRPC sends grpc-go calls, unary and bidirectional streaming, to the VIP of a GRPC
// port: iptables redirects them to meshentry, which routes the h2c streams by :authority and
// forwards them as h2c to the endpoint.
func TestCapturedGRPC(t *testing.T) {
	if req := netns.Requirements(); req != "" {
		t.Skip(req)
	}
	// The VIP is assigned in the namespace only so its traffic stays there; iptables takes it first.
	ns := netns.New(t, "10.214.0.10/24", "10.214.0.50/24")
	ln := ns.MustListen("127.0.0.1:0")
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, echoService{})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	startCaptured(t, ns, "10.214.0.0/24", fmt.Sprintf(`
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: grpc-echo}
spec:
  hosts: [echo.grpc.internal]
  addresses: [10.214.0.50]
  ports: [{number: 50051, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {grpc: %s}}]
`, port))

	for _, authority := range []string{"echo.grpc.internal:50051", "10.214.0.50:50051"} {
		t.Run("answers unary and streaming calls with :authority "+authority, func(t *testing.T) {
			cc, err := grpc.NewClient("passthrough:///10.214.0.50:50051",
				grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithAuthority(authority),
				grpc.WithContextDialer(func(_ context.Context, addr string) (net.Conn, error) { return ns.Dial("tcp", addr) }))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client := testgrpc.NewTestServiceClient(cc)
			resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("ping")}})
			if err != nil || string(resp.GetPayload().GetBody()) != "backend:ping" {
				t.Fatalf("unary: %v, %v", resp, err)
			}
			stream, err := client.FullDuplexCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				msg := fmt.Sprintf("m%d", i)
				if err := stream.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(msg)}}); err != nil {
					t.Fatal(err)
				}
				// Each answer must come back before the next message is sent: nothing is held
				// back until the stream ends.
				got, err := stream.Recv()
				if err != nil || string(got.GetPayload().GetBody()) != "backend:"+msg {
					t.Fatalf("stream message %d: %v, %v", i, got, err)
				}
			}
			if err := stream.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != io.EOF {
				t.Fatalf("end of stream: %v, want io.EOF (grpc-status OK in the trailers)", err)
			}
		})
	}
	t.Run("refuses a call whose :authority no ServiceEntry declares", func(t *testing.T) {
		cc, err := grpc.NewClient("passthrough:///10.214.0.50:50051",
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithAuthority("unknown.grpc.internal:50051"),
			grpc.WithContextDialer(func(_ context.Context, addr string) (net.Conn, error) { return ns.Dial("tcp", addr) }))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if err == nil {
			t.Fatal("call to an undeclared authority succeeded")
		}
	})
}
