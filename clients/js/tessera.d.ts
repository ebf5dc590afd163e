// Types for tessera.js (written by hand; keep in step with the JSDoc there).

/** The signed-in user, as `GET /v1/auth/me` answers. */
export interface User {
  id: string;
  email: string;
  mfa_enabled: boolean;
  created_at: string;
}

export interface ClientOptions {
  /** Where Tessera is, e.g. "https://auth.example.com". Relative `fetch` URLs resolve against it. */
  baseURL: string;
  /** "cookie" (default, recommended): tokens in HttpOnly cookies. "bearer": access token in memory, refresh token in localStorage. */
  transport?: "cookie" | "bearer";
  /** Bearer mode: other origins (your APIs) that `fetch` sends the access token to. Tessera's own origin is always included. */
  apiOrigins?: string[];
  /** Name of the shared localStorage record, BroadcastChannel and Web Lock. Default: "tessera:" + Tessera's origin. */
  storageKey?: string;
  /** Milliseconds before a refresh request is abandoned (and retried). Default 10000. */
  requestTimeout?: number;
  /** Milliseconds to wait for another tab's refresh before going ahead without the lock. Default 15000. */
  lockTimeout?: number;
}

export interface ChangeEvent {
  type: "signed_in" | "refreshed" | "signed_out";
  /** The user after the change (null after signed_out). */
  user: User | null;
  /** Why the session ended: "logout", "logout_all", "refresh_token_reused", "invalid_refresh_token", … */
  reason?: string;
}

export interface SignedIn {
  status: "signed_in";
  user: User;
}

export interface MFARequired {
  status: "mfa_required";
  /** Sends the TOTP code; resolves like a login, rejects with a TesseraError ("invalid_mfa_code", …). */
  verify(code: string): Promise<SignedIn>;
}

export interface Credentials {
  email: string;
  password: string;
  /** A label shown in the user's session list. */
  device?: string;
}

/** An error answer of the API (its problem `code`), or status 0 / code "unreachable" when Tessera could not be reached. */
export class TesseraError extends Error {
  readonly status: number;
  readonly code: string;
  /** Milliseconds from Retry-After, when the answer had one. */
  readonly retryAfter: number | null;
}

export interface TesseraClient {
  /** The signed-in user, or null. */
  readonly user: User | null;
  readonly transport: "cookie" | "bearer";
  /** On page load: resolves to the user, or null (no session). Rejects with TesseraError when Tessera cannot be reached. */
  restore(): Promise<User | null>;
  register(credentials: Credentials): Promise<SignedIn>;
  login(credentials: Credentials): Promise<SignedIn | MFARequired>;
  /** Like fetch(); adds the session for Tessera (and apiOrigins); refreshes when needed; retries once after a curable 401. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  logout(): Promise<void>;
  logoutAll(): Promise<void>;
  /** Returns a function that removes the listener. Listeners never run while a refresh lock is held. */
  onChange(listener: (event: ChangeEvent) => void): () => void;
  /** Stops timers, event listeners and the BroadcastChannel. */
  close(): void;
}

export function createClient(options: ClientOptions): TesseraClient;
