// The shell: who is signed in and what they may do, the game/env switcher,
// the navigation and the hash router.
import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from 'react'
import { api, call } from './api/client'
import { Grants } from './rbac'
import { session } from './session'
import { ErrorBox, useLoad } from './ui'
import { GATEWAY_STATS, hasGateway } from './gateway'
import { LoginPage } from './pages/Login'
import { FunctionsPage } from './pages/Functions'
import { InvokePage } from './pages/Invoke'
import { JobsPage, JobPage } from './pages/Jobs'
import { ApprovalsPage } from './pages/Approvals'
import { AuditPage } from './pages/Audit'
import { AgentsPage } from './pages/Agents'
import { UsersPage } from './pages/Users'
import { FleetsPage, FleetPage } from './pages/Fleets'
import { GatewayPage } from './pages/Gateway'

export type Ctx = {
  user: string // "operator:alice"
  grants: Grants
  game: string
  env: string
}

const AppCtx = createContext<Ctx | null>(null)
export const useCtx = () => useContext(AppCtx)!

/** The current hash route, split on "/": "#/jobs/job_1" → ["jobs", "job_1"]. */
export function useRoute(): string[] {
  const [hash, setHash] = useState(window.location.hash)
  useEffect(() => {
    const f = () => setHash(window.location.hash)
    window.addEventListener('hashchange', f)
    return () => window.removeEventListener('hashchange', f)
  }, [])
  const path = hash.replace(/^#\/?/, '').split('?')[0]
  return path === '' ? [] : path.split('/').map(decodeURIComponent)
}

export const go = (path: string) => (window.location.hash = path)

const SCOPE_KEY = 'croupier.scope'

export function App() {
  const [signedIn, setSignedIn] = useState(session.signedIn)
  const [reason, setReason] = useState<string>()
  useEffect(
    () =>
      session.subscribe((s, r) => {
        setSignedIn(s)
        setReason(r)
      }),
    [],
  )
  if (!signedIn) return <LoginPage reason={reason} />
  return <SignedIn />
}

function SignedIn() {
  const [me, setMe] = useState<{ user: string; grants: Grants; scopes: string[] }>()
  const [error, setError] = useState<unknown>()
  const [scope, setScope] = useState(localStorage.getItem(SCOPE_KEY) ?? '')
  useEffect(() => {
    ;(async () => {
      const who = await call(api.GET('/api/v1/auth/whoami'))
      const roles = await call(api.GET('/api/v1/roles'))
      const grants = Grants.from(
        (who.roles ?? []).map((b) => ({ role: b.role ?? '', scope: b.scope ?? '' })),
        (roles.roles ?? []).map((r) => ({ name: r.name ?? '', permissions: r.permissions ?? [] })),
        who.kind === 'anonymous',
      )
      // The switcher offers the game/env pairs that agents registered in
      // (the server's declared scopes that are live) and those the user's
      // grants name.
      const pairs = new Set(grants.scopes().map((s) => `${s.game}/${s.env}`))
      const games = [undefined, ...grants.games()]
      for (const game_id of games) {
        const regs = await call(api.GET('/api/v1/registrations', { params: { query: { game_id } } })).catch(() => ({ registrations: [] }))
        for (const r of regs.registrations ?? []) pairs.add(`${r.game_id}/${r.env}`)
      }
      setMe({ user: `${who.kind}:${who.name}`, grants, scopes: [...pairs].sort() })
    })().catch(setError)
  }, [])
  const route = useRoute()
  const current = me && (me.scopes.includes(scope) ? scope : (me.scopes[0] ?? ''))
  const ctx = useMemo<Ctx | null>(() => {
    if (!me) return null
    const [game = '', env = ''] = (current ?? '').split('/')
    return { user: me.user, grants: me.grants, game, env }
  }, [me, current])
  // The Gateway entry: offered while a player gateway has registered its
  // gateway.stats in the game/env (the catalogue's registrations; checked
  // again on each page change, so a gateway that registers later appears).
  const gateway = useLoad(async () => {
    if (!ctx || !ctx.grants.can('registry:read', { game: ctx.game, env: ctx.env })) return false
    const regs = await call(api.GET('/api/v1/registrations', { params: { query: { game_id: ctx.game, env: ctx.env, function_id: GATEWAY_STATS } } }))
    return hasGateway(regs.registrations)
  }, [ctx, route[0]])
  if (error) return <ErrorBox error={error} />
  if (!me || !ctx) return <p aria-busy="true">Loading…</p>
  const { grants, game, env } = ctx
  const res = { game, env }
  const nav: Array<[string, string, boolean]> = [
    ['functions', 'Functions', grants.can('registry:read', res)],
    ['jobs', 'Jobs', grants.can('job:read', res)],
    ['approvals', 'Approvals', true],
    ['audit', 'Audit', grants.can('audit:read', {})],
    ['agents', 'Agents', grants.can('registry:read', res) || grants.can('agent:read', res)],
    ['fleets', 'Fleets', grants.can('fleet:read', res)],
    ['gateway', 'Gateway', gateway.data === true && grants.can('function:invoke', { ...res, fn: GATEWAY_STATS })],
    ['users', 'Users & roles', grants.can('user:admin', {})],
  ]
  const page = route[0] ?? 'functions'
  return (
    <AppCtx.Provider value={ctx}>
      <header className="top">
        <a href="#/functions" className="brand">
          Croupier
        </a>
        <label>
          Game/env{' '}
          <select
            value={current}
            onChange={(e) => {
              localStorage.setItem(SCOPE_KEY, e.target.value)
              setScope(e.target.value)
            }}
          >
            {me.scopes.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <span className="who" data-testid="who">
          {me.user}
        </span>
        <button type="button" className="secondary" onClick={() => session.logout()}>
          Log out
        </button>
      </header>
      <div className="layout">
        <nav aria-label="Pages">
          <ul>
            {nav
              .filter(([, , show]) => show)
              .map(([id, label]) => (
                <li key={id}>
                  <a href={`#/${id}`} aria-current={page === id ? 'page' : undefined}>
                    {label}
                  </a>
                </li>
              ))}
          </ul>
        </nav>
        <main>
          <Page route={route} />
        </main>
      </div>
    </AppCtx.Provider>
  )
}

function Page({ route }: { route: string[] }): ReactNode {
  const [page = 'functions', id] = route
  switch (page) {
    case 'functions':
      return id ? <InvokePage key={id} fn={id} /> : <FunctionsPage />
    case 'jobs':
      return id ? <JobPage key={id} id={id} /> : <JobsPage />
    case 'approvals':
      return <ApprovalsPage />
    case 'audit':
      return <AuditPage />
    case 'agents':
      return <AgentsPage />
    case 'fleets':
      return id ? <FleetPage key={id} id={id} /> : <FleetsPage />
    case 'users':
      return <UsersPage />
    case 'gateway':
      return <GatewayPage />
    default:
      return <p>No page {page}.</p>
  }
}
