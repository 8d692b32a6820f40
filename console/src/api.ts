// The management API client: the personal API key from session storage as a Bearer token, JSON
// in and out, every failure an ApiError carrying PostHog's `detail`.

import { describeError, type ApiProblem } from "./logic";

const KEY_ITEM = "flags-console.key";

export class ApiError extends Error {
  problem: ApiProblem;
  constructor(problem: ApiProblem) {
    super(problem.message);
    this.problem = problem;
  }
}

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_ITEM);
  } catch {
    return null;
  }
}

export function storeKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(KEY_ITEM);
  else sessionStorage.setItem(KEY_ITEM, key);
}

/** Called on a 401 so the app can show the sign-in page again. */
let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(f: () => void): void {
  onUnauthorized = f;
}

export async function api<T = any>(method: string, path: string, body?: unknown, key = storedKey()): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(describeError(0, null));
  }
  const text = await response.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    if (response.status === 401) onUnauthorized();
    throw new ApiError(describeError(response.status, parsed));
  }
  return parsed as T;
}

export const projectPath = (project: string, rest: string) => `/api/projects/${encodeURIComponent(project)}/${rest}`;
