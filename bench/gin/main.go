// The original's HTTP server shape for `make bench`: gin.Default() (logger + recovery, as the
// original's cmd/http.go) in release mode, answering GET /hello with the same JSON.
// Built offline from Debian's golang-go and golang-github-gin-gonic-gin-dev in GOPATH mode.
package main

import (
	"io"
	"net/http"
	"os"

	"github.com/gin-gonic/gin"
)

func main() {
	addr := "127.0.0.1:8082"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	gin.SetMode(gin.ReleaseMode)
	gin.DefaultWriter = io.Discard
	app := gin.Default()
	app.GET("/hello", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"hello": "world，golang", "env": "release", "user": ""})
	})
	if err := app.Run(addr); err != nil {
		panic(err)
	}
}
