import { describe, expect, it } from 'vitest'
import { fmtRate, gatewayRows, hasGateway } from './gateway'

describe('hasGateway', () => {
  it('needs gateway.stats with a live instance', () => {
    expect(hasGateway(undefined)).toBe(false)
    expect(hasGateway([{ function_id: 'game.stats', agents: [{ agent_id: 'a', instances: ['i'] }] }])).toBe(false)
    expect(hasGateway([{ function_id: 'gateway.stats', agents: [{ agent_id: 'a', instances: [] }] }])).toBe(false)
    expect(hasGateway([{ function_id: 'gateway.stats', agents: [{ agent_id: 'dev-agent', instances: ['gateway-1'] }] }])).toBe(true)
  })
})

describe('gatewayRows', () => {
  it('gives one row per instance of a broadcast, sorted, with metrics by name', () => {
    const rows = gatewayRows({
      success: true,
      results: [
        { instance: 'b/gw-2', success: false, error_code: 'TIMEOUT', error: 'no answer' },
        {
          instance: 'a/gw-1',
          success: true,
          result: { server_id: 1, online: 2, topics: 3, businesses: 1, metrics: { zz: { count: 1 }, aa: { count: 5, rate1: 0.123 } } } as never,
        },
      ],
    })
    expect(rows.map((r) => r.instance)).toEqual(['a/gw-1', 'b/gw-2'])
    expect(rows[0]).toMatchObject({ ok: true, serverId: 1, online: 2, topics: 3, businesses: 1 })
    expect(rows[0].metrics.map(([n]) => n)).toEqual(['aa', 'zz'])
    expect(rows[1]).toMatchObject({ ok: false, error: 'TIMEOUT: no answer', online: undefined, metrics: [] })
  })
  it('takes a single answer as one row', () => {
    expect(gatewayRows({ success: true, instance: 'a/gw-1', result: { online: 0 } as never })).toMatchObject([{ instance: 'a/gw-1', online: 0 }])
    expect(gatewayRows({ success: false, error_code: 'NO_INSTANCES' })).toEqual([])
  })
  it('rounds rates', () => {
    expect(fmtRate(0.12345)).toBe('0.12')
    expect(fmtRate(undefined)).toBe('')
  })
})
