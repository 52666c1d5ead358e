// The login session: tokens in sessionStorage (per tab, gone when the tab
// closes), renewed with the refresh token shortly before the access token
// expires, the way the CLI does.
import createClient from 'openapi-fetch'
import type { paths } from './api/schema'

type Tokens = { access: string; refresh: string; expiresAt: number }

const KEY = 'croupier.session'
const RENEW_BEFORE_MS = 30_000
// A client without the auth middleware, for login, refresh and logout.
const raw = createClient<paths>({ baseUrl: '' })

type Listener = (signedIn: boolean, reason?: string) => void

class Session {
  private tokens: Tokens | null = null
  private renewing: Promise<string | null> | null = null
  private listeners = new Set<Listener>()

  constructor() {
    try {
      const s = sessionStorage.getItem(KEY)
      if (s) this.tokens = JSON.parse(s) as Tokens
    } catch {
      this.tokens = null
    }
  }

  get signedIn() {
    return this.tokens !== null
  }

  subscribe(l: Listener) {
    this.listeners.add(l)
    return () => {
      this.listeners.delete(l)
    }
  }

  private set(t: Tokens | null, reason?: string) {
    this.tokens = t
    if (t) sessionStorage.setItem(KEY, JSON.stringify(t))
    else sessionStorage.removeItem(KEY)
    this.listeners.forEach((l) => l(t !== null, reason))
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
    const { data, error, response } = await raw.POST('/api/v1/auth/login', { body: { username, password } })
    if (!response.ok || !data) throw new Error((error as { message?: string })?.message ?? `HTTP ${response.status}`)
    this.store(data)
  }

  /** The access token, renewed first when it expires within 30 s. */
  async accessToken(): Promise<string | null> {
    const t = this.tokens
    if (!t) return null
    if (t.expiresAt - Date.now() > RENEW_BEFORE_MS) return t.access
    // One renewal at a time: a spent refresh token presented twice would
    // revoke the whole session (reuse detection).
    this.renewing ??= this.renew(t).finally(() => (this.renewing = null))
    return this.renewing
  }

  private async renew(t: Tokens): Promise<string | null> {
    const { data, error, response } = await raw.POST('/api/v1/auth:refresh', { body: { refresh_token: t.refresh } })
    if (!response.ok || !data) {
      this.set(null, (error as { message?: string })?.message ?? 'session expired; sign in again')
      return null
    }
    this.store(data)
    return data.access_token ?? null
  }

  /** Ends the session on the server (its tokens stop working) and here. */
  async logout() {
    const t = this.tokens
    if (t) await raw.POST('/api/v1/auth:logout', { body: { refresh_token: t.refresh } }).catch(() => undefined)
    this.set(null)
  }

  /** Forgets the session after the server refused its token. */
  end(reason: string) {
    if (this.tokens) this.set(null, reason)
  }
}

export const session = new Session()
