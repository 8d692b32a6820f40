"""Drives the web console (functions/console, console/) in headless Chromium as a user would.

Run by tests/console.rs (`make test`) with the checkout's .venv: `python console.py SPEC OUT`.
SPEC: {"api_url", "key" (a personal API key), "token" (the project's), "project_id", "stem"
(unique flag key prefix), "chromium", "screenshots" (a directory, or null)}.

The run, in one browser context on the API's own origin: sign in with the key; create a flag
with two release conditions and three variants with JSON payloads; toggle it on the list; edit
its description while another client (this script, over HTTP) changed the same field, and see
the conflict; reload; revert to the flag's first version from the history; capture
`$feature_flag_called` events and see them on the usage tab; test the flag for a person; move an
early access feature through its stages; open PostHog's hyphenated deep link. Every step
records what the page showed. Writes to OUT: {"steps": {name: value}, "flag_id", "feature_id",
"failures": [failed requests, answers >= 400 other than the expected 409, page errors, console
errors (CSP violations are console errors)], "requests": [...]}.

Chromium is Debian's, launched with the posthog-js test's arguments (never a Playwright
download); a missing browser or Playwright is an error.
"""

import json
import pathlib
import re
import sys
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from posthog_js import CHROMIUM_ARGS  # noqa: E402  (also fails clearly without Playwright)
from playwright.sync_api import expect, sync_playwright  # noqa: E402

WAIT_MS = 15_000


def call(spec, method, path, body=None):
    """Another client: the management API over plain HTTP with the same key."""
    request = urllib.request.Request(
        spec["api_url"] + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {spec['key']}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def shot(page, spec, name):
    if spec.get("screenshots"):
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(pathlib.Path(spec["screenshots"]) / f"console-{name}.png"), full_page=False)


def run(page, spec, out):
    steps = out["steps"]
    api, project, stem = spec["api_url"], spec["project_id"], spec["stem"]
    key = f"{stem}-checkout"

    # A few other flags, so the list has company (soft-deleted again at the end).
    others = []
    for suffix, body in [
        ("dark-mode", {"name": "Dark mode", "tags": ["web"], "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}}),
        ("new-onboarding", {"name": "New onboarding", "tags": ["growth"], "filters": {"groups": [{"properties": [], "rollout_percentage": 20}]}}),
        ("pricing-test", {"name": "Pricing page test", "active": False, "filters": {"groups": [{"properties": [], "rollout_percentage": 100}],
            "multivariate": {"variants": [{"key": "control", "rollout_percentage": 50}, {"key": "cheaper", "rollout_percentage": 50}]}}}),
    ]:
        others.append(call(spec, "POST", f"/api/projects/{project}/feature_flags/", {"key": f"{stem}-{suffix}", **body})["id"])

    # Sign in.
    page.goto(api + "/")
    expect(page.get_by_label("Personal API key")).to_be_visible(timeout=WAIT_MS)
    shot(page, spec, "sign-in")
    page.get_by_label("Personal API key").fill(spec["key"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/project/{project}/feature_flags", timeout=WAIT_MS)
    expect(page.get_by_role("heading", name="Feature flags")).to_be_visible()
    steps["signed_in"] = page.url
    steps["key_in_session_storage"] = page.evaluate("() => Object.values(sessionStorage).includes(%s)" % json.dumps(spec["key"]))
    steps["key_in_local_storage_or_cookie"] = page.evaluate(
        "(k) => Object.values(localStorage).includes(k) || document.cookie.includes(k) || location.href.includes(k)", spec["key"]
    )

    # Create: two conditions, three variants with payloads.
    page.get_by_role("link", name="New feature flag").click()
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_label("Description").fill("Checkout v2")
    page.get_by_role("button", name="Use multiple variants").click()
    page.get_by_role("button", name="Add variant").click()
    for i, (name, payload) in enumerate([("control", '{"color": "blue"}'), ("test", "[1, 2]"), ("bold", '"big"')]):
        page.get_by_label(f"Variant {i + 1} key").fill(name)
        page.get_by_label(f"Payload of variant {i + 1}").fill(payload)
    # A payload that is not JSON is flagged as you type.
    page.get_by_label("Payload of variant 3").fill("{oops")
    steps["payload_error_shown"] = page.get_by_text("Not valid JSON").first.is_visible()
    page.get_by_label("Payload of variant 3").fill('"big"')
    conditions = page.locator("fieldset.condition")
    conditions.nth(0).get_by_role("button", name="Add property filter").click()
    page.get_by_label("Filter 1 property").first.fill("plan")
    page.get_by_label("Filter 1 value").first.fill("pro, team")
    page.get_by_label("Condition 1 rollout percentage").fill("50")
    page.get_by_role("button", name="Add condition set").click()
    conditions.nth(1).get_by_role("button", name="Add property filter").click()
    conditions.nth(1).get_by_label("Filter 1 property").fill("email")
    conditions.nth(1).get_by_label("Filter 1 operator").select_option("icontains")
    conditions.nth(1).get_by_label("Filter 1 value").fill("@example.com")
    shot(page, spec, "create-flag")
    page.get_by_role("button", name="Create flag").click()
    page.wait_for_url(re.compile(rf"/project/{project}/feature_flags/\d+$"), timeout=WAIT_MS)
    flag_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    out["flag_id"] = flag_id
    expect(page.get_by_role("heading", name=key)).to_be_visible(timeout=WAIT_MS)

    # Toggle on the list, with confirmation.
    page.goto(f"{api}/project/{project}/feature_flags")
    page.get_by_role("searchbox").fill(key)
    expect(page.locator("table.flags tbody tr")).to_have_count(1, timeout=WAIT_MS)
    switch = page.get_by_role("switch", name=f"Disable {key}")
    expect(switch).to_be_visible(timeout=WAIT_MS)
    switch.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Disable {key}?")
    dialog.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("switch", name=f"Enable {key}")).to_be_visible(timeout=WAIT_MS)
    steps["toggled_off"] = call(spec, "GET", f"/api/projects/{project}/feature_flags/{flag_id}/")["active"]
    page.get_by_role("searchbox").fill(stem)
    expect(page.locator("table.flags tbody tr")).to_have_count(4, timeout=WAIT_MS)
    shot(page, spec, "flags-list")
    page.get_by_role("searchbox").fill(key)
    expect(page.locator("table.flags tbody tr")).to_have_count(1, timeout=WAIT_MS)

    # Edit while another client changed the same field: the conflict is shown, nothing is lost.
    page.get_by_role("link", name=key).click()
    expect(page.get_by_label("Description")).to_have_value("Checkout v2", timeout=WAIT_MS)
    call(spec, "PATCH", f"/api/projects/{project}/feature_flags/{flag_id}/", {"name": "Changed elsewhere"})
    page.get_by_label("Description").fill("Changed here")
    page.get_by_role("button", name="Save").click()
    conflict = page.locator(".conflict")
    expect(conflict).to_be_visible(timeout=WAIT_MS)
    steps["conflict_text"] = conflict.inner_text()
    steps["name_after_conflict"] = call(spec, "GET", f"/api/projects/{project}/feature_flags/{flag_id}/")["name"]
    shot(page, spec, "conflict")
    page.get_by_role("button", name="Reload (discard my changes)").click()
    expect(page.get_by_label("Description")).to_have_value("Changed elsewhere", timeout=WAIT_MS)

    # History: revert to the first version (the entry of the creation, oldest on the page).
    page.get_by_role("tab", name="History").click()
    entries = page.locator(".history li.entry")
    expect(entries.first).to_be_visible(timeout=WAIT_MS)
    steps["history_entries"] = entries.count()
    entries.first.get_by_text("Changes").click()
    steps["history_diff_shown"] = entries.first.locator(".diff").count() > 0
    shot(page, spec, "history")
    entries.last.get_by_role("button", name="Revert to the version after this change", exact=False).click()
    page.get_by_role("dialog").get_by_role("button", name="Revert").click()
    expect(page.get_by_role("dialog")).to_have_count(0, timeout=WAIT_MS)
    after = call(spec, "GET", f"/api/projects/{project}/feature_flags/{flag_id}/")
    steps["after_revert"] = {"name": after["name"], "active": after["active"]}

    # Test this flag (enabled again) for a person the second condition matches at 100 %.
    page.get_by_role("tab", name="Test this flag").click()
    page.get_by_label("Distinct id").fill(f"{stem}-person")
    page.get_by_label("Person properties (JSON)").fill('{"email": "someone@example.com"}')
    page.get_by_role("button", name="Evaluate").click()
    expect(page.get_by_test_id("test-value")).to_be_visible(timeout=WAIT_MS)
    steps["test_value"] = page.get_by_test_id("test-value").inner_text()
    steps["test_reason"] = page.get_by_test_id("test-reason").inner_text()
    shot(page, spec, "test-flag")

    # Usage after captured events.
    batch = [
        {"event": "$feature_flag_called", "distinct_id": f"{stem}-u{i}",
         "properties": {"$feature_flag": key, "$feature_flag_response": "control"}}
        for i in range(3)
    ]
    request = urllib.request.Request(
        api + "/batch/", method="POST", data=json.dumps({"api_key": spec["token"], "batch": batch}).encode(),
        headers={"content-type": "application/json"},
    )
    urllib.request.urlopen(request).read()
    page.reload()
    page.get_by_role("tab", name="Usage").click()
    counts = page.get_by_test_id("usage-count")
    expect(counts.first).to_be_visible(timeout=WAIT_MS)
    steps["usage_counts"] = counts.all_inner_texts()
    shot(page, spec, "usage")

    # Schedule a change a year ahead: listed as pending; then cancelled.
    page.get_by_role("tab", name="Scheduled changes").click()
    page.get_by_label("At").fill(f"{time.gmtime().tm_year + 1}-06-01T10:00")
    page.get_by_label("Change to make").select_option("off")
    page.get_by_role("button", name="Schedule", exact=True).click()
    expect(page.get_by_text("(pending)")).to_be_visible(timeout=WAIT_MS)
    steps["scheduled"] = call(spec, "GET", f"/api/projects/{project}/scheduled_changes/?model_name=FeatureFlag&record_id={flag_id}")["results"][0]["payload"]
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.get_by_text("No scheduled changes.")).to_be_visible(timeout=WAIT_MS)

    # PostHog's hyphenated deep link opens the same flag.
    page.goto(f"{api}/project/{project}/feature-flags/{flag_id}")
    expect(page.get_by_role("heading", name=key)).to_be_visible(timeout=WAIT_MS)
    steps["deep_link"] = True

    # Early access: create one and move it through its stages.
    page.get_by_role("link", name="Early access").click()
    page.get_by_label("Name").fill(f"{stem} beta feature")
    page.get_by_role("button", name="Create (draft, with its own flag)").click()
    page.wait_for_url(re.compile(rf"/project/{project}/early_access_features/[^/]+$"), timeout=WAIT_MS)
    out["feature_id"] = page.url.rstrip("/").rsplit("/", 1)[1]
    stages = []
    for stage in ["concept", "beta", "general-availability"]:
        page.get_by_role("button", name=stage, exact=True).click()
        expect(page.get_by_test_id("eaf-stage")).to_have_text(stage, timeout=WAIT_MS)
        stages.append(page.get_by_test_id("eaf-stage").inner_text())
    steps["stages"] = stages
    shot(page, spec, "early-access")

    for other in others:
        call(spec, "PATCH", f"/api/projects/{project}/feature_flags/{other}/", {"deleted": True})

    # A cohort by person properties, created in the console.
    page.get_by_role("link", name="Cohorts").click()
    page.get_by_label("Name").fill(f"{stem} pro users")
    page.get_by_label("Filter 1 property").fill("plan")
    page.get_by_label("Filter 1 value").fill("pro")
    page.get_by_role("button", name="Create cohort").click()
    page.wait_for_url(re.compile(rf"/project/{project}/cohorts/\d+$"), timeout=WAIT_MS)
    expect(page.get_by_role("heading", name=f"{stem} pro users")).to_be_visible(timeout=WAIT_MS)
    out["cohort_id"] = int(page.url.rsplit("/", 1)[1])

    # On a phone's screen: the list keeps its key, status and switch columns.
    page.set_viewport_size({"width": 390, "height": 760})
    page.get_by_role("link", name="Feature flags", exact=True).click()
    page.get_by_role("searchbox").fill(stem)
    # The flag made here and the early access feature's own flag.
    expect(page.locator("table.flags tbody tr")).to_have_count(2, timeout=WAIT_MS)
    steps["phone_switch_visible"] = page.locator("table.flags tbody tr").first.get_by_role("switch").is_visible()
    shot(page, spec, "phone")
    page.set_viewport_size({"width": 1280, "height": 860})

    # Sign out forgets the key.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Personal API key")).to_be_visible(timeout=WAIT_MS)
    steps["signed_out_key_gone"] = not page.evaluate("(k) => Object.values(sessionStorage).includes(k)", spec["key"])


def main():
    spec = json.loads(pathlib.Path(sys.argv[1]).read_text())
    out = {"steps": {}, "failures": [], "requests": [], "console": []}
    if spec.get("screenshots"):
        pathlib.Path(spec["screenshots"]).mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=spec["chromium"], headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()

        def on_response(response):
            request = response.request
            out["requests"].append(f"{request.method} {request.url} {response.status}")
            # The one refusal the run provokes: the stale save.
            if response.status >= 400 and not (response.status == 409 and request.method == "PATCH"):
                out["failures"].append(f"{request.method} {request.url} answered {response.status}")

        def on_console(message):
            out["console"].append(f"{message.type}: {message.text}")
            if message.type == "error" and "409" not in message.text:
                out["failures"].append(f"console error: {message.text}")

        page.on("response", on_response)
        page.on("console", on_console)
        def on_failed(request):
            # A page left (goto, reload) cancels its requests still in flight: not a failure.
            if request.failure != "net::ERR_ABORTED":
                out["failures"].append(f"{request.method} {request.url} failed: {request.failure}")

        page.on("requestfailed", on_failed)
        page.on("pageerror", lambda e: out["failures"].append(f"page error: {e}"))
        started = time.monotonic()
        try:
            run(page, spec, out)
        except Exception as error:  # recorded with a screenshot, then reported by the Rust test
            out["error"] = f"{type(error).__name__}: {error}"
            out["failed_at_url"] = page.url
            try:
                page.screenshot(path=str(pathlib.Path(sys.argv[2]).with_suffix(".failure.png")))
            except Exception:
                pass
        out["seconds"] = round(time.monotonic() - started, 1)
        browser.close()
    pathlib.Path(sys.argv[2]).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
