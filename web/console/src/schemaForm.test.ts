import { describe, expect, it } from 'vitest'
import validator from '@rjsf/validator-ajv8'
import {
  cliEquivalent,
  curlEquivalent,
  formSchema,
  invokeOptions,
  maskSensitive,
  pointerError,
  pointerTokens,
  uiSchema,
  type Descriptor,
} from './schemaForm'

// The demo game's player.ban and mail.broadcast (examples/demogame).
const ban: Descriptor = {
  id: 'player.ban',
  params_schema: {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    additionalProperties: false,
    required: ['player_id', 'reason', 'duration_seconds'],
    properties: {
      player_id: { type: 'string', pattern: '^p[0-9]+$' },
      reason: { type: 'string', minLength: 3 },
      duration_seconds: { type: 'integer', minimum: 0 },
    },
  },
  auth: { sensitive_fields: ['/reason'] },
  ui: { display_name: 'Ban player', confirm: true, confirm_message: 'Ban this player?', widgets: { reason: 'textarea' } },
}

const mail: Descriptor = {
  id: 'mail.broadcast',
  params_schema: {
    type: 'object',
    properties: {
      subject: { type: 'string' },
      body: { type: 'string' },
      recipients: { type: 'array', items: { type: 'string' } },
      secrets: { type: 'object', additionalProperties: { type: 'string' } },
    },
  },
  auth: { sensitive_fields: ['/recipients/*', '/secrets/*'] },
  ui: { field_order: ['subject', 'recipients'], widgets: { '/body': 'textarea', subject: 'no-such-widget' } },
}

describe('formSchema', () => {
  it('drops $schema and keeps the rest', () => {
    const s = formSchema(ban)
    expect(s.$schema).toBeUndefined()
    expect(s.required).toEqual(['player_id', 'reason', 'duration_seconds'])
  })
  it('accepts any object when the descriptor has no schema', () => {
    expect(formSchema({ id: 'x' })).toEqual({ type: 'object' })
  })
})

describe('uiSchema', () => {
  it('masks sensitive fields over the widget hint', () => {
    const ui = uiSchema(ban)
    expect(ui.reason).toEqual({ 'ui:widget': 'password', 'ui:autocomplete': 'off' })
    expect(ui['ui:submitButtonOptions']).toEqual({ norender: true })
  })
  it('orders fields, with the unlisted ones after', () => {
    expect(uiSchema(mail)['ui:order']).toEqual(['subject', 'recipients', '*'])
  })
  it('maps pointers with * onto array items and map values', () => {
    const ui = uiSchema(mail)
    expect(ui.recipients).toEqual({ items: { 'ui:widget': 'password', 'ui:autocomplete': 'off' } })
    expect(ui.secrets).toEqual({ additionalProperties: { 'ui:widget': 'password', 'ui:autocomplete': 'off' } })
  })
  it('takes widget hints by name or pointer and ignores unknown widgets', () => {
    const ui = uiSchema(mail)
    expect(ui.body).toEqual({ 'ui:widget': 'textarea' })
    expect(ui.subject).toBeUndefined()
  })
  it('puts required fields first without field_order', () => {
    expect(uiSchema(ban)['ui:order']).toEqual(['player_id', 'reason', 'duration_seconds'])
    expect(uiSchema({ params_schema: { type: 'object', required: ['b'], properties: { a: {}, b: {} } } })['ui:order']).toEqual(['b', '*'])
  })
  it('orders nothing when every field is listed', () => {
    expect(uiSchema({ params_schema: { type: 'object', properties: { a: {}, b: {} } }, ui: { field_order: ['b', 'a'] } })['ui:order']).toEqual(['b', 'a'])
  })
})

describe('errors', () => {
  it('puts a server pointer on its field', () => {
    expect(pointerError('/player_id', 'does not match pattern')).toEqual({ player_id: { __errors: ['does not match pattern'] } })
    expect(pointerError('/recipients/2', 'bad')).toEqual({ recipients: { 2: { __errors: ['bad'] } } })
    expect(pointerError('', 'missing property')).toEqual({ __errors: ['missing property'] })
    expect(pointerTokens('/a~1b/c~0d')).toEqual(['a/b', 'c~d'])
  })
  it('validates in the browser with the same schema, at the same field', () => {
    const r = validator.validateFormData({ player_id: 'nobody', reason: 'ok!', duration_seconds: -1 }, formSchema(ban))
    const fields = r.errors.map((e) => e.property).sort()
    expect(fields).toEqual(['.duration_seconds', '.player_id'])
    expect(r.errorSchema.player_id?.__errors?.[0]).toMatch(/pattern/)
  })
})

describe('masking and equivalents', () => {
  it('masks pointers, with * over members', () => {
    const p = { subject: 's', recipients: ['p1', 'p2'], secrets: { a: 'x' } }
    expect(maskSensitive(p, ['/recipients/*', '/secrets/a'])).toEqual({ subject: 's', recipients: ['***', '***'], secrets: { a: '***' } })
    expect(p.recipients).toEqual(['p1', 'p2']) // a copy
    expect(maskSensitive({ a: 1 }, ['/missing'])).toEqual({ a: 1 })
  })
  it('builds the options the API expects', () => {
    expect(invokeOptions({ mode: 'lb' }, '')).toEqual({})
    expect(invokeOptions({ mode: 'targeted', target: 'agent-1/demo-1' }, 'k1')).toEqual({ routing_mode: 'targeted', target_agent: 'agent-1/demo-1', idempotency_key: 'k1' })
    expect(invokeOptions({ mode: 'hash', hashKey: 'p1' }, '')).toEqual({ routing_mode: 'hash', hash_key: 'p1' })
  })
  it('quotes the CLI and curl equivalents for a shell', () => {
    const payload = { player_id: "p'1" }
    expect(cliEquivalent('player.get', 'demo', 'dev', payload, { mode: 'hash', hashKey: 'k' }, '', false)).toBe(
      `croupier invoke player.get --game 'demo' --env 'dev' --payload '{"player_id":"p'\\''1"}' --route hash --hash-key 'k'`,
    )
    expect(cliEquivalent('mail.broadcast', 'demo', 'dev', {}, { mode: 'targeted', target: 'a/i' }, 'k', true)).toBe(
      `croupier job start mail.broadcast --game 'demo' --env 'dev' --payload '{}' --route targeted --target 'a/i' --idempotency-key 'k'`,
    )
    expect(curlEquivalent('https://h:1', 'player.get', 'demo', 'dev', {}, { mode: 'lb' }, '', false)).toBe(
      `curl -sk -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"game_id":"demo","env":"dev","payload":{},"options":{}}' 'https://h:1/api/v1/functions/player.get:invoke'`,
    )
  })
})
