// The console's shell: sign in with a personal API key (session storage only), the project
// switcher, navigation and the page for the current path (PostHog's URL scheme).

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, setUnauthorizedHandler, storedKey, storeKey } from "./api";
import { parseRoute } from "./logic";
import { ErrorBox, Link, Loading, errorText, navigate, usePath } from "./ui";
import { FlagPage, FlagsList } from "./flags";
import { CohortPage, CohortsList, EarlyAccessList, EarlyAccessPage } from "./others";

export interface Session {
  me: any;
  projects: { id: number; name: string }[];
}

async function loadSession(key: string): Promise<Session> {
  const me = await api("GET", "/api/users/@me/", undefined, key);
  const list = await api("GET", "/api/projects/?limit=1000", undefined, key);
  const projects = (list?.results ?? []).map((p: any) => ({ id: p.id, name: p.name }));
  return { me, projects };
}

function SignIn(props: { onSignedIn: (s: Session) => void }) {
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await loadSession(key.trim());
      storeKey(key.trim());
      props.onSignedIn(session);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form onSubmit={submit} class="card">
        <h1>Feature flags</h1>
        <p>Sign in with a personal API key (<code>phx_…</code>). It stays in this tab only and is forgotten when the tab closes.</p>
        <label for="api-key">Personal API key</label>
        <input
          id="api-key"
          type="password"
          autocomplete="off"
          required
          value={key}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
        />
        <ErrorBox error={error} />
        <button type="submit" disabled={busy || !key.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

function App() {
  const path = usePath();
  const [session, setSession] = useState<Session | null>(null);
  const [state, setState] = useState<"checking" | "out" | "in">(storedKey() ? "checking" : "out");
  const [error, setError] = useState<string | null>(null);

  const signOut = () => {
    storeKey(null);
    setSession(null);
    setState("out");
  };
  useEffect(() => {
    setUnauthorizedHandler(signOut);
    const key = storedKey();
    if (!key) return;
    loadSession(key).then(
      (s) => {
        setSession(s);
        setState("in");
      },
      (e) => {
        setError(errorText(e));
        setState("out");
      },
    );
  }, []);

  if (state === "checking") return <Loading what="your projects" />;
  if (state === "out" || !session)
    return (
      <>
        {error && <ErrorBox error={error} />}
        <SignIn
          onSignedIn={(s) => {
            setSession(s);
            setState("in");
            setError(null);
          }}
        />
      </>
    );
  const route = parseRoute(path);
  const current = String(session.me?.team?.id ?? session.projects[0]?.id ?? "");
  if (route.page === "home") {
    if (current) queueMicrotask(() => navigate(`/project/${current}/feature_flags`, true));
    return <Loading />;
  }
  const project = "project" in route ? route.project : current;
  const section = route.page.startsWith("eaf") ? "eafs" : route.page.startsWith("cohort") ? "cohorts" : "flags";
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <nav aria-label="Sections">
          <Link href={`/project/${project}/feature_flags`} class="brand">
            Flags console
          </Link>
          <Link href={`/project/${project}/feature_flags`} aria-current={section === "flags" ? "page" : undefined}>
            Feature flags
          </Link>
          <Link href={`/project/${project}/early_access_features`} aria-current={section === "eafs" ? "page" : undefined}>
            Early access
          </Link>
          <Link href={`/project/${project}/cohorts`} aria-current={section === "cohorts" ? "page" : undefined}>
            Cohorts
          </Link>
        </nav>
        <div class="who">
          <label for="project-switch" class="visually-hidden">
            Project
          </label>
          <select
            id="project-switch"
            value={project}
            onChange={(e) => navigate(`/project/${(e.target as HTMLSelectElement).value}/feature_flags`)}
          >
            {session.projects.map((p) => (
              <option value={String(p.id)}>{p.name}</option>
            ))}
            {!session.projects.some((p) => String(p.id) === project) && <option value={project}>Project {project}</option>}
          </select>
          <span class="email">{session.me?.email}</span>
          <button type="button" class="secondary small" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main">
        {route.page === "flags" && <FlagsList project={project} me={session.me} />}
        {route.page === "flag" && <FlagPage project={project} id={route.id} />}
        {route.page === "eafs" && <EarlyAccessList project={project} />}
        {route.page === "eaf" && <EarlyAccessPage project={project} id={route.id} />}
        {route.page === "cohorts" && <CohortsList project={project} />}
        {route.page === "cohort" && <CohortPage project={project} id={route.id} />}
        {route.page === "notfound" && (
          <div class="empty">
            <h1>Page not found</h1>
            <Link href={`/project/${current}/feature_flags`}>Go to feature flags</Link>
          </div>
        )}
      </main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
