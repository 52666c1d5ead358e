import { describe, expect, it } from 'vitest'
import { Grants, parseScope, permissionCovers, scopeCovers } from './rbac'

const roles = [
  { name: 'admin', permissions: ['*'] },
  { name: 'operator', permissions: ['function:invoke', 'job:start', 'job:cancel', 'job:read', 'registry:read'] },
  { name: 'viewer', permissions: ['job:read', 'registry:read', 'agent:read', 'fleet:read'] },
  { name: 'gm', permissions: ['player:*'] },
]

describe('scopes', () => {
  it('parses canonical and long forms', () => {
    expect(parseScope('*')).toEqual(['*', '*', '*'])
    expect(parseScope('game:demo/*')).toEqual(['demo', '*', '*'])
    expect(parseScope('game:demo')).toEqual(['demo', '*', '*'])
    expect(parseScope('game:demo/env:prod/function:player.*')).toEqual(['demo', 'prod', 'player.*'])
  })
  it('covers like the server', () => {
    expect(scopeCovers('game:demo/*', { game: 'demo', env: 'dev', fn: 'player.get' })).toBe(true)
    expect(scopeCovers('game:demo/*', { game: 'other', env: 'dev' })).toBe(false)
    expect(scopeCovers('game:demo/env:dev/function:player.*', { game: 'demo', env: 'dev', fn: 'player.ban' })).toBe(true)
    expect(scopeCovers('game:demo/env:dev/function:player.*', { game: 'demo', env: 'dev', fn: 'mail.broadcast' })).toBe(false)
    // Only a * part covers an empty resource part: a function grant does not cover its environment.
    expect(scopeCovers('game:demo/env:dev/function:player.get', { game: 'demo', env: 'dev' })).toBe(false)
    expect(scopeCovers('game:demo/*', {})).toBe(false)
    expect(scopeCovers('*', {})).toBe(true)
  })
  it('matches permission wildcards', () => {
    expect(permissionCovers('*', 'audit:read')).toBe(true)
    expect(permissionCovers('job:*', 'job:cancel')).toBe(true)
    expect(permissionCovers('job:*', 'jobs:cancel')).toBe(false)
    expect(permissionCovers('job:read', 'job:cancel')).toBe(false)
  })
})

describe('Grants', () => {
  const res = { game: 'demo', env: 'dev', fn: 'player.get' }
  it('gives a viewer no invoke', () => {
    const g = Grants.from([{ role: 'viewer', scope: 'game:demo/*' }], roles)
    expect(g.can('registry:read', res)).toBe(true)
    expect(g.can('function:invoke', res)).toBe(false)
  })
  it('combines roles and scopes', () => {
    const g = Grants.from(
      [
        { role: 'operator', scope: 'game:demo/*' },
        { role: 'gm', scope: 'game:demo/env:dev/*' },
      ],
      roles,
    )
    expect(g.can('function:invoke', res)).toBe(true)
    expect(g.can('player:ban', res)).toBe(true)
    expect(g.can('player:ban', { ...res, env: 'prod' })).toBe(false)
    expect(g.can('audit:read', {})).toBe(false)
    expect(g.scopes()).toEqual([{ game: 'demo', env: 'dev' }])
  })
  it('lets admin on * do everything', () => {
    const g = Grants.from([{ role: 'admin', scope: '*' }], roles)
    expect(g.can('audit:read', {})).toBe(true)
    expect(g.hasRole(['gm'], res)).toBe(true)
  })
})
