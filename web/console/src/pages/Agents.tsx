// Live agents and game-server instances: the registry watched over the SSE
// route (WatchRegistrations), and the agent list.
import { useEffect, useState } from 'react'
import { api, call, type Schemas } from '../api/client'
import { useCtx } from '../app'
import { readSSE, streamError } from '../sse'
import { ErrorBox, fmtTime, useLoad } from '../ui'

type Reg = Schemas['v1FunctionRegistration']

export function AgentsPage() {
  const { game, env, grants } = useCtx()
  const [regs, setRegs] = useState<Map<string, Reg>>(new Map())
  const [synced, setSynced] = useState(false)
  const [error, setError] = useState<unknown>()
  const [generation, setGeneration] = useState(0)
  const canWatch = grants.can('registry:read', { game, env })
  useEffect(() => {
    if (!canWatch) return
    const ac = new AbortController()
    setRegs(new Map())
    setSynced(false)
    setError(undefined)
    const q = new URLSearchParams({ game_id: game, env })
    readSSE(`/api/v1/registrations:watch?${q}`, ac.signal, (e) => {
      if (e.event === 'error') {
        setError(streamError(e.data))
        return
      }
      const ev = JSON.parse(e.data) as Schemas['v1RegistrationEvent']
      if (ev.type === 'SYNCED') {
        setSynced(true)
        return
      }
      const r = ev.registration ?? {}
      const key = `${r.game_id}/${r.env}/${r.function_id}`
      setRegs((prev) => {
        const next = new Map(prev)
        if (ev.type === 'REMOVED') next.delete(key)
        else next.set(key, r)
        return next
      })
    }).catch((err) => !ac.signal.aborted && setError(err))
    return () => ac.abort()
  }, [game, env, canWatch, generation])
  const agents = useLoad(() => call(api.GET('/api/v1/agents', { params: { query: { game_id: game, env } } })), [game, env])

  // instance → functions it serves
  const instances = new Map<string, string[]>()
  for (const r of regs.values()) {
    for (const a of r.agents ?? []) {
      for (const i of a.instances ?? []) {
        const k = `${a.agent_id}/${i}`
        instances.set(k, [...(instances.get(k) ?? []), r.function_id ?? ''])
      }
    }
  }
  return (
    <section>
      <h1>Agents and instances</h1>
      {canWatch && (
        <p role="status">
          <span className={`dot ${synced && !error ? 'live' : ''}`} aria-hidden="true" /> {synced ? 'live' : 'connecting…'}{' '}
          {error !== undefined && (
            <button type="button" className="secondary" onClick={() => setGeneration((g) => g + 1)}>
              Watch again
            </button>
          )}
        </p>
      )}
      <ErrorBox error={error} />
      <h2>Instances</h2>
      <table data-testid="instances">
        <thead>
          <tr>
            <th>instance</th>
            <th>functions</th>
          </tr>
        </thead>
        <tbody>
          {[...instances.entries()].sort().map(([k, fns]) => (
            <tr key={k}>
              <td>{k}</td>
              <td>{fns.sort().join(', ')}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Agents</h2>
      <ErrorBox error={agents.error} />
      <table>
        <thead>
          <tr>
            <th>agent</th>
            <th>game/env</th>
            <th>version</th>
            <th>instances</th>
            <th>last heartbeat</th>
          </tr>
        </thead>
        <tbody>
          {(agents.data?.agents ?? []).map((a) => (
            <tr key={a.agent_id}>
              <td>{a.agent_id}</td>
              <td>
                {a.game_id}/{a.env}
              </td>
              <td>{a.version}</td>
              <td>{(a.instances ?? []).join(', ')}</td>
              <td>{fmtTime(a.last_heartbeat)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  )
}
