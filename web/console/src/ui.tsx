// Small shared pieces: error box, JSON tree, async loading hook.
import { useCallback, useEffect, useLayoutEffect, useRef, useState, type ReactNode } from 'react'
import { ApiError } from './api/client'

/** The server's error: HTTP status, ErrorInfo code and message (a 403 names the permission). */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null
  if (error instanceof ApiError) {
    return (
      <div role="alert" className="error">
        <strong>
          {error.httpStatus} {error.code || 'ERROR'}
        </strong>
        : {error.message}
        {error.details.permission && (
          <div>
            Missing permission <code>{error.details.permission}</code> on <code>{error.details.scope}</code>
          </div>
        )}
      </div>
    )
  }
  return (
    <div role="alert" className="error">
      {error instanceof Error ? error.message : String(error)}
    </div>
  )
}

/**
 * Loads on mount and when deps change; reload() runs it again. reload is
 * stable and always runs the latest fn (a callback that captured it before
 * deps changed — a card whose action finished after the filter moved —
 * loads what the page shows now), and only the newest load's answer is
 * applied: an older one arriving late is dropped instead of overwriting it.
 */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | undefined>()
  const [error, setError] = useState<unknown>()
  const [loading, setLoading] = useState(true)
  const load = useCallback(fn, deps)
  const latest = useRef(load)
  const seq = useRef(0)
  useLayoutEffect(() => {
    latest.current = load
  }, [load])
  const reload = useCallback(() => {
    const n = ++seq.current
    const current = () => n === seq.current
    setLoading(true)
    latest.current()
      .then((d) => {
        if (current()) {
          setData(d)
          setError(undefined)
        }
      })
      .catch((e: unknown) => {
        if (current()) setError(e)
      })
      .finally(() => {
        if (current()) setLoading(false)
      })
  }, [])
  useEffect(reload, [load, reload])
  return { data, error, loading, reload }
}

/** A JSON value as a collapsible tree. */
export function JsonTree({ value, name }: { value: unknown; name?: string }): ReactNode {
  const label = name !== undefined ? <span className="json-key">{name}: </span> : null
  if (value === null || typeof value !== 'object') {
    return (
      <div className="json-leaf">
        {label}
        <span className={`json-${value === null ? 'null' : typeof value}`}>{JSON.stringify(value)}</span>
      </div>
    )
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value)
  return (
    <details open className="json-node">
      <summary>
        {label}
        {Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`}
      </summary>
      {entries.map(([k, v]) => (
        <JsonTree key={k} name={k} value={v} />
      ))}
    </details>
  )
}

export function fmtTime(ms?: string | number) {
  const n = Number(ms ?? 0)
  return n > 0 ? new Date(n).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : ''
}

export function Copy({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false)
  return (
    <button
      type="button"
      className="secondary"
      onClick={() =>
        navigator.clipboard?.writeText(text).then(
          () => setDone(true),
          () => setDone(false),
        )
      }
    >
      {done ? 'Copied' : label}
    </button>
  )
}

export function Risk({ risk }: { risk?: string }) {
  const r = (risk ?? 'RISK_LEVEL_UNSPECIFIED').replace('RISK_LEVEL_', '')
  if (r === 'UNSPECIFIED') return null
  return <span className={`badge risk-${r.toLowerCase()}`}>{r}</span>
}
