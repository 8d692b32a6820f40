#!/usr/bin/env python3
"""Runs the release `bootstrap` of each function against a fake Lambda Runtime API and measures,
locally, what Lambda would bill:

* `init`: the time from starting the process to the runtime's first
  `GET /2018-06-01/runtime/invocation/next` -- Lambda's "Init Duration": process start, tracing
  set-up, the AWS SDK config and DynamoDB client, the payload cipher and lambda_runtime's own
  start-up. No network call happens in it (credentials come from environment variables, as on
  Lambda).
* `requests`: real API Gateway v2 events handed to one warm process per function, each timed from
  the moment the event is handed out to the moment the runtime posts its response -- Lambda's
  "Duration" -- against a DynamoDB Local seeded like `make dev` (creates N flags through the
  feature-flags function first, then times SDK and management requests).

Lambda runs arm64 (Graviton); this machine is x86_64, so build the host variant with the same
release profile first (`--lambda-dir` keeps the arm64 artifacts of `make build` intact), one
function per cargo invocation as `sam build` does: one invocation for several `-p` unifies their
`shared` features, and each binary would then carry every listed function's handlers:

    for f in feature-flags activity early-access-features flags persons cohorts dashboards identity \\
            cohort-jobs scheduled-changes api-schema console; do
        PATH=.venv/bin:$PATH cargo lambda build --release --x86-64 \\
            --lambda-dir target/lambda-x86_64 -p "$f"
    done
    python3 scripts/measure-lambda.py init --runs 30
    # DynamoDB Local with tables and seeded credentials, e.g. what `make dev` leaves running:
    python3 scripts/measure-lambda.py requests --dynamodb-endpoint http://127.0.0.1:8000 \\
        --credentials .local/dev-credentials.json --flags 100 --repeat 200

Standard library only.
"""

import argparse
import http.server
import json
import os
import queue
import socketserver
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

NEXT = "/2018-06-01/runtime/invocation/next"
FERNET_KEY = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="


class RuntimeApi:
    """A fake Lambda Runtime API for one process on a free 127.0.0.1 port: `/next` hands out
    queued events (and holds the long poll while there are none), responses are collected."""

    def __init__(self):
        self.first_next = threading.Event()
        self.first_next_at = None
        self.events = queue.Queue()
        self.responses = queue.Queue()
        self.closed = threading.Event()
        self.sent_at = {}
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle's algorithm the second waits
            # for the runtime's delayed ACK (~40 ms), which would be measured as duration.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != NEXT:
                    self.send_error(404)
                    return
                if not api.first_next.is_set():
                    api.first_next_at = time.perf_counter()
                    api.first_next.set()
                while not api.closed.is_set():
                    try:
                        body = api.events.get(timeout=0.2)
                        break
                    except queue.Empty:
                        continue
                else:
                    return
                request_id = str(uuid.uuid4())
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000))
                self.send_header(
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:measure",
                )
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.end_headers()
                api.sent_at[request_id] = time.perf_counter()
                self.wfile.write(body)
                self.wfile.flush()

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                now = time.perf_counter()
                parts = self.path.split("/")
                if "invocation" in parts and parts[-1] in ("response", "error"):
                    request_id = parts[parts.index("invocation") + 1]
                    api.responses.put((now - api.sent_at.pop(request_id, now), parts[-1], body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                # The runtime's connections reset when its process is killed at the end.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()


def lambda_env(port, function, memory, extra=None):
    """What Lambda sets for a provided.al2023 function. The credentials are dummies: init only
    builds the client; requests go to DynamoDB Local, which accepts any."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": function,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/21/[$LATEST]measure",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "ASIAMEASURELAMBDA000",
            "AWS_SECRET_ACCESS_KEY": "measure-lambda-not-a-secret",
            "AWS_SESSION_TOKEN": "measure-lambda-not-a-token",
            "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
            "_HANDLER": "bootstrap",
            "LAMBDA_TASK_ROOT": "/var/task",
            "RUST_LOG": "info",
            "FLAG_PAYLOAD_ENCRYPTION_KEY": FERNET_KEY,
        }
    )
    env.update(extra or {})
    return env


class Function:
    """One function process serving events from its own fake Runtime API."""

    def __init__(self, lambda_dir, name, memory, extra_env=None):
        self.name = name
        self.api = RuntimeApi()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [os.path.join(lambda_dir, name, "bootstrap")],
            env=lambda_env(self.api.port, name, memory, extra_env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not self.api.first_next.wait(20):
            self.close()
            raise RuntimeError(f"{name}: no /next within 20 s (exit {self.proc.poll()})")
        self.init_ms = (self.api.first_next_at - self.started) * 1000

    def invoke(self, event):
        self.api.events.put(json.dumps(event).encode())
        try:
            seconds, kind, body = self.api.responses.get(timeout=30)
        except queue.Empty:
            raise RuntimeError(f"{self.name}: no response within 30 s (exit {self.proc.poll()})")
        if kind != "response":
            raise RuntimeError(f"{self.name}: invocation error {body[:300]!r}")
        return seconds * 1000, json.loads(body)

    def close(self):
        """Stops the process; `max_rss_mb` is then its peak resident memory."""
        self.proc.kill()
        _, _, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = -9
        self.max_rss_mb = round(usage.ru_maxrss / 1024, 1)
        self.api.close()


def http_event(method, path, query=None, headers=None, body=None):
    """An API Gateway HTTP API (payload v2) event, as API Gateway sends it."""
    query = query or {}
    headers = {"host": "example.execute-api.us-east-1.amazonaws.com", "x-forwarded-proto": "https", **(headers or {})}
    event = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": urllib.parse.urlencode(query),
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "example",
            "domainName": headers["host"],
            "domainPrefix": "example",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "measure-lambda"},
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "21/Nov/2026:00:00:00 +0000",
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if body is not None:
        event["body"] = json.dumps(body)
        headers.setdefault("content-type", "application/json")
    return event


def summary(values):
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return {
        "n": len(values),
        "median": round(statistics.median(values), 2),
        "p90": round(p90, 2),
        "min": round(values[0], 2),
        "max": round(values[-1], 2),
    }


def functions_in(lambda_dir, wanted):
    found = sorted(d for d in os.listdir(lambda_dir) if os.path.isfile(os.path.join(lambda_dir, d, "bootstrap")))
    if wanted:
        missing = set(wanted) - set(found)
        if missing:
            sys.exit(f"no bootstrap under {lambda_dir} for {', '.join(sorted(missing))}")
        return wanted
    if not found:
        sys.exit(f"no <function>/bootstrap under {lambda_dir}")
    return found


def cmd_init(args):
    results = {}
    for name in functions_in(args.lambda_dir, args.functions):
        Function(args.lambda_dir, name, args.memory).close()  # page cache warm, as on a Lambda host
        inits = []
        for _ in range(args.runs):
            f = Function(args.lambda_dir, name, args.memory)
            inits.append(f.init_ms)
            f.close()
        results[name] = summary(inits)
        s = results[name]
        print(f"{name:24} init median {s['median']:6.2f} ms  p90 {s['p90']:6.2f}  min {s['min']:6.2f}  max {s['max']:6.2f}  (n={s['n']})", file=sys.stderr)
    print(json.dumps({"init_ms": results}, indent=2))


def cmd_requests(args):
    creds = json.load(open(args.credentials))
    project = str(creds["project_id"])
    personal = {"authorization": f"Bearer {creds['personal_api_key']}"}
    secret = {"authorization": f"Bearer {creds['project_secret_key']}"}
    token = creds["project_api_token"]
    env = {"AWS_ENDPOINT_URL_DYNAMODB": args.dynamodb_endpoint}
    if args.table_prefix:
        env["TABLE_PREFIX"] = args.table_prefix
    timings = {}
    memory = {}

    def timed(label, fn, event, repeat, expect):
        values = []
        for i in range(repeat):
            ms, response = fn.invoke(event(i) if callable(event) else event)
            if response.get("statusCode") not in expect:
                raise RuntimeError(f"{label}: status {response.get('statusCode')} {str(response.get('body'))[:300]}")
            values.append(ms)
        timings[label] = {"first": round(values[0], 2), **summary(values[1:] if len(values) > 1 else values)}
        s = timings[label]
        print(f"{label:52} first {s['first']:7.2f} ms  then median {s['median']:6.2f}  p90 {s['p90']:6.2f}  (n={s['n']})", file=sys.stderr)

    base = f"/api/projects/{project}/feature_flags/"
    run = uuid.uuid4().hex[:8]
    flags = Function(args.lambda_dir, "feature-flags", args.memory, env)
    try:
        timed(
            f"POST feature_flags/ (create; project growing to {args.flags})",
            flags,
            lambda i: http_event(
                "POST",
                base,
                headers=personal,
                body={"key": f"measure-{run}-{i}", "filters": {"groups": [{"properties": [{"key": "plan", "type": "person", "operator": "exact", "value": ["pro"]}], "rollout_percentage": 50}]}},
            ),
            args.flags,
            {201},
        )
        listed = flags.invoke(http_event("GET", base, query={"limit": "1"}, headers=personal))[1]
        first_id = json.loads(listed["body"])["results"][0]["id"]
        timed("GET feature_flags/ (list, default page)", flags, http_event("GET", base, headers=personal), args.repeat, {200})
        timed("GET feature_flags/{id}/ (retrieve)", flags, http_event("GET", f"{base}{first_id}/", headers=personal), args.repeat, {200})
        timed(
            "PATCH feature_flags/{id}/ (update name)",
            flags,
            lambda i: http_event("PATCH", f"{base}{first_id}/", headers=personal, body={"name": f"renamed {i}"}),
            args.repeat,
            {200},
        )
    finally:
        flags.close()
        memory["feature-flags"] = flags.max_rss_mb

    activity = Function(args.lambda_dir, "activity", args.memory, env)
    try:
        timed("GET feature_flags/activity/ (page 1)", activity, http_event("GET", f"{base}activity/", headers=personal), args.repeat, {200})
    finally:
        activity.close()
        memory["activity"] = activity.max_rss_mb

    sdk = Function(args.lambda_dir, "flags", args.memory, env)
    try:
        timed(
            "POST /flags/?v=2 (remote evaluation, one person)",
            sdk,
            lambda i: http_event("POST", "/flags/", query={"v": "2"}, body={"token": token, "distinct_id": f"user-{i}", "person_properties": {"plan": "pro"}}),
            args.repeat,
            {200},
        )
        timed(
            "GET /api/feature_flag/local_evaluation/ (200)",
            sdk,
            http_event("GET", "/api/feature_flag/local_evaluation/", query={"token": token}, headers=secret),
            args.repeat,
            {200},
        )
        first = sdk.invoke(http_event("GET", "/api/feature_flag/local_evaluation/", query={"token": token}, headers=secret))[1]
        etag = {k.lower(): v for k, v in first["headers"].items()}["etag"]
        timed(
            "GET /api/feature_flag/local_evaluation/ (304)",
            sdk,
            http_event("GET", "/api/feature_flag/local_evaluation/", query={"token": token}, headers={**secret, "if-none-match": etag}),
            args.repeat,
            {304},
        )
        timed(
            "POST /batch/ ($feature_flag_called)",
            sdk,
            lambda i: http_event(
                "POST",
                "/batch/",
                body={"api_key": token, "batch": [{"event": "$feature_flag_called", "distinct_id": f"user-{i}", "properties": {"$feature_flag": f"measure-{run}-0", "$feature_flag_response": True}}]},
            ),
            args.repeat,
            {200},
        )
    finally:
        sdk.close()
        memory["flags"] = sdk.max_rss_mb
    for name, mb in memory.items():
        print(f"{name:24} peak RSS {mb} MB", file=sys.stderr)
    print(json.dumps({"memory_mb": args.memory, "flags": args.flags, "duration_ms": timings, "max_rss_mb": memory}, indent=2))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lambda-dir", default="target/lambda-x86_64", help="where <function>/bootstrap are")
    parser.add_argument("--memory", type=int, default=256, help="AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="time to the first /next, per function")
    init.add_argument("--functions", nargs="*", help="default: every function under --lambda-dir")
    init.add_argument("--runs", type=int, default=30)
    init.set_defaults(run=cmd_init)
    req = sub.add_parser("requests", help="warm request durations against DynamoDB Local")
    req.add_argument("--dynamodb-endpoint", required=True)
    req.add_argument("--credentials", required=True, help="a .local/dev-credentials.json-shaped file")
    req.add_argument("--table-prefix", default=os.environ.get("TABLE_PREFIX", ""))
    req.add_argument("--flags", type=int, default=100, help="flags to create first")
    req.add_argument("--repeat", type=int, default=200)
    req.set_defaults(run=cmd_requests)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
