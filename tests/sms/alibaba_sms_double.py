#!/usr/bin/env python3
"""A protocol-faithful double of Alibaba Cloud's SMS API (dysmsapi, 2017-05-25, SendSms).

It checks what the real endpoint checks before it sends anything, with its own implementation of
signature V3 (ACS3-HMAC-SHA256), written from Alibaba Cloud's document and independent of the
Rust client:

- `Authorization: ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<names>,Signature=<hex>`, the
  AccessKey id known (else 404 InvalidAccessKeyId.NotFound);
- `host` and every `x-acs-*` header sent are signed; `x-acs-content-sha256` is the body's
  SHA-256; `x-acs-date` is within 15 minutes; a nonce is used once (SignatureNonceUsed);
- the signature recomputed over the canonical request matches (else 400 SignatureDoesNotMatch);
- `x-acs-action: SendSms`, `x-acs-version: 2017-05-25`, the parameters present, the sign name and
  template approved, `TemplateParam` a JSON object, the number a mainland mobile number
  (business errors answer HTTP 200 with their `isv.*` code, as the real API does).

Accepted messages are kept for tests: `GET /_double/messages[?phone=...]`. `POST /_double/fail`
with `{"code": "isv.BUSINESS_LIMIT_CONTROL", "times": 1}` makes the next sends fail with that
code; `GET /_double/stats` counts requests by outcome. `/_double/*` needs no signature.

Usage: alibaba_sms_double.py --port 0 --access-key-id ID --access-key-secret SECRET
       --sign-name NAME --template-code CODE [--delay SECONDS]
Prints `LISTENING <port>` once it accepts connections.
"""

import argparse
import hashlib
import hmac
import json
import re
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM = "ACS3-HMAC-SHA256"
MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
MAX_SKEW_SECONDS = 15 * 60


def encode(value: str) -> str:
    """RFC 3986 percent-encoding: only A-Za-z0-9-_.~ stay."""
    return quote(value, safe="-_.~")


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.nonces = {}
        self.messages = []
        self.failures = []  # codes to answer with, next first
        self.stats = {}

    def count(self, outcome: str) -> None:
        with self.lock:
            self.stats[outcome] = self.stats.get(outcome, 0) + 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # No Nagle: headers and body go out as separate writes, and a delayed ACK would hold each
    # answer ~40 ms.
    disable_nagle_algorithm = True
    state: State

    def log_message(self, fmt, *args):  # quiet: tests read stdout
        pass

    def answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status: int, code: str, message: str) -> None:
        self.state.count(code)
        self.answer(status, {"Code": code, "Message": message, "RequestId": str(uuid.uuid4()).upper(),
                             "Recommend": "https://api.aliyun.com/troubleshoot?q=" + code})

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # -- test control ------------------------------------------------------------------------

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/_double/messages":
            phone = dict(parse_qsl(url.query)).get("phone")
            with self.state.lock:
                messages = [m for m in self.state.messages if phone is None or m["phone"] == phone]
            return self.answer(200, {"messages": messages})
        if url.path == "/_double/stats":
            with self.state.lock:
                return self.answer(200, dict(self.state.stats))
        self.body()
        return self.error(404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.")

    def control_post(self, url) -> bool:
        if url.path == "/_double/fail":
            order = json.loads(self.body() or b"{}")
            with self.state.lock:
                self.state.failures.extend([order.get("code", "isv.BUSINESS_LIMIT_CONTROL")] * int(order.get("times", 1)))
            self.answer(200, {"ok": True})
            return True
        if url.path == "/_double/reset":
            self.body()
            with self.state.lock:
                self.state.messages.clear()
                self.state.failures.clear()
            self.answer(200, {"ok": True})
            return True
        return False

    # -- the API -----------------------------------------------------------------------------

    def do_POST(self):
        url = urlsplit(self.path)
        if self.control_post(url):
            return
        body = self.body()
        args = self.state.args
        auth = self.headers.get("Authorization", "")
        match = re.fullmatch(ALGORITHM + r" Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{64})", auth)
        if not match:
            return self.error(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.")
        credential, signed_names, signature = match.groups()
        if credential != args.access_key_id:
            return self.error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        names = signed_names.split(";")
        if names != sorted(names) or any(n != n.lower() for n in names):
            return self.error(400, "IncompleteSignature", "SignedHeaders must be lowercase and sorted.")
        sent = {k.lower() for k in self.headers.keys()}
        required = {"host"} | {n for n in sent if n.startswith("x-acs-")}
        if "content-type" in sent:
            required.add("content-type")
        if not required <= set(names):
            return self.error(400, "IncompleteSignature", f"Headers not signed: {sorted(required - set(names))}.")
        for n in ("x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"):
            if n not in sent:
                return self.error(400, "MissingParameter", f"{n} is mandatory for this action.")
        if self.headers["x-acs-content-sha256"] != hashlib.sha256(body).hexdigest():
            return self.error(400, "ContentSHA256NotMatched", "x-acs-content-sha256 does not match the body.")
        try:
            when = datetime.strptime(self.headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return self.error(400, "InvalidTimeStamp.Format", "x-acs-date must be yyyy-MM-ddTHH:mm:ssZ.")
        if abs(time.time() - when.timestamp()) > MAX_SKEW_SECONDS:
            return self.error(400, "InvalidTimeStamp.Expired", "x-acs-date is more than 15 minutes away.")

        # The canonical request, from the request as received.
        query = sorted(parse_qsl(url.query, keep_blank_values=True))
        canonical_query = "&".join(f"{encode(k)}={encode(v)}" for k, v in query)
        canonical_headers = "".join(f"{n}:{(self.headers.get(n) or '').strip()}\n" for n in names)
        canonical = "\n".join([self.command, url.path or "/", canonical_query, canonical_headers,
                               signed_names, self.headers["x-acs-content-sha256"]])
        to_sign = ALGORITHM + "\n" + hashlib.sha256(canonical.encode()).hexdigest()
        expected = hmac.new(args.access_key_secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return self.error(400, "SignatureDoesNotMatch", "Specified signature does not match our calculation. server string to sign is:" + to_sign)
        nonce = self.headers["x-acs-signature-nonce"]
        with self.state.lock:
            now = time.time()
            self.state.nonces = {k: t for k, t in self.state.nonces.items() if now - t < 2 * MAX_SKEW_SECONDS}
            reused = nonce in self.state.nonces
            self.state.nonces[nonce] = now
        if reused:
            return self.error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        if self.headers["x-acs-action"] != "SendSms" or self.headers["x-acs-version"] != "2017-05-25":
            return self.error(404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.")

        params = dict(query)
        for p in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(p):
                return self.error(400, "MissingParameter", f"{p} is mandatory for this action.")
        if args.delay:
            time.sleep(args.delay)
        with self.state.lock:
            forced = self.state.failures.pop(0) if self.state.failures else None
        if forced:
            return self.error(200, forced, "forced by the test double")
        if not MOBILE.match(params["PhoneNumbers"]):
            return self.error(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if params["SignName"] != args.sign_name:
            return self.error(200, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        if params["TemplateCode"] != args.template_code:
            return self.error(200, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            template = json.loads(params.get("TemplateParam", ""))
            assert isinstance(template, dict)
        except (ValueError, AssertionError):
            return self.error(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        biz_id = f"{int(time.time() * 1000)}^0"
        with self.state.lock:
            self.state.messages.append({"phone": params["PhoneNumbers"], "sign_name": params["SignName"],
                                        "template_code": params["TemplateCode"], "template_param": template,
                                        "biz_id": biz_id})
        self.state.count("OK")
        self.answer(200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": str(uuid.uuid4()).upper()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--access-key-id", required=True)
    parser.add_argument("--access-key-secret", required=True)
    parser.add_argument("--sign-name", required=True)
    parser.add_argument("--template-code", required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each send takes")
    args = parser.parse_args()
    Handler.state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
