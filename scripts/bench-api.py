#!/usr/bin/env python3
"""Latency of the management and SDK paths as a project grows (`make dev` must be running).

Creates a fresh organization, project, user and key with flagsctl (so the dev project is left
alone), then grows the project through each size of --sizes (default 100, 1,000 and 10,000
flags) and at each size times, in one run:

  * create, update (PATCH name) and soft delete (PATCH deleted) of flags of their own;
  * the list's default page and the list with `search`, with their `count`;
  * POST /flags/?v=4 and the definitions endpoint's 304 poll, and the full definitions body's
    size (plain and gzipped, as sent to a client that accepts gzip).

The project grows through the API itself (POST /feature_flags/, --seed-workers requests in
flight, the mixed bodies of benchlib.flag_body), the honest path: every seeded flag is written,
validated and logged as any create. Prints p50 and p99 in milliseconds. Standard library only.

    PORT=9309 DYNAMODB_PORT=8309 make dev   # elsewhere
    python3 scripts/bench-api.py --api-url http://127.0.0.1:9309 \\
        --dynamodb http://127.0.0.1:8309 [--flags 10000] [--runs 50]
"""

import argparse
import gzip
import http.client
import json
import os
import re
import statistics
import sys
import threading
import time
import urllib.parse

from benchlib import ROOT, flag_body, flagsctl_with, run_json, summary


class Client:
    def __init__(self, api_url, headers):
        target = urllib.parse.urlsplit(api_url)
        self.conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=120)
        self.headers = headers

    def request(self, method, path, body=None, headers=None, ok=(200, 201)):
        headers = {**self.headers, **(headers or {})}
        data = json.dumps(body) if body is not None else None
        start = time.perf_counter()
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - start) * 1000
        if response.status not in ok:
            sys.exit(f"{method} {path} -> {response.status}: {payload[:300]!r}")
        return elapsed, response, payload


def grow(api_url, headers, base, start, stop, workers, ids):
    """Creates flags start..stop through the API, `workers` requests in flight."""
    lock = threading.Lock()
    next_index = [start]
    failure = []

    def work():
        client = Client(api_url, headers)
        while not failure:
            with lock:
                i = next_index[0]
                if i >= stop:
                    return
                next_index[0] += 1
                known = list(ids[-1:])
            try:
                _, _, payload = client.request("POST", base, flag_body(i, known), ok=(201,))
            except BaseException as e:  # noqa: BLE001 - reported below
                failure.append(e)
                return
            with lock:
                ids.append(json.loads(payload)["id"])

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failure:
        sys.exit(f"seeding failed: {failure[0]!r}")


UNITS = re.compile(r'route="(\S+) (\S+)" project_id=(\d+) status=\d+ latency_ms=\d+ '
                   r'dynamodb_capacity_units=([\d.]+)')


def capacity_units(log_path, project_id, done):
    """Capacity units (read + write) of this project's requests in the server's request log
    (`dynamodb_capacity_units`, crate::request_log), from line `done` on: {(method, route): [units]}."""
    found = {}
    with open(log_path, errors="replace") as f:
        lines = f.readlines()
    for line in lines[done:]:
        m = UNITS.search(line)
        if m and int(m.group(3)) == project_id:
            found.setdefault((m.group(1), m.group(2)), []).append(float(m.group(4)))
    return found, len(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", type=int, default=10000, help="the largest size")
    parser.add_argument("--sizes", default="100,1000,10000",
                        help="sizes to measure at (those above --flags are left out)")
    parser.add_argument("--runs", type=int, default=50, help="samples per figure")
    parser.add_argument("--seed-workers", type=int, default=6)
    parser.add_argument("--api-url", help="default: api_url of --credentials")
    parser.add_argument("--dynamodb", help="DynamoDB endpoint of the server (flagsctl seeds there)")
    parser.add_argument("--server-log", help="the server's output, to print DynamoDB units per call")
    parser.add_argument("--credentials", default=os.path.join(ROOT, ".local", "dev-credentials.json"))
    args = parser.parse_args()

    api_url = args.api_url
    if not api_url:
        with open(args.credentials) as f:
            api_url = json.load(f)["api_url"]
    env = dict(os.environ)
    env.pop("FLAGSCTL_AWS", None)
    if args.dynamodb:
        env["AWS_ENDPOINT_URL_DYNAMODB"] = args.dynamodb
    flagsctl = flagsctl_with(env)
    if os.environ.get("FLAGSCTL_BIN"):  # a built flagsctl, not `cargo run` (no build lock)
        flagsctl = lambda *a: run_json([os.environ["FLAGSCTL_BIN"], *a], env)  # noqa: E731
    org = flagsctl("create-org", "--name", "bench")
    project = flagsctl("create-project", "--org", org["id"], "--name", f"bench-{time.time_ns()}")
    user = flagsctl("create-user", "--org", org["id"], "--email", f"bench-{time.time_ns()}@example.com")
    key = flagsctl("create-key", "--user", str(user["id"]), "--scopes", "feature_flag:write")["key"]

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    client = Client(api_url, headers)
    sdk = Client(api_url, {"Accept-Encoding": "gzip"})
    base = f"/api/projects/{project['id']}/feature_flags/"
    secret = {"Authorization": f"Bearer {project['secret_api_key']}"}
    definitions = f"/flags/definitions?token={project['api_token']}&send_cohorts"
    person = {"distinct_id": "user-1", "api_key": project["api_token"], "groups": {},
              "group_properties": {}, "person_properties": {"email": "a@example.com", "plan": "pro"}}
    sizes = [int(s) for s in args.sizes.split(",") if int(s) <= args.flags]

    client.request("GET", base)  # warm-up: the first request fills the function's caches
    ids = []
    seeded = 0
    probe = 0
    print(f"project {project['id']}, server {api_url}, {args.runs} samples a figure, p50/p99 in ms")
    for size in sizes:
        start = time.perf_counter()
        grow(api_url, headers, base, seeded, size, args.seed_workers, ids)
        took = time.perf_counter() - start
        print(f"\n== {size} flags (grown {seeded}->{size} through the API in {took:.0f} s, "
              f"{args.seed_workers} in flight)")
        seeded = size
        log_mark = capacity_units(args.server_log, project["id"], 0)[1] if args.server_log else 0

        creates, updates, deletes, made = [], [], [], []
        for _ in range(args.runs):
            body = flag_body(probe, ids[-1:])
            body["key"] = f"probe-{probe}"
            probe += 1
            elapsed, _, payload = client.request("POST", base, body, ok=(201,))
            creates.append(elapsed)
            made.append(json.loads(payload)["id"])
        for n, flag_id in enumerate(made):
            updates.append(client.request("PATCH", f"{base}{flag_id}/", {"name": f"renamed {n}"})[0])
        for flag_id in made:
            deletes.append(client.request("PATCH", f"{base}{flag_id}/", {"deleted": True})[0])
        list_default, list_search = [], []
        for _ in range(args.runs):
            elapsed, _, payload = client.request("GET", base)
            list_default.append(elapsed)
        count = json.loads(payload)["count"]
        for _ in range(args.runs):
            elapsed, _, payload = client.request("GET", base + "?search=flag%2099")
            list_search.append(elapsed)
        found = json.loads(payload)["count"]

        flags = [sdk.request("POST", "/flags/?v=4", person, {"Content-Type": "application/json"})[0]
                 for _ in range(args.runs)]
        _, first, body = sdk.request("GET", definitions, headers=secret)
        etag = first.getheader("etag")
        encoding = first.getheader("content-encoding")
        plain = gzip.decompress(body) if encoding == "gzip" else body
        polls = [sdk.request("GET", definitions, headers={**secret, "If-None-Match": etag}, ok=(304,))[0]
                 for _ in range(args.runs)]
        full = [sdk.request("GET", definitions, headers=secret)[0] for _ in range(max(5, args.runs // 10))]

        row = lambda name, samples: print(summary(name, samples, percentiles=(99,), width=40))  # noqa: E731
        row("create", creates)
        row("update (PATCH name)", updates)
        row("soft delete (PATCH deleted)", deletes)
        row(f"list, default page (count {count})", list_default)
        row(f"list, search=flag 99 (count {found})", list_search)
        row("POST /flags/?v=4", flags)
        row("GET /flags/definitions, 304", polls)
        row("GET /flags/definitions, 200", full)
        print(f"definitions body: {len(plain):,} bytes, {len(body):,} sent ({encoding or 'identity'})")
        if args.server_log:
            units, _ = capacity_units(args.server_log, project["id"], log_mark)
            for (method, route), values in sorted(units.items()):
                print(f"DynamoDB units (read + write), {method} {route}: median "
                      f"{statistics.median(values):g}, max {max(values):g}, n={len(values)}")


if __name__ == "__main__":
    main()
