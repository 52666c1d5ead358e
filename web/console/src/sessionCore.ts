// The login session, shared by the console's tabs: tokens in localStorage,
// renewed with the refresh token shortly before the access token expires,
// the way the CLI does. Renewal takes a cross-tab lock (Web Locks), because
// presenting a spent refresh token a second time — two tabs renewing at
// once — makes the server revoke the whole session (reuse detection).
import createClient from 'openapi-fetch'
import type { paths } from './api/schema'

/** What a session needs from its page; tests pass fakes. */
export type SessionDeps = {
  baseUrl: string
  fetch?: typeof globalThis.fetch
  storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>
  locks?: Pick<LockManager, 'request'> // absent on plain-HTTP pages
  events?: Pick<EventTarget, 'addEventListener'> // the window, for other tabs' changes
}

type Tokens = { access: string; refresh: string; expiresAt: number }

export const KEY = 'croupier.session'
const RENEW_BEFORE_MS = 30_000

type Listener = (signedIn: boolean, reason?: string) => void

const fresh = (t: Tokens | null) => t !== null && t.expiresAt - Date.now() > RENEW_BEFORE_MS

export class Session {
  private renewing: Promise<string | null> | null = null
  private listeners = new Set<Listener>()
  // A client without the auth middleware, for login, refresh and logout.
  private readonly raw
  private readonly storage
  private readonly locks

  constructor(deps: SessionDeps) {
    this.raw = createClient<paths>({ baseUrl: deps.baseUrl, fetch: deps.fetch })
    this.storage = deps.storage
    this.locks = deps.locks
    // Another tab signed in or out.
    deps.events?.addEventListener('storage', (ev) => {
      const e = ev as StorageEvent
      if (e.key === KEY && (e.oldValue === null) !== (e.newValue === null)) this.notify(e.newValue !== null)
    })
  }

  private read(): Tokens | null {
    try {
      const s = this.storage.getItem(KEY)
      return s ? (JSON.parse(s) as Tokens) : null
    } catch {
      return null
    }
  }

  get signedIn() {
    return this.read() !== null
  }

  subscribe(l: Listener) {
    this.listeners.add(l)
    return () => {
      this.listeners.delete(l)
    }
  }

  private notify(signedIn: boolean, reason?: string) {
    this.listeners.forEach((l) => l(signedIn, reason))
  }

  private set(t: Tokens | null, reason?: string) {
    const was = this.read() !== null
    if (t) this.storage.setItem(KEY, JSON.stringify(t))
    else this.storage.removeItem(KEY)
    if (was !== (t !== null) || reason) this.notify(t !== null, reason)
  }

  private store(d: { access_token?: string; refresh_token?: string; expires_in?: string }) {
    this.set({
      access: d.access_token ?? '',
      refresh: d.refresh_token ?? '',
      expiresAt: Date.now() + Number(d.expires_in ?? 0) * 1000,
    })
  }

  /** Logs in; the error is the server's message. */
  async login(username: string, password: string): Promise<void> {
    const { data, error, response } = await this.raw.POST('/api/v1/auth/login', { body: { username, password } })
    if (!response.ok || !data) throw new Error((error as { message?: string })?.message ?? `HTTP ${response.status}`)
    this.store(data)
  }

  /** The access token, renewed first when it expires within 30 s. */
  async accessToken(): Promise<string | null> {
    const t = this.read()
    if (t === null) return null
    if (fresh(t)) return t.access
    // One renewal at a time in this tab, and across tabs under the lock
    // (absent on plain-HTTP pages: then per tab only).
    this.renewing ??= (
      this.locks ? this.locks.request(KEY, () => this.renew()).then((t) => t) : this.renew()
    ).finally(() => (this.renewing = null))
    return this.renewing
  }

  private async renew(): Promise<string | null> {
    const t = this.read() // another tab may have renewed while this one waited
    if (t === null) return null
    if (fresh(t)) return t.access
    const { data, error, response } = await this.raw.POST('/api/v1/auth:refresh', { body: { refresh_token: t.refresh } })
    if (!response.ok || !data) {
      this.set(null, (error as { message?: string })?.message ?? 'session expired; sign in again')
      return null
    }
    this.store(data)
    return data.access_token ?? null
  }

  /** Ends the session on the server (its tokens stop working) and in every tab. */
  async logout() {
    const t = this.read()
    if (t) await this.raw.POST('/api/v1/auth:logout', { body: { refresh_token: t.refresh } }).catch(() => undefined)
    this.set(null)
  }

  /** Forgets the session after the server refused its token. */
  end(reason: string) {
    if (this.read() !== null) this.set(null, reason)
  }
}
