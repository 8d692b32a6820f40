// OpenFeature's server SDK for node with its OFREP provider (@openfeature/server-sdk,
// @openfeature/ofrep-provider from node_modules, installed by `make setup`) against this
// server. Run by tests/ofrep.rs: `node ofrep_node.mjs SPEC OUT`.
//
// SPEC: {"base_url", "token", "users": [evaluation contexts], "flags": {"boolean": [keys],
// "string": [keys], "object": [keys], "missing": [keys]}}. The provider is configured as its
// README shows, with the project token as `Authorization: Bearer <token>`. For every user and
// key the type's `get…Details` runs with the context; OUT gets
// [{key: {value, variant, reason, errorCode}}] in the users' order.
import { readFileSync, writeFileSync } from 'node:fs';
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';

const [specPath, outPath] = process.argv.slice(2);
const spec = JSON.parse(readFileSync(specPath, 'utf8'));

await OpenFeature.setProviderAndWait(
    new OFREPProvider({ baseUrl: spec.base_url, headers: [['Authorization', `Bearer ${spec.token}`]] }),
);
const client = OpenFeature.getClient();
const DEFAULTS = { boolean: false, string: 'code-default', object: { default: true }, missing: false };
const METHODS = {
    boolean: (k, d, c) => client.getBooleanDetails(k, d, c),
    string: (k, d, c) => client.getStringDetails(k, d, c),
    object: (k, d, c) => client.getObjectDetails(k, d, c),
    missing: (k, d, c) => client.getBooleanDetails(k, d, c),
};

const out = [];
for (const context of spec.users) {
    const answers = {};
    for (const [type, keys] of Object.entries(spec.flags)) {
        for (const key of keys) {
            const d = await METHODS[type](key, DEFAULTS[type], context);
            answers[key] = {
                value: d.value,
                variant: d.variant ?? null,
                reason: d.reason ?? null,
                errorCode: d.errorCode ?? null,
            };
        }
    }
    out.push(answers);
}
await OpenFeature.close();
writeFileSync(outPath, JSON.stringify(out));
