// The Go stubs (package brokerv1) and an example. The repository builds and
// tests them offline against Debian's Go packages (GOPATH mode, see
// tests/e2e/clients/go.rs); in module mode run `go mod tidy` once.
module twilio-broker/client/go

go 1.19

require (
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)
