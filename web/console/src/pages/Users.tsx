// Users and roles administration (user:admin, role:admin).
import { useState, type FormEvent } from 'react'
import { api, call } from '../api/client'
import { useCtx } from '../app'
import { ErrorBox, fmtTime, useLoad } from '../ui'

export function UsersPage() {
  const { grants } = useCtx()
  const users = useLoad(() => call(api.GET('/api/v1/users')), [])
  const roles = useLoad(() => call(api.GET('/api/v1/roles')), [])
  const [error, setError] = useState<unknown>()
  const [nu, setNu] = useState({ username: '', password: '' })
  // No default scope: the server refuses an empty one, and "*" (everything) must be typed.
  const [grant, setGrant] = useState({ username: '', role: 'viewer', scope: '' })
  const [nr, setNr] = useState({ name: '', permissions: '', description: '' })
  const act = (f: () => Promise<unknown>) => async (e?: FormEvent) => {
    e?.preventDefault()
    setError(undefined)
    try {
      await f()
      users.reload()
      roles.reload()
    } catch (err) {
      setError(err)
    }
  }
  const roleAdmin = grants.can('role:admin', {})
  return (
    <section>
      <h1>Users and roles</h1>
      <ErrorBox error={error} />
      <ErrorBox error={users.error} />
      <table>
        <thead>
          <tr>
            <th>user</th>
            <th>roles</th>
            <th>created</th>
            <th>state</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(users.data?.users ?? []).map((u) => (
            <tr key={u.username}>
              <td>{u.username}</td>
              <td>
                {(u.roles ?? []).map((b) => (
                  <span key={`${b.role}@${b.scope}`} className="chip">
                    {b.role} @ {b.scope}{' '}
                    {roleAdmin && (
                      <button
                        type="button"
                        className="link"
                        aria-label={`revoke ${b.role} on ${b.scope} from ${u.username}`}
                        onClick={act(() => call(api.POST('/api/v1/users/{username}/roles:revoke', { params: { path: { username: u.username ?? '' } }, body: { role: b.role, scope: b.scope } })))}
                      >
                        ×
                      </button>
                    )}
                  </span>
                ))}
              </td>
              <td>{fmtTime(u.created_at_ms)}</td>
              <td>{u.disabled ? 'disabled' : 'active'}</td>
              <td>
                <button
                  type="button"
                  className="secondary"
                  onClick={act(() =>
                    u.disabled
                      ? call(api.POST('/api/v1/users/{username}:enable', { params: { path: { username: u.username ?? '' } }, body: {} }))
                      : call(api.POST('/api/v1/users/{username}:disable', { params: { path: { username: u.username ?? '' } }, body: {} })),
                  )}
                >
                  {u.disabled ? 'Enable' : 'Disable'}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="forms">
        <form onSubmit={act(() => call(api.POST('/api/v1/users', { body: nu })).then(() => setNu({ username: '', password: '' })))} aria-label="Add user">
          <h2>Add user</h2>
          <label>
            Username
            <input value={nu.username} onChange={(e) => setNu({ ...nu, username: e.target.value })} required maxLength={64} />
          </label>
          <label>
            Password
            <input type="password" autoComplete="new-password" value={nu.password} onChange={(e) => setNu({ ...nu, password: e.target.value })} required minLength={8} />
          </label>
          <button type="submit">Add</button>
        </form>
        {roleAdmin && (
          <form
            onSubmit={act(() => call(api.POST('/api/v1/users/{username}/roles', { params: { path: { username: grant.username } }, body: { role: grant.role, scope: grant.scope } })))}
            aria-label="Grant role"
          >
            <h2>Grant role</h2>
            <label>
              User
              <input value={grant.username} onChange={(e) => setGrant({ ...grant, username: e.target.value })} required />
            </label>
            <label>
              Role
              <select value={grant.role} onChange={(e) => setGrant({ ...grant, role: e.target.value })}>
                {(roles.data?.roles ?? []).map((r) => (
                  <option key={r.name}>{r.name}</option>
                ))}
              </select>
            </label>
            <label>
              Scope
              <input value={grant.scope} onChange={(e) => setGrant({ ...grant, scope: e.target.value })} placeholder="game:demo/*, or * for everything" required />
            </label>
            <button type="submit">Grant</button>
          </form>
        )}
        {roleAdmin && (
          <form
            onSubmit={act(() =>
              call(api.POST('/api/v1/roles', { body: { name: nr.name, description: nr.description, permissions: nr.permissions.split(',').map((p) => p.trim()).filter(Boolean) } })),
            )}
            aria-label="Create role"
          >
            <h2>Create role</h2>
            <label>
              Name
              <input value={nr.name} onChange={(e) => setNr({ ...nr, name: e.target.value })} required />
            </label>
            <label>
              Permissions (comma-separated)
              <input value={nr.permissions} onChange={(e) => setNr({ ...nr, permissions: e.target.value })} placeholder="function:invoke,player:ban" />
            </label>
            <label>
              Description
              <input value={nr.description} onChange={(e) => setNr({ ...nr, description: e.target.value })} />
            </label>
            <button type="submit">Create</button>
          </form>
        )}
      </div>
      <h2>Roles</h2>
      <ErrorBox error={roles.error} />
      <table>
        <thead>
          <tr>
            <th>role</th>
            <th>permissions</th>
            <th>description</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(roles.data?.roles ?? []).map((r) => (
            <tr key={r.name}>
              <td>
                {r.name} {r.builtin && <span className="badge">built-in</span>}
              </td>
              <td>{(r.permissions ?? []).join(', ')}</td>
              <td>{r.description}</td>
              <td>
                {roleAdmin && !r.builtin && (
                  <button type="button" className="secondary" onClick={act(() => call(api.DELETE('/api/v1/roles/{name}', { params: { path: { name: r.name ?? '' } } })))}>
                    Delete
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  )
}
