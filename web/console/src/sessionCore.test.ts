import { describe, expect, it } from 'vitest'
import { KEY, Session } from './sessionCore'

// A fake server for login and refresh with the real one's rotation and
// reuse detection: a refresh token works once; presenting it again revokes
// the session.
function fakeServer() {
  let n = 0
  const spent = new Set<string>()
  let revoked = false
  const calls: string[] = []
  const fetch = async (input: RequestInfo | URL): Promise<Response> => {
    const req = input as Request
    const path = new URL(req.url).pathname
    calls.push(path)
    const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
    if (path === '/api/v1/auth:refresh') {
      const { refresh_token } = (await req.json()) as { refresh_token: string }
      await Promise.resolve() // let a concurrent caller run, as a real round trip would
      if (revoked || spent.has(refresh_token)) {
        revoked = true
        return json(401, { code: 16, message: 'refresh token reused', details: [] })
      }
      spent.add(refresh_token)
    }
    n++
    return json(200, { access_token: `a${n}`, refresh_token: `r${n}`, expires_in: '900', token_type: 'Bearer' })
  }
  return { fetch: fetch as typeof globalThis.fetch, calls, get revoked() { return revoked } }
}

function memoryStorage() {
  const m = new Map<string, string>()
  return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v), removeItem: (k: string) => void m.delete(k) }
}

// Web Locks' exclusive mode: callbacks run one after another.
function fakeLocks() {
  let tail: Promise<unknown> = Promise.resolve()
  return {
    request: ((_: string, cb: () => Promise<unknown>) => {
      const run = tail.then(cb)
      tail = run.catch(() => undefined)
      return run
    }) as unknown as LockManager['request'],
  }
}

const expiring = (refresh: string) => JSON.stringify({ access: 'old', refresh, expiresAt: Date.now() })

describe('Session', () => {
  it('logs in and keeps the pair', async () => {
    const srv = fakeServer()
    const storage = memoryStorage()
    const s = new Session({ baseUrl: 'https://console.test', fetch: srv.fetch, storage })
    await s.login('alice', 'pw')
    expect(s.signedIn).toBe(true)
    expect(await s.accessToken()).toBe('a1') // fresh: no renewal
    expect(srv.calls).toEqual(['/api/v1/auth/login'])
  })

  it('renews once for two tabs under the lock', async () => {
    const srv = fakeServer()
    const storage = memoryStorage() // one origin's localStorage, shared by both tabs
    const locks = fakeLocks()
    storage.setItem(KEY, expiring('r0'))
    const tab1 = new Session({ baseUrl: 'https://console.test', fetch: srv.fetch, storage, locks })
    const tab2 = new Session({ baseUrl: 'https://console.test', fetch: srv.fetch, storage, locks })
    const [t1, t2] = await Promise.all([tab1.accessToken(), tab2.accessToken()])
    expect(srv.calls).toEqual(['/api/v1/auth:refresh'])
    expect(t1).toBe('a1')
    expect(t2).toBe('a1')
    expect(srv.revoked).toBe(false)
  })

  it('without the lock two tabs spend the refresh token twice, and the session is revoked', async () => {
    const srv = fakeServer()
    const storage = memoryStorage()
    storage.setItem(KEY, expiring('r0'))
    const tab1 = new Session({ baseUrl: 'https://console.test', fetch: srv.fetch, storage })
    const tab2 = new Session({ baseUrl: 'https://console.test', fetch: srv.fetch, storage })
    const reasons: Array<string | undefined> = []
    tab2.subscribe((_, r) => reasons.push(r))
    await Promise.all([tab1.accessToken(), tab2.accessToken()])
    expect(srv.calls).toEqual(['/api/v1/auth:refresh', '/api/v1/auth:refresh'])
    expect(srv.revoked).toBe(true)
    expect(reasons).toContain('refresh token reused')
  })

  it('renews once per tab for concurrent calls', async () => {
    const srv = fakeServer()
    const storage = memoryStorage()
    storage.setItem(KEY, expiring('r0'))
    const s = new Session({ baseUrl: 'https://console.test', fetch: srv.fetch, storage })
    const tokens = await Promise.all([s.accessToken(), s.accessToken(), s.accessToken()])
    expect(tokens).toEqual(['a1', 'a1', 'a1'])
    expect(srv.calls).toEqual(['/api/v1/auth:refresh'])
  })

  it('ends the session with the reason when the server refuses the refresh', async () => {
    const srv = fakeServer()
    const storage = memoryStorage()
    storage.setItem(KEY, expiring('r0'))
    const other = new Session({ baseUrl: 'https://console.test', fetch: srv.fetch, storage })
    await other.accessToken() // spends r0
    storage.setItem(KEY, expiring('r0')) // a stale copy presents it again
    const s = new Session({ baseUrl: 'https://console.test', fetch: srv.fetch, storage })
    const seen: Array<[boolean, string | undefined]> = []
    s.subscribe((signedIn, reason) => seen.push([signedIn, reason]))
    expect(await s.accessToken()).toBeNull()
    expect(s.signedIn).toBe(false)
    expect(seen).toEqual([[false, 'refresh token reused']])
  })
})
