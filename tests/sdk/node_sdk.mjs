// Drives the real posthog-node SDK against this server and prints what it answered.
//
// Run by tests/sdk.rs (`make test`): `node node_sdk.mjs SPEC OUT`, resolving posthog-node from
// the checkout's node_modules. SPEC and OUT as in python_sdk.py: per mode ("remote", "local",
// "local_only", "single", "evaluate"), per user, per flag key the SDK returned, [value, payload];
// with `stored_person` also "remote_stored", "single_local" and "single_local_only" (undefined
// recorded as null), as in python_sdk.py; with "capture", an application's run as in
// python_sdk.py ("options" go to the PostHog constructor).
//
// Compression is the SDK's default: capture batches go gzipped, labelled application/json.
import { readFileSync, writeFileSync } from 'node:fs'
import { PostHog } from 'posthog-node'

const parsed = (payload) => {
  if (typeof payload !== 'string') return payload ?? null
  try {
    return JSON.parse(payload)
  } catch {
    return payload
  }
}

const context = (user) => ({
  groups: user.groups,
  personProperties: user.person,
  groupProperties: user.group_properties,
})

const client = (spec, options = {}) =>
  new PostHog(spec.token, {
    host: spec.api_url,
    flushAt: 1,
    flushInterval: 0,
    featureFlagsPollingInterval: 3_600_000,
    featureFlagsRequestTimeoutMs: 20_000,
    ...options,
  })

async function allFlags(sdk, user, keys, options = {}) {
  const result = await sdk.getAllFlagsAndPayloads(user.id, { ...context(user), ...options })
  const flags = result.featureFlags ?? {}
  const payloads = result.featureFlagPayloads ?? {}
  const out = {}
  for (const key of keys) {
    if (key in flags && flags[key] !== undefined) out[key] = [flags[key], parsed(payloads[key])]
  }
  return out
}

async function single(sdk, user, keys) {
  const out = {}
  const options = { ...context(user), sendFeatureFlagEvents: false }
  for (const key of keys) {
    const value = await sdk.getFeatureFlag(key, user.id, options)
    const payload = await sdk.getFeatureFlagPayload(key, user.id, undefined, options)
    if (value !== undefined && value !== null) out[key] = [value, parsed(payload)]
  }
  return out
}

// Every key, null when the SDK would have to ask the server (getFeatureFlag gives undefined).
async function singleLocalOnly(sdk, user, keys) {
  const out = {}
  const options = { ...context(user), onlyEvaluateLocally: true, sendFeatureFlagEvents: false }
  for (const key of keys) {
    const value = await sdk.getFeatureFlag(key, user.id, options)
    out[key] = [value === undefined ? null : value, null]
  }
  return out
}

async function evaluate(sdk, user, keys) {
  const snapshot = await sdk.evaluateFlags(user.id, context(user))
  const out = {}
  for (const key of keys) {
    const value = snapshot.getFlag(key)
    if (value !== undefined && value !== null) out[key] = [value, parsed(snapshot.getFlagPayload(key))]
  }
  return out
}

async function byUser(users, run) {
  const out = {}
  for (const user of users) out[user.id] = await run(user)
  return out
}

async function compareRun(spec) {
  const { keys, users } = spec
  const remote = client(spec)
  const local = client(spec, { personalApiKey: spec.secret_key })
  await local.waitForLocalEvaluationReady()
  const few = users.slice(0, spec.single_users)
  const out = {
    remote: await byUser(users, (u) => allFlags(remote, u, keys)),
    local: await byUser(users, (u) => allFlags(local, u, keys)),
    local_only: await byUser(users, (u) => allFlags(local, u, keys, { onlyEvaluateLocally: true })),
    single: await byUser(few, (u) => single(remote, u, keys)),
    evaluate: await byUser(few, (u) => evaluate(local, u, keys)),
  }
  if (spec.stored_person) {
    // No person properties sent: the server's stored ones must decide.
    out.remote_stored = await byUser(users, (u) => allFlags(remote, { ...u, person: {} }, keys))
    out.single_local_only = await byUser(users, (u) => singleLocalOnly(local, u, keys))
    out.single_local = await byUser(few, (u) => single(local, u, keys))
  }
  await remote.shutdown()
  await local.shutdown()
  return out
}

// Asks for one flag the way an application does, which reports $feature_flag_called.
async function calledRun(spec) {
  const sdk = client(spec)
  const value = await sdk.getFeatureFlag(spec.called.key, spec.called.user)
  await sdk.shutdown()
  return { value: value ?? null }
}

async function captureRun(spec) {
  const sdk = new PostHog(spec.token, { host: spec.api_url, ...spec.capture.options })
  for (const user of spec.users) {
    sdk.capture({ distinctId: user.id, event: '$pageview', properties: { $set: user.person } })
  }
  await sdk.flush()
  const stored = await byUser(spec.users, (u) => allFlags(sdk, { ...u, person: {} }, spec.keys))
  await sdk.shutdown()
  return { stored }
}

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const result = spec.capture ? await captureRun(spec) : spec.called ? await calledRun(spec) : await compareRun(spec)
writeFileSync(process.argv[3], JSON.stringify(result))
