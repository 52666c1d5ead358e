// Player gateway nodes of the game/env: gateway.stats (internal/gatewayops)
// called with broadcast routing, one row per gateway instance.
import { useCallback, useEffect, useState } from 'react'
import { api, asStruct, call, type Schemas } from '../api/client'
import { useCtx } from '../app'
import { fmtRate, gatewayRows, GATEWAY_STATS, hasGateway, type GatewayRow } from '../gateway'
import { invokeOptions } from '../schemaForm'
import { ErrorBox, useLoad } from '../ui'

type Outcome = Schemas['v1InvokeFunctionResponse']

export function GatewayPage() {
  const { game, env } = useCtx()
  const regs = useLoad(
    () => call(api.GET('/api/v1/registrations', { params: { query: { game_id: game, env, function_id: GATEWAY_STATS } } })),
    [game, env],
  )
  const registered = hasGateway(regs.data?.registrations)
  return (
    <section>
      <h1>Gateway</h1>
      <ErrorBox error={regs.error} />
      {regs.loading && !regs.data && <p aria-busy="true">Loading…</p>}
      {regs.data && !registered && (
        <p className="muted">
          No player gateway is registered in {game}/{env} (no instance serves <code>{GATEWAY_STATS}</code>).
        </p>
      )}
      {registered && <GatewayStats key={`${game}/${env}`} />}
    </section>
  )
}

function GatewayStats() {
  const { game, env } = useCtx()
  const [outcome, setOutcome] = useState<Outcome>()
  const [error, setError] = useState<unknown>()
  const [busy, setBusy] = useState(false)
  const load = useCallback(async () => {
    setBusy(true)
    try {
      setOutcome(
        await call(
          api.POST('/api/v1/functions/{function_id}:invoke', {
            params: { path: { function_id: GATEWAY_STATS } },
            body: { game_id: game, env, payload: asStruct({}), options: invokeOptions({ mode: 'broadcast' }, '') },
          }),
        ),
      )
      setError(undefined)
    } catch (err) {
      setOutcome(undefined)
      setError(err)
    } finally {
      setBusy(false)
    }
  }, [game, env])
  useEffect(() => void load(), [load])
  const rows = outcome ? gatewayRows(outcome) : []
  const total = rows.reduce((n, r) => n + (r.online ?? 0), 0)
  return (
    <>
      <div className="filters">
        <p className="muted" role="status">
          {outcome ? `${rows.length} gateway instance${rows.length === 1 ? '' : 's'}, ${total} online` : busy ? 'Loading…' : ''}
        </p>
        <button type="button" className="secondary" onClick={() => void load()} disabled={busy}>
          Refresh
        </button>
      </div>
      <ErrorBox error={error} />
      {outcome && rows.length === 0 && !outcome.success && (
        <div role="alert" className="error">
          <strong>{outcome.error_code || 'ERROR'}</strong>: {outcome.error}
        </div>
      )}
      <table data-testid="gateways">
        <caption>Gateway instances ({GATEWAY_STATS}, broadcast)</caption>
        <thead>
          <tr>
            <th scope="col">instance</th>
            <th scope="col">server id</th>
            <th scope="col">online</th>
            <th scope="col">topics</th>
            <th scope="col">businesses</th>
            <th scope="col">metrics (count, rate 1/5/15 min)</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <Row key={r.instance} r={r} />
          ))}
        </tbody>
      </table>
    </>
  )
}

function Row({ r }: { r: GatewayRow }) {
  if (!r.ok) {
    return (
      <tr>
        <th scope="row">{r.instance}</th>
        <td colSpan={5} className="error">
          {r.error}
        </td>
      </tr>
    )
  }
  return (
    <tr>
      <th scope="row">{r.instance}</th>
      <td>{r.serverId}</td>
      <td data-testid="gateway-online">{r.online}</td>
      <td>{r.topics}</td>
      <td>{r.businesses}</td>
      <td>
        {r.metrics.length === 0 ? (
          <span className="muted">none kept</span>
        ) : (
          <ul className="metrics">
            {r.metrics.map(([name, m]) => (
              <li key={name}>
                <code>{name}</code>: {m.count ?? 0} ({fmtRate(m.rate1)}/{fmtRate(m.rate5)}/{fmtRate(m.rate15)})
              </li>
            ))}
          </ul>
        )}
      </td>
    </tr>
  )
}
