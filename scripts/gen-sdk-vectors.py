#!/usr/bin/env python3
"""Writes shared/tests/data/posthog_python_vectors.json: what posthog-python 7.91.1's local
evaluation answers for a randomized set of flags and users (fixed seed), covering the operators,
variants, overrides, holdouts and multi-condition flags where the SDK evaluates definitively.
The engine test `evaluation_sdk_vectors` must reproduce every value. Regenerate with

    .venv/bin/python scripts/gen-sdk-vectors.py

Values the SDK could not resolve locally are left out (they are the server's to decide).
Avoided on purpose, because the SDK differs from the server there (evaluation-rules.md §7): missing
properties, non-numeric comparisons, relative dates.

Versions get their own table, `semver`: every semver operator against filter and person values
in the shapes apps send (leading zeros, `v` prefixes, partial versions, pre-release and build
suffixes, numbers, junk), each with the SDK's `match_property` answer, or null where it raises
(it then asks the server, where such a filter does not match).
"""

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "shared" / "tests" / "data" / "posthog_python_vectors.json"
SEED = 5_2024

COUNTRIES = ["US", "us", "CA", "DE", "FR", "GB"]
PLANS = ["free", "pro", "Team", "enterprise"]
DOMAINS = ["example.com", "Example.org", "corp.io", "mail.net"]
VERSIONS = ["1.0.0", "1.2.3", "1.2.10", "2.0.0", "2.3.1", "10.1.0"]
DATES = ["2023-01-15", "2023-12-31T23:00:00Z", "2024-02-29", "2024-06-01T12:30:00+02:00"]
BOOLS = [True, False, "true", "False"]


def person(key, operator, value):
    return {"key": key, "type": "person", "operator": operator, "value": value}


def random_filter(rng):
    kind = rng.randrange(14)
    if kind == 0:
        return person("country", "exact", rng.sample(COUNTRIES, 2))
    if kind == 1:
        return person("plan", rng.choice(["exact", "is_not"]), rng.choice(PLANS))
    if kind == 2:
        return person("email", rng.choice(["icontains", "not_icontains"]), rng.choice(["EXAMPLE", "corp", ".net"]))
    if kind == 3:
        return person("email", rng.choice(["starts_with", "not_starts_with", "ends_with", "not_ends_with"]),
                      rng.choice(["a", "B", ".COM", "io"]))
    if kind == 4:
        return person("email", rng.choice(["regex", "not_regex"]), rng.choice([r"^[a-c]", r"example", r"\.io$"]))
    if kind == 5:
        return person("age", rng.choice(["gt", "gte", "lt", "lte"]), rng.choice([18, 30, "45", 60.5]))
    if kind == 6:
        return person("app_version", rng.choice(["semver_gt", "semver_gte", "semver_lt", "semver_lte",
                                                 "semver_eq", "semver_neq"]), rng.choice(VERSIONS))
    if kind == 7:
        return person("app_version", rng.choice(["semver_tilde", "semver_caret"]), rng.choice(["1.2.0", "2.0.0"]))
    if kind == 8:
        return person("app_version", "semver_wildcard", rng.choice(["1.*", "1.2.*", "2.*"]))
    if kind == 9:
        return person("signup", rng.choice(["is_date_before", "is_date_after"]),
                      rng.choice(["2023-06-01", "2024-01-01T00:00:00Z", "2024-03-01"]))
    if kind == 10:
        return person("beta", "exact", rng.choice(["true", "false", True, ["true"]]))
    if kind == 11:
        return person("score", "exact", rng.choice([1, "1", 2.5, [1, 2]]))
    if kind == 12:
        return person(rng.choice(["plan", "email"]), "is_set", "is_set")
    return person("country", "is_not", rng.sample(COUNTRIES, 2))


SEMVER_COMPARISONS = ["semver_eq", "semver_neq", "semver_gt", "semver_gte", "semver_lt", "semver_lte"]
SEMVER_FILTERS = ["1.2.3", "01.2.3", "1.02.3", "1.2.03", "v1.2.3", "V1.2", "1.2", "1", "1.2.3-beta",
                  "1.2.3+7", "0.0.3", "0.2.0", "1.10", "abc", "", 1.2, 2]
SEMVER_WILDCARDS = ["1.*", "1.2.*", "0.0.*", "v1.*", "01.*", "1.02.*", "1.*.3", "1.2.3", "1.2.3.*",
                    "*", "1.2-beta.*", "x.*", "", 1]
SEMVER_PERSONS = ["1.2.3", "01.2.3", "1.02.3", "1.2.03", "00.0.3", "0.0.3", "0.0.4", "0.2.5", "0.3.0",
                  "v1.2.3", "V1.2.3", "vv1.2.3", " 1.2.3 ", "1.2", "1", "1.2.3-beta", "1.2.3-rc.01",
                  "1.2.3+build.5", "1.2.3.4", "1.2.4", "1.10.0", "1.3.0", "2.0.0", "abc", "", "v 1.2.3",
                  1.2, 2, True, None]


def semver_table():
    """Rows of [operator, filter value, person value, SDK answer or None when it defers]."""
    from posthog.feature_flags import InconclusiveMatchError, match_property

    rows = []
    operators = [(op, SEMVER_FILTERS) for op in SEMVER_COMPARISONS + ["semver_tilde", "semver_caret"]]
    operators.append(("semver_wildcard", SEMVER_WILDCARDS))
    for operator, values in operators:
        for value in values:
            for found in SEMVER_PERSONS:
                prop = {"key": "app_version", "type": "person", "operator": operator, "value": value}
                try:
                    answer = match_property(prop, {"app_version": found})
                except InconclusiveMatchError:
                    answer = None
                rows.append([operator, value, found, answer])
    return rows


def random_flag(i, rng):
    key = f"vec-{i:02d}"
    groups = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        group = {"properties": [random_filter(rng) for _ in range(rng.choice([0, 1, 1, 2, 3]))],
                 "rollout_percentage": rng.choice([None, 100, 80, 50, 30, 5])}
        groups.append(group)
    filters = {"groups": groups}
    if rng.random() < 0.4:
        filters["multivariate"] = {"variants": [
            {"key": "alpha", "rollout_percentage": 40},
            {"key": "beta", "rollout_percentage": 35},
            {"key": "gamma", "rollout_percentage": 25}]}
        if rng.random() < 0.5:
            rng.choice(groups)["variant"] = rng.choice(["beta", "gamma", "missing-variant"])
    if rng.random() < 0.2:
        filters["holdout"] = {"id": rng.choice([1, 2]), "exclusion_percentage": rng.choice([10, 25])}
    return {"id": i + 1, "key": key, "active": True, "filters": filters, "ensure_experience_continuity": False}


def random_user(i, rng):
    return {
        "distinct_id": f"vec-user-{i}",
        "properties": {
            "country": rng.choice(COUNTRIES),
            "plan": rng.choice(PLANS),
            "email": f"{rng.choice('abcxyz')}{i}@{rng.choice(DOMAINS)}",
            "age": rng.choice([17, 18, 30, 44, 45, 61, "29", 60.5]),
            "app_version": rng.choice(VERSIONS),
            "signup": rng.choice(DATES),
            "beta": rng.choice(BOOLS),
            "score": rng.choice([1, 2, 2.5, "1"]),
        },
    }


def main():
    from posthog import Posthog

    rng = random.Random(SEED)
    flags = [random_flag(i, rng) for i in range(60)]
    users = [random_user(i, rng) for i in range(200)]
    client = Posthog("phc_vectors", secret_key="phx_vectors", host="http://127.0.0.1:9",
                     sync_mode=True, disable_geoip=True)
    client.feature_flags = flags
    client.group_type_mapping = {}
    client.cohorts = {}
    expected = {}
    resolved = 0
    for user in users:
        values = client.get_all_flags(user["distinct_id"], person_properties=user["properties"],
                                      only_evaluate_locally=True) or {}
        expected[user["distinct_id"]] = values
        resolved += len(values)
    client.shutdown()
    OUT.write_text(json.dumps({
        "source": "posthog-python 7.91.1 local evaluation (get_all_flags, only_evaluate_locally=True), "
                  "generated by scripts/gen-sdk-vectors.py; unresolved values omitted",
        "flags": flags,
        "users": users,
        "expected": expected,
        "semver": semver_table(),
    }, indent=None, sort_keys=True))
    print(f"{OUT}: {resolved} values of {len(flags) * len(users)} resolved locally")


if __name__ == "__main__":
    main()
