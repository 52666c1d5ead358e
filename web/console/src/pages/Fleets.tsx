// Fleets, their processes (with the log viewer), game server sessions
// (with the filter-grammar search box of SearchGameServerSessions) and
// player sessions.
import { useState, type FormEvent } from 'react'
import { api, call, type Schemas } from '../api/client'
import { useCtx } from '../app'
import { ErrorBox, fmtTime, useLoad } from '../ui'

export function FleetsPage() {
  const { game, env } = useCtx()
  const { data, error } = useLoad(() => call(api.GET('/api/v1/fleets', { params: { query: { game_id: game, env } } })), [game, env])
  return (
    <section>
      <h1>Fleets</h1>
      <ErrorBox error={error} />
      <table>
        <thead>
          <tr>
            <th>fleet</th>
            <th>name</th>
            <th>launch</th>
            <th>description</th>
          </tr>
        </thead>
        <tbody>
          {(data?.fleets ?? []).map((f) => (
            <tr key={f.fleet_id}>
              <td>
                <a href={`#/fleets/${encodeURIComponent(f.fleet_id ?? '')}`}>{f.fleet_id}</a>
              </td>
              <td>{f.name}</td>
              <td>
                {(f.runtime_configuration?.server_processes ?? []).map((p) => (
                  <div key={p.launch_path}>
                    <code>{p.launch_path}</code> × {p.concurrent_executions}
                  </div>
                ))}
              </td>
              <td>{f.description}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  )
}

type Session = Schemas['v1GameServerSession']
const LOG_BYTES = 65536

export function FleetPage({ id }: { id: string }) {
  const procs = useLoad(() => call(api.GET('/api/v1/fleets/{fleet_id}/processes', { params: { path: { fleet_id: id } } })), [id])
  const [log, setLog] = useState<{ process: string; path: string; text: string; size: string }>()
  const [error, setError] = useState<unknown>()
  const [filter, setFilter] = useState('')
  const [sessions, setSessions] = useState<Session[]>()
  const [players, setPlayers] = useState<Schemas['v1PlayerSession'][]>()
  // The last 64 KiB of one of the process's logs ("stdout" or a log_paths entry).
  const showLog = async (pid: string, path: string) => {
    setError(undefined)
    try {
      const q = { path, limit: LOG_BYTES }
      let r = await call(api.GET('/api/v1/fleets/{fleet_id}/processes/{process_id}/log', { params: { path: { fleet_id: id, process_id: pid }, query: q } }))
      const size = Number(r.size ?? 0)
      if (size > LOG_BYTES) {
        const offset = String(size - LOG_BYTES)
        r = await call(api.GET('/api/v1/fleets/{fleet_id}/processes/{process_id}/log', { params: { path: { fleet_id: id, process_id: pid }, query: { ...q, offset } } }))
      }
      const bytes = Uint8Array.from(atob(r.data ?? ''), (c) => c.charCodeAt(0))
      setLog({ process: pid, path, text: new TextDecoder().decode(bytes), size: r.size ?? '0' })
    } catch (err) {
      setError(err)
    }
  }
  const search = async (e?: FormEvent) => {
    e?.preventDefault()
    setError(undefined)
    try {
      const r = filter.trim()
        ? await call(api.POST('/api/v1/game-server-sessions:search', { body: { fleet_id: id, filter_expression: filter, limit: 50 } }))
        : await call(api.GET('/api/v1/game-server-sessions', { params: { query: { fleet_id: id, limit: 50 } } }))
      setSessions(r.game_server_sessions ?? [])
    } catch (err) {
      setError(err)
    }
  }
  const showPlayers = async (sid: string) => {
    setError(undefined)
    try {
      const r = await call(api.GET('/api/v1/player-sessions', { params: { query: { game_server_session_id: sid, limit: 100 } } }))
      setPlayers(r.player_sessions ?? [])
    } catch (err) {
      setError(err)
    }
  }
  return (
    <section>
      <h1>
        Fleet <code>{id}</code>
      </h1>
      <ErrorBox error={error} />
      <h2>Processes</h2>
      <ErrorBox error={procs.error} />
      <table>
        <thead>
          <tr>
            <th>process</th>
            <th>agent</th>
            <th>pid</th>
            <th>status</th>
            <th>port</th>
            <th>session</th>
            <th>logs</th>
          </tr>
        </thead>
        <tbody>
          {(procs.data?.processes ?? []).map((p) => (
            <tr key={p.process_id}>
              <td>{p.process_id}</td>
              <td>{p.agent_id}</td>
              <td>{p.pid}</td>
              <td>
                {p.status} {p.healthy ? '' : '(unhealthy)'}
              </td>
              <td>{p.client_port}</td>
              <td>{p.game_server_session_id}</td>
              <td>
                {['stdout', ...(p.log_paths ?? [])].map((path) => (
                  <button key={path} type="button" className="secondary" onClick={() => showLog(p.process_id ?? '', path)} aria-label={`log ${path} of ${p.process_id}`}>
                    {path}
                  </button>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {log && (
        <figure>
          <figcaption>
            {log.path} of {log.process} ({log.size} bytes{Number(log.size) > LOG_BYTES ? ', the last 64 KiB shown' : ''})
          </figcaption>
          <pre className="logview" tabIndex={0}>
            {log.text}
          </pre>
        </figure>
      )}
      <h2>Game server sessions</h2>
      <form className="filters" onSubmit={search} aria-label="Search sessions">
        <label>
          Filter
          <input
            value={filter}
            onChange={(e) => setFilter(e.target.value)}
            placeholder="playerSessionCount < maximumSessions AND hasAvailablePlayerSessions=true"
            size={60}
            maxLength={1024}
          />
        </label>
        <button type="submit">Search</button>
      </form>
      {sessions && (
        <table>
          <thead>
            <tr>
              <th>session</th>
              <th>name</th>
              <th>status</th>
              <th>players</th>
              <th>address</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {sessions.map((s) => (
              <tr key={s.game_server_session_id}>
                <td>{s.game_server_session_id}</td>
                <td>{s.name}</td>
                <td>{s.status}</td>
                <td>
                  {s.current_player_session_count}/{s.max_players}
                </td>
                <td>
                  {s.ip_address}:{s.port}
                </td>
                <td>
                  <button type="button" className="secondary" onClick={() => showPlayers(s.game_server_session_id ?? '')}>
                    Players
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {players && (
        <>
          <h2>Player sessions</h2>
          <table>
            <thead>
              <tr>
                <th>player session</th>
                <th>player</th>
                <th>status</th>
                <th>created</th>
              </tr>
            </thead>
            <tbody>
              {players.map((p) => (
                <tr key={p.player_session_id}>
                  <td>{p.player_session_id}</td>
                  <td>{p.player_id}</td>
                  <td>{p.status}</td>
                  <td>{fmtTime(p.creation_time_ms)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  )
}
