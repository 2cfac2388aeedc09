// The API client shared by the console and the crew app: the token flow, JSON calls, problem+json errors.

export class ApiError extends Error {
  constructor(status, detail, body) {
    super(detail);
    this.status = status;
    this.body = body;
  }
}

// The console keeps its token for the browser session only (sessionStorage); the crew app keeps it on the
// device (localStorage) so that it opens with the last assignment when there is no signal.
export class Session {
  constructor(storage, key) {
    this.storage = storage;
    this.key = key;
    this.onUnauthorized = null; // called when the server refuses the token (expired, revoked)
  }
  get() {
    try {
      const s = JSON.parse(this.storage.getItem(this.key) || "null");
      if (s && s.expires_at && Date.now() > s.expires_at) return null;
      return s;
    } catch {
      return null;
    }
  }
  get token() {
    const s = this.get();
    return s ? s.access_token : null;
  }
  save(answer) {
    const s = { ...answer, expires_at: Date.now() + (answer.expires_in || 43200) * 1000 };
    this.storage.setItem(this.key, JSON.stringify(s));
    return s;
  }
  clear() {
    this.storage.removeItem(this.key);
  }
}

function describe(status, body) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) return body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  if (body && body.title) return body.title;
  return `HTTP ${status}`;
}

export async function login(session, username, password) {
  const form = new URLSearchParams({ username, password });
  const r = await fetch("/api/v1/auth/token", { method: "POST", body: form });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, describe(r.status, body), body);
  return session.save(body);
}

// fetch JSON from the API with the session's token; throws ApiError with the server's message
export async function call(session, path, { method = "GET", body, headers = {} } = {}) {
  const h = { ...headers };
  const token = session.token;
  if (token) h.Authorization = `Bearer ${token}`;
  if (body !== undefined) h["content-type"] = "application/json";
  const r = await fetch(`/api/v1${path}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (r.status === 401 && session.onUnauthorized) session.onUnauthorized(); // the token expired: log in again
  if (!r.ok) throw new ApiError(r.status, describe(r.status, data), data);
  return data;
}

export function problemText(err) {
  return err instanceof ApiError ? err.message : String(err && err.message ? err.message : err);
}
