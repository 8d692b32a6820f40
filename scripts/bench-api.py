#!/usr/bin/env python3
"""Latency of the management API through the local server (`make dev` must be running).

Creates a fresh organization, project, user and key with flagsctl (so the dev project is left
alone), creates N flags in that project timing each create, then times list requests.
Prints median and p95 in milliseconds. Standard library only.

    python3 scripts/bench-api.py [--flags 1000] [--list-runs 50]
"""

import argparse
import http.client
import json
import os
import sys
import time
import urllib.parse

from benchlib import ROOT, flagsctl, summary






def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--list-runs", type=int, default=50)
    parser.add_argument("--credentials", default=os.path.join(ROOT, ".local", "dev-credentials.json"))
    args = parser.parse_args()

    with open(args.credentials) as f:
        api_url = json.load(f)["api_url"]
    org = flagsctl("create-org", "--name", "bench")
    project = flagsctl("create-project", "--org", org["id"], "--name", "bench")
    user = flagsctl("create-user", "--org", org["id"], "--email", f"bench-{time.time_ns()}@example.com")
    key = flagsctl("create-key", "--user", str(user["id"]), "--scopes", "feature_flag:write")["key"]

    target = urllib.parse.urlsplit(api_url)
    conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=60)
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
        return elapsed, payload

    request("GET", base)  # warm-up: the first request fills the function's caches
    creates = []
    for i in range(args.flags):
        body = {
            "key": f"bench-{i}",
            "name": f"Benchmark flag {i}",
            "filters": {"groups": [{"properties": [{"key": "email", "type": "person", "operator": "icontains", "value": "@example.com"}], "rollout_percentage": 50}]},
        }
        creates.append(request("POST", base, body)[0])
    list_default = [request("GET", base)[0] for _ in range(args.list_runs)]
    list_all = [request("GET", base + f"?limit={args.flags}")[0] for _ in range(max(5, args.list_runs // 5))]
    list_search = [request("GET", base + "?search=flag%2099")[0] for _ in range(args.list_runs)]

    print(f"project {project['id']} with {args.flags} flags, server {api_url}")
    print(summary(f"create (project growing 0→{args.flags})", creates, width=40))
    print(summary(f"create (last 100, ~{args.flags} flags)", creates[-100:], width=40))
    print(summary("list, default page (100 of N)", list_default, width=40))
    print(summary(f"list, limit={args.flags} (all)", list_all, width=40))
    print(summary("list, search filter", list_search, width=40))


if __name__ == "__main__":
    main()
