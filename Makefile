# Entry points (docs/reference/decisions.md §4). Everything is installed into the checkout by `make setup`.
#   make setup   .venv (cargo-lambda, zig, cfn-lint, aws-sam-cli, ...) and node_modules (DynamoDB Local, ...)
#   make dev     DynamoDB Local + tables + seeded credentials + API on 127.0.0.1:$${PORT:-9000}
#   make test    fmt, clippy, cfn-lint, sam validate --lint, the OpenAPI document, and every test
#                against its own DynamoDB Local
#   make lint    cfn-lint and sam validate --lint on template.yaml
#   make build   sam build: every function for provided.al2023 on arm64 (.aws-sam/build), with sizes
#   make deploy  sam deploy --guided the first time (answers saved to samconfig.toml), then sam deploy;
#                ARGS="..." passes more arguments to sam (README "Deploying to AWS")

.PHONY: setup dev test lint build deploy

setup:
	@scripts/setup.sh

dev: setup
	@scripts/dev.sh

test: setup
	@scripts/test.sh

lint: setup
	@.venv/bin/cfn-lint template.yaml
	@SAM_CLI_TELEMETRY=0 .venv/bin/sam validate --lint

build: setup
	@scripts/build.sh

deploy: setup
	@scripts/deploy.sh $(ARGS)
