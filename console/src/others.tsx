// Early access features (stages, linked flag) and cohorts (static and property, their persons).

import { useState } from "preact/hooks";
import { api, projectPath } from "./api";
import { PropertyEditor } from "./flags";
import { rowToProperty, splitList, type PropertyRow } from "./logic";
import { Empty, ErrorBox, Link, Loading, errorText, formatDate, navigate, useLoad } from "./ui";

export const STAGES = ["draft", "concept", "alpha", "beta", "general-availability", "archived"];

export function EarlyAccessList(props: { project: string }) {
  const list = useLoad(() => api("GET", projectPath(props.project, "early_access_feature/?limit=200")), [props.project]);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const created = await api("POST", projectPath(props.project, "early_access_feature/"), { name, description, stage: "draft" });
      navigate(`/project/${props.project}/early_access_features/${created.id}`);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  const results: any[] = list.data?.results ?? [];
  return (
    <section>
      <h1>Early access features</h1>
      <ErrorBox error={list.error} onRetry={list.reload} />
      {list.loading && !list.data && <Loading what="early access features" />}
      {list.data && results.length === 0 && <Empty>No early access features yet.</Empty>}
      {results.length > 0 && (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Name</th>
                <th>Stage</th>
                <th>Flag</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {results.map((f) => (
                <tr>
                  <td>
                    <Link href={`/project/${props.project}/early_access_features/${f.id}`}>{f.name}</Link>
                  </td>
                  <td>
                    <span class="tag">{f.stage}</span>
                  </td>
                  <td>{f.feature_flag ? <Link href={`/project/${props.project}/feature_flags/${f.feature_flag.id}`}>{f.feature_flag.key}</Link> : "—"}</td>
                  <td>{formatDate(f.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <form class="card" onSubmit={create} aria-label="New early access feature">
        <h2>New early access feature</h2>
        <label>
          Name
          <input required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Description
          <input value={description} onInput={(e) => setDescription((e.target as HTMLInputElement).value)} />
        </label>
        <ErrorBox error={error} />
        <button type="submit" disabled={busy || !name.trim()}>
          Create (draft, with its own flag)
        </button>
      </form>
    </section>
  );
}

export function EarlyAccessPage(props: { project: string; id: string }) {
  const feature = useLoad(() => api("GET", projectPath(props.project, `early_access_feature/${props.id}/`)), [props.project, props.id]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  if (feature.loading && !feature.data) return <Loading what="the feature" />;
  if (!feature.data) return <ErrorBox error={feature.error} onRetry={feature.reload} />;
  const f = feature.data;
  const move = async (stage: string) => {
    setBusy(true);
    setError(null);
    try {
      feature.set(await api("PATCH", projectPath(props.project, `early_access_feature/${f.id}/`), { stage }));
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section>
      <p class="crumbs">
        <Link href={`/project/${props.project}/early_access_features`}>Early access features</Link> / {f.name}
      </p>
      <h1>{f.name}</h1>
      <p>{f.description || <span class="hint">No description.</span>}</p>
      <dl>
        <dt>Stage</dt>
        <dd data-testid="eaf-stage">{f.stage}</dd>
        <dt>Flag</dt>
        <dd>{f.feature_flag ? <Link href={`/project/${props.project}/feature_flags/${f.feature_flag.id}`}>{f.feature_flag.key}</Link> : "—"}</dd>
        <dt>Documentation</dt>
        <dd>{f.documentation_url || "—"}</dd>
      </dl>
      <fieldset class="stages" disabled={busy}>
        <legend>Move to stage</legend>
        {STAGES.map((s) => (
          <button type="button" class={s === f.stage ? "" : "secondary"} aria-pressed={s === f.stage} onClick={() => move(s)}>
            {s}
          </button>
        ))}
      </fieldset>
      <ErrorBox error={error} />
    </section>
  );
}

export function CohortsList(props: { project: string }) {
  const list = useLoad(() => api("GET", projectPath(props.project, "cohorts/?limit=200")), [props.project]);
  const results: any[] = list.data?.results ?? [];
  return (
    <section>
      <h1>Cohorts</h1>
      <ErrorBox error={list.error} onRetry={list.reload} />
      {list.loading && !list.data && <Loading what="cohorts" />}
      {list.data && results.length === 0 && <Empty>No cohorts yet.</Empty>}
      {results.length > 0 && (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Name</th>
                <th>Type</th>
                <th>Persons</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {results.map((c) => (
                <tr>
                  <td>
                    <Link href={`/project/${props.project}/cohorts/${c.id}`}>{c.name || `Cohort ${c.id}`}</Link>
                  </td>
                  <td>{c.is_static ? "static" : "property"}</td>
                  <td>{c.count ?? "—"}</td>
                  <td>{formatDate(c.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <NewCohort project={props.project} />
    </section>
  );
}

/** A new cohort: static (filled by hand below) or by person properties (all must match). */
function NewCohort(props: { project: string }) {
  const [name, setName] = useState("");
  const [isStatic, setStatic] = useState(false);
  const [rows, setRows] = useState<PropertyRow[]>([{ type: "person", key: "", operator: "exact", value: "" }]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const body: { [k: string]: any } = { name, is_static: isStatic };
    if (!isStatic) {
      const values = [];
      for (const row of rows) {
        const r = rowToProperty(row);
        if ("error" in r) return setError(r.error);
        values.push(r.ok);
      }
      body.filters = { properties: { type: "OR", values: [{ type: "AND", values }] } };
    }
    setBusy(true);
    try {
      const created = await api("POST", projectPath(props.project, "cohorts/"), body);
      navigate(`/project/${props.project}/cohorts/${created.id}`);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card" onSubmit={create} aria-label="New cohort">
      <h2>New cohort</h2>
      <label>
        Name
        <input required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
      </label>
      <label class="check">
        <input type="checkbox" checked={isStatic} onChange={(e) => setStatic((e.target as HTMLInputElement).checked)} /> Static (add persons by hand)
      </label>
      {!isStatic &&
        rows.map((row, i) => (
          <PropertyEditor
            index={i}
            row={row}
            cohorts={[]}
            onChange={(r) => setRows(rows.map((x, j) => (j === i ? r : x)))}
            onRemove={() => setRows(rows.filter((_, j) => j !== i))}
          />
        ))}
      {!isStatic && (
        <button type="button" class="secondary small" onClick={() => setRows([...rows, { type: "person", key: "", operator: "exact", value: "" }])}>
          Add property filter
        </button>
      )}
      <ErrorBox error={error} />
      <div class="actions">
        <button type="submit" disabled={busy || !name.trim()}>
          Create cohort
        </button>
      </div>
    </form>
  );
}

/** Adds persons (by uuid) to a static cohort. */
function AddPersons(props: { project: string; id: string; onAdded: () => void }) {
  const [ids, setIds] = useState("");
  const [error, setError] = useState<string | null>(null);
  const add = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await api("PATCH", projectPath(props.project, `cohorts/${props.id}/add_persons_to_static_cohort/`), { person_ids: splitList(ids) });
      setIds("");
      props.onAdded();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form class="row" onSubmit={add} aria-label="Add persons">
      <label>
        Person uuids (comma-separated)
        <input value={ids} onInput={(e) => setIds((e.target as HTMLInputElement).value)} />
      </label>
      <button type="submit" disabled={!ids.trim()}>
        Add to cohort
      </button>
      <ErrorBox error={error} />
    </form>
  );
}

export function CohortPage(props: { project: string; id: string }) {
  const cohort = useLoad(() => api("GET", projectPath(props.project, `cohorts/${props.id}/`)), [props.project, props.id]);
  const persons = useLoad(() => api("GET", projectPath(props.project, `cohorts/${props.id}/persons/?limit=100`)), [props.project, props.id]);
  if (cohort.loading && !cohort.data) return <Loading what="the cohort" />;
  if (!cohort.data) return <ErrorBox error={cohort.error} onRetry={cohort.reload} />;
  const c = cohort.data;
  const people: any[] = persons.data?.results ?? [];
  return (
    <section>
      <p class="crumbs">
        <Link href={`/project/${props.project}/cohorts`}>Cohorts</Link> / {c.name}
      </p>
      <h1>{c.name || `Cohort ${c.id}`}</h1>
      <dl>
        <dt>Type</dt>
        <dd>{c.is_static ? "static" : "property"}</dd>
        <dt>Persons</dt>
        <dd>{c.count ?? "—"}</dd>
      </dl>
      {!c.is_static && (
        <details>
          <summary>Filters</summary>
          <pre>{JSON.stringify(c.filters, null, 2)}</pre>
        </details>
      )}
      <h2>Persons</h2>
      {c.is_static && (
        <AddPersons
          project={props.project}
          id={props.id}
          onAdded={() => {
            persons.reload();
            cohort.reload();
          }}
        />
      )}
      <ErrorBox error={persons.error} onRetry={persons.reload} />
      {persons.loading && !persons.data && <Loading what="persons" />}
      {persons.data && people.length === 0 && <Empty>No persons in this cohort.</Empty>}
      <ul>
        {people.map((p) => (
          <li>{(p.distinct_ids ?? [])[0] ?? p.id}</li>
        ))}
      </ul>
    </section>
  );
}
