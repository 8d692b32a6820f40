// The console's pure logic: what the forms validate, how flag filters are built and read, how
// activity changes are shown as diffs, and the list query. No DOM, no fetch: unit-tested in
// console/test/logic.test.ts.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

// ---- property filter operators -------------------------------------------------------------

/** How an operator's value is typed in the form. */
export type ValueKind = "list" | "text" | "number" | "regex" | "none" | "date";

export interface OperatorInfo {
  op: string;
  label: string;
  kind: ValueKind;
}

/** Every operator the evaluation engine evaluates (PostHog's PropertyOperator). */
export const OPERATORS: OperatorInfo[] = [
  { op: "exact", label: "equals", kind: "list" },
  { op: "is_not", label: "doesn't equal", kind: "list" },
  { op: "icontains", label: "contains", kind: "text" },
  { op: "not_icontains", label: "doesn't contain", kind: "text" },
  { op: "regex", label: "matches regex", kind: "regex" },
  { op: "not_regex", label: "doesn't match regex", kind: "regex" },
  { op: "gt", label: "greater than", kind: "number" },
  { op: "gte", label: "greater than or equal", kind: "number" },
  { op: "lt", label: "less than", kind: "number" },
  { op: "lte", label: "less than or equal", kind: "number" },
  { op: "is_set", label: "is set", kind: "none" },
  { op: "is_not_set", label: "is not set", kind: "none" },
  { op: "is_date_before", label: "before date", kind: "date" },
  { op: "is_date_after", label: "after date", kind: "date" },
  { op: "is_date_exact", label: "on date", kind: "date" },
  { op: "semver_eq", label: "semver =", kind: "text" },
  { op: "semver_neq", label: "semver ≠", kind: "text" },
  { op: "semver_gt", label: "semver >", kind: "text" },
  { op: "semver_gte", label: "semver ≥", kind: "text" },
  { op: "semver_lt", label: "semver <", kind: "text" },
  { op: "semver_lte", label: "semver ≤", kind: "text" },
  { op: "semver_tilde", label: "semver ~", kind: "text" },
  { op: "semver_caret", label: "semver ^", kind: "text" },
  { op: "semver_wildcard", label: "semver wildcard", kind: "text" },
];

export function operatorKind(op: string): ValueKind {
  return OPERATORS.find((o) => o.op === op)?.kind ?? "text";
}

/** One property filter as the form holds it: the value always as typed text. */
export interface PropertyRow {
  type: "person" | "group" | "cohort" | "flag";
  key: string;
  operator: string;
  value: string;
  group_type_index?: number | null;
}

/** A form row as the API's property filter, or an error message telling what to fix. */
export function rowToProperty(row: PropertyRow): { ok: Json } | { error: string } {
  const key = row.key.trim();
  if (!key) return { error: row.type === "cohort" ? "Choose a cohort." : "Enter a property key." };
  if (row.type === "cohort") {
    const id = Number(key);
    if (!Number.isInteger(id) || id <= 0) return { error: "Choose a cohort." };
    return { ok: { key: "id", type: "cohort", operator: "in", value: id } };
  }
  if (row.type === "flag") {
    // A flag dependency: `key` is the flag's id, the value what it must evaluate to.
    const v = row.value.trim();
    const value: Json = v === "" || v === "true" ? true : v === "false" ? false : v;
    return { ok: { key, type: "flag", operator: "flag_evaluates_to", value } };
  }
  const base: { [k: string]: Json } = { key, type: row.type, operator: row.operator };
  if (row.type === "group") base.group_type_index = row.group_type_index ?? 0;
  const kind = operatorKind(row.operator);
  const text = row.value.trim();
  switch (kind) {
    case "none":
      base.value = row.operator;
      return { ok: base };
    case "list": {
      const items = splitList(row.value);
      if (items.length === 0) return { error: `Enter at least one value for ${key}.` };
      base.value = items;
      return { ok: base };
    }
    case "number": {
      if (text === "" || !Number.isFinite(Number(text)))
        return { error: `${key}: "${text}" is not a number.` };
      base.value = Number(text);
      return { ok: base };
    }
    case "regex": {
      if (text === "") return { error: `Enter a regular expression for ${key}.` };
      try {
        new RegExp(text);
      } catch (e) {
        return { error: `${key}: invalid regular expression (${(e as Error).message}).` };
      }
      base.value = text;
      return { ok: base };
    }
    case "date":
      if (!/^(\d{4}-\d{2}-\d{2}([T ][0-9:.]+Z?)?|-?\d+[hdwmy])$/.test(text))
        return { error: `${key}: enter a date as YYYY-MM-DD or a relative one like -7d.` };
      base.value = text;
      return { ok: base };
    default:
      if (text === "") return { error: `Enter a value for ${key}.` };
      base.value = text;
      return { ok: base };
  }
}

/** Comma- or newline-separated values, trimmed, empties dropped. */
export function splitList(text: string): string[] {
  return text
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** An API property filter as a form row. */
export function propertyToRow(p: { [k: string]: Json }): PropertyRow {
  const type = (p.type as string) ?? "person";
  if (type === "cohort") return { type: "cohort", key: String(p.value ?? ""), operator: "in", value: "" };
  if (type === "flag")
    return { type: "flag", key: String(p.key ?? ""), operator: "flag_evaluates_to", value: String(p.value ?? "true") };
  const value = p.value;
  const text = Array.isArray(value)
    ? value.map((v) => String(v)).join(", ")
    : value === null || value === undefined || operatorKind(String(p.operator)) === "none"
      ? ""
      : String(value);
  return {
    type: type === "group" ? "group" : "person",
    key: String(p.key ?? ""),
    operator: String(p.operator ?? "exact"),
    value: text,
    group_type_index: (p.group_type_index as number | null | undefined) ?? null,
  };
}

// ---- variants and payloads ----------------------------------------------------------------

export interface VariantRow {
  key: string;
  name: string;
  rollout: number;
  payload: string;
}

/** A JSON payload as typed: empty is "no payload", else it must parse. */
export function validatePayload(text: string): string | null {
  if (text.trim() === "") return null;
  try {
    JSON.parse(text);
    return null;
  } catch (e) {
    return `Not valid JSON: ${(e as Error).message}`;
  }
}

/** Every problem of a variant list, in the words the form shows; empty when it can be saved. */
export function validateVariants(variants: VariantRow[]): string[] {
  const errors: string[] = [];
  if (variants.length === 0) return errors;
  const seen = new Set<string>();
  variants.forEach((v, i) => {
    const key = v.key.trim();
    if (!key) errors.push(`Variant ${i + 1} needs a key.`);
    else if (!/^[A-Za-z0-9_-]+$/.test(key))
      errors.push(`Variant key "${key}" may only contain letters, numbers, hyphens and underscores.`);
    else if (seen.has(key)) errors.push(`Variant key "${key}" is used twice.`);
    seen.add(key);
    if (!Number.isFinite(v.rollout) || v.rollout < 0 || v.rollout > 100)
      errors.push(`Variant ${key || i + 1}: the split must be between 0 and 100.`);
    const payload = validatePayload(v.payload);
    if (payload) errors.push(`Payload of ${key || `variant ${i + 1}`}: ${payload}`);
  });
  const total = variants.reduce((sum, v) => sum + (Number(v.rollout) || 0), 0);
  if (Math.round(total * 100) / 100 !== 100)
    errors.push(`The variant splits add up to ${Math.round(total * 100) / 100}%; they must add up to 100%.`);
  return errors;
}

/** Splits 100 as evenly as possible over n variants (the first ones get the remainder). */
export function evenSplit(n: number): number[] {
  if (n <= 0) return [];
  const base = Math.floor(100 / n);
  return Array.from({ length: n }, (_, i) => base + (i < 100 - base * n ? 1 : 0));
}

// ---- the flag form ------------------------------------------------------------------------

export interface ConditionRow {
  properties: PropertyRow[];
  rollout: number;
  variant: string;
  description: string;
}

export interface FlagForm {
  key: string;
  name: string;
  active: boolean;
  conditions: ConditionRow[];
  variants: VariantRow[];
  /** The boolean flag's `true` payload. */
  payload: string;
  aggregationGroup: number | null;
  continuity: boolean;
  runtime: string;
  contexts: string;
  tags: string;
  remoteConfig: boolean;
  encrypted: boolean;
  holdoutId: string;
  /** Percentage of people held out (0–100), as typed. */
  holdoutPercent: string;
}

export function emptyForm(): FlagForm {
  return {
    key: "",
    name: "",
    active: true,
    conditions: [{ properties: [], rollout: 100, variant: "", description: "" }],
    variants: [],
    payload: "",
    aggregationGroup: null,
    continuity: false,
    runtime: "all",
    contexts: "",
    tags: "",
    remoteConfig: false,
    encrypted: false,
    holdoutId: "",
    holdoutPercent: "",
  };
}

const REDACTED = "********* (encrypted)";

/** A flag from the API as the form edits it. Encrypted payloads show redacted. */
export function flagToForm(flag: { [k: string]: any }): FlagForm {
  const f = flag.filters ?? {};
  const payloads: { [k: string]: any } = f.payloads ?? {};
  const encrypted = !!flag.has_encrypted_payloads;
  const payloadText = (v: any): string => {
    if (v === undefined || v === null) return "";
    if (encrypted) return REDACTED;
    return typeof v === "string" ? v : JSON.stringify(v);
  };
  const variants: VariantRow[] = (f.multivariate?.variants ?? []).map((v: any) => ({
    key: v.key ?? "",
    name: v.name ?? "",
    rollout: Number(v.rollout_percentage ?? 0),
    payload: payloadText(payloads[v.key]),
  }));
  return {
    key: flag.key ?? "",
    name: flag.name ?? "",
    active: !!flag.active,
    conditions: (f.groups ?? []).map((g: any) => ({
      properties: (g.properties ?? []).map(propertyToRow),
      rollout: g.rollout_percentage === null || g.rollout_percentage === undefined ? 100 : Number(g.rollout_percentage),
      variant: g.variant ?? "",
      description: g.description ?? "",
    })),
    variants,
    payload: payloadText(payloads["true"]),
    aggregationGroup: f.aggregation_group_type_index ?? null,
    continuity: !!flag.ensure_experience_continuity,
    runtime: flag.evaluation_runtime ?? "all",
    contexts: (flag.evaluation_tags ?? []).join(", "),
    tags: (flag.tags ?? []).join(", "),
    remoteConfig: !!flag.is_remote_configuration,
    encrypted,
    holdoutId: f.holdout?.id !== undefined && f.holdout?.id !== null ? String(f.holdout.id) : "",
    holdoutPercent: f.holdout?.exclusion_percentage !== undefined && f.holdout?.exclusion_percentage !== null ? String(f.holdout.exclusion_percentage) : "",
  };
}

/** The form as the API's flag body, or the list of what to fix. */
export function formToBody(form: FlagForm, original?: { [k: string]: any }): { body: { [k: string]: any } } | { errors: string[] } {
  const errors: string[] = [];
  const key = form.key.trim();
  if (!key) errors.push("Enter a key.");
  else if (!/^[A-Za-z0-9_-]+$/.test(key))
    errors.push("Only letters, numbers, hyphens (-) and underscores (_) are allowed in the key.");
  const groups: Json[] = form.conditions.map((c, i) => {
    const properties: Json[] = [];
    for (const row of c.properties) {
      // Group properties are read from the group type the flag matches by.
      const typed = row.type === "group" && (row.group_type_index ?? null) === null ? { ...row, group_type_index: form.aggregationGroup ?? 0 } : row;
      const r = rowToProperty(typed);
      if ("error" in r) errors.push(`Condition ${i + 1}: ${r.error}`);
      else properties.push(r.ok);
    }
    if (!Number.isFinite(c.rollout) || c.rollout < 0 || c.rollout > 100)
      errors.push(`Condition ${i + 1}: the rollout must be between 0 and 100.`);
    const group: { [k: string]: Json } = { properties, rollout_percentage: c.rollout };
    if (c.variant) group.variant = c.variant;
    if (c.description.trim()) group.description = c.description.trim();
    return group;
  });
  errors.push(...validateVariants(form.variants));
  const redacted = (t: string) => t === REDACTED;
  const payloads: { [k: string]: Json } = {};
  const origPayloads = original?.filters?.payloads ?? {};
  if (form.variants.length > 0) {
    for (const v of form.variants) {
      if (redacted(v.payload)) {
        if (origPayloads[v.key] !== undefined) payloads[v.key] = origPayloads[v.key];
      } else if (v.payload.trim() !== "") payloads[v.key.trim()] = v.payload.trim();
    }
  } else if (redacted(form.payload)) {
    if (origPayloads["true"] !== undefined) payloads["true"] = origPayloads["true"];
  } else if (form.payload.trim() !== "") {
    const p = validatePayload(form.payload);
    if (p) errors.push(`Payload: ${p}`);
    else payloads["true"] = form.payload.trim();
  }
  if (form.remoteConfig && form.variants.length > 0)
    errors.push("A remote config flag has no variants.");
  const filters: { [k: string]: Json } = { groups, payloads };
  filters.multivariate =
    form.variants.length > 0
      ? {
          variants: form.variants.map((v) => {
            const out: { [k: string]: Json } = { key: v.key.trim(), rollout_percentage: v.rollout };
            if (v.name.trim()) out.name = v.name.trim();
            return out;
          }),
        }
      : null;
  filters.aggregation_group_type_index = form.aggregationGroup;
  if (form.holdoutId.trim()) {
    const id = Number(form.holdoutId.trim());
    const percent = Number(form.holdoutPercent.trim() || "0");
    if (!Number.isInteger(id) || id <= 0) errors.push("The holdout id must be a positive whole number.");
    if (!Number.isFinite(percent) || percent < 0 || percent > 100) errors.push("The holdout percentage must be between 0 and 100.");
    filters.holdout = { id, exclusion_percentage: percent };
  }
  if (errors.length > 0) return { errors };
  // Keep what the form does not edit (super groups, early access enrollment, ...).
  for (const k of ["super_groups", "feature_enrollment"]) {
    if (original?.filters?.[k] !== undefined) filters[k] = original.filters[k];
  }
  return {
    body: {
      key,
      name: form.name,
      active: form.active,
      filters,
      ensure_experience_continuity: form.continuity,
      evaluation_runtime: form.runtime,
      evaluation_tags: splitList(form.contexts),
      tags: splitList(form.tags),
      is_remote_configuration: form.remoteConfig,
      has_encrypted_payloads: form.encrypted,
    },
  };
}

/** The fields of `body` whose value differs from `original` (what a PATCH sends). */
export function changedFields(body: { [k: string]: any }, original: { [k: string]: any }): { [k: string]: any } {
  const out: { [k: string]: any } = {};
  for (const [k, v] of Object.entries(body)) {
    if (!deepEqual(v, original[k] ?? defaultOf(k))) out[k] = v;
  }
  return out;
}

function defaultOf(k: string): Json {
  return k === "tags" || k === "evaluation_tags" ? [] : k === "name" ? "" : null;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  return stableStringify(a) === stableStringify(b);
}

export function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(",")}]`;
  if (v && typeof v === "object") {
    const entries = Object.entries(v as object)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableStringify(x)}`).join(",")}}`;
  }
  return JSON.stringify(v ?? null);
}

// ---- activity diffs -----------------------------------------------------------------------

export interface DiffLine {
  kind: "same" | "added" | "removed";
  text: string;
}

/** A line diff of two values shown as pretty JSON (longest common subsequence). */
export function diffValues(before: unknown, after: unknown): DiffLine[] {
  const a = pretty(before);
  const b = pretty(after);
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push({ kind: "same", text: a[i] });
      i++;
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push({ kind: "removed", text: a[i++] });
    else out.push({ kind: "added", text: b[j++] });
  }
  while (i < n) out.push({ kind: "removed", text: a[i++] });
  while (j < m) out.push({ kind: "added", text: b[j++] });
  return out;
}

function pretty(v: unknown): string[] {
  if (v === undefined) return [];
  return JSON.stringify(v, null, 2).split("\n");
}

/** A one-line summary of an activity entry ("updated filters, active"). */
export function summarizeActivity(entry: { activity: string; detail?: { changes?: { field?: string }[] | null } }): string {
  const fields = (entry.detail?.changes ?? []).map((c) => c.field).filter((f): f is string => !!f && f !== "version");
  if (entry.activity === "updated" && fields.length > 0) return `changed ${fields.join(", ")}`;
  return entry.activity;
}

// ---- the list ------------------------------------------------------------------------------

export interface ListQuery {
  search: string;
  active: "" | "true" | "false" | "STALE";
  type: "" | "boolean" | "multivariant" | "experiment" | "remote_config";
  createdBy: string;
  tags: string;
  runtime: "" | "all" | "client" | "server";
  order: string;
  page: number;
  pageSize: number;
}

export function emptyQuery(): ListQuery {
  return { search: "", active: "", type: "", createdBy: "", tags: "", runtime: "", order: "-created_at", page: 0, pageSize: 50 };
}

/** The list endpoint's query string for the list's state. */
export function listQueryString(q: ListQuery): string {
  const p = new URLSearchParams();
  if (q.search.trim()) p.set("search", q.search.trim());
  if (q.active) p.set("active", q.active);
  if (q.type) p.set("type", q.type);
  if (q.createdBy) p.set("created_by_id", q.createdBy);
  const tags = splitList(q.tags);
  if (tags.length) p.set("tags", JSON.stringify(tags));
  if (q.runtime) p.set("evaluation_runtime", q.runtime);
  if (q.order) p.set("order", q.order);
  p.set("limit", String(q.pageSize));
  p.set("offset", String(q.page * q.pageSize));
  return p.toString();
}

// ---- routes --------------------------------------------------------------------------------

export type Route =
  | { page: "home" }
  | { page: "flags"; project: string }
  | { page: "flag"; project: string; id: string }
  | { page: "eafs"; project: string }
  | { page: "eaf"; project: string; id: string }
  | { page: "cohorts"; project: string }
  | { page: "cohort"; project: string; id: string }
  | { page: "notfound"; path: string };

/** A console path (PostHog's URL scheme, `feature-flags` too) as the page it shows. */
export function parseRoute(path: string): Route {
  const parts = path.split("/").filter((s) => s !== "");
  if (parts.length === 0) return { page: "home" };
  if (parts[0] !== "project" || parts.length < 2) return { page: "notfound", path };
  const project = decodeURIComponent(parts[1]);
  const section = (parts[2] ?? "feature_flags").replace(/-/g, "_");
  const id = parts[3] !== undefined ? decodeURIComponent(parts[3]) : undefined;
  if (parts.length > 4) return { page: "notfound", path };
  switch (section) {
    case "feature_flags":
      return id ? { page: "flag", project, id } : { page: "flags", project };
    case "early_access_features":
      return id ? { page: "eaf", project, id } : { page: "eafs", project };
    case "cohorts":
      return id ? { page: "cohort", project, id } : { page: "cohorts", project };
    default:
      return { page: "notfound", path };
  }
}

// ---- errors --------------------------------------------------------------------------------

export interface ApiProblem {
  status: number;
  message: string;
  code: string | null;
  attr: string | null;
  conflict: boolean;
}

/** An API answer that failed, as the message the console shows (PostHog's `detail` first). */
export function describeError(status: number, body: unknown): ApiProblem {
  const b = (body && typeof body === "object" ? body : {}) as { [k: string]: any };
  let message: string;
  if (typeof b.detail === "string" && b.detail) message = b.detail;
  else if (typeof b.error === "string" && b.error) message = b.error;
  else if (typeof b.message === "string" && b.message) message = b.message;
  else if (status === 401) message = "The API key was not accepted. Sign in again.";
  else if (status === 403) message = "This key may not do that.";
  else if (status === 404) message = "Not found.";
  else if (status === 0) message = "The server could not be reached.";
  else message = `The server answered ${status}.`;
  const attr = typeof b.attr === "string" ? b.attr : null;
  if (attr && status === 400 && !message.startsWith(`${attr}:`)) message = `${attr}: ${message}`;
  return { status, message, code: typeof b.code === "string" ? b.code : null, attr, conflict: status === 409 };
}
