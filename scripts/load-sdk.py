#!/usr/bin/env python3
"""Load check of the local server under concurrent SDK traffic (`make dev` must be running).

Creates a fresh organization, project and key with flagsctl (the dev project is left alone) and
N mixed flags, then runs CLIENTS concurrent clients, each on its own kept-alive connection, in
three rounds:

  1. POST /flags/?v=4 as posthog-python sends it, a different person per request;
  2. GET /flags/definitions (the full body, 200) as the SDKs poll it with the secret key;
  3. large answers from two functions at once: definitions beside the flag list
     (`?limit=100`, the feature-flags function), the mix that used to lose responses.

Every response is read whole (gzip accepted, like the SDKs). Prints, per round, the requests,
throughput, p50/p99 latency and the count of answers that were not 2xx (and what they were).
Exits 1 when any answer was not 2xx. Standard library only.

    python3 scripts/load-sdk.py [--clients 32] [--requests 4000] [--flags 100]
"""

import argparse
import collections
import gzip
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

from benchlib import ROOT, percentile, seed_project


def connect(api_url):
    target = urllib.parse.urlsplit(api_url)
    return http.client.HTTPConnection(target.hostname, target.port or 80, timeout=60)


def fetch(conn, method, path, body, headers):
    """(status, bytes read); a broken connection counts as status 0 and is reopened by the caller."""
    conn.request(method, path, body=body, headers={"Accept-Encoding": "gzip", **headers})
    response = conn.getresponse()
    payload = response.read()
    if response.getheader("content-encoding") == "gzip":
        payload = gzip.decompress(payload)
    return response.status, len(payload)


def run_round(name, api_url, clients, total, make_request):
    """`total` requests spread over `clients` threads; make_request(i) → (method, path, body, headers)."""
    latencies, failures = [], collections.Counter()
    lock = threading.Lock()
    counter = iter(range(total))

    def worker():
        conn = connect(api_url)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            method, path, body, headers = make_request(i)
            start = time.perf_counter()
            try:
                status, _ = fetch(conn, method, path, body, headers)
            except (OSError, http.client.HTTPException) as e:
                status = f"{type(e).__name__}"
                conn.close()
                conn = connect(api_url)
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                latencies.append(elapsed)
                if not (isinstance(status, int) and 200 <= status < 300):
                    failures[status] += 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    errors = sum(failures.values())
    print(f"{name:<44} n={len(latencies):<6} {len(latencies) / seconds:7.0f} req/s   "
          f"p50={percentile(latencies, 50):7.1f} ms   p99={percentile(latencies, 99):7.1f} ms   "
          f"non-2xx={errors}{'  ' + dict(failures).__repr__() if errors else ''}")
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4000, help="per round")
    parser.add_argument("--flags", type=int, default=100)
    parser.add_argument("--credentials", default=os.path.join(ROOT, ".local", "dev-credentials.json"))
    args = parser.parse_args()

    with open(args.credentials) as f:
        api_url = json.load(f)["api_url"]
    project, key, _ = seed_project(api_url, "load", args.flags)
    manage = {"Authorization": f"Bearer {key}"}
    base = f"/api/projects/{project['id']}/feature_flags/"

    token = project["api_token"]
    secret = {"Authorization": f"Bearer {project['secret_api_key']}"}
    definitions = f"/flags/definitions?token={token}&send_cohorts"
    flag_list = f"{base}?limit=100"

    def evaluate(i):
        person = {"distinct_id": f"user-{i}", "api_key": token, "groups": {}, "group_properties": {},
                  "person_properties": {"email": f"u{i}@example.com", "plan": "pro", "age": 20 + i % 50,
                                        "app_version": f"1.{i % 7}.0"},
                  "geoip_disable": True}
        return "POST", "/flags/?v=4", json.dumps(person), {
            "Content-Type": "application/json", "User-Agent": "posthog-python/7.91.1"}

    def poll(_):
        return "GET", definitions, None, secret

    def mixed(i):
        return ("GET", definitions, None, secret) if i % 2 else ("GET", flag_list, None, manage)

    print(f"server {api_url}, project {project['id']} with {args.flags} flags, "
          f"{args.clients} concurrent clients, {args.requests} requests per round")
    errors = run_round("POST /flags/?v=4", api_url, args.clients, args.requests, evaluate)
    errors += run_round("GET /flags/definitions (200)", api_url, args.clients, args.requests, poll)
    errors += run_round("definitions + flag list ?limit=100 (mixed)", api_url, args.clients,
                        args.requests, mixed)
    print(f"non-2xx answers in all rounds: {errors}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
