#!/usr/bin/env bash
# `make test`: every check and test, from a fresh machine, exiting non-zero on any failure:
#   formatting, clippy (warnings are errors), cfn-lint and `sam validate --lint` on template.yaml,
#   openapi.yaml against the OpenAPI 3 schema (the route-table test compares it with the router
#   and the template), its own in-memory
#   DynamoDB Local on a free port, end-to-end tables + seeded credentials, the local API server
#   (`local-api`: every function behind a stand-in for API Gateway) on a free port, then the whole
#   workspace under `cargo nextest run --profile ci` (cargo test if nextest is missing).
# Tests get: DYNAMODB_ENDPOINT (tests create their own prefixed tables), E2E_API_URL,
# E2E_CREDENTIALS (a .local/dev-credentials.json-shaped file for the served tables) and
# E2E_TABLE_PREFIX (the served tables' prefix, for flagsctl).
# Everything started here is stopped by pid on exit.
# Arguments, if any, are passed to nextest instead of running the whole suite, and the lint
# steps are skipped: `scripts/test.sh -E 'binary(sdk)'` runs one test binary against fresh servers.
set -euo pipefail
LOG_NAME=test
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

started=$SECONDS
DDB_PID=""
API_PID=""
PUMP_PID=""
SCHEDULE_PUMP_PID=""
# The end-to-end tests schedule flag changes seconds ahead: tick every second (60 on AWS).
export SCHEDULE_PUMP_INTERVAL="${SCHEDULE_PUMP_INTERVAL:-1}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/flags-test.XXXXXX")"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$SCHEDULE_PUMP_PID" ]]; then
        stop_pid "$SCHEDULE_PUMP_PID" TERM 10
    fi
    if [[ -n "$PUMP_PID" ]]; then
        stop_pid "$PUMP_PID" TERM 10
    fi
    if [[ -n "$API_PID" ]]; then
        stop_pid "$API_PID" TERM 20
    fi
    if [[ -n "$DDB_PID" ]]; then
        stop_pid "$DDB_PID" TERM 20
    fi
    if ((rc != 0)) && [[ -s "$WORK/api.log" ]]; then
        log "last lines of the local API log:"
        tail -n 40 "$WORK/api.log" >&2
    fi
    if ((rc != 0)) && [[ -s "$WORK/schedule-pump.log" ]]; then
        log "last lines of the scheduled-changes pump log:"
        tail -n 20 "$WORK/schedule-pump.log" >&2
    fi
    if ((rc != 0)) && [[ -s "$WORK/cohort-pump.log" ]]; then
        log "last lines of the cohort stream pump log:"
        tail -n 20 "$WORK/cohort-pump.log" >&2
    fi
    rm -rf "$WORK"
    if ((rc == 0)); then
        log "all checks passed in $((SECONDS - started))s"
    else
        log "FAILED (exit $rc) after $((SECONDS - started))s"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { log "== $* ($((SECONDS - started))s)"; }

# The console's assets are compiled into the console function (and so into local-api): built
# first (console/build.mjs skips an unchanged build); with the whole suite its unit tests run too.
if (($# == 0)); then
    step "console: build, unit tests (node --test)"
    node console/build.mjs --test
else
    step "console: build"
    node console/build.mjs
fi

if (($# == 0)); then
    step "cargo fmt --check"
    cargo fmt --all --check

    step "cargo clippy"
    cargo clippy --quiet --workspace --all-targets -- -D warnings

    step "cfn-lint template.yaml"
    cfn-lint template.yaml

    step "sam validate --lint"
    SAM_CLI_TELEMETRY=0 sam validate --lint

    step "openapi-spec-validator openapi.yaml"
    openapi-spec-validator openapi.yaml
fi

step "DynamoDB Local (in memory)"
ddb_port="$(free_port)"
start_dynamodb "$ddb_port" "" "$WORK/dynamodb.log"
export DYNAMODB_ENDPOINT="http://127.0.0.1:$ddb_port"

step "build flagsctl and the local API server"
cargo build --quiet -p flagsctl -p local-api

step "end-to-end tables and credentials"
prefix="e2e$(python3 -c 'import secrets; print(secrets.token_hex(6))')-"
api_port="$(free_port)"
flagsctl() {
    env -u FLAGSCTL_AWS -u FLAGS_TABLE -u ACTIVITY_TABLE -u IDENTITY_TABLE -u EARLY_ACCESS_TABLE \
        -u HASH_KEY_OVERRIDES_TABLE \
        AWS_ENDPOINT_URL_DYNAMODB="$DYNAMODB_ENDPOINT" TABLE_PREFIX="$prefix" "$(flagsctl_bin)" "$@"
}
flagsctl create-tables --template template.yaml >/dev/null
flagsctl seed-dev --out "$WORK/credentials.json" --api-url "http://127.0.0.1:$api_port" >/dev/null
write_env_file "$WORK/env" "$DYNAMODB_ENDPOINT" "$prefix" "$(new_fernet_key)"

step "local API server on 127.0.0.1:$api_port"
# Every function of template.yaml in one process behind a stand-in for API Gateway
# (local-api/src/main.rs); RUST_LOG etc. come from the env file like a function's environment.
(set -a && source "$WORK/env" && exec "$CARGO_TARGET_DIR/debug/local-api" \
    --port "$api_port" --template template.yaml) </dev/null >"$WORK/api.log" 2>&1 &
API_PID=$!
wait_http "$api_port" "$API_PID" 60 || die "the local API server did not answer on port $api_port"
# DynamoDB Local's cohorts stream → the cohort-jobs function (Lambda's event source locally).
start_cohort_pump "$DYNAMODB_ENDPOINT" "${prefix}cohorts" "$api_port" "$WORK/cohort-pump.log"
# Due scheduled flag changes → the scheduled-changes function (EventBridge Scheduler locally).
start_schedule_pump "$api_port" "$WORK/schedule-pump.log"

export E2E_API_URL="http://127.0.0.1:$api_port"
export E2E_CREDENTIALS="$WORK/credentials.json"
# The served tables' prefix: tests/tool_catalog.rs makes keys of chosen scopes with flagsctl
# (with DYNAMODB_ENDPOINT), as an operator would; the API has no endpoint that creates keys.
export E2E_TABLE_PREFIX="$prefix"

if (($# > 0)); then
    step "cargo nextest run --workspace --profile ci $*"
    cargo nextest run --workspace --profile ci "$@"
elif cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run --workspace --profile ci"
    cargo nextest run --workspace --profile ci
else
    step "cargo test --workspace (cargo-nextest not installed)"
    cargo test --workspace
fi
