# go_example-rs: the commands users run. `make help` lists them.
SHELL := /bin/bash
# Build artefacts live outside the clone so fresh clones (and CI) reuse one warm cache.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/go_example-rs/target
BIN := $(CARGO_TARGET_DIR)/debug/go_example

.DEFAULT_GOAL := help
.PHONY: help http grpc socket socket-client discovery-demo certs migrate test lint fmt clippy nextest postman contract diesel-check bench services-up services-down

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

http: ## run the HTTP app on the embedded default (SQLite, no external service) on 127.0.0.1:8080
	cargo run --bin go_example -- http

grpc: ## run the gRPC app on 127.0.0.1:9090 (TLS with dev certificates made on first run under var/certs/grpc)
	cargo run --bin go_example -- grpc

socket: ## run the socket app (WebSocket at ws://127.0.0.1:30000/socket_server; pages on the http app at /socket/index2)
	cargo run --bin go_example -- socket

socket-client: ## talk to the socket app from the terminal: stdin lines out, replies printed (ADDR=127.0.0.1:30000)
	cargo run --bin go_example -- socket-client --addr $${ADDR:-127.0.0.1:30000}

migrate: ## diesel migration run against DATABASE_URL (MySQL); installs diesel_cli if missing
	@test -n "$$DATABASE_URL" || { echo 'set DATABASE_URL=mysql://user:pass@host:port/db (or: eval "$$(scripts/services.sh up)"; export DATABASE_URL=$$APP__MYSQL__DSN)'; exit 2; }
	scripts/diesel-cli.sh migration run

test: ## fmt check + clippy + every test against real servers + newman; starts and stops the servers
	scripts/test.sh

lint: fmt clippy ## fmt check and clippy

fmt:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

nextest: ## the Rust tests only (servers must be up: eval "$$(scripts/services.sh up)")
	cargo nextest run --workspace

postman: ## run the Postman collection with newman against the embedded default
	scripts/postman.sh

contract: ## the API contract: /openapi.json validated, schemathesis (every check, fixed seed), Swagger UI in headless Chromium
	scripts/contract-test.sh

diesel-check: ## `diesel migration run` + `redo` against a fresh MariaDB database; schema.rs unchanged
	scripts/diesel-check.sh

bench: ## release benchmarks against the Go anchors and, row by row, the baseline build (merge-base with origin/main); QUICK=1: the guard's quick run (http, grpc, socket, ~5 min); COLDSTART=1: also time a cold dev build; ARGS='--baseline REV|none'
	bench/run.sh $(if $(filter 1,$(QUICK)),--quick) $(if $(filter 1,$(COLDSTART)),--coldstart) $(ARGS)

services-up: ## start MariaDB primary+replica, Redis single+Cluster, MongoDB on loopback (eval "$$(make -s services-up)"; make http)
	@scripts/services.sh up

services-down: ## stop the servers and delete their data
	@scripts/services.sh down

discovery-demo: ## the Consul agent double, two gRPC instances and the HTTP app dialling consul://…/hello
	scripts/discovery-demo.sh
