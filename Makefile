# Switchboard's verbs. On a fresh machine: `make run` (the demo) and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test unit e2e bench setup setup-test stack-up stack-down schemas-check lint fmt deploy-check

## run: local stack + services + sandbox traffic; prints where to look; Ctrl-C stops it
run: setup
	scripts/run-demo.sh

## test: unit tests and end-to-end tests on the real Kafka broker and schema registry
test: setup-test stack-up
	scripts/test.sh

## bench: first-flow throughput; transformer vs. Kafka ConsumerPerformance; sink vs. a bare
## HTTP client and at Shopify's limit; webhook → target latency at 1,000/s; ingest vs. bare
## HTTP vs. Kafka ProducerPerformance
bench: setup stack-up
	$(CARGO) bench -p switchboard-tests --bench first_flow
	$(CARGO) bench -p switchboard-tests --bench transformer
	$(CARGO) bench -p switchboard-tests --bench sink
	$(CARGO) bench -p switchboard-tests --bench latency
	scripts/bench-ingest.sh

## deploy-check: helm lint + template (default and full values) validated against Kubernetes
## schemas, docker-compose.yml and the Dockerfile through their own loaders; offline
deploy-check:
	scripts/validate-deploy.sh

## setup: the system packages the build and the stack need, installed when missing (apt-get)
setup:
	scripts/setup.sh run

setup-test:
	scripts/setup.sh test

stack-up:
	scripts/stack.sh up

## schemas-check: every schemas/**/*.avsc against the local registry's compatibility rule
schemas-check: stack-up
	$(CARGO) run -q -p switchboard-cli --bin switchboard -- schemas check --dir schemas

stack-down:
	scripts/stack.sh down

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
