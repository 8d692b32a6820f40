#!/usr/bin/env python3
"""Side-by-side benchmark of the evaluation engine (shared::evaluation) against posthog-python's
local evaluation and unleash-yggdrasil, on the same flags and users, in one run.

    .venv/bin/python scripts/bench-compare-python.py [--users N] [--flags N] [--seconds S]

1. Generates a fixture (fixed seed): flags as PostHog definitions, the same rules translated into
   Unleash toggles, and users with person properties.
2. Runs `cargo bench -p shared --features bench-compare --bench compare` on it: the Rust engine and
   unleash-yggdrasil, each timed over all users (results and values written back as JSON).
3. Times posthog-python 7.91.1 (`Client.get_all_flags(..., only_evaluate_locally=True)`) over the
   same users, checks that it and the engine agree on every flag of every user, and prints the
   per-user times and the speed ratios.

Needs `posthog==7.91.1` in the project's .venv (scripts/setup.sh installs it). Never run by
`make test`: benchmarks are not tests.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "target" / "bench-compare"

COUNTRIES = ["US", "CA", "DE", "FR", "GB", "BR", "IN", "JP"]
DOMAINS = ["example.com", "example.org", "corp.io", "mail.net"]
PLANS = ["free", "pro", "team", "enterprise"]
VERSIONS = ["1.9.0", "2.2.9", "2.3.0", "2.4.1", "3.0.0", "3.1.2"]
NAMES = ["ann", "bob", "chen", "dana", "eve", "farid", "gus", "hana", "ivan", "jo"]


def person(key, operator, value):
    return {"key": key, "type": "person", "operator": operator, "value": value}


def constraint(context, operator, values=None, value=None, case_insensitive=False):
    c = {"contextName": context, "operator": operator, "caseInsensitive": case_insensitive, "inverted": False}
    if values is not None:
        c["values"] = values
    if value is not None:
        c["value"] = value
    return c


def rollout_strategy(key, pct, constraints=()):
    return {
        "name": "flexibleRollout",
        "parameters": {"rollout": str(pct), "stickiness": "userId", "groupId": key},
        "constraints": list(constraints),
    }


def make_flag(i, rng):
    """One flag as (PostHog filters, Unleash strategies, Unleash variants), cycling 8 shapes."""
    key = f"flag-{i:03d}"
    pct = rng.choice([10, 25, 33, 50, 66, 75, 90, 100])
    shape = i % 8
    variants = None
    if shape == 0:  # rollout only
        groups = [{"properties": [], "rollout_percentage": pct}]
        strategies = [rollout_strategy(key, pct)]
    elif shape == 1:  # list membership + rollout
        values = rng.sample(COUNTRIES, 3)
        groups = [{"properties": [person("country", "exact", values)], "rollout_percentage": pct}]
        strategies = [rollout_strategy(key, pct, [constraint("country", "IN", values=values)])]
    elif shape == 2:  # substring + number
        domain = rng.choice(DOMAINS).split(".")[0]
        age = rng.choice([18, 21, 30, 40])
        groups = [{"properties": [person("email", "icontains", domain), person("age", "gte", age)]}]
        strategies = [rollout_strategy(key, 100, [
            constraint("email", "STR_CONTAINS", values=[domain], case_insensitive=True),
            constraint("age", "NUM_GTE", value=str(age)),
        ])]
    elif shape == 3:  # multivariate
        groups = [{"properties": [], "rollout_percentage": 60}]
        weights = [("control", 34), ("test", 33), ("other", 33)]
        variants = [{"key": k, "rollout_percentage": w} for k, w in weights]
        strategies = [rollout_strategy(key, 60)]
    elif shape == 4:  # regex
        pattern = r"^[a-z]+@example\.(com|org)$"
        groups = [{"properties": [person("email", "regex", pattern)]}]
        strategies = [rollout_strategy(key, 100, [constraint("email", "REGEX", value=pattern)])]
    elif shape == 5:  # semver + negative list
        groups = [{"properties": [person("app_version", "semver_gte", "2.3.0"),
                                  person("plan", "is_not", ["free"])], "rollout_percentage": pct}]
        strategies = [rollout_strategy(key, pct, [
            constraint("app_version", "SEMVER_GTE", value="2.3.0"),
            constraint("plan", "NOT_IN", values=["free"]),
        ])]
    elif shape == 6:  # suffix + number below
        groups = [{"properties": [person("email", "ends_with", ".com"), person("age", "lt", 60)]}]
        strategies = [rollout_strategy(key, 100, [
            constraint("email", "STR_ENDS_WITH", values=[".com"], case_insensitive=True),
            constraint("age", "NUM_LT", value="60"),
        ])]
    else:  # two conditions: a segment, then a rollout
        groups = [{"properties": [person("plan", "exact", ["enterprise"])], "rollout_percentage": 100},
                  {"properties": [], "rollout_percentage": pct}]
        strategies = [rollout_strategy(key, 100, [constraint("plan", "IN", values=["enterprise"])]),
                      rollout_strategy(key, pct)]
    filters = {"groups": groups}
    unleash_variants = None
    if variants:
        filters["multivariate"] = {"variants": variants}
        unleash_variants = [{"name": v["key"], "weight": v["rollout_percentage"] * 10,
                             "weightType": "variable", "stickiness": "userId"} for v in variants]
    posthog = {"id": i + 1, "key": key, "active": True, "filters": filters,
               "ensure_experience_continuity": False}
    unleash = {"name": key, "enabled": True, "strategies": strategies}
    if unleash_variants:
        unleash["variants"] = unleash_variants
    return posthog, unleash


def make_user(i, rng):
    name = rng.choice(NAMES)
    return {
        "distinct_id": f"user-{i}",
        "properties": {
            "email": f"{name}@{rng.choice(DOMAINS)}",
            "country": rng.choice(COUNTRIES),
            "age": rng.randint(15, 70),
            "plan": rng.choice(PLANS),
            "app_version": rng.choice(VERSIONS),
        },
    }


def fixture(n_flags, n_users, seed=20240601):
    rng = random.Random(seed)
    pairs = [make_flag(i, rng) for i in range(n_flags)]
    return {
        "posthog": {"flags": [p for p, _ in pairs], "group_type_mapping": {}, "cohorts": {}},
        "unleash": {"version": 2, "features": [u for _, u in pairs]},
        "users": [make_user(i, rng) for i in range(n_users)],
    }


def run_rust(fixture_path, out_path):
    cmd = ["cargo", "bench", "-p", "shared", "--features", "bench-compare", "--bench", "compare",
           "--", str(fixture_path), str(out_path)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return json.loads(out_path.read_text())


def posthog_client(flags):
    from posthog import Posthog

    # Nothing is sent: local evaluation only, and the host is a closed port.
    client = Posthog("phc_bench", secret_key="phx_bench", host="http://127.0.0.1:9",
                     sync_mode=True, disable_geoip=True)
    client.feature_flags = flags
    client.group_type_mapping = {}
    client.cohorts = {}
    return client


def time_python(client, users, seconds):
    def one_round():
        for u in users:
            client.get_all_flags(u["distinct_id"], person_properties=u["properties"],
                                 only_evaluate_locally=True)

    one_round()  # warm-up
    rounds, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        one_round()
        rounds += 1
    return (time.perf_counter() - start) / rounds / len(users) * 1e9


def agreement(client, users, engine_values):
    mismatches = []
    for user, engine in zip(users, engine_values):
        local = client.get_all_flags(user["distinct_id"], person_properties=user["properties"],
                                     only_evaluate_locally=True) or {}
        for key, value in engine.items():
            if local.get(key) != value:
                mismatches.append((user["distinct_id"], key, local.get(key), value))
    return mismatches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--flags", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum posthog-python timing")
    args = parser.parse_args()

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    data = fixture(args.flags, args.users)
    fixture_path, out_path = OUT_DIR / "fixture.json", OUT_DIR / "rust.json"
    fixture_path.write_text(json.dumps(data))
    rust = run_rust(fixture_path, out_path)

    client = posthog_client(data["posthog"]["flags"])
    mismatches = agreement(client, data["users"], rust["values"])
    python_ns = time_python(client, data["users"], args.seconds)
    client.shutdown()

    engine, unleash = rust["engine_ns_per_user"], rust["unleash_ns_per_user"]
    enabled = sum(v not in (False, None) for user in rust["values"] for v in user.values())
    total = sum(len(user) for user in rust["values"])
    print()
    print(f"{args.flags} flags x {args.users} users, time to evaluate every flag for one user "
          f"({enabled}/{total} values enabled):")
    print(f"  shared::evaluation    {engine / 1000:10.2f} µs")
    print(f"  unleash-yggdrasil     {unleash / 1000:10.2f} µs   engine is {unleash / engine:6.1f}x faster"
          f"   ({rust['unleash_enabled']}/{total} toggles enabled)")
    print(f"  posthog-python 7.91.1 {python_ns / 1000:10.2f} µs   engine is {python_ns / engine:6.1f}x faster")
    if mismatches:
        print(f"DISAGREEMENT with posthog-python on {len(mismatches)} values, e.g. {mismatches[:5]}")
        sys.exit(1)
    print(f"  engine and posthog-python agree on all {total} values")


if __name__ == "__main__":
    os.environ.setdefault("CARGO_TERM_COLOR", "never")
    main()
