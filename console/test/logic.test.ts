// Unit tests of the console's logic (node's test runner; `node build.mjs --test`, run by
// scripts/test.sh).

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  changedFields,
  describeError,
  diffValues,
  emptyForm,
  evenSplit,
  flagToForm,
  formToBody,
  listQueryString,
  emptyQuery,
  parseRoute,
  propertyToRow,
  rowToProperty,
  summarizeActivity,
  validatePayload,
  validateVariants,
  OPERATORS,
} from "../src/logic";

test("values are typed per operator", () => {
  assert.deepEqual(rowToProperty({ type: "person", key: "plan", operator: "exact", value: "pro, team ,," }), {
    ok: { key: "plan", type: "person", operator: "exact", value: ["pro", "team"] },
  });
  assert.deepEqual(rowToProperty({ type: "person", key: "age", operator: "gt", value: " 18 " }), {
    ok: { key: "age", type: "person", operator: "gt", value: 18 },
  });
  assert.match((rowToProperty({ type: "person", key: "age", operator: "gt", value: "eighteen" }) as any).error, /not a number/);
  assert.deepEqual(rowToProperty({ type: "person", key: "email", operator: "is_set", value: "whatever" }), {
    ok: { key: "email", type: "person", operator: "is_set", value: "is_set" },
  });
  assert.match((rowToProperty({ type: "person", key: "email", operator: "regex", value: "(" }) as any).error, /invalid regular expression/);
  assert.deepEqual(rowToProperty({ type: "person", key: "email", operator: "regex", value: "@x\\.com$" }), {
    ok: { key: "email", type: "person", operator: "regex", value: "@x\\.com$" },
  });
  assert.ok("ok" in rowToProperty({ type: "person", key: "signup", operator: "is_date_before", value: "-7d" }));
  assert.ok("ok" in rowToProperty({ type: "person", key: "signup", operator: "is_date_after", value: "2026-01-31" }));
  assert.match((rowToProperty({ type: "person", key: "signup", operator: "is_date_after", value: "yesterday" }) as any).error, /YYYY-MM-DD/);
  assert.match((rowToProperty({ type: "person", key: "plan", operator: "exact", value: " , " }) as any).error, /at least one value/);
  assert.match((rowToProperty({ type: "person", key: " ", operator: "exact", value: "x" }) as any).error, /property key/);
  assert.deepEqual(rowToProperty({ type: "group", key: "size", operator: "lte", value: "5", group_type_index: 1 }), {
    ok: { key: "size", type: "group", operator: "lte", value: 5, group_type_index: 1 },
  });
});

test("cohorts and flag dependencies become PostHog's filters", () => {
  assert.deepEqual(rowToProperty({ type: "cohort", key: "12", operator: "in", value: "" }), {
    ok: { key: "id", type: "cohort", operator: "in", value: 12 },
  });
  assert.match((rowToProperty({ type: "cohort", key: "", operator: "in", value: "" }) as any).error, /Choose a cohort/);
  assert.deepEqual(rowToProperty({ type: "flag", key: "7", operator: "flag_evaluates_to", value: "" }), {
    ok: { key: "7", type: "flag", operator: "flag_evaluates_to", value: true },
  });
  assert.deepEqual(rowToProperty({ type: "flag", key: "7", operator: "flag_evaluates_to", value: "test" }), {
    ok: { key: "7", type: "flag", operator: "flag_evaluates_to", value: "test" },
  });
});

test("rows read back from the API as they were written", () => {
  for (const op of OPERATORS) {
    const value = op.kind === "number" ? "3" : op.kind === "date" ? "2026-01-02" : op.kind === "list" ? "a, b" : op.kind === "regex" ? "^a" : "1.2.3";
    const row = { type: "person" as const, key: "k", operator: op.op, value: op.kind === "none" ? "" : value, group_type_index: null };
    const written = rowToProperty(row);
    assert.ok("ok" in written, op.op);
    assert.deepEqual(propertyToRow((written as any).ok), row, op.op);
  }
  assert.deepEqual(propertyToRow({ key: "id", type: "cohort", operator: "in", value: 4 }), {
    type: "cohort",
    key: "4",
    operator: "in",
    value: "",
  });
});

test("payloads must be JSON as you type", () => {
  assert.equal(validatePayload(""), null);
  assert.equal(validatePayload('{"a": [1, 2]}'), null);
  assert.equal(validatePayload("3"), null);
  assert.match(validatePayload("{a: 1}") ?? "", /Not valid JSON/);
  assert.match(validatePayload('{"a": }') ?? "", /Not valid JSON/);
});

test("variants need unique keys, sane splits adding to 100 and JSON payloads", () => {
  const ok = [
    { key: "a", name: "", rollout: 34, payload: "" },
    { key: "b", name: "", rollout: 33, payload: "[1]" },
    { key: "c", name: "", rollout: 33, payload: '{"x": true}' },
  ];
  assert.deepEqual(validateVariants(ok), []);
  assert.deepEqual(validateVariants([]), []);
  const bad = validateVariants([
    { key: "a", name: "", rollout: 50, payload: "{" },
    { key: "a", name: "", rollout: 20, payload: "" },
    { key: "no spaces", name: "", rollout: 120, payload: "" },
    { key: "", name: "", rollout: 0, payload: "" },
  ]);
  assert.ok(bad.some((e) => e.includes('"a" is used twice')), bad.join("\n"));
  assert.ok(bad.some((e) => e.includes("Payload of a")), bad.join("\n"));
  assert.ok(bad.some((e) => e.includes("may only contain")), bad.join("\n"));
  assert.ok(bad.some((e) => e.includes("between 0 and 100")), bad.join("\n"));
  assert.ok(bad.some((e) => e.includes("Variant 4 needs a key")), bad.join("\n"));
  assert.ok(bad.some((e) => e.includes("add up to 190%")), bad.join("\n"));
  assert.deepEqual(evenSplit(3), [34, 33, 33]);
  assert.deepEqual(evenSplit(4), [25, 25, 25, 25]);
  assert.equal(evenSplit(7).reduce((a, b) => a + b, 0), 100);
});

test("the form becomes a flag body and back", () => {
  const form = emptyForm();
  form.key = "new-checkout";
  form.name = "New checkout";
  form.conditions = [
    { properties: [{ type: "person", key: "plan", operator: "exact", value: "pro" }], rollout: 50, variant: "", description: "" },
    { properties: [{ type: "person", key: "email", operator: "icontains", value: "@x.com" }], rollout: 100, variant: "b", description: "" },
  ];
  form.variants = [
    { key: "a", name: "", rollout: 34, payload: '{"c": 1}' },
    { key: "b", name: "", rollout: 33, payload: "[2]" },
    { key: "c", name: "", rollout: 33, payload: '"three"' },
  ];
  form.tags = "web, checkout";
  const built = formToBody(form);
  assert.ok("body" in built, JSON.stringify(built));
  const body = (built as any).body;
  assert.equal(body.filters.groups.length, 2);
  assert.deepEqual(body.filters.groups[1], {
    properties: [{ key: "email", type: "person", operator: "icontains", value: "@x.com" }],
    rollout_percentage: 100,
    variant: "b",
  });
  assert.deepEqual(body.filters.payloads, { a: '{"c": 1}', b: "[2]", c: '"three"' });
  assert.deepEqual(body.tags, ["web", "checkout"]);
  const back = flagToForm({ ...body, id: 1, active: true });
  assert.deepEqual(back.variants, form.variants);
  assert.deepEqual(back.conditions[0].properties[0], { ...form.conditions[0].properties[0], group_type_index: null });

  const broken = { ...form, key: "bad key", payload: "" };
  broken.variants = [{ key: "a", name: "", rollout: 100, payload: "{" }];
  const errors = (formToBody(broken) as any).errors as string[];
  assert.ok(errors.some((e) => e.includes("Only letters")));
  assert.ok(errors.some((e) => e.includes("Payload of a")));
});

test("encrypted payloads show redacted and are sent back untouched", () => {
  const flag = {
    id: 3,
    key: "secret",
    active: true,
    has_encrypted_payloads: true,
    filters: { groups: [{ properties: [], rollout_percentage: 100 }], payloads: { true: "gAAAAAB-cipher" } },
  };
  const form = flagToForm(flag);
  assert.match(form.payload, /encrypted/);
  assert.ok(!form.payload.includes("gAAAA"));
  const body = (formToBody(form, flag) as any).body;
  assert.deepEqual(body.filters.payloads, { true: "gAAAAAB-cipher" });
  assert.equal(changedFields(body, { ...flag, ...body }).filters, undefined);
});

test("a PATCH carries only what changed", () => {
  const original = { key: "k", name: "", active: true, tags: [], filters: { groups: [] } };
  assert.deepEqual(changedFields({ key: "k", name: "", active: false, tags: [], filters: { groups: [] } }, original), { active: false });
  assert.deepEqual(changedFields({ name: "x", tags: ["t"] }, original), { name: "x", tags: ["t"] });
  assert.deepEqual(changedFields({ filters: { groups: [] }, evaluation_tags: [] }, original), {});
});

test("activity changes are shown as line diffs", () => {
  const lines = diffValues({ groups: [{ rollout_percentage: 50 }] }, { groups: [{ rollout_percentage: 100 }] });
  assert.deepEqual(
    lines.filter((l) => l.kind !== "same"),
    [
      { kind: "removed", text: '      "rollout_percentage": 50' },
      { kind: "added", text: '      "rollout_percentage": 100' },
    ],
  );
  assert.deepEqual(diffValues(undefined, true), [{ kind: "added", text: "true" }]);
  assert.deepEqual(diffValues("a", "a"), [{ kind: "same", text: '"a"' }]);
  assert.equal(summarizeActivity({ activity: "updated", detail: { changes: [{ field: "active" }, { field: "version" }, { field: "filters" }] } }), "changed active, filters");
  assert.equal(summarizeActivity({ activity: "created", detail: { changes: null } }), "created");
});

test("the list's filters, order and page become the API's query", () => {
  const q = { ...emptyQuery(), search: " check ", active: "STALE" as const, type: "multivariant" as const, tags: "a, b", runtime: "server" as const, createdBy: "4", page: 2, pageSize: 50, order: "key" };
  const p = new URLSearchParams(listQueryString(q));
  assert.equal(p.get("search"), "check");
  assert.equal(p.get("active"), "STALE");
  assert.equal(p.get("type"), "multivariant");
  assert.equal(p.get("tags"), '["a","b"]');
  assert.equal(p.get("evaluation_runtime"), "server");
  assert.equal(p.get("created_by_id"), "4");
  assert.equal(p.get("order"), "key");
  assert.equal(p.get("limit"), "50");
  assert.equal(p.get("offset"), "100");
  assert.equal(new URLSearchParams(listQueryString(emptyQuery())).get("search"), null);
});

test("PostHog's deep links open the right page", () => {
  assert.deepEqual(parseRoute("/"), { page: "home" });
  assert.deepEqual(parseRoute("/project/1/feature_flags"), { page: "flags", project: "1" });
  assert.deepEqual(parseRoute("/project/1/feature_flags/12"), { page: "flag", project: "1", id: "12" });
  assert.deepEqual(parseRoute("/project/1/feature-flags/12"), { page: "flag", project: "1", id: "12" });
  assert.deepEqual(parseRoute("/project/1/feature_flags/new"), { page: "flag", project: "1", id: "new" });
  assert.deepEqual(parseRoute("/project/2/early_access_features/9"), { page: "eaf", project: "2", id: "9" });
  assert.deepEqual(parseRoute("/project/2/cohorts"), { page: "cohorts", project: "2" });
  assert.deepEqual(parseRoute("/project/2"), { page: "flags", project: "2" });
  assert.equal(parseRoute("/project/2/insights").page, "notfound");
  assert.equal(parseRoute("/elsewhere").page, "notfound");
});

test("API errors show PostHog's detail, conflicts are recognised", () => {
  const conflict = describeError(409, {
    type: "server_error",
    code: "conflict",
    detail: "The feature flag was updated by a@b.com since you started editing it. Please refresh and try again.",
    attr: null,
  });
  assert.equal(conflict.conflict, true);
  assert.match(conflict.message, /updated by a@b.com/);
  const invalid = describeError(400, { type: "validation_error", code: "unique", detail: "There is already a feature flag with this key.", attr: "key" });
  assert.equal(invalid.message, "key: There is already a feature flag with this key.");
  assert.equal(invalid.conflict, false);
  assert.equal(describeError(400, { success: false, error: "Unable to generate usage dashboard" }).message, "Unable to generate usage dashboard");
  assert.match(describeError(401, null).message, /Sign in again/);
  assert.match(describeError(0, null).message, /could not be reached/);
  assert.equal(describeError(502, "nope").message, "The server answered 502.");
  assert.equal(describeError(404, { message: "Not Found" }).message, "Not Found");
});

test("a holdout needs a whole id and a percentage", () => {
  const form = { ...emptyForm(), key: "k", holdoutId: "4", holdoutPercent: "10" };
  assert.deepEqual((formToBody(form) as any).body.filters.holdout, { id: 4, exclusion_percentage: 10 });
  const bad = formToBody({ ...form, holdoutId: "x", holdoutPercent: "120" }) as any;
  assert.ok(bad.errors.some((e: string) => e.includes("holdout id")));
  assert.ok(bad.errors.some((e: string) => e.includes("holdout percentage")));
  assert.equal(flagToForm({ filters: { holdout: { id: 4, exclusion_percentage: 10 } } }).holdoutPercent, "10");
  assert.equal((formToBody({ ...form, holdoutId: "" }) as any).body.filters.holdout, undefined);
});

test("group properties take the group type the flag matches by", () => {
  const form = { ...emptyForm(), key: "k", aggregationGroup: 2 };
  form.conditions = [{ properties: [{ type: "group", key: "size", operator: "gt", value: "10", group_type_index: null }], rollout: 100, variant: "", description: "" }];
  const body = (formToBody(form) as any).body;
  assert.equal(body.filters.aggregation_group_type_index, 2);
  assert.deepEqual(body.filters.groups[0].properties[0], { key: "size", type: "group", operator: "gt", value: 10, group_type_index: 2 });
});
