// The original's data path for `make bench`: gin's GET /hello?id=N reading user N's row from
// MySQL with database/sql + go-sql-driver/mysql and one Redis GET with a redigo pool, answering
// the same JSON fields as ours (hello, env, user, value). It does what go_example's /hello does
// with its user cache off (the data suite's single MySQL + single Redis row): the same SELECT of
// every column of `users` by primary key, and GET of the same key (cacheKeys.helloValue.key).
//
// The original used go-redis and xorm; Debian packages neither, so this is the same work with
// the database/sql driver the original's ORM sat on and redigo. Pools are sized like ours in the
// test profile: mysql max_open 20 / max_idle 10, 20 Redis connections.
//
// The DSN decides the driver's round trips: at its defaults go-sql-driver/mysql prepares a
// server-side statement per query (prepare, execute, close); with interpolateParams=true it
// sends one text query. The data suite runs both.
//
// Built offline from Debian's golang-go, golang-github-gin-gonic-gin-dev,
// golang-github-go-sql-driver-mysql-dev and golang-github-gomodule-redigo-dev in GOPATH mode.
//
//	gin-data ADDR MYSQL_DSN REDIS_ADDR REDIS_KEY
package main

import (
	"database/sql"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	_ "github.com/go-sql-driver/mysql"
	"github.com/gomodule/redigo/redis"
)

type user struct {
	id           int64
	username     string
	phone        sql.NullString
	passwordHash string
	gender       int16
	createdAt    time.Time
	updatedAt    time.Time
}

func main() {
	if len(os.Args) != 5 {
		os.Stderr.WriteString("usage: gin-data ADDR MYSQL_DSN REDIS_ADDR REDIS_KEY\n")
		os.Exit(2)
	}
	db, err := sql.Open("mysql", os.Args[2])
	if err != nil {
		panic(err)
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(10)
	db.SetConnMaxLifetime(time.Hour)
	redisAddr, key := os.Args[3], os.Args[4]
	pool := &redis.Pool{
		MaxIdle:   20,
		MaxActive: 20,
		Wait:      true,
		Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", redisAddr, redis.DialConnectTimeout(time.Second),
				redis.DialReadTimeout(time.Second), redis.DialWriteTimeout(time.Second))
		},
	}

	gin.SetMode(gin.ReleaseMode)
	gin.DefaultWriter = io.Discard
	app := gin.Default()
	app.GET("/hello", func(c *gin.Context) {
		id, err := strconv.ParseUint(c.DefaultQuery("id", "0"), 10, 63)
		if err != nil {
			c.JSON(http.StatusBadRequest, gin.H{"error": "id must be a number"})
			return
		}
		name := ""
		if id > 0 {
			var u user
			err := db.QueryRowContext(c.Request.Context(),
				"SELECT id, username, phone, password_hash, gender, created_at, updated_at FROM users WHERE id = ? LIMIT 1",
				id).Scan(&u.id, &u.username, &u.phone, &u.passwordHash, &u.gender, &u.createdAt, &u.updatedAt)
			switch {
			case err == nil:
				name = u.username
			case !errors.Is(err, sql.ErrNoRows):
				c.JSON(http.StatusServiceUnavailable, gin.H{"error": err.Error()})
				return
			}
		}
		conn := pool.Get()
		value, err := redis.String(conn.Do("GET", key))
		conn.Close()
		if err != nil && !errors.Is(err, redis.ErrNil) {
			c.JSON(http.StatusServiceUnavailable, gin.H{"error": err.Error()})
			return
		}
		c.JSON(http.StatusOK, gin.H{"hello": "world，golang", "env": gin.Mode(), "user": name, "value": value})
	})
	if err := app.Run(os.Args[1]); err != nil {
		panic(err)
	}
}
