// The original's gRPC server shape for `make bench`: grpc-go with TLS and HelloService.SayHello
// checking the user/password metadata inside the handler, as the original's
// internal/server/grpc.go did. Built offline from Debian's golang-go and golang-google-grpc-dev
// in GOPATH mode; the two messages are encoded by hand (a codec named "proto"), so no protoc or
// generated code is needed.
//
//	grpc-hello ADDR CERT KEY
package main

import (
	"context"
	"errors"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type helloRequest struct{ id int32 }

type helloResponse struct {
	id   int32
	name string
}

type codec struct{}

func (codec) Name() string { return "proto" }

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func (codec) Marshal(v interface{}) ([]byte, error) {
	r, ok := v.(*helloResponse)
	if !ok {
		return nil, errors.New("unexpected message")
	}
	b := make([]byte, 0, 16+len(r.name))
	if r.id != 0 {
		b = appendVarint(append(b, 0x08), uint64(int64(r.id)))
	}
	if r.name != "" {
		b = appendVarint(append(b, 0x12), uint64(len(r.name)))
		b = append(b, r.name...)
	}
	return b, nil
}

func (codec) Unmarshal(data []byte, v interface{}) error {
	r, ok := v.(*helloRequest)
	if !ok {
		return errors.New("unexpected message")
	}
	for i := 0; i < len(data); {
		key := data[i]
		i++
		var value uint64
		for shift := uint(0); i < len(data); shift += 7 {
			c := data[i]
			i++
			value |= uint64(c&0x7f) << shift
			if c < 0x80 {
				break
			}
		}
		if key == 0x08 {
			r.id = int32(value)
		} else if key&7 != 0 {
			return errors.New("unexpected field")
		}
	}
	return nil
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func sayHello(_ interface{}, ctx context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
	in := new(helloRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "missing credentials")
	}
	if first(md, "user") != "root" || first(md, "password") != "root123" {
		return nil, status.Error(codes.Unauthenticated, "invaild token")
	}
	name := "hello gRPC"
	if in.id == 1 {
		name = "hello world"
	}
	return &helloResponse{id: in.id, name: name}, nil
}

var helloService = grpc.ServiceDesc{
	ServiceName: "hello.HelloService",
	HandlerType: (*interface{})(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "SayHello", Handler: sayHello}},
	Streams:     []grpc.StreamDesc{},
	Metadata:    "hello/hello.proto",
}

func main() {
	if len(os.Args) != 4 {
		os.Stderr.WriteString("usage: grpc-hello ADDR CERT KEY\n")
		os.Exit(2)
	}
	encoding.RegisterCodec(codec{})
	creds, err := credentials.NewServerTLSFromFile(os.Args[2], os.Args[3])
	if err != nil {
		panic(err)
	}
	server := grpc.NewServer(grpc.Creds(creds))
	server.RegisterService(&helloService, struct{}{})
	listener, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		panic(err)
	}
	if err := server.Serve(listener); err != nil {
		panic(err)
	}
}
