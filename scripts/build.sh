#!/usr/bin/env bash
# `make build`: every function of template.yaml built by `sam build` (BuildMethod
# rust-cargolambda → `cargo lambda build --release --arm64` per function) for provided.al2023 on
# arm64, into .aws-sam/build/<LogicalId>/bootstrap; then each artifact's size, raw and zipped
# (what Lambda's 50 MB zip limit and cold-start download see).
# The arm64 standard library is added here, never by `make test` (CI tests natively on x86_64).
set -euo pipefail
LOG_NAME=build
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
        log "rustup target add aarch64-unknown-linux-gnu"
        rustup target add aarch64-unknown-linux-gnu >&2
    fi
else
    log "rustup not found: make sure the aarch64-unknown-linux-gnu standard library is installed"
fi

# The console function compiles console/dist in (functions/console/build.rs): build it first
# (skipped when unchanged; `make setup` installed its npm dependencies).
node console/build.mjs

started=$SECONDS
SAM_CLI_TELEMETRY=0 sam build "$@"
log "sam build took $((SECONDS - started))s"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf '%-32s %12s %12s\n' "function" "bootstrap" "zipped" >&2
for dir in .aws-sam/build/*/; do
    [[ -f "$dir/bootstrap" ]] || continue
    name="$(basename "$dir")"
    (cd "$dir" && zip -q -9 -X "$tmp/$name.zip" bootstrap)
    printf '%-32s %12s %12s\n' "$name" "$(stat -c %s "$dir/bootstrap")" "$(stat -c %s "$tmp/$name.zip")" >&2
done
