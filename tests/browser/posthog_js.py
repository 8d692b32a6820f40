"""Drives the real posthog-js in headless Chromium against this server and records what it saw.

Run by tests/browser.rs (`make test`) with the checkout's .venv: `python posthog_js.py SPEC OUT`.
SPEC: {"api_url", "token", "keys": [flag keys to read], "builds": ["array.js", "module.mjs"],
"identify": {"distinct_id", "set": {...}}, "chromium": "/usr/bin/chromium"}; each build identifies
`<distinct_id>-<build name without extension>`.

For each build of node_modules/posthog-js/dist, a fresh browser context opens a page served by a
static server of this script's own on 127.0.0.1 (another origin than the API, so every API call is
a CORS request) that calls `posthog.init(token, {api_host})` with nothing else set. The run waits
for the first `onFeatureFlags`, reads each key's flag and payload, identifies the person with
`$set` properties, waits for the flags reloaded by `identify` and for the `$identify` event to be
captured, then reads the flags again.

Writes to OUT, per build: {"anonymous": snapshot, "identified": snapshot, "callbacks": [every
onFeatureFlags call's {flags, variants, errorsLoading}], "identify_captured": bool, "requests":
["METHOD URL STATUS (content type sent)"], "failures": [failed requests, answers >= 400, page
errors, console errors], "console": [every console message]}; a snapshot is {"distinct_id",
"flags": {key: [value, payload]}}. Chromium is Debian's (never a Playwright download); a missing browser or
Playwright is an error. Playwright gives the browser a fresh profile directory and each build a
fresh context, and the context's user agent is Chromium's own without "Headless", with
navigator.webdriver false: posthog-js drops a bot's events, and a person's browser is neither.
"""

import base64
import gzip
import http.server
import json
import pathlib
import sys
import threading
import time
import urllib.parse

try:
    from playwright.sync_api import sync_playwright
except ImportError as error:  # the test must fail, not skip, without Playwright
    sys.exit(f"Playwright for Python is missing ({error}): run `make setup`")

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIST = ROOT / "node_modules" / "posthog-js" / "dist"
WAIT_MS = 30_000
# What this checkout's tests are known to work with: no GPU, no sandbox (root), no network
# beyond the two local servers, a fresh profile per run.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A person's browser is not driven by automation: without this navigator.webdriver is true
    # and posthog-js drops every event as a bot's.
    "--disable-blink-features=AutomationControlled",
]
CAPTURE_PATHS = ("/e/", "/i/v0/e/", "/batch/", "/capture/")

# Both pages record every onFeatureFlags call and expose the instance as window.posthog; the
# init call is an application's: token and api_host, nothing else.
PAGE_START = """
const params = new URLSearchParams(location.search);
window.__flagEvents = [];
posthog.init(params.get('token'), {api_host: params.get('api')});
posthog.onFeatureFlags((flags, variants, context) => {
    window.__flagEvents.push({flags, variants, errorsLoading: !!(context && context.errorsLoading)});
});
"""

PAGES = {
    "array.js": f"""<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>posthog-js array.js</title><script src="/posthog-js/array.js"></script>
<script>{PAGE_START}</script></head><body>flags</body></html>""",
    "module.mjs": f"""<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>posthog-js module</title><script type="module">
import posthog from '/posthog-js/module.mjs';
window.posthog = posthog;
{PAGE_START}
</script></head><body>flags</body></html>""",
}

CONTENT_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".map": "application/json"}


class StaticHandler(http.server.BaseHTTPRequestHandler):
    """The page and posthog-js's dist files, nothing else."""

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/page/") and path[len("/page/"):] in PAGES:
            return self.reply(200, "text/html; charset=utf-8", PAGES[path[len("/page/"):]].encode())
        if path.startswith("/posthog-js/"):
            file = (DIST / path[len("/posthog-js/"):]).resolve()
            if file.is_file() and DIST in file.parents:
                return self.reply(200, CONTENT_TYPES.get(file.suffix, "application/octet-stream"), file.read_bytes())
        self.reply(404, "text/plain", b"not found")

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def captured_events(request):
    """The event names in a capture request's body, however posthog-js encoded it."""
    try:
        body = request.post_data_buffer or b""
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        elif body.startswith(b"data="):
            data = urllib.parse.parse_qs(body.decode())["data"][0]
            body = base64.b64decode(data + "=" * (-len(data) % 4))
        payload = json.loads(body)
    except Exception:  # noqa: BLE001 - an unreadable body simply names no event
        return []
    events = payload.get("batch", payload) if isinstance(payload, dict) else payload
    events = events if isinstance(events, list) else [events]
    return [e.get("event") for e in events if isinstance(e, dict)]


def person_user_agent(browser):
    """Chromium's own user agent without "Headless", which posthog-js's bot filter drops."""
    probe = browser.new_page()
    agent = probe.evaluate("() => navigator.userAgent")
    probe.close()
    return agent.replace("HeadlessChrome", "Chrome")


def identified_id(spec, build):
    """One person per build: `<identify.distinct_id>-array`, `<identify.distinct_id>-module`."""
    return f"{spec['identify']['distinct_id']}-{build.split('.')[0]}"


def snapshot(page, keys):
    return page.evaluate(
        """(keys) => ({
            distinct_id: posthog.get_distinct_id(),
            flags: Object.fromEntries(keys.map((k) => [k, [
                posthog.getFeatureFlag(k) ?? null, posthog.getFeatureFlagPayload(k) ?? null]])),
        })""",
        keys,
    )


def run_build(browser, spec, site, build):
    record = {"requests": [], "failures": [], "console": [], "identify_captured": False}
    context = browser.new_context(user_agent=person_user_agent(browser))
    page = context.new_page()

    def on_response(response):
        request = response.request
        sent_as = request.headers.get("content-type")
        record["requests"].append(f"{request.method} {request.url} {response.status}" + (f" ({sent_as})" if sent_as else ""))
        if response.status >= 400:
            record["failures"].append(f"{request.method} {request.url} answered {response.status}")
        path = urllib.parse.urlsplit(request.url).path
        if response.status == 200 and path in CAPTURE_PATHS and "$identify" in captured_events(request):
            record["identify_captured"] = True

    page.on("response", on_response)
    page.on("requestfailed", lambda r: record["failures"].append(f"{r.method} {r.url} failed: {r.failure}"))
    page.on("pageerror", lambda e: record["failures"].append(f"page error: {e}"))

    def on_console(message):
        record["console"].append(f"{message.type}: {message.text}")
        if message.type == "error":
            record["failures"].append(f"console error: {message.text}")

    page.on("console", on_console)

    query = urllib.parse.urlencode({"token": spec["token"], "api": spec["api_url"]})
    page.goto(f"{site}/page/{build}?{query}")
    page.wait_for_function("() => window.__flagEvents && window.__flagEvents.length >= 1", timeout=WAIT_MS)
    record["anonymous"] = snapshot(page, spec["keys"])
    record["browser"] = page.evaluate(
        """() => ({userAgent: navigator.userAgent, webdriver: navigator.webdriver,
            brands: (navigator.userAgentData && navigator.userAgentData.brands || []).map((b) => b.brand)})"""
    )

    seen = page.evaluate("() => window.__flagEvents.length")
    page.evaluate("([id, set]) => posthog.identify(id, set)", [identified_id(spec, build), spec["identify"]["set"]])
    page.wait_for_function("(n) => window.__flagEvents.length > n", arg=seen, timeout=WAIT_MS)
    record["identified"] = snapshot(page, spec["keys"])

    deadline = time.monotonic() + WAIT_MS / 1000
    while not record["identify_captured"] and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    record["callbacks"] = page.evaluate("() => window.__flagEvents")
    # Late answers (events flushed meanwhile) still count as requests of this page.
    page.wait_for_timeout(500)
    context.close()
    return record


def main():
    spec = json.loads(pathlib.Path(sys.argv[1]).read_text())
    chromium = spec.get("chromium", "/usr/bin/chromium")
    if not pathlib.Path(chromium).is_file():
        sys.exit(f"{chromium} is missing: run `make setup` (it installs Debian's chromium)")
    site_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StaticHandler)
    threading.Thread(target=site_server.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{site_server.server_address[1]}"
    out = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                for build in spec["builds"]:
                    out[build] = run_build(browser, spec, site, build)
            finally:
                browser.close()
    finally:
        site_server.shutdown()
    pathlib.Path(sys.argv[2]).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
