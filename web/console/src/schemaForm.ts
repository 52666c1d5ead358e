// The mapping from a function descriptor to the invoke form: params_schema
// becomes the form's JSON Schema, UIConfig and AuthConfig.sensitive_fields
// become @rjsf's uiSchema, and the server's INVALID_PAYLOAD JSON pointer
// becomes an error on the field it names. Pure functions, unit-tested in
// schemaForm.test.ts.
import type { ErrorSchema, RJSFSchema, UiSchema } from '@rjsf/utils'

export type Descriptor = {
  id?: string
  name?: string
  params_schema?: object
  auth?: { sensitive_fields?: string[]; permissions?: string[]; allowed_roles?: string[]; require_approval?: boolean }
  ui?: {
    display_name?: string
    field_order?: string[]
    widgets?: Record<string, string>
    confirm?: boolean
    confirm_message?: string
  }
}

// Widgets @rjsf/core ships; a hint naming another is ignored (rjsf would
// render an error in place of the field).
const KNOWN_WIDGETS = new Set([
  'text', 'textarea', 'password', 'email', 'uri', 'select', 'radio', 'checkbox', 'checkboxes',
  'range', 'updown', 'date', 'datetime', 'time', 'color', 'file', 'hidden',
])

/** The form's schema: params_schema without $schema/$id (the form validates with its own meta-schema). */
export function formSchema(d: Descriptor): RJSFSchema {
  const s = { ...((d.params_schema ?? {}) as Record<string, unknown>) }
  delete s.$schema
  delete s.$id
  delete s.title // the page shows the display name
  if (Object.keys(s).length === 0) return { type: 'object' }
  return s as RJSFSchema
}

/** Splits an RFC 6901 pointer (or a bare top-level field name) into tokens. */
export function pointerTokens(p: string): string[] {
  if (p === '' || p === '/') return []
  if (!p.startsWith('/')) return [p]
  return p
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))
}

type Node = Record<string, unknown>

/** The uiSchema node at a pointer, created on the way; `*` and array indexes map to `items`. */
function uiNodeAt(root: UiSchema, schema: RJSFSchema, tokens: string[]): Node {
  let node = root as Node
  let sch: RJSFSchema | undefined = schema
  for (const t of tokens) {
    const isArray = sch?.type === 'array' || (sch?.items !== undefined && sch?.properties === undefined)
    let key = t
    if (isArray && (t === '*' || /^\d+$/.test(t))) {
      key = 'items'
      sch = (typeof sch?.items === 'object' && !Array.isArray(sch.items) ? sch.items : undefined) as RJSFSchema | undefined
    } else if (t === '*') {
      key = 'additionalProperties'
      sch = (typeof sch?.additionalProperties === 'object' ? sch.additionalProperties : undefined) as RJSFSchema | undefined
    } else {
      sch = sch?.properties?.[t] as RJSFSchema | undefined
    }
    node[key] ??= {}
    node = node[key] as Node
  }
  return node
}

/** The form's uiSchema from the descriptor's console hints. */
export function uiSchema(d: Descriptor): UiSchema {
  const schema = formSchema(d)
  const ui: UiSchema = { 'ui:submitButtonOptions': { norender: true } }
  // Without field_order, required fields come first, in the schema's order
  // (a payload schema travels as a protobuf Struct, whose object keys come
  // back sorted, but whose arrays keep their order).
  const order = d.ui?.field_order?.length ? d.ui.field_order : ((schema.required as string[] | undefined) ?? [])
  if (order.length > 0) {
    const props = Object.keys(schema.properties ?? {})
    const known = order.filter((f) => props.includes(f))
    ui['ui:order'] = known.length < props.length ? [...known, '*'] : known
  }
  for (const [field, widget] of Object.entries(d.ui?.widgets ?? {})) {
    if (!KNOWN_WIDGETS.has(widget)) continue
    uiNodeAt(ui, schema, pointerTokens(field))['ui:widget'] = widget
  }
  // Sensitive values are typed like passwords: not shown on screen, not
  // kept by the browser's autofill.
  for (const p of d.auth?.sensitive_fields ?? []) {
    const tokens = pointerTokens(p)
    if (tokens.length === 0) continue
    const node = uiNodeAt(ui, schema, tokens)
    node['ui:widget'] = 'password'
    node['ui:autocomplete'] = 'off'
  }
  return ui
}

/** An error on the field a JSON pointer names ("" is the whole payload). */
export function pointerError(pointer: string, reason: string): ErrorSchema {
  const root: Node = {}
  let node = root
  for (const t of pointerTokens(pointer)) {
    node[t] ??= {}
    node = node[t] as Node
  }
  node.__errors = [reason]
  return root as ErrorSchema
}

/** A copy of the payload with the values at the pointers replaced by "***" (`*` matches every member). */
export function maskSensitive(payload: unknown, pointers: string[]): unknown {
  const copy = structuredClone(payload)
  const mask = (v: unknown, tokens: string[]): unknown => {
    if (tokens.length === 0) return '***'
    if (v === null || typeof v !== 'object') return v
    const [t, ...rest] = tokens
    const o = v as Record<string, unknown>
    for (const k of t === '*' ? Object.keys(o) : [t]) {
      if (k in o) o[k] = mask(o[k], rest)
    }
    return v
  }
  let out = copy
  for (const p of pointers) {
    const tokens = pointerTokens(p)
    if (tokens.length > 0) out = mask(out, tokens)
  }
  return out
}

export type Routing = { mode: 'lb' | 'broadcast' | 'targeted' | 'hash'; target?: string; hashKey?: string }

/** The invoke options the form sends. */
export function invokeOptions(r: Routing, idempotencyKey: string) {
  const o: { routing_mode?: string; target_agent?: string; hash_key?: string; idempotency_key?: string } = {}
  if (r.mode !== 'lb') o.routing_mode = r.mode
  if (r.mode === 'targeted' && r.target) o.target_agent = r.target
  if (r.mode === 'hash' && r.hashKey) o.hash_key = r.hashKey
  if (idempotencyKey) o.idempotency_key = idempotencyKey
  return o
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/** The CLI command doing the same call (a job is never broadcast: the form does not offer it). */
export function cliEquivalent(fn: string, game: string, env: string, payload: unknown, r: Routing, key: string, job: boolean): string {
  const parts = job ? ['croupier', 'job', 'start', fn] : ['croupier', 'invoke', fn]
  parts.push('--game', shq(game), '--env', shq(env), '--payload', shq(JSON.stringify(payload)))
  if (r.mode !== 'lb') parts.push('--route', r.mode)
  if (r.mode === 'targeted' && r.target) parts.push('--target', shq(r.target))
  if (r.mode === 'hash' && r.hashKey) parts.push('--hash-key', shq(r.hashKey))
  if (key) parts.push('--idempotency-key', shq(key))
  return parts.join(' ')
}

/** The curl command doing the same call over REST ($TOKEN: an access token). */
export function curlEquivalent(origin: string, fn: string, game: string, env: string, payload: unknown, r: Routing, key: string, job: boolean): string {
  const options = invokeOptions(r, key)
  const body = job
    ? { game_id: game, env, function_id: fn, payload, options }
    : { game_id: game, env, payload, options }
  const url = job ? `${origin}/api/v1/jobs` : `${origin}/api/v1/functions/${encodeURIComponent(fn)}:invoke`
  return `curl -sk -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d ${shq(JSON.stringify(body))} ${shq(url)}`
}
