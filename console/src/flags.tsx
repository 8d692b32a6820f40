// Feature flags: the list (filters, sorting, paging, quick toggle), the flag page (edit form,
// conflict handling, test, history with revert, usage, delete/restore, scheduled changes).

import { useEffect, useMemo, useState } from "preact/hooks";
import { api, ApiError, projectPath } from "./api";
import {
  changedFields,
  diffValues,
  emptyForm,
  emptyQuery,
  evenSplit,
  flagToForm,
  formToBody,
  listQueryString,
  OPERATORS,
  operatorKind,
  summarizeActivity,
  validatePayload,
  validateVariants,
  type ConditionRow,
  type FlagForm,
  type ListQuery,
  type PropertyRow,
} from "./logic";
import { Confirm, Empty, ErrorBox, Link, Loading, errorText, formatDate, navigate, useLoad } from "./ui";

type Flag = { [k: string]: any };

const flagsPath = (project: string, rest = "") => projectPath(project, `feature_flags/${rest}`);

// ---- list ----------------------------------------------------------------------------------

export function FlagsList(props: { project: string; me: any }) {
  const [query, setQuery] = useState<ListQuery>(emptyQuery());
  const [search, setSearch] = useState("");
  const [toggling, setToggling] = useState<Flag | null>(null);
  useEffect(() => {
    const t = setTimeout(() => setQuery((q) => (q.search === search ? q : { ...q, search, page: 0 })), 250);
    return () => clearTimeout(t);
  }, [search]);
  const qs = listQueryString(query);
  // The organization's members for "Created by" (an error leaves only "Me").
  const members = useLoad(() => api("GET", "/api/organizations/@current/members/?limit=200"), []);
  const people: { id: number; email: string }[] = (members.data?.results ?? [])
    .map((m: any) => ({ id: m.user?.id, email: m.user?.email ?? m.user?.first_name ?? String(m.user?.id) }))
    .filter((m: { id: unknown }) => typeof m.id === "number");
  const list = useLoad(() => api("GET", `${flagsPath(props.project)}?${qs}`), [props.project, qs]);
  const update = (patch: Partial<ListQuery>) => setQuery((q) => ({ ...q, ...patch, page: patch.page ?? 0 }));
  const sortBy = (field: string) => update({ order: query.order === field ? `-${field}` : field });
  const sortMark = (field: string) =>
    query.order === field ? "ascending" : query.order === `-${field}` ? "descending" : undefined;
  const count: number = list.data?.count ?? 0;
  const results: Flag[] = list.data?.results ?? [];
  const Header = (p: { field: string; label: string }) => (
    <th aria-sort={sortMark(p.field) ?? "none"}>
      <button type="button" class="sort" onClick={() => sortBy(p.field)}>
        {p.label} {sortMark(p.field) === "ascending" ? "▲" : sortMark(p.field) === "descending" ? "▼" : ""}
      </button>
    </th>
  );
  return (
    <section>
      <div class="title-row">
        <h1>Feature flags</h1>
        <Link href={`/project/${props.project}/feature_flags/new`} class="button">
          New feature flag
        </Link>
      </div>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search
          <input type="search" placeholder="Key or name" value={search} onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Status
          <select value={query.active} onChange={(e) => update({ active: (e.target as HTMLSelectElement).value as ListQuery["active"] })}>
            <option value="">Any</option>
            <option value="true">Enabled</option>
            <option value="false">Disabled</option>
            <option value="STALE">Stale</option>
          </select>
        </label>
        <label>
          Type
          <select value={query.type} onChange={(e) => update({ type: (e.target as HTMLSelectElement).value as ListQuery["type"] })}>
            <option value="">Any</option>
            <option value="boolean">Boolean</option>
            <option value="multivariant">Multiple variants</option>
            <option value="experiment">Experiment</option>
            <option value="remote_config">Remote config</option>
          </select>
        </label>
        <label>
          Created by
          <select value={query.createdBy} onChange={(e) => update({ createdBy: (e.target as HTMLSelectElement).value })}>
            <option value="">Anyone</option>
            {props.me?.id !== undefined && <option value={String(props.me.id)}>Me</option>}
            {people
              .filter((m) => m.id !== props.me?.id)
              .map((m) => (
                <option value={String(m.id)}>{m.email}</option>
              ))}
          </select>
        </label>
        <label>
          Tags
          <input type="text" placeholder="tag, tag" value={query.tags} onChange={(e) => update({ tags: (e.target as HTMLInputElement).value })} />
        </label>
        <label>
          Runtime
          <select value={query.runtime} onChange={(e) => update({ runtime: (e.target as HTMLSelectElement).value as ListQuery["runtime"] })}>
            <option value="">Any</option>
            <option value="all">Client and server</option>
            <option value="client">Client</option>
            <option value="server">Server</option>
          </select>
        </label>
      </form>
      <ErrorBox error={list.error} onRetry={list.reload} />
      {list.loading && !list.data && <Loading what="flags" />}
      {list.data && results.length === 0 && (
        <Empty>
          {qs.includes("search") || query.active || query.type || query.tags || query.runtime || query.createdBy
            ? "No flags match these filters."
            : "No feature flags yet. Create the first one."}
        </Empty>
      )}
      {results.length > 0 && (
        <div class="table-wrap" aria-busy={list.loading}>
          <table class="flags">
            <thead>
              <tr>
                <Header field="key" label="Key" />
                <Header field="name" label="Name" />
                <th>Tags</th>
                <th>Status</th>
                <Header field="created_at" label="Created" />
                <Header field="updated_at" label="Updated" />
                <th>Enabled</th>
              </tr>
            </thead>
            <tbody>
              {results.map((f) => (
                <tr key={f.id}>
                  <td>
                    <Link href={`/project/${props.project}/feature_flags/${f.id}`}>{f.key}</Link>
                  </td>
                  <td>{f.name}</td>
                  <td>{(f.tags ?? []).map((t: string) => <span class="tag">{t}</span>)}</td>
                  <td>
                    {/* Only what needs attention: stale, archived, deleted (active is the norm). */}
                    {f.status && f.status !== "ACTIVE" && <span class={`status ${String(f.status).toLowerCase()}`}>{String(f.status).toLowerCase()}</span>}
                  </td>
                  <td>{formatDate(f.created_at)}</td>
                  <td>{formatDate(f.updated_at)}</td>
                  <td>
                    <Toggle flag={f} onToggle={() => setToggling(f)} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {count > query.pageSize && (
        <nav class="pager" aria-label="Pages">
          <button type="button" class="secondary" disabled={query.page === 0} onClick={() => update({ page: query.page - 1 })}>
            Previous
          </button>
          <span>
            {query.page * query.pageSize + 1}–{Math.min(count, (query.page + 1) * query.pageSize)} of {count}
          </span>
          <button
            type="button"
            class="secondary"
            disabled={(query.page + 1) * query.pageSize >= count}
            onClick={() => update({ page: query.page + 1 })}
          >
            Next
          </button>
        </nav>
      )}
      {toggling && (
        <ToggleDialog
          project={props.project}
          flag={toggling}
          onDone={(updated) => {
            setToggling(null);
            // Reloaded rather than patched in place: the rows shown when the dialog opened may
            // be older than the list's current query.
            if (updated) list.reload();
          }}
        />
      )}
    </section>
  );
}

function Toggle(props: { flag: Flag; onToggle: () => void }) {
  return (
    <button
      type="button"
      role="switch"
      class="switch"
      aria-checked={!!props.flag.active}
      aria-label={`${props.flag.active ? "Disable" : "Enable"} ${props.flag.key}`}
      disabled={props.flag.deleted}
      onClick={props.onToggle}
    >
      <span aria-hidden="true" />
    </button>
  );
}

/** Confirms and sends enable/disable with the version that was shown. */
function ToggleDialog(props: { project: string; flag: Flag; onDone: (f: Flag | null) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const on = !props.flag.active;
  const go = async () => {
    setBusy(true);
    setError(null);
    try {
      const updated = await api("POST", flagsPath(props.project, `${props.flag.id}/${on ? "enable" : "disable"}/`), {
        version: props.flag.version,
      });
      props.onDone(updated);
    } catch (e) {
      setError(errorText(e));
      setBusy(false);
    }
  };
  return (
    <Confirm
      title={`${on ? "Enable" : "Disable"} ${props.flag.key}?`}
      confirmLabel={on ? "Enable" : "Disable"}
      danger={!on}
      busy={busy}
      error={error}
      onConfirm={go}
      onCancel={() => props.onDone(null)}
    >
      <p>
        {on
          ? "The flag will be served to the users its release conditions match."
          : "Every user will get false for this flag."}
      </p>
    </Confirm>
  );
}

// ---- flag page -----------------------------------------------------------------------------

type Tab = "overview" | "test" | "history" | "usage" | "schedule";

export function FlagPage(props: { project: string; id: string }) {
  // Separate components, so a page never changes its hooks when "new" becomes an id.
  if (props.id === "new")
    return <FlagEditor project={props.project} flag={null} onSaved={(f) => navigate(`/project/${props.project}/feature_flags/${f.id}`, true)} />;
  return <ExistingFlag project={props.project} id={props.id} key={props.id} />;
}

function ExistingFlag(props: { project: string; id: string }) {
  const flag = useLoad<Flag>(() => api("GET", flagsPath(props.project, `${props.id}/`)), [props.project, props.id]);
  const [tab, setTab] = useState<Tab>("overview");
  if (flag.loading && !flag.data) return <Loading what="the flag" />;
  if (!flag.data) return <ErrorBox error={flag.error} onRetry={flag.reload} />;
  const f = flag.data;
  const tabs: [Tab, string][] = [
    ["overview", "Overview"],
    ["test", "Test this flag"],
    ["history", "History"],
    ["usage", "Usage"],
    ["schedule", "Scheduled changes"],
  ];
  return (
    <section>
      <p class="crumbs">
        <Link href={`/project/${props.project}/feature_flags`}>Feature flags</Link> / {f.key}
      </p>
      <div class="title-row">
        <h1>
          {f.key}{" "}
          <span class={`status ${String(f.status).toLowerCase()}`}>
            {f.status && f.status !== "ACTIVE" ? String(f.status).toLowerCase() : f.active ? "enabled" : "disabled"}
          </span>
        </h1>
        <div class="row">
          {!f.deleted && <Archive project={props.project} flag={f} onChanged={flag.set} />}
          <DeleteRestore project={props.project} flag={f} onChanged={flag.set} />
        </div>
      </div>
      {f.deleted && <p class="notice">This flag is deleted. Restore it to edit it again.</p>}
      <div role="tablist" class="tabs" aria-label="Flag sections">
        {tabs.map(([id, label]) => (
          <button
            type="button"
            role="tab"
            id={`tab-${id}`}
            aria-selected={tab === id}
            aria-controls={`panel-${id}`}
            onClick={() => setTab(id)}
            onKeyDown={(e) => {
              const i = tabs.findIndex(([t]) => t === id);
              const next = e.key === "ArrowRight" ? i + 1 : e.key === "ArrowLeft" ? i - 1 : null;
              if (next === null) return;
              const t = tabs[(next + tabs.length) % tabs.length][0];
              setTab(t);
              document.getElementById(`tab-${t}`)?.focus();
            }}
          >
            {label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
        {tab === "overview" && (
          <>
            <FlagEditor project={props.project} flag={f} onSaved={flag.set} key={`${f.id}-${f.version}`} />
            <Related project={props.project} flag={f} />
          </>
        )}
        {tab === "test" && <TestFlag project={props.project} flag={f} />}
        {tab === "history" && <History project={props.project} flag={f} onReverted={flag.set} />}
        {tab === "usage" && <Usage project={props.project} flag={f} />}
        {tab === "schedule" && <Scheduled project={props.project} flag={f} />}
      </div>
    </section>
  );
}

/** Archive (a disabled flag) or unarchive, with the version shown. */
function Archive(props: { project: string; flag: Flag; onChanged: (f: Flag) => void }) {
  const [error, setError] = useState<string | null>(null);
  const archived = !!props.flag.archived;
  const go = async () => {
    setError(null);
    try {
      props.onChanged(
        await api("POST", flagsPath(props.project, `${props.flag.id}/${archived ? "unarchive" : "archive"}/`), { version: props.flag.version }),
      );
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <>
      <button type="button" class="secondary" onClick={go} title={archived ? undefined : "Only a disabled flag can be archived"}>
        {archived ? "Unarchive" : "Archive"}
      </button>
      {error && (
        <span class="field-error" role="alert">
          {error}
        </span>
      )}
    </>
  );
}

function DeleteRestore(props: { project: string; flag: Flag; onChanged: (f: Flag) => void }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const deleting = !props.flag.deleted;
  const go = async () => {
    setBusy(true);
    setError(null);
    try {
      const f = await api("PATCH", flagsPath(props.project, `${props.flag.id}/`), { deleted: deleting });
      setAsking(false);
      props.onChanged(f);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class={deleting ? "danger secondary" : "secondary"} onClick={() => setAsking(true)}>
        {deleting ? "Delete" : "Restore"}
      </button>
      {asking && (
        <Confirm
          title={deleting ? `Delete ${props.flag.key}?` : `Restore ${props.flag.key}?`}
          confirmLabel={deleting ? "Delete" : "Restore"}
          danger={deleting}
          busy={busy}
          error={error}
          onConfirm={go}
          onCancel={() => setAsking(false)}
        >
          <p>{deleting ? "SDKs stop getting it. The flag keeps its history and can be restored." : "The flag comes back as it was."}</p>
        </Confirm>
      )}
    </>
  );
}

// ---- the editor ----------------------------------------------------------------------------

export function FlagEditor(props: { project: string; flag: Flag | null; onSaved: (f: Flag) => void }) {
  const original = props.flag;
  const [form, setForm] = useState<FlagForm>(() => (original ? flagToForm(original) : emptyForm()));
  const [errors, setErrors] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [conflict, setConflict] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const cohorts = useLoad(() => api("GET", projectPath(props.project, "cohorts/?limit=200")), [props.project]);
  const set = (patch: Partial<FlagForm>) => {
    setSaved(false);
    setForm((f) => ({ ...f, ...patch }));
  };
  const setCondition = (i: number, patch: Partial<ConditionRow>) =>
    set({ conditions: form.conditions.map((c, j) => (j === i ? { ...c, ...patch } : c)) });

  const send = async (base: Flag | null) => {
    const built = formToBody(form, base ?? undefined);
    if ("errors" in built) {
      setErrors(built.errors);
      return;
    }
    setErrors([]);
    setBusy(true);
    try {
      let saved: Flag;
      if (!original) saved = await api("POST", flagsPath(props.project), built.body);
      else {
        // Only what this form changed, with the version and flag it started from: the server
        // refuses (409) when someone else changed the same fields meanwhile.
        const changes = changedFields(built.body, original);
        const from = base ?? original;
        saved = await api("PATCH", flagsPath(props.project, `${original.id}/`), {
          ...changes,
          version: from.version,
          original_flag: from,
        });
      }
      setConflict(null);
      setSaved(true);
      props.onSaved(saved);
    } catch (e) {
      if (e instanceof ApiError && e.problem.conflict) setConflict(e.problem.message);
      else setErrors([errorText(e)]);
    } finally {
      setBusy(false);
    }
  };
  const reload = async () => {
    try {
      const latest = await api("GET", flagsPath(props.project, `${original!.id}/`));
      setConflict(null);
      props.onSaved(latest);
    } catch (e) {
      setErrors([errorText(e)]);
    }
  };
  const reapply = async () => {
    // My changes (against what I started from) written over the latest version.
    const built = formToBody(form, original ?? undefined);
    if ("errors" in built) return setErrors(built.errors);
    setBusy(true);
    try {
      const latest = await api("GET", flagsPath(props.project, `${original!.id}/`));
      const changes = changedFields(built.body, original!);
      const saved = await api("PATCH", flagsPath(props.project, `${original!.id}/`), {
        ...changes,
        version: latest.version,
        original_flag: latest,
      });
      setConflict(null);
      props.onSaved(saved);
    } catch (e) {
      setErrors([errorText(e)]);
    } finally {
      setBusy(false);
    }
  };

  const variantErrors = validateVariants(form.variants);
  const readOnly = !!original?.deleted;
  return (
    <form
      class="editor"
      onSubmit={(e) => {
        e.preventDefault();
        send(null);
      }}
      aria-label={original ? `Edit ${original.key}` : "New feature flag"}
    >
      {!original && <h1>New feature flag</h1>}
      {conflict && (
        <div class="conflict" role="alert">
          <strong>Someone else changed this flag.</strong> <span>{conflict}</span>
          <div class="actions">
            <button type="button" class="secondary" onClick={reload}>
              Reload (discard my changes)
            </button>
            <button type="button" onClick={reapply} disabled={busy}>
              Re-apply my changes on the latest version
            </button>
          </div>
        </div>
      )}
      <fieldset disabled={readOnly}>
        <div class="grid2">
          <label>
            Key
            <input required value={form.key} onInput={(e) => set({ key: (e.target as HTMLInputElement).value })} name="key" />
          </label>
          <label>
            Description
            <input value={form.name} onInput={(e) => set({ name: (e.target as HTMLInputElement).value })} name="name" />
          </label>
        </div>
        <div class="grid2">
          <label class="check">
            <input type="checkbox" checked={form.active} onChange={(e) => set({ active: (e.target as HTMLInputElement).checked })} /> Enabled
          </label>
          <label class="check">
            <input type="checkbox" checked={form.continuity} onChange={(e) => set({ continuity: (e.target as HTMLInputElement).checked })} />{" "}
            Persist flag across authentication steps (experience continuity)
          </label>
          <label class="check">
            <input
              type="checkbox"
              checked={form.remoteConfig}
              onChange={(e) => set({ remoteConfig: (e.target as HTMLInputElement).checked, variants: [] })}
            />{" "}
            Remote config (a payload, no variants)
          </label>
          <label class="check">
            <input type="checkbox" checked={form.encrypted} onChange={(e) => set({ encrypted: (e.target as HTMLInputElement).checked })} /> Encrypt
            payloads
          </label>
        </div>
        <div class="grid3">
          <label>
            Evaluation runtime
            <select value={form.runtime} onChange={(e) => set({ runtime: (e.target as HTMLSelectElement).value })}>
              <option value="all">Client and server</option>
              <option value="client">Client only</option>
              <option value="server">Server only</option>
            </select>
          </label>
          <label>
            Evaluation contexts
            <input value={form.contexts} placeholder="web, app" onInput={(e) => set({ contexts: (e.target as HTMLInputElement).value })} />
          </label>
          <label>
            Tags
            <input value={form.tags} placeholder="tag, tag" onInput={(e) => set({ tags: (e.target as HTMLInputElement).value })} />
          </label>
          <label>
            Match by
            <select
              value={form.aggregationGroup === null ? "" : String(form.aggregationGroup)}
              onChange={(e) => {
                const v = (e.target as HTMLSelectElement).value;
                set({ aggregationGroup: v === "" ? null : Number(v) });
              }}
            >
              <option value="">Users</option>
              {[0, 1, 2, 3, 4].map((i) => (
                <option value={String(i)}>Group type {i}</option>
              ))}
            </select>
          </label>
          <label>
            Holdout id
            <input inputMode="numeric" value={form.holdoutId} onInput={(e) => set({ holdoutId: (e.target as HTMLInputElement).value })} />
          </label>
          <label>
            Holdout %
            <input
              type="number"
              min="0"
              max="100"
              step="any"
              value={form.holdoutPercent}
              disabled={!form.holdoutId.trim()}
              onInput={(e) => set({ holdoutPercent: (e.target as HTMLInputElement).value })}
            />
          </label>
        </div>

        <h2>Variants</h2>
        {form.variants.length === 0 ? (
          <>
            <PayloadEditor label="Payload (JSON, served when the flag is on)" value={form.payload} onChange={(payload) => set({ payload })} />
            {!form.remoteConfig && (
              <button
                type="button"
                class="secondary"
                onClick={() =>
                  set({
                    variants: [
                      { key: "control", name: "", rollout: 50, payload: "" },
                      { key: "test", name: "", rollout: 50, payload: "" },
                    ],
                  })
                }
              >
                Use multiple variants
              </button>
            )}
          </>
        ) : (
          <div class="variants">
            {form.variants.map((v, i) => (
              <div class="variant" key={i}>
                <label>
                  Variant key
                  <input
                    value={v.key}
                    aria-label={`Variant ${i + 1} key`}
                    onInput={(e) => set({ variants: form.variants.map((x, j) => (j === i ? { ...x, key: (e.target as HTMLInputElement).value } : x)) })}
                  />
                </label>
                <label>
                  Split %
                  <input
                    type="number"
                    min="0"
                    max="100"
                    step="any"
                    aria-label={`Variant ${i + 1} split`}
                    value={String(v.rollout)}
                    onInput={(e) =>
                      set({ variants: form.variants.map((x, j) => (j === i ? { ...x, rollout: Number((e.target as HTMLInputElement).value) } : x)) })
                    }
                  />
                </label>
                <PayloadEditor
                  label={`Payload of variant ${i + 1}`}
                  value={v.payload}
                  onChange={(payload) => set({ variants: form.variants.map((x, j) => (j === i ? { ...x, payload } : x)) })}
                />
                <button
                  type="button"
                  class="secondary small"
                  aria-label={`Remove variant ${i + 1}`}
                  onClick={() => {
                    const rest = form.variants.filter((_, j) => j !== i);
                    const split = evenSplit(rest.length);
                    set({ variants: rest.map((x, j) => ({ ...x, rollout: split[j] })) });
                  }}
                >
                  Remove
                </button>
              </div>
            ))}
            <div class="row">
              <button
                type="button"
                class="secondary"
                onClick={() => {
                  const next = [...form.variants, { key: `variant-${form.variants.length + 1}`, name: "", rollout: 0, payload: "" }];
                  const split = evenSplit(next.length);
                  set({ variants: next.map((x, j) => ({ ...x, rollout: split[j] })) });
                }}
              >
                Add variant
              </button>
              <button
                type="button"
                class="secondary"
                onClick={() => {
                  const split = evenSplit(form.variants.length);
                  set({ variants: form.variants.map((x, j) => ({ ...x, rollout: split[j] })) });
                }}
              >
                Distribute equally
              </button>
            </div>
            {variantErrors.length > 0 && (
              <ul class="field-errors" aria-live="polite">
                {variantErrors.map((e) => (
                  <li>{e}</li>
                ))}
              </ul>
            )}
          </div>
        )}

        <h2>Release conditions</h2>
        {form.conditions.length === 0 && <p class="hint">A flag needs at least one condition set.</p>}
        {form.conditions.map((c, i) => (
          <fieldset class="condition" key={i}>
            <legend>Condition set {i + 1}</legend>
            {c.properties.length === 0 && <p class="hint">Matches every user.</p>}
            {c.properties.map((p, k) => (
              <PropertyEditor
                key={k}
                index={k}
                row={p}
                cohorts={cohorts.data?.results ?? []}
                onChange={(row) => setCondition(i, { properties: c.properties.map((x, j) => (j === k ? row : x)) })}
                onRemove={() => setCondition(i, { properties: c.properties.filter((_, j) => j !== k) })}
              />
            ))}
            <div class="row">
              <button
                type="button"
                class="secondary small"
                onClick={() => setCondition(i, { properties: [...c.properties, { type: "person", key: "", operator: "exact", value: "" }] })}
              >
                Add property filter
              </button>
              <button
                type="button"
                class="secondary small"
                onClick={() => setCondition(i, { properties: [...c.properties, { type: "cohort", key: "", operator: "in", value: "" }] })}
              >
                Add cohort
              </button>
              <button
                type="button"
                class="secondary small"
                onClick={() =>
                  setCondition(i, { properties: [...c.properties, { type: "flag", key: "", operator: "flag_evaluates_to", value: "true" }] })
                }
              >
                Add flag dependency
              </button>
            </div>
            <label class="rollout">
              <span>
                Roll out to <output>{c.rollout}%</output> of matching users
              </span>
              <input
                type="range"
                min="0"
                max="100"
                step="1"
                value={String(c.rollout)}
                aria-label={`Condition ${i + 1} rollout percentage`}
                onInput={(e) => setCondition(i, { rollout: Number((e.target as HTMLInputElement).value) })}
              />
            </label>
            {form.variants.length > 0 && (
              <label>
                Variant override
                <select value={c.variant} onChange={(e) => setCondition(i, { variant: (e.target as HTMLSelectElement).value })}>
                  <option value="">Split between variants</option>
                  {form.variants.map((v) => (
                    <option value={v.key}>{v.key}</option>
                  ))}
                </select>
              </label>
            )}
            <button
              type="button"
              class="secondary small danger"
              onClick={() => set({ conditions: form.conditions.filter((_, j) => j !== i) })}
            >
              Remove condition set
            </button>
          </fieldset>
        ))}
        <button
          type="button"
          class="secondary"
          onClick={() => set({ conditions: [...form.conditions, { properties: [], rollout: 100, variant: "", description: "" }] })}
        >
          Add condition set
        </button>
      </fieldset>
      {errors.length > 0 && (
        <div class="error" role="alert">
          <ul>
            {errors.map((e) => (
              <li>{e}</li>
            ))}
          </ul>
        </div>
      )}
      {saved && !conflict && (
        <p class="ok" role="status">
          Saved.
        </p>
      )}
      {!readOnly && (
        <div class="actions sticky">
          <button type="submit" disabled={busy}>
            {busy ? "Saving…" : original ? "Save" : "Create flag"}
          </button>
        </div>
      )}
    </form>
  );
}

function PayloadEditor(props: { label: string; value: string; onChange: (v: string) => void }) {
  const error = props.value.startsWith("*********") ? null : validatePayload(props.value);
  const id = useMemo(() => `payload-${Math.random().toString(36).slice(2)}`, []);
  return (
    <div class="payload">
      <label for={id}>{props.label}</label>
      <textarea
        id={id}
        rows={2}
        spellcheck={false}
        value={props.value}
        aria-invalid={!!error}
        aria-describedby={error ? `${id}-error` : undefined}
        onInput={(e) => props.onChange((e.target as HTMLTextAreaElement).value)}
      />
      {error && (
        <p class="field-error" id={`${id}-error`}>
          {error}
        </p>
      )}
    </div>
  );
}

export function PropertyEditor(props: {
  index: number;
  row: PropertyRow;
  cohorts: any[];
  onChange: (r: PropertyRow) => void;
  onRemove: () => void;
}) {
  const r = props.row;
  const n = props.index + 1;
  const set = (patch: Partial<PropertyRow>) => props.onChange({ ...r, ...patch });
  const kind = operatorKind(r.operator);
  return (
    <div class="property">
      {r.type === "cohort" ? (
        <label>
          Cohort
          <select value={r.key} onChange={(e) => set({ key: (e.target as HTMLSelectElement).value })}>
            <option value="">Choose a cohort</option>
            {props.cohorts.map((c) => (
              <option value={String(c.id)}>{c.name || `Cohort ${c.id}`}</option>
            ))}
          </select>
        </label>
      ) : r.type === "flag" ? (
        <>
          <label>
            Flag id
            <input value={r.key} aria-label={`Filter ${n} flag id`} onInput={(e) => set({ key: (e.target as HTMLInputElement).value })} />
          </label>
          <label>
            Evaluates to
            <input value={r.value} aria-label={`Filter ${n} flag value`} onInput={(e) => set({ value: (e.target as HTMLInputElement).value })} />
          </label>
        </>
      ) : (
        <>
          <label>
            Of
            <select value={r.type} onChange={(e) => set({ type: (e.target as HTMLSelectElement).value as PropertyRow["type"] })}>
              <option value="person">Person</option>
              <option value="group">Group</option>
            </select>
          </label>
          <label>
            Property
            <input value={r.key} aria-label={`Filter ${n} property`} onInput={(e) => set({ key: (e.target as HTMLInputElement).value })} />
          </label>
          <label>
            Operator
            <select value={r.operator} aria-label={`Filter ${n} operator`} onChange={(e) => set({ operator: (e.target as HTMLSelectElement).value })}>
              {OPERATORS.map((o) => (
                <option value={o.op}>{o.label}</option>
              ))}
            </select>
          </label>
          {kind !== "none" && (
            <label>
              {kind === "list" ? "Values (comma-separated)" : kind === "date" ? "Date (YYYY-MM-DD or -7d)" : "Value"}
              <input
                value={r.value}
                aria-label={`Filter ${n} value`}
                type={kind === "number" ? "number" : "text"}
                onInput={(e) => set({ value: (e.target as HTMLInputElement).value })}
              />
            </label>
          )}
        </>
      )}
      <button type="button" class="secondary small" aria-label={`Remove filter ${n}`} onClick={props.onRemove}>
        ×
      </button>
    </div>
  );
}

// ---- related: status, dependent flags, early access -------------------------------------------

function Related(props: { project: string; flag: Flag }) {
  const f = props.flag;
  const dependents = useLoad(() => api("GET", flagsPath(props.project, `${f.id}/dependent_flags/`)), [f.id]);
  const deps: any[] = Array.isArray(dependents.data) ? dependents.data : [];
  return (
    <aside class="related">
      <h2>Related</h2>
      <dl>
        <dt>Version</dt>
        <dd>{f.version}</dd>
        <dt>Last called</dt>
        <dd>{formatDate(f.last_called_at)}</dd>
        <dt>Created</dt>
        <dd>
          {formatDate(f.created_at)} {f.created_by?.email ? `by ${f.created_by.email}` : ""}
        </dd>
        <dt>Flags that depend on it</dt>
        <dd>
          {dependents.error ? (
            dependents.error
          ) : deps.length === 0 ? (
            "None"
          ) : (
            deps.map((d) => (
              <Link href={`/project/${props.project}/feature_flags/${d.id}`}>{d.key} </Link>
            ))
          )}
        </dd>
        <dt>Early access feature</dt>
        <dd>
          {(f.features ?? []).length === 0
            ? "None"
            : f.features.map((e: any) => <Link href={`/project/${props.project}/early_access_features/${e.id}`}>{e.name} </Link>)}
        </dd>
      </dl>
    </aside>
  );
}

// ---- test this flag -----------------------------------------------------------------------

function TestFlag(props: { project: string; flag: Flag }) {
  const [distinctId, setDistinctId] = useState("");
  const [properties, setProperties] = useState("{}");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<{ value: any; payload: any; reason: string; explain: any } | null>(null);
  const propsError = validatePayload(properties) ?? (/^\s*\{/.test(properties) || !properties.trim() ? null : "Enter a JSON object.");
  const run = async (e: Event) => {
    e.preventDefault();
    if (propsError) return;
    setBusy(true);
    setError(null);
    try {
      const project = await api("GET", projectPath(props.project, ""));
      const personProperties = properties.trim() ? JSON.parse(properties) : {};
      // The value, payload and reason from the SDK endpoint itself, with these properties.
      const flags = await api("POST", "/flags/?v=2", {
        token: project.api_token,
        distinct_id: distinctId,
        person_properties: personProperties,
        flag_keys_to_evaluate: [props.flag.key],
      });
      const record = flags?.flags?.[props.flag.key] ?? {};
      // Condition by condition, for the stored person.
      let explain: any = null;
      try {
        explain = await api("POST", flagsPath(props.project, `${props.flag.id}/test_evaluation/`), { distinct_id: distinctId });
      } catch {
        explain = null;
      }
      setResult({
        value: record.variant ?? record.enabled ?? false,
        payload: record.metadata?.payload ?? null,
        reason: record.reason?.description ?? record.reason?.code ?? "—",
        explain,
      });
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="test" onSubmit={run} aria-label="Test this flag">
      <label>
        Distinct id
        <input required value={distinctId} name="distinct_id" onInput={(e) => setDistinctId((e.target as HTMLInputElement).value)} />
      </label>
      <label>
        Person properties (JSON)
        <textarea
          rows={3}
          spellcheck={false}
          value={properties}
          name="properties"
          aria-invalid={!!propsError}
          onInput={(e) => setProperties((e.target as HTMLTextAreaElement).value)}
        />
      </label>
      {propsError && <p class="field-error">{propsError}</p>}
      <button type="submit" disabled={busy || !!propsError || !distinctId.trim()}>
        {busy ? "Evaluating…" : "Evaluate"}
      </button>
      <ErrorBox error={error} />
      {result && (
        <div class="result" aria-live="polite">
          <dl>
            <dt>Value</dt>
            <dd data-testid="test-value">{JSON.stringify(result.value)}</dd>
            <dt>Payload</dt>
            <dd data-testid="test-payload">{result.payload === null ? "none" : String(result.payload)}</dd>
            <dt>Reason</dt>
            <dd data-testid="test-reason">{result.reason}</dd>
          </dl>
          {result.explain?.conditions?.length > 0 && (
            <>
              <h3>Conditions for the stored person</h3>
              <ol>
                {result.explain.conditions.map((c: any) => (
                  <li>
                    {c.matched ? "✔ matched" : "✘ not matched"}: {c.explanation}
                  </li>
                ))}
              </ol>
            </>
          )}
        </div>
      )}
    </form>
  );
}

// ---- history -------------------------------------------------------------------------------

function History(props: { project: string; flag: Flag; onReverted: (f: Flag) => void }) {
  const [page, setPage] = useState(1);
  const entries = useLoad(
    () => api("GET", flagsPath(props.project, `${props.flag.id}/activity/?limit=10&page=${page}`)),
    [props.flag.id, props.flag.version, page],
  );
  const [reverting, setReverting] = useState<any>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const revert = async () => {
    setBusy(true);
    setError(null);
    try {
      const f = await api("POST", flagsPath(props.project, `${props.flag.id}/activity/${reverting.id}/revert/`), {});
      setReverting(null);
      props.onReverted(f);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  if (entries.loading && !entries.data) return <Loading what="history" />;
  const results: any[] = entries.data?.results ?? [];
  return (
    <section class="history">
      <ErrorBox error={entries.error} onRetry={entries.reload} />
      {entries.data && results.length === 0 && <Empty>No history yet.</Empty>}
      <ol>
        {results.map((e) => (
          <li class="entry">
            <div class="entry-head">
              <span>
                <strong>{e.user?.email ?? e.user?.first_name ?? "System"}</strong> {summarizeActivity(e)} · {formatDate(e.created_at)}
              </span>
              <button type="button" class="secondary small" onClick={() => setReverting(e)} aria-label={`Revert to the version after this change (${formatDate(e.created_at)})`}>
                Revert to this
              </button>
            </div>
            <details>
              <summary>Changes</summary>
              {(e.detail?.changes ?? [])
                .filter((c: any) => c.field !== "version")
                .map((c: any) => (
                  <div class="diff">
                    <h4>{c.field}</h4>
                    <pre>
                      {diffValues(c.before, c.after).map((l) => (
                        <span class={l.kind}>
                          {l.kind === "added" ? "+ " : l.kind === "removed" ? "- " : "  "}
                          {l.text}
                          {"\n"}
                        </span>
                      ))}
                    </pre>
                  </div>
                ))}
            </details>
          </li>
        ))}
      </ol>
      <nav class="pager" aria-label="History pages">
        <button type="button" class="secondary" disabled={page === 1} onClick={() => setPage(page - 1)}>
          Newer
        </button>
        <button type="button" class="secondary" disabled={!entries.data?.next} onClick={() => setPage(page + 1)}>
          Older
        </button>
      </nav>
      {reverting && (
        <Confirm
          title="Revert the flag?"
          confirmLabel="Revert"
          busy={busy}
          error={error}
          onConfirm={revert}
          onCancel={() => setReverting(null)}
        >
          <p>The flag's settings go back to what they were right after this change ({formatDate(reverting.created_at)}). The revert is itself a change in the history.</p>
        </Confirm>
      )}
    </section>
  );
}

// ---- usage ---------------------------------------------------------------------------------

function Usage(props: { project: string; flag: Flag }) {
  const id = props.flag.usage_dashboard;
  const dashboard = useLoad(
    () => (id ? api("GET", projectPath(props.project, `dashboards/${id}/`)) : Promise.resolve(null)),
    [id],
  );
  const status = useLoad(() => api("GET", flagsPath(props.project, `${props.flag.id}/status/`)), [props.flag.id]);
  return (
    <section class="usage">
      <p>
        Last called: <strong>{formatDate(props.flag.last_called_at)}</strong> · Status:{" "}
        <strong>{status.data?.status ?? "…"}</strong>
        {status.data?.reason ? ` (${status.data.reason})` : ""}
      </p>
      {!id && <Empty>This flag has no usage dashboard.</Empty>}
      {dashboard.loading && id && <Loading what="usage" />}
      <ErrorBox error={dashboard.error} onRetry={dashboard.reload} />
      {(dashboard.data?.tiles ?? []).map((t: any) =>
        t.insight ? (
          <figure class="chart">
            <figcaption>{t.insight.name}</figcaption>
            <Chart series={t.insight.result ?? []} />
          </figure>
        ) : null,
      )}
    </section>
  );
}

const COLORS = ["#1d4aff", "#f54e00", "#29a36a", "#a621c8", "#b58b00", "#e0457b"];

function Chart(props: { series: any[] }) {
  const series = props.series.filter((s) => Array.isArray(s.data));
  if (series.length === 0) return <Empty>No calls in the last 30 days.</Empty>;
  const days: string[] = series[0].labels ?? series[0].days ?? [];
  const max = Math.max(1, ...series.flatMap((s) => s.data as number[]));
  const W = 600;
  const H = 160;
  const n = Math.max(1, (series[0].data as number[]).length - 1);
  const x = (i: number) => (i / n) * W;
  const y = (v: number) => H - (v / max) * H;
  return (
    <div>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Daily counts, at most ${max}`} preserveAspectRatio="none">
        {series.map((s, k) => (
          <polyline fill="none" stroke={COLORS[k % COLORS.length]} stroke-width="2" points={(s.data as number[]).map((v, i) => `${x(i)},${y(v)}`).join(" ")} />
        ))}
      </svg>
      <div class="legend">
        <span>{days[0]}</span>
        <span>{days[days.length - 1]}</span>
      </div>
      <table class="compact">
        <thead>
          <tr>
            <th>Response</th>
            <th>Total (30 days)</th>
          </tr>
        </thead>
        <tbody>
          {series.map((s, k) => (
            <tr>
              <td>
                <span class="swatch" style={{ background: COLORS[k % COLORS.length] }} /> {String(s.breakdown_value ?? s.label)}
              </td>
              <td data-testid="usage-count">{s.count}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

// ---- scheduled changes ---------------------------------------------------------------------

function Scheduled(props: { project: string; flag: Flag }) {
  const list = useLoad(
    () => api("GET", projectPath(props.project, `scheduled_changes/?model_name=FeatureFlag&record_id=${props.flag.id}`)),
    [props.flag.id],
  );
  const [when, setWhen] = useState("");
  const [active, setActive] = useState(!props.flag.active);
  const [error, setError] = useState<string | null>(null);
  const add = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await api("POST", projectPath(props.project, "scheduled_changes/"), {
        record_id: String(props.flag.id),
        model_name: "FeatureFlag",
        payload: { operation: "update_status", value: active },
        scheduled_at: new Date(when).toISOString(),
      });
      list.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const remove = async (id: number) => {
    try {
      await api("DELETE", projectPath(props.project, `scheduled_changes/${id}/`));
      list.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const results: any[] = list.data?.results ?? [];
  return (
    <section>
      <ErrorBox error={list.error} onRetry={list.reload} />
      {list.data && results.length === 0 && <Empty>No scheduled changes.</Empty>}
      <ul>
        {results.map((c) => (
          <li>
            {formatDate(c.scheduled_at)}: {c.payload?.operation === "update_status" ? (c.payload.value ? "enable" : "disable") : c.payload?.operation}{" "}
            {c.executed_at ? `(done ${formatDate(c.executed_at)})` : c.failure_reason ? `(failed: ${c.failure_reason})` : "(pending)"}{" "}
            {!c.executed_at && (
              <button type="button" class="secondary small" onClick={() => remove(c.id)}>
                Cancel
              </button>
            )}
          </li>
        ))}
      </ul>
      <form class="row" onSubmit={add} aria-label="Schedule a change">
        <label>
          At
          <input type="datetime-local" required value={when} onInput={(e) => setWhen((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Change
          <select
            aria-label="Change to make"
            value={active ? "on" : "off"}
            onChange={(e) => setActive((e.target as HTMLSelectElement).value === "on")}
          >
            <option value="on">Enable the flag</option>
            <option value="off">Disable the flag</option>
          </select>
        </label>
        <button type="submit">Schedule</button>
      </form>
      <ErrorBox error={error} />
    </section>
  );
}
