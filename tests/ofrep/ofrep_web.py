"""OpenFeature's web SDK with its OFREP provider (@openfeature/web-sdk,
@openfeature/ofrep-web-provider from node_modules, installed by `make setup`) in headless
Chromium against this server.

Run by tests/ofrep.rs with the checkout's .venv: `python ofrep_web.py SPEC OUT`, SPEC as in
ofrep_node.mjs plus "chromium". The two packages are bundled for the page by esbuild
(node_modules, no CDN) into one script that a static server of this script's own serves on
127.0.0.1 (another origin than the API: every call is a CORS request, with its preflight for
the Authorization header). The page configures the provider as its README shows, with the
project token as `Authorization: Bearer <token>`; for each user it sets the static context
(`OpenFeature.setContext`, which makes the provider fetch every flag in one bulk request) and
reads each key with the type's `get…Details`.

Writes to OUT {"answers": [{key: {value, variant, reason, errorCode}}] in the users' order,
"failures": [failed requests, answers >= 400, page errors, console errors], "requests":
["METHOD URL STATUS"]}. A missing browser, Playwright or esbuild is an error.
"""

import http.server
import json
import pathlib
import subprocess
import sys
import threading

try:
    from playwright.sync_api import sync_playwright
except ImportError as error:  # the test must fail, not skip, without Playwright
    sys.exit(f"Playwright for Python is missing ({error}): run `make setup`")

ROOT = pathlib.Path(__file__).resolve().parents[2]
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"
WAIT_MS = 30_000
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

ENTRY = """
import { OpenFeature } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
window.OpenFeature = OpenFeature;
window.OFREPWebProvider = OFREPWebProvider;
"""

PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>OFREP web provider</title><script src="/openfeature.js"></script></head>
<body>ofrep</body></html>"""

# Runs in the page: the provider set up once with the first user's context, then each user's
# context set in turn; every read is synchronous from the provider's cache of the bulk answer.
RUN = """
async (spec) => {
    const { OpenFeature, OFREPWebProvider } = window;
    const DEFAULTS = { boolean: false, string: 'code-default', object: { default: true }, missing: false };
    const client = OpenFeature.getClient();
    const METHODS = {
        boolean: (k, d) => client.getBooleanDetails(k, d),
        string: (k, d) => client.getStringDetails(k, d),
        object: (k, d) => client.getObjectDetails(k, d),
        missing: (k, d) => client.getBooleanDetails(k, d),
    };
    await OpenFeature.setContext(spec.users[0]);
    await OpenFeature.setProviderAndWait(new OFREPWebProvider({
        baseUrl: spec.base_url,
        headers: [['Authorization', `Bearer ${spec.token}`]],
    }));
    const out = [];
    for (const [i, context] of spec.users.entries()) {
        // The first context is the provider's initial one; setting it again would make the
        // provider answer from its local copy (reason CACHED) instead of the server.
        if (i > 0) await OpenFeature.setContext(context);
        const answers = {};
        for (const [type, keys] of Object.entries(spec.flags)) {
            for (const key of keys) {
                const d = METHODS[type](key, DEFAULTS[type]);
                answers[key] = { value: d.value, variant: d.variant ?? null,
                    reason: d.reason ?? null, errorCode: d.errorCode ?? null };
            }
        }
        out.push(answers);
    }
    return out;
}
"""


def bundle():
    """The two packages as one IIFE script, bundled from node_modules by esbuild."""
    if not ESBUILD.exists():
        sys.exit(f"{ESBUILD} is missing: run `make setup`")
    done = subprocess.run(
        [str(ESBUILD), "--bundle", "--format=iife", "--platform=browser", "--log-level=warning"],
        input=ENTRY.encode(),
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"esbuild failed: {done.stderr.decode()}")
    return done.stdout


def serve(script):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/openfeature.js"):
                body, kind = script, "application/javascript"
            else:
                body, kind = PAGE.encode(), "text/html; charset=utf-8"
            self.send_response(200)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(spec_path, out_path):
    with open(spec_path) as f:
        spec = json.load(f)
    server = serve(bundle())
    page_url = f"http://127.0.0.1:{server.server_address[1]}/"
    failures, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=spec["chromium"], args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_context().new_page()
        page.on("requestfailed", lambda r: failures.append(f"failed: {r.method} {r.url}"))
        page.on("pageerror", lambda e: failures.append(f"page error: {e}"))
        page.on(
            "console",
            lambda m: failures.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )

        def on_response(response):
            requests.append(f"{response.request.method} {response.url} {response.status}")
            if response.status >= 400:
                failures.append(f"{response.status}: {response.request.method} {response.url}")

        page.on("response", on_response)
        page.set_default_timeout(WAIT_MS)
        page.goto(page_url)
        page.wait_for_function("() => !!(window.OpenFeature && window.OFREPWebProvider)")
        answers = page.evaluate(RUN, spec)
        browser.close()
    server.shutdown()
    with open(out_path, "w") as f:
        json.dump({"answers": answers, "failures": failures, "requests": requests}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
