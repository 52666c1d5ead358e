// Reads the REST API's Server-Sent Events streams (job events, registration
// watch). EventSource cannot send the Authorization header, so this uses
// fetch and parses text/event-stream itself; a refusal before the stream
// starts is the usual JSON error, thrown as an ApiError.
import { ApiError } from './api/client'
import { session } from './session'

export type SSEEvent = { id: string; event: string; data: string }

export async function readSSE(url: string, signal: AbortSignal, onEvent: (e: SSEEvent) => void): Promise<void> {
  const token = await session.accessToken()
  const resp = await fetch(url, {
    headers: { Accept: 'text/event-stream', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    signal,
  })
  if (!resp.ok || !resp.body) {
    const body = await resp.json().catch(() => ({}))
    const err = new ApiError(resp.status, body)
    if (resp.status === 401) session.end(err.message)
    throw err
  }
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader()
  let buf = ''
  let ev: SSEEvent = { id: '', event: 'message', data: '' }
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buf += value
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '')
      buf = buf.slice(nl + 1)
      if (line === '') {
        if (ev.data !== '') onEvent(ev)
        ev = { id: '', event: 'message', data: '' }
      } else if (!line.startsWith(':')) {
        const i = line.indexOf(':')
        const field = i < 0 ? line : line.slice(0, i)
        const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '')
        if (field === 'data') ev.data = ev.data ? `${ev.data}\n${val}` : val
        else if (field === 'event') ev.event = val
        else if (field === 'id') ev.id = val
      }
    }
  }
}

/** The error an "error" event carries (the gRPC status as JSON). */
export function streamError(data: string): ApiError {
  let body: { code?: number } = {}
  try {
    body = JSON.parse(data)
  } catch {
    body = { code: 2 }
  }
  return new ApiError(body.code === 14 ? 503 : 500, body)
}
