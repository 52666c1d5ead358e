// The function catalogue of the current game/env, grouped by category.
import { api, call } from '../api/client'
import { useCtx } from '../app'
import { ErrorBox, Risk, useLoad } from '../ui'

export function FunctionsPage() {
  const { game, env } = useCtx()
  const { data, error } = useLoad(() => call(api.GET('/api/v1/registrations', { params: { query: { game_id: game, env } } })), [game, env])
  const regs = data?.registrations ?? []
  const byCat = new Map<string, typeof regs>()
  for (const r of regs) {
    const c = r.descriptor?.category || 'other'
    byCat.set(c, [...(byCat.get(c) ?? []), r])
  }
  return (
    <section>
      <h1>Functions</h1>
      <p className="muted">
        {game}/{env}: {regs.length} functions
      </p>
      <ErrorBox error={error} />
      {[...byCat.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([cat, list]) => (
          <section key={cat} aria-labelledby={`cat-${cat}`}>
            <h2 id={`cat-${cat}`}>{cat}</h2>
            <ul className="cards">
              {list
                .sort((a, b) => (a.function_id ?? '').localeCompare(b.function_id ?? ''))
                .map((r) => {
                  const d = r.descriptor ?? {}
                  const instances = (r.agents ?? []).reduce((n, a) => n + (a.instances?.length ?? 0), 0)
                  return (
                    <li key={r.function_id} className="card">
                      <a href={`#/functions/${encodeURIComponent(r.function_id ?? '')}`}>
                        <strong>{d.ui?.display_name || d.name || r.function_id}</strong>
                      </a>{' '}
                      <code>{r.function_id}</code> <Risk risk={d.semantics?.risk} />
                      {d.semantics?.long_running && <span className="badge">job</span>}
                      {!r.enabled && <span className="badge risk-high">disabled</span>}
                      <p>{d.description}</p>
                      <p className="muted">
                        {instances} instance{instances === 1 ? '' : 's'}
                      </p>
                    </li>
                  )
                })}
            </ul>
          </section>
        ))}
    </section>
  )
}
