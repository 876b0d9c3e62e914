// The original's HTTP → gRPC flow for `make bench`: a gin handler for GET /grpc/hello that calls
// hello.HelloService/SayHello on the gRPC app (bench/grpc-go, the original's server shape) and
// answers {"data":{"name":...}}, as the original's hello_controller.go did, with what this port
// fixed on the Go side too so the comparison is fair: ONE grpc-go ClientConn shared by every
// request (the original dialled per request), over TLS trusting the dev CA that
// `go_example certs generate` makes, with per-RPC credentials sending the `user`/`password`
// metadata (root/root123, the original's customCredential).
//
// No circuit breaker: the original wrapped the call in hystrix-go, which Debian does not
// package, so this flow runs without one (ours goes through its breaker; docs/benchmarks.md).
//
// Built offline from Debian's golang-go, golang-github-gin-gonic-gin-dev and
// golang-google-grpc-dev in GOPATH mode; the two messages are encoded by hand (a codec named
// "proto", as bench/grpc-go does), so no protoc or generated code is needed.
//
//	gin-grpc ADDR GRPC_ADDR CERT_DIR
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
)

type helloRequest struct{ id int32 }

type helloResponse struct {
	id   int32
	name string
}

// codec is the client's half of bench/grpc-go's: it marshals the request and reads the answer.
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
	r, ok := v.(*helloRequest)
	if !ok {
		return nil, errors.New("unexpected message")
	}
	b := make([]byte, 0, 12)
	if r.id != 0 {
		b = appendVarint(append(b, 0x08), uint64(int64(r.id)))
	}
	return b, nil
}

func varint(data []byte, i int) (uint64, int, error) {
	var value uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if i >= len(data) {
			return 0, i, errors.New("truncated varint")
		}
		c := data[i]
		i++
		value |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return value, i, nil
		}
	}
	return 0, i, errors.New("bad varint")
}

func (codec) Unmarshal(data []byte, v interface{}) error {
	r, ok := v.(*helloResponse)
	if !ok {
		return errors.New("unexpected message")
	}
	for i := 0; i < len(data); {
		key, next, err := varint(data, i)
		if err != nil {
			return err
		}
		i = next
		switch key & 7 {
		case 0:
			value, next, err := varint(data, i)
			if err != nil {
				return err
			}
			i = next
			if key>>3 == 1 {
				r.id = int32(value)
			}
		case 2:
			n, next, err := varint(data, i)
			if err != nil {
				return err
			}
			if uint64(len(data)-next) < n {
				return errors.New("truncated field")
			}
			if key>>3 == 2 {
				r.name = string(data[next : next+int(n)])
			}
			i = next + int(n)
		default:
			return errors.New("unexpected wire type")
		}
	}
	return nil
}

// credential is the original's customCredential: the gRPC app's user and password as metadata
// on every call, over TLS only.
type credential struct{}

func (credential) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"user": "root", "password": "root123"}, nil
}

func (credential) RequireTransportSecurity() bool { return true }

func main() {
	if len(os.Args) != 4 {
		os.Stderr.WriteString("usage: gin-grpc ADDR GRPC_ADDR CERT_DIR\n")
		os.Exit(2)
	}
	dir := os.Args[3]
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		panic(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		panic("no certificate in ca.crt")
	}
	// The name the dev server certificate carries (grpc_client.tls.domain, the original's).
	config := &tls.Config{RootCAs: roots, ServerName: "www.example.com"}
	// The client certificate too, as ours presents it (bench/grpc-go does not ask for it).
	if pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")); err == nil {
		config.Certificates = []tls.Certificate{pair}
	}
	encoding.RegisterCodec(codec{})
	conn, err := grpc.Dial(os.Args[2], grpc.WithTransportCredentials(credentials.NewTLS(config)),
		grpc.WithPerRPCCredentials(credential{}))
	if err != nil {
		panic(err)
	}

	gin.SetMode(gin.ReleaseMode)
	gin.DefaultWriter = io.Discard
	app := gin.Default()
	app.GET("/grpc/hello", func(c *gin.Context) {
		id := int64(1)
		if raw, ok := c.GetQuery("id"); ok {
			if id, err = strconv.ParseInt(raw, 10, 32); err != nil {
				c.JSON(http.StatusBadRequest, gin.H{"error": "id must be an int32"})
				return
			}
		}
		// The original's hystrix timeout for SayHello (ours: grpc_client.breaker.SayHello.timeout).
		ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
		defer cancel()
		out := new(helloResponse)
		if err := conn.Invoke(ctx, "/hello.HelloService/SayHello", &helloRequest{id: int32(id)}, out); err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"error": err.Error()})
			return
		}
		c.JSON(http.StatusOK, gin.H{"data": gin.H{"name": out.name}})
	})
	if err := app.Run(os.Args[1]); err != nil {
		panic(err)
	}
}
