// Small shared pieces: error box, JSON tree, async loading hook.
import { useCallback, useEffect, useState, type ReactNode } from 'react'
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

/** Loads on mount and when deps change; reload() runs it again. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | undefined>()
  const [error, setError] = useState<unknown>()
  const [loading, setLoading] = useState(true)
  const load = useCallback(fn, deps)
  const reload = useCallback(() => {
    setLoading(true)
    load()
      .then((d) => {
        setData(d)
        setError(undefined)
      })
      .catch(setError)
      .finally(() => setLoading(false))
  }, [load])
  useEffect(reload, [reload])
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
