// The original's socket server shape for `make bench` (--suite socket): gin in release mode with
// GET /socket_server upgraded by gorilla/websocket (CheckOrigin always true), as the original's
// internal/controller/socket_controller.go: each message is answered "recv data:" + message in
// the same frame type, and after each message the read and write deadlines move 30 s ahead (the
// original's heartbeat; it did this from two goroutines started per message, here it is done
// inline, which only makes this baseline cheaper). Pings are answered by gorilla's default
// handler; the server sends none.
//
// For the fan-out comparison it also speaks the minimal room protocol of docs/websocket.md
// (join / leave / publish) the way gorilla's chat example does it: one hub goroutine owns the
// rooms, and a connection that joins a room gets a writer goroutine fed by a buffered send
// channel (256 messages; a member whose channel is full is dropped). Connections that never join
// keep the original's single goroutine and write their echo inline.
//
// Built offline from Debian's golang-go, golang-github-gin-gonic-gin-dev and
// golang-github-gorilla-websocket-dev in GOPATH mode.
//
//	gorilla-ws -addr 127.0.0.1:30000
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"
)

const (
	heartbeat = 30 * time.Second // the original's idle deadline
	writeWait = 10 * time.Second // the chat example's write deadline
	queueSize = 256              // the chat example's send channel
)

var upGrader = websocket.Upgrader{
	CheckOrigin: func(r *http.Request) bool { return true },
}

type frame struct {
	kind int
	data []byte
}

type client struct {
	conn *websocket.Conn
	id   string
	send chan frame // nil until the first join: the writer goroutine's queue
}

type request struct {
	Type string          `json:"type"`
	Room string          `json:"room"`
	Data json.RawMessage `json:"data"`
}

type roomOp struct {
	c   *client
	req request
}

type hub struct {
	rooms      map[string]map[*client]bool
	member     map[*client]map[string]bool
	ops        chan roomOp
	unregister chan *client
}

func newHub() *hub {
	return &hub{
		rooms:      map[string]map[*client]bool{},
		member:     map[*client]map[string]bool{},
		ops:        make(chan roomOp, 1024),
		unregister: make(chan *client),
	}
}

func errorFrame(code, message string) []byte {
	b, _ := json.Marshal(map[string]interface{}{
		"type": "error", "error": map[string]interface{}{"code": code, "level": 1, "message": message},
	})
	return b
}

func (h *hub) deliver(c *client, data []byte) bool {
	select {
	case c.send <- frame{websocket.TextMessage, data}:
		return true
	default:
		// A slow consumer: out of every room, and its connection closed (the reader then
		// unregisters it, which closes the queue).
		h.drop(c)
		return false
	}
}

func (h *hub) drop(c *client) {
	for room := range h.member[c] {
		delete(h.rooms[room], c)
		if len(h.rooms[room]) == 0 {
			delete(h.rooms, room)
		}
	}
	delete(h.member, c)
	c.conn.Close()
}

func (h *hub) run() {
	for {
		select {
		case c := <-h.unregister:
			h.drop(c)
			close(c.send)
		case op := <-h.ops:
			c, req := op.c, op.req
			switch req.Type {
			case "join":
				if h.member[c] == nil {
					h.member[c] = map[string]bool{}
				}
				if h.rooms[req.Room] == nil {
					h.rooms[req.Room] = map[*client]bool{}
				}
				h.rooms[req.Room][c] = true
				h.member[c][req.Room] = true
				b, _ := json.Marshal(map[string]interface{}{"type": "joined", "room": req.Room, "members": len(h.rooms[req.Room])})
				h.deliver(c, b)
			case "leave":
				if !h.member[c][req.Room] {
					h.deliver(c, errorFrame("10011", "无权访问"))
					continue
				}
				delete(h.member[c], req.Room)
				delete(h.rooms[req.Room], c)
				if len(h.rooms[req.Room]) == 0 {
					delete(h.rooms, req.Room)
				}
				b, _ := json.Marshal(map[string]interface{}{"type": "left", "room": req.Room})
				h.deliver(c, b)
			case "publish":
				if !h.member[c][req.Room] {
					h.deliver(c, errorFrame("10011", "无权访问"))
					continue
				}
				data := req.Data
				if len(data) == 0 {
					data = json.RawMessage("null")
				}
				msg, _ := json.Marshal(struct {
					Type string          `json:"type"`
					Room string          `json:"room"`
					From string          `json:"from"`
					Data json.RawMessage `json:"data"`
				}{"message", req.Room, c.id, data})
				delivered := 0
				for m := range h.rooms[req.Room] {
					if m != c && h.deliver(m, msg) {
						delivered++
					}
				}
				b, _ := json.Marshal(map[string]interface{}{"type": "published", "room": req.Room, "delivered": delivered})
				h.deliver(c, b)
			}
		}
	}
}

// writer is the chat example's writePump: one frame per queued message.
func (c *client) writer() {
	defer c.conn.Close()
	for f := range c.send {
		c.conn.SetWriteDeadline(time.Now().Add(writeWait))
		if err := c.conn.WriteMessage(f.kind, f.data); err != nil {
			// Keep draining until the hub closes the queue.
			for range c.send {
			}
			return
		}
	}
	c.conn.WriteMessage(websocket.CloseMessage, []byte{})
}

// roomRequest is a JSON object whose type the room protocol knows.
func roomRequest(kind int, message []byte) (request, bool) {
	var req request
	if kind != websocket.TextMessage {
		return req, false
	}
	trimmed := bytes.TrimLeft(message, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return req, false
	}
	if json.Unmarshal(trimmed, &req) != nil {
		return req, false
	}
	switch req.Type {
	case "join", "leave", "publish":
		return req, req.Room != ""
	}
	return req, false
}

var lastID uint64

func socketServer(h *hub) gin.HandlerFunc {
	return func(ctx *gin.Context) {
		// The original called log.Fatalf here (any failed upgrade ended the process); a
		// benchmark server only drops that request.
		ws, err := upGrader.Upgrade(ctx.Writer, ctx.Request, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		c := &client{conn: ws, id: strconv.FormatUint(atomic.AddUint64(&lastID, 1), 10)}
		for {
			messageType, message, err := ws.ReadMessage()
			if err != nil {
				break
			}
			if req, ok := roomRequest(messageType, message); ok {
				if c.send == nil {
					c.send = make(chan frame, queueSize)
					go c.writer()
				}
				h.ops <- roomOp{c, req}
			} else {
				resData := "recv data:" + string(message)
				if c.send == nil {
					ws.WriteMessage(messageType, []byte(resData))
				} else {
					c.send <- frame{messageType, []byte(resData)}
				}
			}
			// The original's heartbeat: 30 s from the last message.
			ws.SetReadDeadline(time.Now().Add(heartbeat))
			if c.send == nil {
				ws.SetWriteDeadline(time.Now().Add(heartbeat))
			}
		}
		if c.send != nil {
			h.unregister <- c
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:30000", "listen address")
	flag.Parse()
	gin.SetMode(gin.ReleaseMode)
	gin.DefaultWriter = io.Discard
	h := newHub()
	go h.run()
	app := gin.Default()
	app.GET("/socket_server", socketServer(h))
	if err := app.Run(*addr); err != nil {
		panic(err)
	}
}
