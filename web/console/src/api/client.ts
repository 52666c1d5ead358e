// The API client: openapi-fetch over the types openapi-typescript generates
// from the server's OpenAPI document (src/api/schema.d.ts, `npm run gen`).
// Every REST call of the console goes through `api`; only the two
// Server-Sent Events streams are read with fetch directly (sse.ts).
import createClient, { type Middleware } from 'openapi-fetch'
import type { components, paths } from './schema'
import { session } from '../session'

export type Schemas = components['schemas']

const auth: Middleware = {
  async onRequest({ request, schemaPath }) {
    if (schemaPath === '/api/v1/auth/login' || schemaPath === '/api/v1/auth:refresh') return request
    const token = await session.accessToken()
    if (token) request.headers.set('Authorization', `Bearer ${token}`)
    return request
  },
}

export const api = createClient<paths>({ baseUrl: '' })
api.use(auth)

/** What a failed call tells the operator: HTTP status, gRPC code, message and ErrorInfo. */
export class ApiError extends Error {
  readonly httpStatus: number
  readonly grpcCode: number
  readonly code: string
  readonly details: Record<string, string>

  constructor(httpStatus: number, body: unknown) {
    const b = (body ?? {}) as { code?: number; message?: string; details?: Array<Record<string, unknown>> }
    const info = (b.details ?? []).find((d) => String(d['@type'] ?? '').endsWith('croupier.v1.ErrorInfo'))
    super(b.message || `HTTP ${httpStatus}`)
    this.httpStatus = httpStatus
    this.grpcCode = b.code ?? 0
    this.code = String(info?.code ?? '')
    this.details = (info?.details as Record<string, string>) ?? {}
  }
}

/**
 * Unwraps an openapi-fetch result: the data, or an ApiError. A 401 ends the
 * session (the token expired for good or was revoked), which sends the
 * console back to the login page with the message.
 */
export async function call<T>(p: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await p
  if (!response.ok) {
    const err = new ApiError(response.status, error)
    if (response.status === 401) session.end(err.message)
    throw err
  }
  return data as T
}

/** A protobuf Struct in the generated types; payloads are plain JSON objects. */
export type Struct = Record<string, never>
export const asStruct = (v: unknown) => (v ?? {}) as Struct
