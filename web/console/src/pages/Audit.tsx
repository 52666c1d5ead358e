// The audit log: filters, paging (opaque token), masked payloads as the
// server stored them, and the chain verification.
import { useState, type FormEvent } from 'react'
import { api, call, type Schemas } from '../api/client'
import { useCtx } from '../app'
import { ErrorBox, JsonTree, fmtTime, useLoad } from '../ui'

type Filters = { game_id: string; env: string; actor: string; function_id: string; action: string; since: string }
const SINCE: Record<string, number> = { '': 0, '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 }

export function AuditPage() {
  const { game, env, grants } = useCtx()
  const [draft, setDraft] = useState<Filters>({ game_id: game, env, actor: '', function_id: '', action: '', since: '' })
  const [filters, setFilters] = useState(draft)
  const [pages, setPages] = useState<string[]>([''])
  const token = pages[pages.length - 1]
  const { data, error } = useLoad(() => {
    const from = SINCE[filters.since] ? String(Date.now() - SINCE[filters.since]) : undefined
    const q = Object.fromEntries(Object.entries({ ...filters, since: undefined }).filter(([, v]) => v))
    return call(api.GET('/api/v1/audit', { params: { query: { ...q, from_ms: from, page_size: 25, page_token: token || undefined } } }))
  }, [filters, token])
  const [verify, setVerify] = useState<Schemas['v1VerifyAuditResponse']>()
  const [verifyErr, setVerifyErr] = useState<unknown>()
  const apply = (e: FormEvent) => {
    e.preventDefault()
    setPages([''])
    setFilters(draft)
  }
  const field = (k: keyof Filters, label: string) => (
    <label>
      {label}
      <input value={draft[k]} onChange={(e) => setDraft({ ...draft, [k]: e.target.value })} maxLength={128} />
    </label>
  )
  return (
    <section>
      <h1>Audit</h1>
      <form className="filters" onSubmit={apply} aria-label="Audit filters">
        {field('game_id', 'Game')}
        {field('env', 'Env')}
        {field('actor', 'Actor')}
        {field('function_id', 'Function')}
        {field('action', 'Action')}
        <label>
          Since
          <select value={draft.since} onChange={(e) => setDraft({ ...draft, since: e.target.value })}>
            {Object.keys(SINCE).map((s) => (
              <option key={s} value={s}>
                {s || 'any time'}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Filter</button>
      </form>
      {grants.can('audit:read', {}) && (
        <div className="actions">
          <button
            type="button"
            className="secondary"
            onClick={() => {
              setVerify(undefined)
              setVerifyErr(undefined)
              call(api.GET('/api/v1/audit:verify')).then(setVerify, setVerifyErr)
            }}
          >
            Verify chain
          </button>
          {verify && (
            <span role="status" data-testid="verify-result" className={verify.ok ? 'ok' : 'error'}>
              {verify.ok
                ? `Chain intact: ${verify.rows_checked} rows checked`
                : `Chain broken at row ${verify.first_bad_id}: ${verify.reason} (${verify.rows_checked} rows checked)`}
            </span>
          )}
        </div>
      )}
      <ErrorBox error={verifyErr} />
      <ErrorBox error={error} />
      <table className="audit">
        <thead>
          <tr>
            <th>id</th>
            <th>time</th>
            <th>actor</th>
            <th>action</th>
            <th>scope</th>
            <th>result</th>
            <th>payload</th>
          </tr>
        </thead>
        <tbody>
          {(data?.entries ?? []).map((e) => (
            <tr key={e.id}>
              <td>{e.id}</td>
              <td>{fmtTime(e.ts_ms)}</td>
              <td>{e.actor}</td>
              <td>{e.action}</td>
              <td>{[e.game_id, e.env, e.function_id].filter(Boolean).join('/')}</td>
              <td>{e.result}</td>
              <td>{e.payload !== undefined && e.payload !== null && e.payload !== '' && <JsonTree value={parse(e.payload)} />}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="actions">
        {pages.length > 1 && (
          <button type="button" className="secondary" onClick={() => setPages(pages.slice(0, -1))}>
            Previous page
          </button>
        )}
        {data?.next_page_token && (
          <button type="button" className="secondary" onClick={() => setPages([...pages, data.next_page_token!])}>
            Next page
          </button>
        )}
      </div>
    </section>
  )
}

// The payload as stored: JSON text, shown as a tree when it parses.
function parse(v: unknown): unknown {
  if (typeof v !== 'string') return v
  try {
    return JSON.parse(v)
  } catch {
    return v
  }
}
