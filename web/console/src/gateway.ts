// The Gateway page's data: whether a player gateway is registered in the
// game/env (its built-in gateway.stats function, internal/gatewayops), and
// the rows of a broadcast gateway.stats call, one per gateway instance.
import type { Schemas } from './api/client'

export const GATEWAY_STATS = 'gateway.stats'

/** A Metrics item of a gateway (internal/gateway.Meter). */
export type Meter = {
  count?: number
  mean_rate?: number
  rate1?: number
  rate5?: number
  rate15?: number
}

/** One gateway instance's answer to gateway.stats. */
export type GatewayRow = {
  instance: string
  ok: boolean
  error?: string // "CODE: message" when that instance failed
  serverId?: number
  online?: number
  topics?: number
  businesses?: number
  metrics: Array<[string, Meter]> // sorted by name
}

/** Whether gateway.stats is registered (and served by some instance) among regs. */
export function hasGateway(regs: Schemas['v1FunctionRegistration'][] | undefined): boolean {
  return (regs ?? []).some(
    (r) => r.function_id === GATEWAY_STATS && (r.agents ?? []).some((a) => (a.instances ?? []).length > 0),
  )
}

const num = (v: unknown) => (typeof v === 'number' ? v : undefined)

function row(instance: string, success: boolean, result: unknown, code?: string, error?: string): GatewayRow {
  const r = (result ?? {}) as Record<string, unknown>
  const m = (r.metrics ?? {}) as Record<string, Meter>
  return {
    instance,
    ok: success,
    error: success ? undefined : [code, error].filter(Boolean).join(': ') || 'failed',
    serverId: num(r.server_id),
    online: num(r.online),
    topics: num(r.topics),
    businesses: num(r.businesses),
    metrics: Object.entries(m).sort(([a], [b]) => a.localeCompare(b)),
  }
}

/**
 * The rows of a gateway.stats call made with broadcast routing: one per
 * instance, sorted by instance. A response without per-instance results
 * (a single instance answered) gives one row.
 */
export function gatewayRows(out: Schemas['v1InvokeFunctionResponse']): GatewayRow[] {
  const results = out.results ?? []
  if (results.length === 0) {
    if (!out.success && !out.result) return []
    return [row(out.instance || String((out.result as Record<string, unknown> | undefined)?.served_by ?? ''), !!out.success, out.result, out.error_code, out.error)]
  }
  return results
    .map((r) => row(r.instance ?? '', !!r.success, r.result, r.error_code, r.error))
    .sort((a, b) => a.instance.localeCompare(b.instance))
}

/** A rate as shown: up to two decimals. */
export const fmtRate = (v?: number) => (v === undefined ? '' : String(Math.round(v * 100) / 100))
