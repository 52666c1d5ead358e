// What the signed-in user may do, computed from WhoAmI's role bindings and
// ListRoles' permissions with the server's scope rules (docs/access.md), so
// the console hides actions the user's grants do not allow. The server
// still checks every call; this only decides what is shown.

export type Binding = { role: string; scope: string }
export type Role = { name: string; permissions: string[] }
export type Resource = { game?: string; env?: string; fn?: string }

/** One scope part against one value: `*` covers anything, even empty; `x*` a prefix. */
function partCovers(pattern: string, value: string): boolean {
  if (pattern === '*') return true
  if (value === '') return false
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1))
  return pattern === value
}

/** Parses a scope pattern into [game, env, function] patterns; missing parts are `*`. */
export function parseScope(scope: string): [string, string, string] {
  const out: [string, string, string] = ['*', '*', '*']
  if (scope === '' || scope === '*') return out
  const keys = ['game:', 'env:', 'function:']
  const parts = scope.split('/')
  for (let i = 0; i < parts.length && i < 3; i++) {
    if (parts[i] === '*') break
    out[i] = parts[i].startsWith(keys[i]) ? parts[i].slice(keys[i].length) : parts[i]
  }
  return out
}

export function scopeCovers(scope: string, r: Resource): boolean {
  const [g, e, f] = parseScope(scope)
  return partCovers(g, r.game ?? '') && partCovers(e, r.env ?? '') && partCovers(f, r.fn ?? '')
}

export function permissionCovers(granted: string, wanted: string): boolean {
  if (granted === '*' || granted === wanted) return true
  return granted.endsWith(':*') && wanted.startsWith(granted.slice(0, -1))
}

export class Grants {
  constructor(
    readonly bindings: Binding[],
    private readonly roles: Map<string, string[]>,
    readonly anonymous = false,
  ) {}

  static from(bindings: Binding[], roles: Role[], anonymous = false) {
    return new Grants(bindings, new Map(roles.map((r) => [r.name, r.permissions])), anonymous)
  }

  /** Whether some binding grants perm on the resource. */
  can(perm: string, r: Resource = {}): boolean {
    if (this.anonymous) return true // the insecure loopback dev server's local developer
    return this.bindings.some(
      (b) => scopeCovers(b.scope, r) && (this.roles.get(b.role) ?? []).some((p) => permissionCovers(p, perm)),
    )
  }

  /** Whether the user holds one of the roles on the resource (admin always counts). */
  hasRole(names: string[], r: Resource): boolean {
    return this.bindings.some((b) => (b.role === 'admin' || names.includes(b.role)) && scopeCovers(b.scope, r))
  }

  /** The game/env pairs the bindings name explicitly. */
  scopes(): Array<{ game: string; env: string }> {
    const out: Array<{ game: string; env: string }> = []
    for (const b of this.bindings) {
      const [g, e] = parseScope(b.scope)
      if (g !== '*' && !g.endsWith('*') && e !== '*' && !e.endsWith('*')) out.push({ game: g, env: e })
    }
    return out
  }

  /** The games the bindings name explicitly. */
  games(): string[] {
    const out = new Set<string>()
    for (const b of this.bindings) {
      const [g] = parseScope(b.scope)
      if (g !== '*' && !g.endsWith('*')) out.add(g)
    }
    return [...out]
  }
}
