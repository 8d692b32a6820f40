# Entry points (decisions.md §4). Everything is installed into the checkout by `make setup`.
#   make setup   .venv (cargo-lambda, zig, cfn-lint) and node_modules (DynamoDB Local)
#   make dev     DynamoDB Local + tables + seeded credentials + API on 127.0.0.1:$${PORT:-9000}
#   make test    fmt, clippy, cfn-lint, and every test against its own DynamoDB Local
#   make lint    cfn-lint on template.yaml

.PHONY: setup dev test lint

setup:
	@scripts/setup.sh

dev: setup
	@scripts/dev.sh

test: setup
	@scripts/test.sh

lint: setup
	@.venv/bin/cfn-lint template.yaml
