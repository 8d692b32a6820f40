"""Drives the real posthog-python SDK against this server and prints what it answered.

Run by tests/sdk.rs (`make test`) with the checkout's .venv: `python python_sdk.py SPEC OUT`.
SPEC: {"api_url", "token", "secret_key", "keys": [...], "users": [{"id", "person", "groups",
"group_properties"}], "single_users": N, "called": {"key", "user"} (optional),
"capture": {"options": {...}} (optional)}.

Writes one JSON object to OUT (stdout is left to the SDK's own logging): per mode, per user, per flag key the SDK returned, [value, payload].
Modes: "remote" (no secret key: every answer from POST /flags), "local" (secret key: local
evaluation, the SDK falling back to /flags when it must), "local_only" (only what the SDK could
decide locally), "single" (get_feature_flag + get_feature_flag_payload per flag, remote),
"evaluate" (the new evaluate_flags snapshot API, with local evaluation).
With "stored_person": true (the cohort scenario, whose persons the server has stored) three more:
"remote_stored" (remote, no person properties sent: the server's stored ones decide),
"single_local" ("single" with local evaluation, falling back per flag) and "single_local_only"
(get_feature_flag per flag with only_evaluate_locally=True, every key recorded, [None, None]
when the SDK could not decide locally).
With "capture" the run is an application's instead: a client with the SDK's defaults plus
"options" (such as {"gzip": true}) captures "$set" of each user's person properties, flushes,
and writes "stored": the remote answers for each user with no person properties sent.
"""

import json
import logging
import sys
import warnings

from posthog import Posthog

warnings.simplefilter("ignore", DeprecationWarning)
logging.basicConfig(level=logging.ERROR)


def parsed(payload):
    """Payloads travel as JSON text; the SDK may or may not have parsed them already."""
    if isinstance(payload, str):
        try:
            return json.loads(payload)
        except ValueError:
            return payload
    return payload


def context(user):
    return {
        "groups": user["groups"],
        "person_properties": user["person"],
        "group_properties": user["group_properties"],
    }


def all_flags(client, user, keys, **options):
    result = client.get_all_flags_and_payloads(user["id"], **context(user), **options)
    flags = result.get("featureFlags") or {}
    payloads = result.get("featureFlagPayloads") or {}
    return {k: [flags[k], parsed(payloads.get(k))] for k in keys if k in flags}


def single(client, user, keys):
    out = {}
    for key in keys:
        value = client.get_feature_flag(key, user["id"], **context(user), send_feature_flag_events=False)
        payload = client.get_feature_flag_payload(key, user["id"], **context(user), send_feature_flag_events=False)
        if value is not None:
            out[key] = [value, parsed(payload)]
    return out


def single_local_only(client, user, keys):
    """Every key, with None when the SDK would have to ask the server."""
    out = {}
    for key in keys:
        value = client.get_feature_flag(
            key, user["id"], **context(user), only_evaluate_locally=True, send_feature_flag_events=False
        )
        out[key] = [value, None]
    return out


def evaluate(client, user, keys):
    snapshot = client.evaluate_flags(user["id"], **context(user))
    out = {}
    for key in keys:
        value = snapshot.get_flag(key)
        if value is not None:
            out[key] = [value, parsed(snapshot.get_flag_payload(key))]
    return out


def client(spec, **options):
    return Posthog(
        spec["token"],
        host=spec["api_url"],
        sync_mode=True,
        poll_interval=3600,
        feature_flags_request_timeout_seconds=20,
        **options,
    )


def compare_run(spec):
    keys, users = spec["keys"], spec["users"]
    remote = client(spec)
    local = client(spec, secret_key=spec["secret_key"])
    local.load_feature_flags()
    few = users[: spec["single_users"]]
    out = {
        "remote": {u["id"]: all_flags(remote, u, keys) for u in users},
        "local": {u["id"]: all_flags(local, u, keys) for u in users},
        "local_only": {u["id"]: all_flags(local, u, keys, only_evaluate_locally=True) for u in users},
        "single": {u["id"]: single(remote, u, keys) for u in few},
        "evaluate": {u["id"]: evaluate(local, u, keys) for u in few},
    }
    if spec.get("stored_person"):
        bare = [{**u, "person": {}} for u in users]
        out["remote_stored"] = {u["id"]: all_flags(remote, u, keys) for u in bare}
        out["single_local_only"] = {u["id"]: single_local_only(local, u, keys) for u in users}
        out["single_local"] = {u["id"]: single(local, u, keys) for u in few}
    remote.shutdown()
    local.shutdown()
    return out


def called_run(spec):
    """Asks for one flag the way an application does, which reports $feature_flag_called."""
    sdk = client(spec)
    value = sdk.get_feature_flag(spec["called"]["key"], spec["called"]["user"])
    sdk.flush()
    sdk.shutdown()
    return {"value": value}


def capture_run(spec):
    sdk = Posthog(spec["token"], host=spec["api_url"], **spec["capture"]["options"])
    for user in spec["users"]:
        sdk.capture("$pageview", distinct_id=user["id"], properties={"$set": user["person"]})
    sdk.flush()
    bare = [{**u, "person": {}} for u in spec["users"]]
    stored = {u["id"]: all_flags(sdk, u, spec["keys"]) for u in bare}
    sdk.shutdown()
    return {"stored": stored}


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    if spec.get("capture"):
        result = capture_run(spec)
    elif spec.get("called"):
        result = called_run(spec)
    else:
        result = compare_run(spec)
    with open(sys.argv[2], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
