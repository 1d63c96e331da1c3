// Who is signed in: a bearer token (a JWT mnemo signed), kept in this tab's
// sessionStorage only. `mnemo token issue --owner NAME --link` prints
// `http://HOST:PORT/#token=JWT`: the fragment never reaches a server; it is
// taken from the address bar at start and removed from it.

const KEY = "mnemo.token";

/** Moves a `#token=` in the address into the session, and out of the
 * address bar (and the history). */
export function takeTokenFromAddress(): void {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!match) return;
  sessionStorage.setItem(KEY, decodeURIComponent(match[1]));
  history.replaceState(null, "", location.pathname + location.search);
}

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function signIn(raw: string): string | null {
  const t = raw.trim().replace(/^Bearer\s+/i, "");
  if (claims(t) === null) return "That is not a token: paste what `mnemo token issue` printed.";
  sessionStorage.setItem(KEY, t);
  return null;
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
}

/** The token's claims as sent (not verified here: the server does). */
export function claims(t: string | null = token()): { sub?: string; exp?: number } | null {
  const payload = t?.split(".")[1];
  if (!payload) return null;
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const value: unknown = JSON.parse(json);
    return typeof value === "object" && value !== null ? (value as { sub?: string; exp?: number }) : null;
  } catch {
    return null;
  }
}
