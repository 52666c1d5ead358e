// The invoke form of one function, generated from its params_schema and
// UIConfig (schemaForm.ts), with routing, idempotency key, confirmation,
// the result and the equivalent CLI and curl commands.
import { useRef, useState } from 'react'
import Form from '@rjsf/core'
import type { ErrorSchema } from '@rjsf/utils'
import validator from '@rjsf/validator-ajv8'
import { api, ApiError, asStruct, call, type Schemas } from '../api/client'
import { go, useCtx } from '../app'
import { cliEquivalent, curlEquivalent, formSchema, invokeOptions, pointerError, uiSchema, type Routing } from '../schemaForm'
import { Copy, ErrorBox, JsonTree, Risk, useLoad } from '../ui'

type Payload = Record<string, unknown>
type Outcome = Schemas['v1InvokeFunctionResponse']

export function InvokePage({ fn }: { fn: string }) {
  const { game, env, grants } = useCtx()
  const { data, error } = useLoad(
    () => call(api.GET('/api/v1/registrations', { params: { query: { game_id: game, env, function_id: fn } } })),
    [game, env, fn],
  )
  const reg = data?.registrations?.find((r) => r.function_id === fn)
  if (error) return <ErrorBox error={error} />
  if (!data) return <p aria-busy="true">Loading…</p>
  if (!reg) return <p>No function {fn} in {game}/{env}.</p>
  const d = reg.descriptor ?? {}
  const job = !!d.semantics?.long_running
  const res = { game, env, fn }
  const allowed =
    grants.can(job ? 'job:start' : 'function:invoke', res) &&
    (d.auth?.permissions ?? []).every((p) => grants.can(p, res)) &&
    ((d.auth?.allowed_roles ?? []).length === 0 || grants.hasRole(d.auth?.allowed_roles ?? [], res))
  return <InvokeForm key={`${game}/${env}/${fn}`} reg={reg} job={job} allowed={allowed} />
}

function InvokeForm({ reg, job, allowed }: { reg: Schemas['v1FunctionRegistration']; job: boolean; allowed: boolean }) {
  const { game, env } = useCtx()
  const d = reg.descriptor ?? {}
  const fn = reg.function_id ?? ''
  const [formData, setFormData] = useState<Payload>({})
  const [extraErrors, setExtraErrors] = useState<ErrorSchema>()
  const [routing, setRouting] = useState<Routing>({ mode: 'lb' })
  const [idemKey, setIdemKey] = useState('')
  const [browserValidation, setBrowserValidation] = useState(true)
  const [busy, setBusy] = useState(false)
  const [outcome, setOutcome] = useState<Outcome>()
  const [callError, setCallError] = useState<unknown>()
  const [pending, setPending] = useState<Payload>()
  const dialog = useRef<HTMLDialogElement>(null)
  const targets = (reg.agents ?? []).flatMap((a) => [a.agent_id ?? '', ...(a.instances ?? []).map((i) => `${a.agent_id}/${i}`)])

  const send = async (payload: Payload) => {
    setBusy(true)
    setOutcome(undefined)
    setCallError(undefined)
    setExtraErrors(undefined)
    const options = invokeOptions(routing, idemKey)
    try {
      if (job) {
        const r = await call(api.POST('/api/v1/jobs', { body: { game_id: game, env, function_id: fn, payload: asStruct(payload), options } }))
        if (r.approval_id) setOutcome({ success: false, error_code: 'APPROVAL_REQUIRED', approval_id: r.approval_id })
        else go(`#/jobs/${encodeURIComponent(r.job_id ?? '')}`)
      } else {
        setOutcome(
          await call(
            api.POST('/api/v1/functions/{function_id}:invoke', {
              params: { path: { function_id: fn } },
              body: { game_id: game, env, payload: asStruct(payload), options },
            }),
          ),
        )
      }
    } catch (err) {
      setCallError(err)
      // The server names the failing value by JSON pointer: show the
      // reason at that field.
      if (err instanceof ApiError && err.code === 'INVALID_PAYLOAD' && err.details.pointer !== undefined) {
        setExtraErrors(pointerError(err.details.pointer, err.details.reason || err.message))
      }
    } finally {
      setBusy(false)
    }
  }

  const submit = (payload: Payload) => {
    if (d.ui?.confirm) {
      setPending(payload)
      dialog.current?.showModal()
    } else void send(payload)
  }

  return (
    <section>
      <h1>
        {d.ui?.display_name || d.name || fn} <Risk risk={d.semantics?.risk} />
      </h1>
      <p>
        <code>{fn}</code> {d.version && <span className="muted">v{d.version}</span>} {job && <span className="badge">job</span>}
        {(d.auth?.require_approval || d.semantics?.risk === 'RISK_LEVEL_HIGH') && <span className="badge">needs approval</span>}
      </p>
      {d.description && <p>{d.description}</p>}
      {!allowed && (
        <p className="notice" data-testid="no-invoke">
          Your roles do not allow calling this function here; the form is read-only.
        </p>
      )}
      <Form
        schema={formSchema(d)}
        uiSchema={uiSchema(d)}
        validator={validator}
        formData={formData}
        onChange={(e) => {
          setFormData(e.formData as Payload)
          setExtraErrors(undefined)
        }}
        onSubmit={(e) => submit(e.formData as Payload)}
        onError={() => {
          // The browser refused the payload: nothing was sent, so the
          // previous call's result no longer applies.
          setOutcome(undefined)
          setCallError(undefined)
        }}
        noValidate={!browserValidation}
        noHtml5Validate
        showErrorList={false}
        extraErrors={extraErrors}
        disabled={!allowed}
      >
        <fieldset className="options">
          <legend>Call options</legend>
          <label>
            Routing
            <select value={routing.mode} onChange={(e) => setRouting({ mode: e.target.value as Routing['mode'] })}>
              <option value="lb">lb — least loaded instance</option>
              {!job && <option value="broadcast">broadcast — every instance</option>}
              <option value="targeted">targeted — one instance</option>
              <option value="hash">hash — by key</option>
            </select>
          </label>
          {routing.mode === 'targeted' && (
            <label>
              Instance
              <select value={routing.target ?? ''} onChange={(e) => setRouting({ ...routing, target: e.target.value })} required>
                <option value="">choose…</option>
                {targets.map((t) => (
                  <option key={t}>{t}</option>
                ))}
              </select>
            </label>
          )}
          {routing.mode === 'hash' && (
            <label>
              Hash key
              <input value={routing.hashKey ?? ''} onChange={(e) => setRouting({ ...routing, hashKey: e.target.value })} maxLength={128} />
            </label>
          )}
          <label>
            Idempotency key
            <input value={idemKey} onChange={(e) => setIdemKey(e.target.value)} maxLength={128} placeholder="optional" />
          </label>
          <button type="button" className="secondary" onClick={() => setIdemKey(crypto.randomUUID())}>
            New key
          </button>
          <label className="inline">
            <input type="checkbox" checked={browserValidation} onChange={(e) => setBrowserValidation(e.target.checked)} /> Validate in the browser
            before sending (the server validates every payload anyway)
          </label>
        </fieldset>
        {allowed && (
          <div className="actions">
            <button type="submit" disabled={busy}>
              {job ? 'Start job' : 'Invoke'}
            </button>
          </div>
        )}
      </Form>
      <dialog ref={dialog} aria-labelledby="confirm-title" onClose={() => setPending(undefined)}>
        <h2 id="confirm-title">Confirm</h2>
        <p>{d.ui?.confirm_message || `Call ${fn}?`}</p>
        <div className="actions">
          <button
            type="button"
            onClick={() => {
              const p = pending
              dialog.current?.close()
              if (p) void send(p)
            }}
          >
            Confirm
          </button>
          <button type="button" className="secondary" onClick={() => dialog.current?.close()} autoFocus>
            Cancel
          </button>
        </div>
      </dialog>
      <ErrorBox error={callError} />
      {outcome && <Result outcome={outcome} />}
      <details className="equivalents">
        <summary>CLI and curl equivalents</summary>
        <Equivalent text={cliEquivalent(fn, game, env, formData, routing, idemKey, job)} label="Copy CLI" />
        <Equivalent text={curlEquivalent(window.location.origin, fn, game, env, formData, routing, idemKey, job)} label="Copy curl" />
      </details>
    </section>
  )
}

function Equivalent({ text, label }: { text: string; label: string }) {
  return (
    <div className="equivalent">
      <pre>{text}</pre>
      <Copy text={text} label={label} />
    </div>
  )
}

function Result({ outcome }: { outcome: Outcome }) {
  if (outcome.error_code === 'APPROVAL_REQUIRED') {
    return (
      <div className="result" role="status" data-testid="result">
        <h2>Waiting for approval</h2>
        <p>
          This function needs a second operator. Request <code>{outcome.approval_id}</code> is waiting in <a href="#/approvals">Approvals</a>; once
          approved it runs as a job.
        </p>
      </div>
    )
  }
  return (
    <div className="result" role="status" data-testid="result">
      <h2>{outcome.success ? 'Success' : `Failed: ${outcome.error_code}`}</h2>
      {outcome.instance && <p className="muted">served by {outcome.instance}</p>}
      {!outcome.success && outcome.error && <p className="error">{outcome.error}</p>}
      {outcome.result && Object.keys(outcome.result).length > 0 && <JsonTree value={outcome.result} />}
      {(outcome.results ?? []).length > 0 && (
        <table>
          <caption>Per instance</caption>
          <thead>
            <tr>
              <th>instance</th>
              <th>success</th>
              <th>error</th>
              <th>result</th>
            </tr>
          </thead>
          <tbody>
            {outcome.results!.map((r) => (
              <tr key={r.instance}>
                <td>{r.instance}</td>
                <td>{r.success ? 'yes' : 'no'}</td>
                <td>{r.error_code ? `${r.error_code}: ${r.error}` : ''}</td>
                <td>
                  <JsonTree value={r.result ?? {}} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  )
}
