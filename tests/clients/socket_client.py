"""A WebSocket client not written in Rust (websockets from PyPI) for the socket app's tests.

    python socket_client.py ws://127.0.0.1:PORT/socket_server

    pin: websockets==17.4   (scripts/python-venv.sh socket websockets==17.4)

Checks the protocol of docs/websocket.md, in order, and prints one `ok ...` line per check passed:
the text echo (`recv data:hello`), the binary echo (a binary frame `recv data:` + the bytes), the
original's JSON exchange (`{"name":"张三","age":"18"}` → `{"data":{"message":"recv msg：张三_18"}}`),
the application heartbeat (`{"type":"ping"}` → `{"type":"pong"}`), a protocol ping answered with a
pong, an unknown `type` (error frame, code 10000), publishing to a room not joined (code 10011), and
a room shared by two connections (joined with 1 then 2 members, a publish delivered to the other
member only, `published` with delivered 1 to the sender, `left`). The room's name is unique per
run, so runs in parallel against one server do not meet. Every reply is awaited at most 5 s.
Exit 0 when all pass; 1 on the first failure, naming the check and what came instead; 2 on bad
usage.
"""
import asyncio
import json
import os
import secrets
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 5.0
JSON_REQUEST = '{"name":"张三","age":"18"}'
JSON_REPLY = {"data": {"message": "recv msg：张三_18"}}


PASSED = []


class CheckFailed(Exception):
    pass


def ok(check, detail):
    PASSED.append(check)
    print(f"ok {check}: {detail}", flush=True)


async def receive(ws, check):
    """The next frame (str for text, bytes for binary), or CheckFailed."""
    try:
        return await asyncio.wait_for(ws.recv(), TIMEOUT)
    except asyncio.TimeoutError:
        raise CheckFailed(f"{check}: no reply within {TIMEOUT:g}s") from None
    except ConnectionClosed as e:
        raise CheckFailed(f"{check}: the server closed the connection ({describe_close(e)})") from None


def describe_close(e):
    frame = e.rcvd
    if frame is None:
        return "no close frame"
    return f"close {frame.code}" + (f" {frame.reason!r}" if frame.reason else "")


async def receive_json(ws, check):
    """The next frame, which must be a text frame holding a JSON object."""
    frame = await receive(ws, check)
    if not isinstance(frame, str):
        raise CheckFailed(f"{check}: expected a text frame with JSON, got a binary frame {frame!r}")
    try:
        value = json.loads(frame)
    except ValueError:
        raise CheckFailed(f"{check}: expected JSON, got {frame!r}") from None
    if not isinstance(value, dict):
        raise CheckFailed(f"{check}: expected a JSON object, got {frame!r}")
    return value


def show(value):
    """JSON as JSON (what the server sent), frames as Python literals (str or bytes)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return repr(value)


def expect(check, got, wanted):
    if got != wanted:
        raise CheckFailed(f"{check}: expected {show(wanted)}, got {show(got)}")


async def expect_error(ws, check, request, code):
    await ws.send(json.dumps(request))
    reply = await receive_json(ws, check)
    error = reply.get("error")
    if reply.get("type") != "error" or not isinstance(error, dict) or error.get("code") != code:
        raise CheckFailed(f"{check}: expected an error frame with code {code!r}, got {show(reply)}")
    if not isinstance(error.get("message"), str) or not error["message"]:
        raise CheckFailed(f"{check}: the error frame has no message: {show(reply)}")
    ok(check, f"code {code} ({error['message']})")


async def join(ws, check, room, members):
    await ws.send(json.dumps({"type": "join", "room": room}))
    reply = await receive_json(ws, check)
    expect(check, reply, {"type": "joined", "room": room, "members": members})
    ok(check, f"joined {room} with {members} member{'s' if members > 1 else ''}")


async def single(ws):
    check = "text echo"
    await ws.send("hello")
    expect(check, await receive(ws, check), "recv data:hello")
    ok(check, "hello -> recv data:hello")

    check = "binary echo"
    payload = b"\x00\x01 binary \xfe\xff"
    await ws.send(payload)
    reply = await receive(ws, check)
    if not isinstance(reply, bytes):
        raise CheckFailed(f"{check}: expected a binary frame, got a text frame {reply!r}")
    expect(check, reply, b"recv data:" + payload)
    ok(check, f"{len(payload)} bytes -> binary recv data: + the bytes")

    check = "JSON exchange"
    await ws.send(JSON_REQUEST)
    expect(check, await receive_json(ws, check), JSON_REPLY)
    ok(check, f"{JSON_REQUEST} -> {show(JSON_REPLY)}")

    check = "application ping"
    await ws.send('{"type":"ping"}')
    expect(check, await receive_json(ws, check), {"type": "pong"})
    ok(check, '{"type":"ping"} -> {"type":"pong"}')

    check = "protocol ping"
    try:
        pong = await ws.ping(b"socket-client")
        latency = await asyncio.wait_for(pong, TIMEOUT)
    except asyncio.TimeoutError:
        raise CheckFailed(f"{check}: no pong within {TIMEOUT:g}s") from None
    except ConnectionClosed as e:
        raise CheckFailed(f"{check}: the server closed the connection ({describe_close(e)})") from None
    ok(check, f"pong in {latency * 1000:.1f} ms")

    await expect_error(ws, "unknown type", {"type": "no-such-type"}, "10000")


async def rooms(a, b):
    room = f"socket-client-{os.getpid()}-{secrets.token_hex(4)}"
    await expect_error(a, "publish to a room not joined",
                       {"type": "publish", "room": room + "-never-joined", "data": "x"}, "10011")

    await join(a, "join (first member)", room, 1)
    await join(b, "join (second member)", room, 2)

    check = "publish"
    data = {"text": "你好", "n": 1, "list": [True, None]}
    await b.send(json.dumps({"type": "publish", "room": room, "data": data}))
    # The other member's next frame is the message: nothing was sent to it when b joined.
    message = await receive_json(a, check + " (the other member)")
    sender = message.get("from")
    if not isinstance(sender, str) or not sender:
        sender = "<a connection id>"
    expect(check + " (the other member)", message,
           {"type": "message", "room": room, "from": sender, "data": data})
    expect(check + " (the sender)", await receive_json(b, check + " (the sender)"),
           {"type": "published", "room": room, "delivered": 1})
    ok(check, f"the other member got the data (from {sender}), the sender got delivered 1")

    check = "leave"
    for ws in (a, b):
        await ws.send(json.dumps({"type": "leave", "room": room}))
        expect(check, await receive_json(ws, check), {"type": "left", "room": room})
    ok(check, f"both members left {room}")


async def run(url):
    # No proxy (the server is local) and no keepalive pings of our own: the protocol ping check
    # sends the only one.
    options = dict(proxy=None, ping_interval=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT)
    try:
        a = await connect(url, **options)
        b = await connect(url, **options)
    except Exception as e:  # noqa: BLE001 - any failure to connect is the answer
        raise CheckFailed(f"connect: cannot open {url}: {type(e).__name__}: {e}") from None
    try:
        await single(a)
        await rooms(a, b)
    finally:
        await a.close()
        await b.close()


def main():
    if len(sys.argv) != 2 or not sys.argv[1].startswith(("ws://", "wss://")):
        print("usage: python socket_client.py ws://127.0.0.1:PORT/socket_server", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(run(sys.argv[1]))
    except CheckFailed as e:
        print(f"socket-client: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"socket-client: all {len(PASSED)} checks passed against {sys.argv[1]}")


if __name__ == "__main__":
    main()
