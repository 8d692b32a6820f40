#!/usr/bin/env python3
"""Activity-log page latency for one flag with many entries, through the local server.

`make dev` (or any local API server of this repo) must be running. Creates a fresh
organization, project, user and key with flagsctl (the dev project is left alone), creates one
flag through the API, gives it N-1 more activity entries with the `seed_activity` example (real
flag updates written through the store's own transaction, without the HTTP round trip), then
times `GET …/feature_flags/{id}/activity/` at page 1 and at the last page, and the project log
`GET …/feature_flags/activity/` at the same pages. Prints median and p95 in milliseconds.
Standard library only.

    python3 scripts/bench-activity.py [--entries 10000] [--runs 50]

DynamoDB endpoint and table names come from --env-file (default .env.local, written by
`make dev`), the same settings the server uses.
"""

import argparse
import http.client
import json
import os
import sys
import time
import urllib.parse

from benchlib import ROOT, flagsctl_with, run_json, server_env, summary







def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--credentials", default=os.path.join(ROOT, ".local", "dev-credentials.json"))
    parser.add_argument("--env-file", default=os.path.join(ROOT, ".env.local"))
    args = parser.parse_args()

    env = server_env(args.env_file)
    flagsctl = flagsctl_with(env)

    with open(args.credentials) as f:
        api_url = json.load(f)["api_url"]
    org = flagsctl("create-org", "--name", "bench-activity")
    project = flagsctl("create-project", "--org", org["id"], "--name", "bench-activity")
    user = flagsctl("create-user", "--org", org["id"], "--email", f"bench-{time.time_ns()}@example.com")
    key = flagsctl("create-key", "--user", str(user["id"]),
                   "--scopes", "feature_flag:write,activity_log:read")["key"]

    target = urllib.parse.urlsplit(api_url)
    conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=120)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    base = f"/api/projects/{project['id']}/feature_flags/"

    def request(method, path, body=None):
        start = time.perf_counter()
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - start) * 1000
        if response.status >= 300:
            sys.exit(f"{method} {path} -> {response.status}: {payload[:300]!r}")
        return elapsed, json.loads(payload)

    _, flag = request("POST", base, {"key": "bench-activity", "name": "bench"})
    seeding = time.perf_counter()
    seeded = run_json(["cargo", "run", "-q", "-p", "shared", "--example", "seed_activity", "--",
                       str(project["id"]), str(flag["id"]), str(args.entries - 1)], env)
    print(f"seeded {seeded['written'] + 1} entries in {time.perf_counter() - seeding:.0f}s", file=sys.stderr)

    last_page = -(-args.entries // args.limit)
    results = []
    for name, path in [("flag log", f"{base}{flag['id']}/activity/"), ("project log", f"{base}activity/")]:
        for page in (1, last_page):
            url = f"{path}?page={page}&limit={args.limit}"
            request("GET", url)  # warm-up: the first call fills the function's caches
            samples = []
            for _ in range(args.runs):
                elapsed, body = request("GET", url)
                samples.append(elapsed)
            if body["total_count"] != args.entries or len(body["results"]) == 0:
                sys.exit(f"{url}: total_count {body['total_count']}, {len(body['results'])} results")
            results.append(summary(f"{name}, page {page} of {last_page} (limit {args.limit})", samples, width=46))

    print(f"project {project['id']}, flag {flag['id']} with {args.entries} activity entries, server {api_url}")
    for line in results:
        print(line)


if __name__ == "__main__":
    main()
