// Tessera browser client: silent, multi-tab sessions. One ES module, no dependencies, no build.
// docs/BROWSER.md explains every behaviour below; tessera.d.ts beside this file types it.
//
// Tabs of one origin share one session. A small shared record in localStorage says which grant
// is current (a version number, its expiry, and in bearer mode the refresh token); a
// BroadcastChannel tells the other tabs what changed; a Web Lock makes sure only one tab at a
// time sends a refresh request. In cookie mode no token ever reaches JavaScript.

/** @typedef {{ id: string, email: string, mfa_enabled: boolean, created_at: string }} User */
/** @typedef {{ type: "signed_in" | "refreshed" | "signed_out", user: User | null, reason?: string }} ChangeEvent */
/**
 * @typedef {object} ClientOptions
 * @property {string} baseURL Where Tessera is, e.g. "https://auth.example.com".
 * @property {"cookie" | "bearer"} [transport] "cookie" (default, recommended) or "bearer".
 * @property {string[]} [apiOrigins] Other origins that `fetch` sends the Bearer token to (bearer mode).
 * @property {string} [storageKey] Name of the shared record, channel and lock (default: per Tessera origin).
 * @property {number} [requestTimeout] Milliseconds before a refresh request is given up (default 10000).
 * @property {number} [lockTimeout] Milliseconds to wait for another tab's refresh (default 15000).
 */

// 401 codes that a refresh can cure: one refresh, one retry.
const CURABLE = new Set(["token_expired", "invalid_token", "token_revoked"]);
// Network errors and lost answers are retried after these delays (ms): all inside the server's
// 10 s grace window, in which the previous refresh token is answered with the current pair.
const NETWORK_RETRIES = [500, 1000, 2000, 4000];

/** An error answer of the API (problem+json), or a failed request (status 0). */
export class TesseraError extends Error {
  /** @param {number} status @param {string} code @param {string} detail @param {number | null} retryAfter */
  constructor(status, code, detail, retryAfter = null) {
    super(detail || code);
    this.name = "TesseraError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** @param {ClientOptions} options */
export function createClient(options) {
  return new TesseraClient(options);
}

class TesseraClient {
  /** @type {User | null} */ user = null;
  #base; #origin; #transport; #apiOrigins; #key; #channel; #requestTimeout; #lockTimeout;
  #listeners = new Set();
  // This tab's view of the session: the grant version it holds, when its access token expires
  // (local clock, ms), the lifetime it was issued with, and in bearer mode the token itself.
  #signedIn = false; #version = 0; #expiresAt = 0; #lifetime = 0; #accessToken = null;
  #nextAttemptAt = Infinity; #notBefore = 0; #failing = false; #timer = 0; #heartbeat = 0; #lastBeat = Date.now();
  #refreshing = null; #waiters = new Set(); #closed = false;
  // Sign-outs other tabs announced, and the last one's reason: a refresh that was waiting for
  // the lock when one arrived ends with it instead of asking the server (localStorage may not
  // show the other tab's "out" record yet when the lock passes here).
  #signOuts = 0; #signOutReason = "signed_out";
  // Releases of the sign-out markers this tab holds (see #markOut).
  #outMarkers = new Set();

  /** @param {ClientOptions} options */
  constructor({ baseURL, transport = "cookie", apiOrigins = [], storageKey, requestTimeout = 10000, lockTimeout = 15000 }) {
    if (transport !== "cookie" && transport !== "bearer") throw new TypeError('transport must be "cookie" or "bearer"');
    this.#base = new URL(baseURL, globalThis.location?.href);
    this.#origin = this.#base.origin;
    this.#transport = transport;
    this.#apiOrigins = new Set([this.#origin, ...apiOrigins.map((o) => new URL(o).origin)]);
    this.#key = storageKey ?? `tessera:${this.#origin}`;
    this.#requestTimeout = requestTimeout;
    this.#lockTimeout = lockTimeout;
    this.#channel = new BroadcastChannel(this.#key);
    this.#channel.onmessage = (event) => this.#onMessage(event.data);
    // Timers stop while the machine sleeps or the tab is frozen; these say "look again".
    for (const [target, name] of [[document, "visibilitychange"], [document, "resume"], [window, "online"], [window, "focus"], [window, "pageshow"]]) {
      target.addEventListener(name, this.#wake);
    }
    this.#heartbeat = setInterval(() => {
      const now = Date.now();
      if (now - this.#lastBeat > 10000) this.#check(); // a beat came late: the machine slept
      this.#lastBeat = now;
    }, 5000);
  }

  get transport() { return this.#transport; }

  /** On page load: resolves to the signed-in user, or null. Rejects only when Tessera cannot be reached. */
  async restore() {
    const shared = this.#read();
    if (shared?.out) return null; // this browser signed out; nothing to ask
    if (this.#signedIn) return this.user;
    const fresh = shared && shared.expiresAt - Date.now() > 1500;
    // Another tab may hold the current grant: asking costs no request to Tessera.
    if (fresh && (await this.#askPeers(250))) return this.user;
    if (fresh && this.#transport === "cookie") {
      // The access cookie is still good: learn who we are without a refresh.
      const response = await fetch(new URL("/v1/auth/me", this.#base), { credentials: "include" }).catch(() => null);
      if (response?.ok) {
        this.#apply(shared, await response.json());
        this.#emit("signed_in");
        return this.user;
      }
    }
    if (this.#transport === "bearer" && !shared?.refreshToken) return null;
    const outcome = await this.#refresh(shared?.version ?? 0, true);
    if (outcome === "transient") throw new TesseraError(0, "unreachable", "Tessera could not be reached; try again.");
    return this.user;
  }

  /** @param {{ email: string, password: string, device?: string }} credentials */
  async register(credentials) {
    return this.#signIn(await this.#send("/v1/auth/register", credentials));
  }

  /** @param {{ email: string, password: string, device?: string }} credentials */
  async login(credentials) {
    const answer = await this.#send("/v1/auth/login", credentials);
    if (!answer.body.mfa_required) return this.#signIn(answer);
    const mfaToken = answer.body.mfa_token;
    return {
      status: "mfa_required",
      /** @param {string} code */
      verify: async (code) => this.#signIn(await this.#send("/v1/auth/mfa/verify", { mfa_token: mfaToken, code })),
    };
  }

  /**
   * Like fetch(). Relative URLs resolve against baseURL. Requests to Tessera (and, in bearer
   * mode, to `apiOrigins`) carry the session; a 401 that a refresh can cure is refreshed and
   * retried once. Other URLs are fetched untouched.
   * @param {RequestInfo | URL} input @param {RequestInit} [init]
   */
  async fetch(input, init) {
    const url = input instanceof Request ? new URL(input.url) : new URL(String(input), this.#base);
    const carries = this.#transport === "cookie" ? url.origin === this.#origin : this.#apiOrigins.has(url.origin);
    const request = new Request(input instanceof Request ? input : url, init);
    if (!carries) return fetch(request);
    if (this.#signedIn && Date.now() > this.#expiresAt - 1000) await this.#refresh(this.#version);
    const version = this.#version;
    const response = await fetch(this.#authorize(request.clone()));
    if (response.status !== 401 || !this.#signedIn) return response;
    const problem = await readProblem(response.clone());
    if (!CURABLE.has(problem.code)) return response;
    if ((await this.#refresh(version)) !== "ok") return response;
    return fetch(this.#authorize(request));
  }

  /** Ends this session on the server, then signs every tab out. */
  async logout() { return this.#end("/v1/auth/logout", "logout"); }

  /** Ends every session of the user, on every device, then signs every tab out. */
  async logoutAll() { return this.#end("/v1/auth/logout-all", "logout_all"); }

  /**
   * Calls `listener` after every change of this tab's session, never while a lock is held.
   * @param {(event: ChangeEvent) => void} listener @returns {() => void} stops the calls
   */
  onChange(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops timers, listeners and the channel (for tests and single-page-app teardown). */
  close() {
    this.#closed = true;
    for (const release of this.#outMarkers) release();
    this.#outMarkers.clear();
    clearTimeout(this.#timer);
    clearInterval(this.#heartbeat);
    this.#channel.close();
    for (const [target, name] of [[document, "visibilitychange"], [document, "resume"], [window, "online"], [window, "focus"], [window, "pageshow"]]) {
      target.removeEventListener(name, this.#wake);
    }
  }

  // --- Signing in and out -------------------------------------------------------------------

  async #send(path, body) {
    const sentAt = Date.now();
    const headers = { "Content-Type": "application/json" };
    if (this.#transport === "cookie") headers["Tessera-Transport"] = "cookie";
    const response = await fetch(new URL(path, this.#base), {
      method: "POST", headers, body: JSON.stringify(body), credentials: this.#credentials(),
    });
    if (!response.ok) throw await toError(response);
    return { body: await response.json(), sentAt };
  }

  #signIn({ body, sentAt }) {
    const state = this.#store(body, sentAt);
    this.#apply(state, body.user);
    this.#post("signed_in", state);
    this.#emit("signed_in");
    return { status: "signed_in", user: this.user };
  }

  async #end(path, reason) {
    let failure = null;
    try {
      const response = await this.fetch(path, { method: "POST" });
      // 401: the session had already ended; the goal is reached.
      if (!response.ok && response.status !== 401) failure = await toError(response);
    } catch (error) {
      failure = error;
    }
    // Signed out here and in every tab, even when Tessera could not be told (then the promise rejects).
    this.#signOutEverywhere(reason);
    if (failure) throw failure;
  }

  #signOutEverywhere(reason) {
    this.#announceSignOut({ out: true, version: nextVersion(this.#read()) }, reason);
    if (this.#forget()) this.#emit("signed_out", reason);
  }

  // --- Refreshing ---------------------------------------------------------------------------

  /**
   * Makes sure this tab holds a grant newer than `staleVersion`. One refresh at a time per tab
   * (callers share it) and per browser (the lock). Resolves to "ok", "final" or "transient".
   */
  #refresh(staleVersion, restoring = false) {
    this.#refreshing ??= this.#refreshWithRetries(staleVersion, restoring).finally(() => { this.#refreshing = null; });
    return this.#refreshing;
  }

  async #refreshWithRetries(staleVersion, restoring) {
    if (Date.now() < this.#notBefore) return "transient"; // the server asked us to wait (Retry-After)
    for (let attempt = 0; ; attempt++) {
      const wasSignedIn = this.#signedIn;
      const signOuts = this.#signOuts;
      const outcome = await this.#withLock(() => this.#refreshLocked(staleVersion, signOuts));
      // Outside the lock from here on: listeners may take as long as they like.
      if (outcome.kind !== "transient") this.#failing = false;
      if (outcome.kind === "ok") {
        if (outcome.changed) this.#emit(wasSignedIn ? "refreshed" : "signed_in");
        return "ok";
      }
      if (outcome.kind === "final") {
        if (this.#forget()) this.#emit("signed_out", outcome.reason);
        return "final";
      }
      // Quick retries on the first failure only; while it lasts, one attempt every 5 s.
      if (outcome.network && !this.#failing && attempt < NETWORK_RETRIES.length && !this.#closed) {
        await sleep(NETWORK_RETRIES[attempt]);
        continue;
      }
      // Still signed in: try again when the server allows (Retry-After) or a little later.
      this.#failing = true;
      if (outcome.retryAfter != null) this.#notBefore = Date.now() + outcome.retryAfter;
      if (this.#signedIn || restoring) this.#schedule(Date.now() + (outcome.retryAfter ?? 5000));
      return "transient";
    }
  }

  /** Runs while holding the lock: no user callbacks in here. */
  async #refreshLocked(staleVersion, signOuts) {
    if (this.#signOuts !== signOuts) return { kind: "final", reason: this.#signOutReason };
    const marked = await this.#markedOut(staleVersion);
    if (marked) return { kind: "final", reason: marked };
    let shared = this.#read();
    if (shared?.out) return { kind: "final", reason: shared.reason ?? "signed_out" };
    // Another tab may have refreshed while this one waited for the lock: take its grant.
    if (shared && shared.version > staleVersion && shared.expiresAt - Date.now() > 1000) {
      // (Cookie mode: the browser already has the new cookies; only the user may be unknown.)
      if (this.#transport === "cookie" && this.user) return { kind: "ok", changed: this.#apply(shared) };
      // (Bearer mode: the access token comes over the channel; its arrival announces itself.)
      if (this.#transport === "bearer" && (this.#version >= shared.version || (await this.#askPeers(500)))) {
        return { kind: "ok", changed: false };
      }
      shared = this.#read(); // nobody answered: refresh with the shared refresh token ourselves
    }
    if (this.#transport === "bearer" && !shared?.refreshToken) {
      return { kind: "final", reason: "invalid_refresh_token" };
    }
    const sentAt = Date.now();
    let response, body;
    try {
      response = await fetch(new URL("/v1/auth/refresh", this.#base), {
        method: "POST",
        credentials: this.#credentials(),
        // Cookie mode sends no body: Tessera reads the refresh cookie.
        ...(this.#transport === "bearer"
          ? { headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refresh_token: shared.refreshToken }) }
          : {}),
        signal: AbortSignal.timeout(this.#requestTimeout),
      });
      body = response.ok ? await response.json() : await readProblem(response);
    } catch {
      return { kind: "transient", network: true }; // lost request or lost answer
    }
    if (response.ok) {
      const state = this.#store(body, sentAt);
      this.#apply(state, body.user);
      this.#post("refreshed", state);
      return { kind: "ok", changed: true };
    }
    if (response.status === 429 || response.status >= 500) {
      return { kind: "transient", retryAfter: retryAfterMs(response) };
    }
    // refresh_token_reused, invalid_refresh_token, or a refusal no retry can change: final.
    const reason = body.code || `http_${response.status}`;
    await this.#announceSignOut({ out: true, reason, version: nextVersion(shared) }, reason); // before the refresh lock is released
    return { kind: "final", reason };
  }

  // A sign-out is also marked by a held Web Lock named after its version and reason. The lock
  // manager is what hands the refresh lock on, so a tab granted that lock after this one
  // released it sees the marker, whereas the localStorage record and the channel's message
  // travel apart and may reach it later (Chromium does not order them with the lock).

  /** Tells the other tabs by all three paths: the record, the channel, the marker (resolves once held). */
  #announceSignOut(record, reason) {
    this.#write(record);
    this.#channel.postMessage({ type: "signed_out", reason });
    return this.#markOut(record.version, reason);
  }

  /** Holds the marker lock of a sign-out (until this tab takes a newer grant); resolves once held. */
  #markOut(version, reason) {
    if (!globalThis.navigator?.locks) return Promise.resolve();
    return new Promise((held) => {
      navigator.locks.request(`${this.#key}:out:${version}:${reason}`, { mode: "shared" }, () => {
        held();
        return new Promise((release) => this.#outMarkers.add(release));
      }).catch(() => held());
    });
  }

  /** The reason of a sign-out marked after the grant `staleVersion`, or null. */
  async #markedOut(staleVersion) {
    if (!globalThis.navigator?.locks?.query) return null;
    const prefix = `${this.#key}:out:`;
    const { held = [] } = await navigator.locks.query().catch(() => ({}));
    for (const { name } of held) {
      if (!name?.startsWith(prefix)) continue;
      const [version, ...reason] = name.slice(prefix.length).split(":");
      if (Number(version) > staleVersion) return reason.join(":") || "signed_out";
    }
    return null;
  }

  async #withLock(body) {
    if (!globalThis.navigator?.locks) return body(); // no Web Locks: the server's grace window still keeps races safe
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.#lockTimeout);
    try {
      return await navigator.locks.request(`${this.#key}:refresh`, { signal: abort.signal }, () => {
        clearTimeout(timer);
        return body();
      });
    } catch (error) {
      // The holder is stuck (its request has its own timeout, so this is rare): go ahead.
      if (error?.name === "AbortError") return body();
      throw error;
    }
  }

  // --- Shared state -------------------------------------------------------------------------

  /** Records a grant as the browser's current one; returns what the other tabs will learn. */
  #store(grant, sentAt) {
    const state = {
      version: nextVersion(this.#read()),
      // From when the request was sent: never later than the server's own clock says.
      expiresAt: sentAt + grant.expires_in * 1000,
      lifetime: grant.expires_in * 1000,
    };
    // Bearer mode shares the refresh token through localStorage (readable by any script on
    // the page: see docs/BROWSER.md). Cookie mode stores no token anywhere.
    this.#write(this.#transport === "bearer" ? { ...state, refreshToken: grant.refresh_token } : state);
    return { ...state, accessToken: grant.access_token ?? null, user: grant.user };
  }

  /** Adopts a grant (own or another tab's) if it is newer; returns whether it was. */
  #apply(state, user = state.user) {
    if (state.version <= this.#version && this.#signedIn) return false;
    // A grant newer than any sign-out this tab marked: the markers have done their work.
    for (const release of this.#outMarkers) release();
    this.#outMarkers.clear();
    this.#signedIn = true;
    this.#version = state.version;
    this.#expiresAt = state.expiresAt;
    this.#lifetime = state.lifetime;
    if (this.#transport === "bearer") this.#accessToken = state.accessToken ?? this.#accessToken;
    if (user) this.user = user;
    // Refresh ahead: a third of the lifetime before expiry, between 1 s and 60 s.
    const margin = Math.min(60000, Math.max(1000, this.#lifetime / 3));
    this.#schedule(this.#expiresAt - margin);
    for (const resolve of this.#waiters) resolve(true);
    this.#waiters.clear();
    return true;
  }

  /** Drops this tab's session; returns whether it had one. */
  #forget() {
    const had = this.#signedIn;
    this.#signedIn = false;
    this.#accessToken = null;
    this.user = null;
    this.#expiresAt = 0;
    this.#nextAttemptAt = Infinity;
    clearTimeout(this.#timer);
    return had;
  }

  #read() {
    try {
      return JSON.parse(localStorage.getItem(this.#key) ?? "null");
    } catch {
      return null;
    }
  }

  #write(record) {
    localStorage.setItem(this.#key, JSON.stringify(record));
  }

  #post(type, state) {
    const { version, expiresAt, lifetime, accessToken, user } = state;
    // In memory between tabs of one origin only; in cookie mode accessToken is null.
    this.#channel.postMessage({ type, version, expiresAt, lifetime, accessToken, user });
  }

  #onMessage(message) {
    if (this.#closed || !message) return;
    if (message.type === "need") {
      if (this.#signedIn && (this.#transport === "cookie" || this.#accessToken)) {
        this.#post("state", { version: this.#version, expiresAt: this.#expiresAt, lifetime: this.#lifetime, accessToken: this.#accessToken, user: this.user });
      }
    } else if (message.type === "signed_out") {
      this.#signOuts += 1;
      this.#signOutReason = message.reason ?? "signed_out";
      if (this.#forget()) this.#afterRefresh(() => this.#emit("signed_out", message.reason));
    } else {
      const was = this.#signedIn;
      if (this.#apply(message) && (message.type !== "state" || !was)) this.#afterRefresh(() => this.#emit(was ? "refreshed" : "signed_in"));
    }
  }

  /** Listeners never run while this tab holds the refresh lock: they wait for it to be released. */
  #afterRefresh(callback) {
    if (this.#refreshing) this.#refreshing.then(callback); else callback();
  }

  /** Asks the other tabs for the current grant; resolves to whether one arrived in time. */
  #askPeers(timeout) {
    return new Promise((resolve) => {
      const done = (got) => { clearTimeout(timer); this.#waiters.delete(done); resolve(got); };
      const timer = setTimeout(() => done(false), timeout);
      this.#waiters.add(done);
      this.#channel.postMessage({ type: "need" });
    });
  }

  // --- Timing -------------------------------------------------------------------------------

  #schedule(at) {
    this.#nextAttemptAt = at;
    clearTimeout(this.#timer);
    // A timer that fires late (sleep, frozen tab) simply refreshes late: #check looks at the clock.
    this.#timer = setTimeout(() => this.#check(), Math.max(0, at - Date.now()));
  }

  #wake = () => {
    if (document.visibilityState !== "hidden") this.#check();
  };

  #check() {
    if (this.#closed || !this.#signedIn) return;
    // Not due yet by the clock (a timer can fire "early" when the clock was set back): wait on.
    if (Date.now() < this.#nextAttemptAt) return this.#schedule(this.#nextAttemptAt);
    this.#refresh(this.#version);
  }

  #credentials() {
    return this.#transport === "cookie" ? "include" : "omit";
  }

  #authorize(request) {
    if (this.#transport === "cookie") return new Request(request, { credentials: "include" });
    const headers = new Headers(request.headers);
    if (this.#accessToken) headers.set("Authorization", `Bearer ${this.#accessToken}`);
    return new Request(request, { headers });
  }

  #emit(type, reason) {
    const event = reason === undefined ? { type, user: this.user } : { type, user: this.user, reason };
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (error) {
        setTimeout(() => { throw error; }); // reported, but never breaks the client
      }
    }
  }
}

/** Versions only grow, even when two tabs write in the same millisecond. */
function nextVersion(shared) {
  return Math.max(Date.now(), (shared?.version ?? 0) + 1);
}

async function readProblem(response) {
  try {
    const body = await response.json();
    return typeof body === "object" && body ? body : {};
  } catch {
    return {};
  }
}

async function toError(response) {
  const problem = await readProblem(response);
  return new TesseraError(response.status, problem.code ?? `http_${response.status}`, problem.detail ?? "", retryAfterMs(response));
}

/** Retry-After in ms (seconds or an HTTP date), or null. */
function retryAfterMs(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return null;
  const seconds = Number(value);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now();
  return Number.isFinite(ms) ? Math.max(0, ms) : null;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
