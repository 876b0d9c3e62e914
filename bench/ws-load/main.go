// The WebSocket load client of `make bench` (--suite socket), the same for every server measured.
// Each run prints one JSON line of results on stdout (progress and failures go to stderr; a failed
// run exits 1 with {"error": ...} on stdout).
//
//	ws-load hold   -url ws://127.0.0.1:PORT/socket_server -pid PID [-conns 10000] [-settle 10s]
//	    N connections held open with ping frames: the server's VmRSS before and after, per connection.
//	ws-load echo   -url ... -pid PID [-conns 100] [-duration 8s] [-warmup 2s] [-size 32]
//	    closed loops (a text message, then its "recv data:" reply): messages/s, RTT percentiles and
//	    the server's CPU time (utime+stime) per message.
//	ws-load fanout -url ... -pid PID [-conns 10000] [-publishes 20] [-interval 200ms]
//	    N members join room "bench"; one more member publishes {"t": send time} K times; the
//	    delivery latency of every message (one process, one monotonic clock, sends and receives).
//
// Connections are dialled by -dial-concurrency workers, retrying transient failures (refused,
// reset, 503) with backoff; every connection gets a ping right after its handshake and then one
// every -ping (spread evenly), and a reader that consumes pongs and the server's pings. The
// open-files limit is raised by the caller (bench/run.py), not here.
//
// Built offline from Debian's golang-go and golang-github-gorilla-websocket-dev in GOPATH mode.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

var base = time.Now() // the one monotonic clock of send and receive times

func now() int64 { return int64(time.Since(base)) }

type common struct {
	url         string
	pid         int
	conns       int
	concurrency int
	ping        time.Duration
	clkTck      float64
	attempts    int
}

func flags(name string, defConns int) (*flag.FlagSet, *common) {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	c := &common{}
	fs.StringVar(&c.url, "url", "", "ws://HOST:PORT/socket_server")
	fs.IntVar(&c.pid, "pid", 0, "the server's process id (RSS and CPU from /proc)")
	fs.IntVar(&c.conns, "conns", defConns, "connections")
	fs.IntVar(&c.concurrency, "dial-concurrency", 32, "handshakes in flight")
	fs.DurationVar(&c.ping, "ping", 10*time.Second, "ping frame interval per connection")
	fs.Float64Var(&c.clkTck, "clk-tck", 100, "clock ticks per second of /proc/PID/stat")
	fs.IntVar(&c.attempts, "dial-attempts", 20, "attempts per connection before giving up")
	return fs, c
}

func fail(format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(os.Stderr, "ws-load:", msg)
	b, _ := json.Marshal(map[string]string{"error": msg})
	fmt.Println(string(b))
	os.Exit(1)
}

func emit(v map[string]interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		fail("encode: %v", err)
	}
	fmt.Println(string(b))
}

var rssRe = regexp.MustCompile(`VmRSS:\s+(\d+) kB`)

// rssKB is the VmRSS of a process.
func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		fail("read status of %d: %v", pid, err)
	}
	m := rssRe.FindSubmatch(b)
	if m == nil {
		fail("no VmRSS for %d", pid)
	}
	v, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return v
}

// cpuTicks is utime+stime of a process ("self" for this one).
func cpuTicks(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		fail("read stat of %s: %v", pid, err)
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	s, _ := strconv.ParseInt(fields[12], 10, 64)
	return u + s
}

type conn struct {
	ws    *websocket.Conn
	pongs int64 // atomic
	alive int32 // atomic: 1 while its reader runs
}

type pool struct {
	c       *common
	dialer  *websocket.Dialer
	mu      sync.Mutex
	conns   []*conn
	retries int64
	readErr int64 // readers that ended before the run did
	closing int32
	stop    chan struct{}
}

func newPool(c *common) *pool {
	return &pool{c: c, stop: make(chan struct{}), dialer: &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}}
}

func (p *pool) dialOne() (*websocket.Conn, error) {
	var last error
	delay := 20 * time.Millisecond
	for attempt := 0; attempt < p.c.attempts; attempt++ {
		ws, resp, err := p.dialer.Dial(p.c.url, nil)
		if err == nil {
			return ws, nil
		}
		if resp != nil {
			err = fmt.Errorf("%v (HTTP %d)", err, resp.StatusCode)
		}
		// Every failure is retried a bounded number of times: on the loopback they are
		// transient (a full accept queue, a reset handshake, a 503 at the connection limit).
		last = err
		atomic.AddInt64(&p.retries, 1)
		time.Sleep(delay)
		if delay < 2*time.Second {
			delay *= 2
		}
	}
	return nil, last
}

// open dials n connections; onMessage (may be nil) gets every data message a reader receives,
// with its receive time.
func (p *pool) open(n int, onMessage func(c *conn, at int64, data []byte)) {
	jobs := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := 0; w < p.c.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				ws, err := p.dialOne()
				if err != nil {
					errs <- err
					continue
				}
				c := p.add(ws, onMessage)
				c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second))
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err, ok := <-errs; ok {
		fail("%d of %d connections failed, e.g. %v", len(errs)+1, n, err)
	}
}

func (p *pool) add(ws *websocket.Conn, onMessage func(c *conn, at int64, data []byte)) *conn {
	c := &conn{ws: ws, alive: 1}
	ws.SetPongHandler(func(string) error {
		atomic.AddInt64(&c.pongs, 1)
		return nil
	})
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				atomic.StoreInt32(&c.alive, 0)
				if atomic.LoadInt32(&p.closing) == 0 {
					atomic.AddInt64(&p.readErr, 1)
					fmt.Fprintln(os.Stderr, "ws-load: connection lost:", err)
				}
				return
			}
			if onMessage != nil {
				onMessage(c, now(), data)
			}
		}
	}()
	return c
}

// pinger sends each connection a ping every interval, spread evenly over it.
func (p *pool) pinger() {
	const tick = 20 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	next := 0
	var owed float64
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		conns := p.conns
		p.mu.Unlock()
		if len(conns) == 0 {
			continue
		}
		owed += float64(len(conns)) * float64(tick) / float64(p.c.ping)
		for ; owed >= 1; owed-- {
			next %= len(conns)
			conns[next].ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second))
			next++
		}
	}
}

func (p *pool) pongedAll() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if atomic.LoadInt64(&c.pongs) == 0 {
			return false
		}
	}
	return true
}

func (p *pool) aliveCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		n += int(atomic.LoadInt32(&c.alive))
	}
	return n
}

func (p *pool) pongCount() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, c := range p.conns {
		n += atomic.LoadInt64(&c.pongs)
	}
	return n
}

func (p *pool) closeAll() {
	atomic.StoreInt32(&p.closing, 1)
	close(p.stop)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.ws.Close()
	}
}

func waitFor(what string, timeout time.Duration, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			fail("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func percentile(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)))
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return float64(sorted[i]) / 1e6 // ns → ms
}

func hold(args []string) {
	fs, c := flags("hold", 10000)
	settle := fs.Duration("settle", 10*time.Second, "held this long after every connection got a pong")
	fs.Parse(args)
	if c.url == "" || c.pid == 0 {
		fail("hold needs -url and -pid")
	}
	before := rssKB(c.pid)
	p := newPool(c)
	go p.pinger()
	t0 := time.Now()
	p.open(c.conns, nil)
	dial := time.Since(t0).Seconds()
	waitFor("a pong on every connection", time.Minute, p.pongedAll)
	time.Sleep(*settle)
	// Three samples a second apart; the last one counts (the others show it settled).
	samples := []int64{}
	for i := 0; i < 3; i++ {
		if i > 0 {
			time.Sleep(time.Second)
		}
		samples = append(samples, rssKB(c.pid))
	}
	alive := p.aliveCount()
	pongs := p.pongCount()
	p.closeAll()
	if alive != c.conns {
		fail("only %d of %d connections stayed open", alive, c.conns)
	}
	after := samples[len(samples)-1]
	emit(map[string]interface{}{
		"test": "hold", "conns": c.conns, "rss_before_kb": before, "rss_after_kb": after,
		"rss_samples_kb": samples, "bytes_per_conn": float64(after-before) * 1024 / float64(c.conns),
		"dial_s": dial, "dial_retries": p.retries, "pongs": pongs, "held_s": time.Since(t0).Seconds(),
		"lost": atomic.LoadInt64(&p.readErr),
	})
}

func echo(args []string) {
	fs, c := flags("echo", 100)
	duration := fs.Duration("duration", 8*time.Second, "measured time")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured time first")
	size := fs.Int("size", 32, "message bytes (plain text, not JSON)")
	fs.Parse(args)
	if c.url == "" || c.pid == 0 {
		fail("echo needs -url and -pid")
	}
	// No pool readers and no pings here: each loop reads its own replies (and answers the
	// server's pings inside ReadMessage), and the traffic never stops.
	p := newPool(c)
	wss := make([]*websocket.Conn, 0, c.conns)
	for i := 0; i < c.conns; i++ {
		ws, err := p.dialOne()
		if err != nil {
			fail("dial: %v", err)
		}
		wss = append(wss, ws)
	}
	var measuring, stopping int32
	var count, badReply int64
	rtts := make([][]int64, c.conns)
	var wg sync.WaitGroup
	for i, ws := range wss {
		wg.Add(1)
		go func(i int, ws *websocket.Conn) {
			defer wg.Done()
			msg := []byte(fmt.Sprintf("bench %06d ", i))
			for len(msg) < *size {
				msg = append(msg, 'x')
			}
			msg = msg[:*size]
			want := append([]byte("recv data:"), msg...)
			local := make([]int64, 0, 1<<16)
			for atomic.LoadInt32(&stopping) == 0 {
				t := now()
				if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
					fail("write: %v", err)
				}
				kind, reply, err := ws.ReadMessage()
				if err != nil {
					fail("read: %v", err)
				}
				if kind != websocket.TextMessage || !bytes.Equal(reply, want) {
					atomic.AddInt64(&badReply, 1)
				}
				if atomic.LoadInt32(&measuring) == 1 {
					atomic.AddInt64(&count, 1)
					local = append(local, now()-t)
				}
			}
			rtts[i] = local
		}(i, ws)
	}
	time.Sleep(*warmup)
	atomic.StoreInt32(&measuring, 1)
	n0, s0, m0, t0 := atomic.LoadInt64(&count), cpuTicks(strconv.Itoa(c.pid)), cpuTicks("self"), time.Now()
	time.Sleep(*duration)
	n1, s1, m1, elapsed := atomic.LoadInt64(&count), cpuTicks(strconv.Itoa(c.pid)), cpuTicks("self"), time.Since(t0).Seconds()
	atomic.StoreInt32(&measuring, 0)
	atomic.StoreInt32(&stopping, 1)
	wg.Wait()
	for _, ws := range wss {
		ws.Close()
	}
	if badReply > 0 {
		fail("%d replies were not \"recv data:\" + the message", badReply)
	}
	all := []int64{}
	for _, r := range rtts {
		all = append(all, r...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	msgs := n1 - n0
	serverCPU := float64(s1-s0) / c.clkTck
	emit(map[string]interface{}{
		"test": "echo", "conns": c.conns, "size": *size, "seconds": elapsed, "messages": msgs,
		"msgs_per_s": float64(msgs) / elapsed, "server_cpu_s": serverCPU,
		"server_cpu_us_per_msg": serverCPU * 1e6 / float64(msgs), "rtt_p50_ms": percentile(all, 0.50),
		"rtt_p99_ms": percentile(all, 0.99), "client_cpu_util": float64(m1-m0) / c.clkTck / elapsed,
	})
}

var tField = []byte(`"t":`)

// sendTime is data.t of a room message (nil error) from {"type":"message",...,"data":{"t":N}}.
func sendTime(data []byte) (int64, bool, error) {
	if bytes.Contains(data, []byte(`"type":"message"`)) {
		if i := bytes.Index(data, tField); i >= 0 {
			rest := data[i+len(tField):]
			j := 0
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			if t, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
				return t, true, nil
			}
		}
	}
	var m struct {
		Type string `json:"type"`
		Data struct {
			T int64 `json:"t"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return 0, false, err
	}
	if m.Type == "message" {
		return m.Data.T, true, nil
	}
	return 0, false, nil
}

func fanout(args []string) {
	fs, c := flags("fanout", 10000)
	publishes := fs.Int("publishes", 20, "messages published")
	interval := fs.Duration("interval", 200*time.Millisecond, "time between publishes")
	room := fs.String("room", "bench", "room name")
	timeout := fs.Duration("timeout", 15*time.Second, "wait for deliveries after the last publish")
	fs.Parse(args)
	if c.url == "" || c.pid == 0 {
		fail("fanout needs -url and -pid")
	}
	var joined, delivered, errorsSeen, stray int64
	var latMu sync.Mutex
	lat := make([]int64, 0, c.conns*(*publishes))
	members := newPool(c)
	go members.pinger()
	onMember := func(_ *conn, at int64, data []byte) {
		if t, ok, err := sendTime(data); ok {
			latMu.Lock()
			lat = append(lat, at-t)
			latMu.Unlock()
			atomic.AddInt64(&delivered, 1)
			return
		} else if err != nil {
			atomic.AddInt64(&stray, 1)
			return
		}
		switch {
		case bytes.Contains(data, []byte(`"joined"`)):
			atomic.AddInt64(&joined, 1)
		case bytes.Contains(data, []byte(`"error"`)):
			if atomic.AddInt64(&errorsSeen, 1) == 1 {
				fmt.Fprintf(os.Stderr, "ws-load: error frame: %s\n", data)
			}
		default:
			atomic.AddInt64(&stray, 1)
		}
	}
	t0 := time.Now()
	members.open(c.conns, onMember)
	dial := time.Since(t0).Seconds()
	join, _ := json.Marshal(map[string]string{"type": "join", "room": *room})
	// Joins only once every member is connected: the original's deadline (30 s from a
	// connection's last message) must not run out during the dialling.
	t1 := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, m := range members.conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(m *conn) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := m.ws.WriteMessage(websocket.TextMessage, join); err != nil {
				fail("join: %v", err)
			}
		}(m)
	}
	wg.Wait()
	waitFor("every member's joined reply", time.Minute, func() bool {
		return atomic.LoadInt64(&joined)+atomic.LoadInt64(&errorsSeen) >= int64(c.conns)
	})
	if errorsSeen > 0 {
		fail("%d members got an error frame instead of joined", errorsSeen)
	}
	joinS := time.Since(t1).Seconds()

	// The publisher: one more member.
	var pubJoined, reported int64
	var members0 int64 = -1
	replies := make(chan struct{}, *publishes+1)
	pub := newPool(c)
	go pub.pinger()
	pub.open(1, func(_ *conn, _ int64, data []byte) {
		var m struct {
			Type      string `json:"type"`
			Members   int64  `json:"members"`
			Delivered int64  `json:"delivered"`
		}
		if json.Unmarshal(data, &m) != nil {
			return
		}
		switch m.Type {
		case "joined":
			atomic.StoreInt64(&members0, m.Members)
			atomic.StoreInt64(&pubJoined, 1)
		case "published":
			atomic.AddInt64(&reported, m.Delivered)
			replies <- struct{}{}
		case "message":
		default:
			fmt.Fprintf(os.Stderr, "ws-load: publisher got %s\n", data)
		}
	})
	publisher := pub.conns[0].ws
	if err := publisher.WriteMessage(websocket.TextMessage, join); err != nil {
		fail("publisher join: %v", err)
	}
	waitFor("the publisher's joined reply", 10*time.Second, func() bool { return atomic.LoadInt64(&pubJoined) == 1 })
	if members0 != int64(c.conns)+1 {
		fail("the room has %d members, not %d", members0, c.conns+1)
	}

	s0 := cpuTicks(strconv.Itoa(c.pid))
	for k := 0; k < *publishes; k++ {
		if k > 0 {
			time.Sleep(*interval)
		}
		msg := fmt.Sprintf(`{"type":"publish","room":%q,"data":{"t":%d}}`, *room, now())
		if err := publisher.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			fail("publish: %v", err)
		}
	}
	expected := int64(c.conns) * int64(*publishes)
	deadline := time.Now().Add(*timeout)
	for atomic.LoadInt64(&delivered) < expected && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < *publishes; i++ {
		select {
		case <-replies:
		case <-time.After(time.Until(deadline) + time.Second):
			fail("%d of %d published replies", i, *publishes)
		}
	}
	s1 := cpuTicks(strconv.Itoa(c.pid))
	alive := members.aliveCount()
	members.closeAll()
	pub.closeAll()
	got := atomic.LoadInt64(&delivered)
	if got != expected {
		fail("%d of %d deliveries arrived (%d members still open, the server reported %d)", got, expected, alive, reported)
	}
	latMu.Lock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	latMu.Unlock()
	emit(map[string]interface{}{
		"test": "fanout", "conns": c.conns, "publishes": *publishes, "deliveries": got,
		"server_reported": reported, "stray": stray, "dial_s": dial, "join_s": joinS,
		"dial_retries": members.retries, "lost": atomic.LoadInt64(&members.readErr),
		"max_ms": float64(lat[len(lat)-1]) / 1e6,
		"p50_ms": percentile(lat, 0.50), "p99_ms": percentile(lat, 0.99),
		"server_cpu_ms_per_publish": float64(s1-s0) / c.clkTck * 1e3 / float64(*publishes),
	})
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ws-load hold|echo|fanout -url ws://HOST:PORT/socket_server -pid PID [flags]")
		os.Exit(2)
	}
	cmds := map[string]func([]string){"hold": hold, "echo": echo, "fanout": fanout}
	cmd, ok := cmds[os.Args[1]]
	if !ok {
		fail("unknown command %q", os.Args[1])
	}
	cmd(os.Args[2:])
}
