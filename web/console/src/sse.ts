// Reads the REST API's Server-Sent Events streams (job events, registration
// watch). EventSource cannot send the Authorization header, so this uses
// fetch and parses text/event-stream itself; a refusal before the stream
// starts is the usual JSON error, thrown as an ApiError.
import { ApiError } from './api/client'
import { session } from './session'
import { SSEParser, type SSEEvent } from './sseParser'

export type { SSEEvent }

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
  const parser = new SSEParser(onEvent)
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    parser.push(value)
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
