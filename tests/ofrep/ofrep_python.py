"""OpenFeature's Python SDK with its OFREP provider (openfeature-sdk, openfeature-provider-ofrep
from .venv, installed by `make setup`) against this server.

Run by tests/ofrep.rs: `python ofrep_python.py SPEC OUT`, SPEC and OUT as in ofrep_node.mjs.
The provider is configured as its README shows, with the project token as
`Authorization: Bearer <token>` from `headers_factory`.
"""

import json
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext


def main(spec_path, out_path):
    with open(spec_path) as f:
        spec = json.load(f)
    token = spec["token"]
    api.set_provider(
        OFREPProvider(
            base_url=spec["base_url"],
            headers_factory=lambda: {"Authorization": f"Bearer {token}"},
        )
    )
    client = api.get_client()
    methods = {
        "boolean": (client.get_boolean_details, False),
        "string": (client.get_string_details, "code-default"),
        "object": (client.get_object_details, {"default": True}),
        "missing": (client.get_boolean_details, False),
    }
    out = []
    for user in spec["users"]:
        attributes = {k: v for k, v in user.items() if k != "targetingKey"}
        context = EvaluationContext(targeting_key=user["targetingKey"], attributes=attributes)
        answers = {}
        for kind, keys in spec["flags"].items():
            method, default = methods[kind]
            for key in keys:
                details = method(key, default, context)
                reason = details.reason
                answers[key] = {
                    "value": details.value,
                    "variant": details.variant,
                    "reason": getattr(reason, "value", reason),
                    "errorCode": getattr(details.error_code, "value", details.error_code),
                }
        out.append(answers)
    api.shutdown()
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
