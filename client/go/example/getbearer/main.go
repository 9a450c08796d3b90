// Command getbearer asks a twilio-broker for an OAuth2 bearer token with the
// generated Go stubs (package brokerv1) and prints what a service needs to
// know about it, never the token itself:
//
//	getbearer -addr unix:/run/twilio-broker/broker.sock -credential prod-oauth
//	getbearer -addr 127.0.0.1:50051 -credential prod-oauth
//
// A service would send "Authorization: Bearer " + reply.AccessToken to
// https://api.twilio.com. Exit status 1 and the gRPC status on failure, with
// the broker's reason (google.rpc.ErrorInfo): decide on the reason, never on
// the message text.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	brokerv1 "twilio-broker/client/go/brokerv1"
)

// dial connects to "unix:/path", "host:port" or "http://host:port". On a Unix
// socket the authority is "localhost".
func dial(addr string) (*grpc.ClientConn, error) {
	if path := strings.TrimPrefix(addr, "unix:"); path != addr {
		return grpc.Dial("localhost", grpc.WithInsecure(),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			}))
	}
	return grpc.Dial(strings.TrimSuffix(strings.TrimPrefix(addr, "http://"), "/"), grpc.WithInsecure())
}

// reason is the broker's google.rpc.ErrorInfo reason on s (such as
// CREDENTIAL_NOT_FOUND or MIN_TTL_UNREACHABLE), or "" without one.
func reason(s *status.Status) string {
	for _, detail := range s.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok && info.GetDomain() == "twilio-broker" {
			return info.GetReason()
		}
	}
	return ""
}

func main() {
	addr := flag.String("addr", os.Getenv("TWILIO_BROKER_ADDR"), "broker address: unix:/path or host:port")
	credential := flag.String("credential", "prod-oauth", "name of the stored oauth_client credential")
	minTTL := flag.Uint("min-ttl", 60, "seconds the token must still be valid")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline of the call")
	flag.Parse()
	if *addr == "" {
		*addr = "127.0.0.1:50051"
	}

	conn, err := dial(*addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot reach the broker at %s: %v\n", *addr, err)
		os.Exit(1)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	reply, err := brokerv1.NewBrokerClient(conn).GetBearer(ctx, &brokerv1.GetBearerRequest{
		Credential:    *credential,
		MinTtlSeconds: uint32(*minTTL),
	})
	if err != nil {
		s := status.Convert(err)
		fmt.Fprintf(os.Stderr, "broker: %s (reason %s): %s\n", s.Code(), reason(s), s.Message())
		os.Exit(1)
	}
	out, _ := json.Marshal(map[string]interface{}{
		"account_sid":  reply.AccountSid,
		"token_type":   reply.TokenType,
		"expires_at":   reply.ExpiresAt.AsTime().Unix(),
		"token_length": len(reply.AccessToken),
	})
	fmt.Println(string(out))
}
