// Jobs: the list of the current game/env, and one job with its live
// progress, log lines, result, cancel and replay (the event log streamed
// again from its first event).
import { useEffect, useState } from 'react'
import { api, call, type Schemas } from '../api/client'
import { useCtx } from '../app'
import { readSSE, streamError } from '../sse'
import { ErrorBox, JsonTree, fmtTime, useLoad } from '../ui'

type Job = Schemas['v1Job']
type JobEvent = Schemas['v1JobEvent']
const FINISHED = new Set(['completed', 'failed', 'canceled'])

export function JobsPage() {
  const { game, env } = useCtx()
  const [status, setStatus] = useState('')
  const [token, setToken] = useState<string>()
  const { data, error, reload } = useLoad(
    () => call(api.GET('/api/v1/jobs', { params: { query: { game_id: game, env, status: status || undefined, page_size: 50, page_token: token } } })),
    [game, env, status, token],
  )
  // While a job on this page is unfinished, the list refreshes every 2 s
  // (a job's own page follows its event stream instead).
  const live = (data?.jobs ?? []).some((j) => j.status === 'pending' || j.status === 'running')
  useEffect(() => {
    if (!live) return
    const t = setInterval(reload, 2000)
    return () => clearInterval(t)
  }, [live, reload])
  return (
    <section>
      <h1>Jobs</h1>
      <div className="filters">
        <label>
          Status
          <select value={status} onChange={(e) => (setToken(undefined), setStatus(e.target.value))}>
            {['', 'pending', 'running', 'completed', 'failed', 'canceled', 'awaiting_approval'].map((s) => (
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
      <table>
        <thead>
          <tr>
            <th>job</th>
            <th>function</th>
            <th>status</th>
            <th>progress</th>
            <th>by</th>
            <th>created</th>
          </tr>
        </thead>
        <tbody>
          {(data?.jobs ?? []).map((j) => (
            <tr key={j.job_id}>
              <td>
                <a href={`#/jobs/${encodeURIComponent(j.job_id ?? '')}`}>{j.job_id}</a>
              </td>
              <td>{j.function_id}</td>
              <td>
                <span className={`status status-${j.status}`}>{j.status}</span>
              </td>
              <td>
                <progress max={1} value={j.progress ?? 0} aria-label={`progress of ${j.job_id}`} />
              </td>
              <td>{j.actor}</td>
              <td>{fmtTime(j.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data?.next_page_token && (
        <button type="button" className="secondary" onClick={() => setToken(data.next_page_token)}>
          Next page
        </button>
      )}
    </section>
  )
}

export function JobPage({ id }: { id: string }) {
  const { grants } = useCtx()
  const [job, setJob] = useState<Job>()
  const [events, setEvents] = useState<JobEvent[]>([])
  const [error, setError] = useState<unknown>()
  const [streamErr, setStreamErr] = useState<unknown>()
  const [replay, setReplay] = useState(0)
  const [streaming, setStreaming] = useState(false)

  const refresh = () =>
    call(api.GET('/api/v1/jobs/{job_id}', { params: { path: { job_id: id } } }))
      .then((r) => setJob(r.job))
      .catch(setError)

  useEffect(() => {
    void refresh()
  }, [id])

  // The event stream from seq 0: the whole log, then live events until the
  // job ends. Replay starts it again.
  useEffect(() => {
    const ac = new AbortController()
    setEvents([])
    setStreamErr(undefined)
    setStreaming(true)
    readSSE(`/api/v1/jobs/${encodeURIComponent(id)}/events?from_seq=0`, ac.signal, (e) => {
      if (e.event === 'error') {
        setStreamErr(streamError(e.data))
        return
      }
      const ev = JSON.parse(e.data) as JobEvent
      setEvents((prev) => [...prev, ev])
      if (ev.type === 'DONE' || ev.type === 'ERROR' || ev.type === 'CANCELED') void refresh()
    })
      .catch((err) => {
        if (!ac.signal.aborted) setStreamErr(err)
      })
      .finally(() => !ac.signal.aborted && setStreaming(false))
    return () => ac.abort()
  }, [id, replay])

  const progress = events.reduce((p, e) => (e.type === 'PROGRESS' || e.type === 'DONE' ? Math.max(p, e.type === 'DONE' ? 1 : (e.progress ?? 0)) : p), 0)
  const last = [...events].reverse().find((e) => e.type !== 'LOG')
  const finished = job ? FINISHED.has(job.status ?? '') : false
  const res = { game: job?.game_id, env: job?.env, fn: job?.function_id }
  const cancel = async () => {
    try {
      await call(api.POST('/api/v1/jobs/{job_id}:cancel', { params: { path: { job_id: id } }, body: { reason: 'canceled from the console' } }))
      await refresh()
    } catch (err) {
      setError(err)
    }
  }
  return (
    <section>
      <h1>
        Job <code>{id}</code>
      </h1>
      <ErrorBox error={error} />
      {job && (
        <dl className="facts">
          <dt>function</dt>
          <dd>
            {job.game_id}/{job.env}/{job.function_id}
          </dd>
          <dt>status</dt>
          <dd>
            <span className={`status status-${job.status}`} data-testid="job-status">
              {job.status}
            </span>
          </dd>
          <dt>started by</dt>
          <dd>{job.actor}</dd>
          <dt>instance</dt>
          <dd>{job.instance}</dd>
          <dt>created</dt>
          <dd>{fmtTime(job.created_at)}</dd>
        </dl>
      )}
      <div className="progress-row">
        <progress id="job-progress" max={100} value={Math.round(progress * 100)} aria-label="job progress" />
        <output htmlFor="job-progress" data-testid="job-percent">
          {Math.round(progress * 100)} %
        </output>
        <span className="muted">{last?.message}</span>
      </div>
      <div className="actions">
        {job && !finished && grants.can('job:cancel', res) && (
          <button type="button" className="danger" onClick={cancel}>
            Cancel job
          </button>
        )}
        {finished && !streaming && (
          <button type="button" className="secondary" onClick={() => setReplay((n) => n + 1)}>
            Replay events
          </button>
        )}
      </div>
      <ErrorBox error={streamErr} />
      {job?.error && (
        <p className="error">
          {job.error_code}: {job.error}
        </p>
      )}
      {job?.result && Object.keys(job.result).length > 0 && (
        <>
          <h2>Result</h2>
          <JsonTree value={job.result} />
        </>
      )}
      <h2>Events</h2>
      <ul className="log" aria-live="polite" data-testid="job-log">
        {events.map((e) => (
          <li key={e.seq}>
            <span className="muted">#{e.seq}</span> <strong>{e.type ?? 'START'}</strong> {e.message}
          </li>
        ))}
      </ul>
    </section>
  )
}
