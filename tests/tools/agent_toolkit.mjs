// @posthog/agent-toolkit (node_modules, installed by `make setup`) against the server, for
// tests/tool_catalog.rs. Usage: node agent_toolkit.mjs <spec.json>, where the spec is
// {"url": "...", "keys": {"<label>": "phx_..."}, "run": {"label": "...", "flag_key": "..."}}.
// Prints {"tools": {"<label>": [the names getTools() lists for that key]}, "run": ...}: getTools()
// asks GET /api/personal_api_keys/@current for the key's scopes and keeps the tools they allow
// (it lists nothing, without an error, when that request or its shape fails). "run" is what the
// toolkit's own feature-flag-get-definition tool answers for the flag key, as an agent would
// call it (the toolkit finds the project from the key and GET /api/users/@me/).
import { readFileSync } from "node:fs";
import { PostHogAgentToolkit } from "@posthog/agent-toolkit/integrations/ai-sdk";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const toolkit = (key) =>
    new PostHogAgentToolkit({ posthogPersonalApiKey: key, posthogApiBaseUrl: spec.url });

const out = { tools: {}, run: null };
for (const [label, key] of Object.entries(spec.keys)) {
    out.tools[label] = Object.keys(await toolkit(key).getTools()).sort();
}
if (spec.run) {
    const tools = await toolkit(spec.keys[spec.run.label]).getTools();
    const tool = tools["feature-flag-get-definition"];
    if (!tool) {
        out.run = { error: "getTools() did not list feature-flag-get-definition" };
    } else {
        try {
            const result = await tool.execute(
                { flagKey: spec.run.flag_key },
                { toolCallId: "tool-catalog-test", messages: [] },
            );
            out.run = { result };
        } catch (e) {
            out.run = { error: String(e?.stack ?? e) };
        }
    }
}
process.stdout.write(JSON.stringify(out));
