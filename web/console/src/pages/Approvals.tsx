// The approvals inbox: requests the user may decide, and their own, which
// wait for someone else (never approvable by the requester).
import { useState } from 'react'
import { api, call, type Schemas } from '../api/client'
import { useCtx } from '../app'
import { ErrorBox, JsonTree, fmtTime, useLoad } from '../ui'

type Approval = Schemas['v1Approval']

export function ApprovalsPage() {
  const { game, env } = useCtx()
  const [status, setStatus] = useState('pending')
  const { data, error, reload } = useLoad(
    () => call(api.GET('/api/v1/approvals', { params: { query: { status: status || undefined, game_id: game, env, page_size: 100 } } })),
    [game, env, status],
  )
  return (
    <section>
      <h1>Approvals</h1>
      <div className="filters">
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.target.value)}>
            {['pending', 'approved', 'executed', 'rejected', 'expired', 'failed', ''].map((s) => (
              <option key={s} value={s}>
                {s || 'any'}
              </option>
            ))}
          </select>
        </label>
        <button type="button" className="secondary" onClick={reload}>
          Refresh
        </button>
      </div>
      <ErrorBox error={error} />
      {(data?.approvals ?? []).length === 0 && !error && <p className="muted">No requests.</p>}
      <ul className="cards">
        {(data?.approvals ?? []).map((a) => (
          <ApprovalCard key={a.id} a={a} onDone={reload} />
        ))}
      </ul>
    </section>
  )
}

function ApprovalCard({ a, onDone }: { a: Approval; onDone: () => void }) {
  const { user, grants } = useCtx()
  const [text, setText] = useState('')
  const [error, setError] = useState<unknown>()
  const mine = a.requester === user || `operator:${a.requester}` === user
  const canDecide = !mine && a.status === 'pending' && grants.can('approval:decide', { game: a.game_id, env: a.env, fn: a.function_id })
  const decide = async (approve: boolean) => {
    try {
      const id = a.id ?? ''
      if (approve) await call(api.POST('/api/v1/approvals/{id}:approve', { params: { path: { id } }, body: { comment: text } }))
      else await call(api.POST('/api/v1/approvals/{id}:reject', { params: { path: { id } }, body: { reason: text } }))
      onDone()
    } catch (err) {
      setError(err)
    }
  }
  return (
    <li className="card" data-testid={`approval-${a.id}`}>
      <h2>
        {a.function_id} <span className={`status status-${a.status}`}>{a.status}</span>
      </h2>
      <p>
        <code>{a.id}</code> requested by <strong>{a.requester}</strong> on {a.game_id}/{a.env} at {fmtTime(a.created_at_ms)}; expires {fmtTime(a.expires_at_ms)}
      </p>
      <JsonTree value={a.payload ?? {}} name="payload" />
      {a.decided_by && (
        <p>
          Decided by {a.decided_by} {a.reason && <>— {a.reason}</>}
        </p>
      )}
      {a.job_id && (
        <p>
          Runs as job <a href={`#/jobs/${encodeURIComponent(a.job_id)}`}>{a.job_id}</a>
        </p>
      )}
      {a.error && <p className="error">{a.error}</p>}
      {mine && a.status === 'pending' && <p className="notice">Your request: waiting for another approver.</p>}
      {canDecide && (
        <div className="decide">
          <label>
            Comment or reason (a rejection needs one)
            <input value={text} onChange={(e) => setText(e.target.value)} maxLength={1024} />
          </label>
          <button type="button" onClick={() => decide(true)}>
            Approve
          </button>
          <button type="button" className="danger" onClick={() => decide(false)} disabled={text.trim() === ''}>
            Reject
          </button>
        </div>
      )}
      <ErrorBox error={error} />
    </li>
  )
}
