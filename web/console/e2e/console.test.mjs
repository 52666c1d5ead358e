// The console in a real browser (Debian's chromium driven by
// playwright-core) against a real `croupier dev` that this test starts on
// free ports with its own data directory. Run by `make console-test`:
//   node --test e2e/
// Environment: CROUPIER_BIN (default ../../bin/croupier), CHROMIUM
// (default /usr/bin/chromium), CONSOLE_ARTIFACTS (screenshots, default
// ./artifacts), CONSOLE_DOCS_IMG (when set, the screenshots used by
// docs/console.md are copied there).
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = dirname(fileURLToPath(import.meta.url))
const BIN = process.env.CROUPIER_BIN || resolve(here, '../../../bin/croupier')
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const ART = process.env.CONSOLE_ARTIFACTS || resolve(here, '../artifacts')
const DOCS = process.env.CONSOLE_DOCS_IMG
const STEP = 20_000 // the bound on any single wait in the browser
const ADMIN_PW = 'admin-pass-1234'
const PW = 'user-pass-1234'

let dir, dev, devOut = '', devErr = '', url, browser
const contexts = []

/** Waits until the dev process has printed re, at most ms. */
function waitOutput(re, ms) {
  return new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`croupier dev did not print ${re} within ${ms} ms:\n${devOut}`)), ms)
    const check = () => {
      const m = devOut.match(re)
      if (m) {
        clearTimeout(t)
        dev.stdout.off('data', check)
        ok(m)
      }
    }
    dev.stdout.on('data', check)
    dev.once('exit', (code) => fail(new Error(`croupier dev exited (${code}):\n${devOut}\n${devErr}`)))
    check()
  })
}

const cli = (args, input) =>
  execFileSync(BIN, args, { input, env: { ...process.env, CROUPIER_PROFILE: join(dir, 'client.yaml') }, encoding: 'utf8', timeout: 30_000 })

/** Retries fn (bounded: 30 s, every 200 ms) until it stops throwing. */
async function poll(what, fn) {
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      return fn()
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what}: still failing after 30 s: ${err.message}`)
      await new Promise((ok) => setTimeout(ok, 200))
    }
  }
}

before(async () => {
  mkdirSync(ART, { recursive: true })
  dir = mkdtempSync(join(tmpdir(), 'croupier-console-'))
  const addr = '127.0.0.1:0'
  dev = spawn(
    BIN,
    ['dev', '--data-dir', dir, '--admin-password', ADMIN_PW, '--grpc-addr', addr, '--http-addr', addr, '--tunnel-http-addr', addr,
      '--sdk-addr', addr, '--gse-addr', addr, '--gateway-addr', addr, '--gateway-business-addr', addr,
      '--rooms-addr', addr, '--rtmp-addr', addr, '--cluster-addr', addr],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  dev.stdout.setEncoding('utf8')
  dev.stdout.on('data', (s) => (devOut += s))
  dev.stderr.setEncoding('utf8')
  dev.stderr.on('data', (s) => (devErr = (devErr + s).slice(-4096))) // the logs' tail, shown if it exits
  const m = await waitOutput(/console\s+(https:\/\/\S+\/)/, 90_000)
  await waitOutput(/Press Ctrl-C to stop\./, 10_000)
  url = m[1]
  // alice operates (and may ban), bob approves, vera only views.
  cli(['role', 'create', 'gm', '-p', 'player:ban', '--description', 'game masters'])
  for (const [user, roles] of [['alice', ['operator', 'gm']], ['bob', ['approver', 'operator']], ['vera', ['viewer']]]) {
    cli(['user', 'add', user, '--password-stdin'], PW + '\n')
    for (const r of roles) cli(['role', 'grant', user, r, '--scope', 'game:demo/*'])
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  })
})

after(async () => {
  for (const c of contexts) await c.close().catch(() => {})
  await browser?.close().catch(() => {})
  if (dev && dev.exitCode === null) {
    const exited = new Promise((ok) => dev.once('exit', ok))
    dev.kill('SIGINT')
    const t = setTimeout(() => dev.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(t)
  }
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** A fresh browser context (its own session storage), signed in as user. */
async function signIn(user, password = PW, options = {}) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 720 }, ...options })
  ctx.setDefaultTimeout(STEP)
  contexts.push(ctx)
  const page = await ctx.newPage()
  const errors = []
  page.on('pageerror', (e) => errors.push(e.message))
  page.errors = errors
  await page.goto(url)
  await page.getByLabel('Username').fill(user)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByTestId('who').filter({ hasText: `operator:${user}` }).waitFor()
  return page
}

async function shot(page, name, { docs = false } = {}) {
  const file = join(ART, `${name}.png`)
  await page.evaluate(() => window.scrollTo(0, 0))
  await page.screenshot({ path: file })
  if (docs && DOCS) {
    mkdirSync(DOCS, { recursive: true })
    copyFileSync(file, join(DOCS, `console-${name}.png`))
  }
}

/** No horizontal scroll bar at 1280×720. */
async function assertFits(page, what) {
  const w = await page.evaluate(() => document.documentElement.scrollWidth)
  assert.ok(w <= 1280, `${what}: page is ${w} px wide at 1280×720`)
}

test('the console is served at / without shadowing the API, metrics or health', async () => {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true })
  contexts.push(ctx)
  const r = ctx.request
  const index = await r.get(url)
  assert.equal(index.status(), 200)
  assert.match(index.headers()['content-type'], /text\/html/)
  assert.match(index.headers()['content-security-policy'], /frame-ancestors 'none'/)
  const script = (await index.text()).match(/src="\/(assets\/[^"]+\.js)"/)[1]
  const js = await r.get(url + script, { headers: { 'Accept-Encoding': 'gzip' } })
  assert.equal(js.headers()['content-encoding'], 'gzip')
  assert.match(js.headers()['cache-control'], /immutable/)
  assert.equal((await r.get(url + 'healthz')).status(), 200)
  assert.match(await (await r.get(url + 'metrics')).text(), /# TYPE/)
  // The API answers for its own paths (and wants a token), not the console.
  for (const p of ['api/v1/openapi.json', 'api/v1/registrations', 'api/v1/no-such-route']) {
    const res = await r.get(url + p)
    assert.equal(res.status(), 401, p)
    assert.match(res.headers()['content-type'], /application\/json/, p)
  }
  assert.equal((await r.get(url + 'no-such-page')).status(), 404)
})

test('login, catalogue with risk badges, logout', async () => {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 720 } })
  ctx.setDefaultTimeout(STEP)
  contexts.push(ctx)
  const page = await ctx.newPage()
  await page.goto(url)
  await page.getByLabel('Username').fill('alice')
  await page.getByLabel('Password').fill('wrong-password')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('alert').filter({ hasText: 'invalid username or password' }).waitFor()
  await shot(page, 'login', { docs: true })
  await page.getByLabel('Password').fill(PW)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('heading', { name: 'Functions' }).waitFor()
  for (const cat of ['economy', 'mail', 'ops', 'player']) await page.getByRole('heading', { name: cat }).waitFor()
  const ban = page.locator('.card', { hasText: 'player.ban' })
  assert.equal(await ban.locator('.risk-high').textContent(), 'HIGH')
  await assertFits(page, 'functions')
  await shot(page, 'functions', { docs: true })
  // The access token is renewed with the refresh token before it expires:
  // make it look about to expire, and the next call rotates the pair. Two
  // tabs share the session and both keep working after the renewal. Both
  // renew at once: the cross-tab lock in session.ts serialises them, and
  // when the second tab still reads the spent token (localStorage reaches
  // other tab processes asynchronously) the server's reuse grace rotates it
  // again instead of revoking the session (docs/console.md).
  const tab2 = await ctx.newPage()
  await tab2.goto(url + '#/jobs')
  await tab2.getByRole('heading', { name: 'Jobs' }).waitFor() // signed in already
  const before = await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem('croupier.session'))
    localStorage.setItem('croupier.session', JSON.stringify({ ...s, expiresAt: Date.now() }))
    return s.refresh
  })
  await Promise.all([page.reload(), tab2.reload()])
  await page.locator('.card', { hasText: 'player.get' }).waitFor()
  await tab2.getByRole('heading', { name: 'Jobs' }).waitFor()
  const renewed = await page.evaluate(() => JSON.parse(localStorage.getItem('croupier.session')))
  assert.notEqual(renewed.refresh, before)
  assert.ok(renewed.expiresAt > Date.now() + 60_000)
  await page.goto(url + '#/approvals') // the renewed session still works in both tabs
  await page.getByRole('heading', { name: 'Approvals' }).waitFor()
  await tab2.getByRole('button', { name: 'Refresh' }).click()
  assert.equal(await tab2.getByRole('alert').count(), 0)
  // alice has no audit:read and no user:admin: those pages are not offered.
  const nav = page.getByRole('navigation', { name: 'Pages' })
  assert.equal(await nav.getByRole('link', { name: 'Audit' }).count(), 0)
  assert.equal(await nav.getByRole('link', { name: 'Users & roles' }).count(), 0)
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.getByRole('button', { name: 'Sign in' }).waitFor()
  await tab2.getByRole('button', { name: 'Sign in' }).waitFor() // every tab is signed out
  await page.reload()
  await page.getByRole('button', { name: 'Sign in' }).waitFor() // the session is gone
})

test('invoke player.get through the generated form; browser and server errors land on the field', async () => {
  const page = await signIn('alice')
  await page.goto(url + '#/functions/player.get')
  await page.getByRole('heading', { name: 'Get player' }).waitFor()
  const pid = page.locator('#root_player_id')
  await pid.fill('p1')
  await page.getByRole('button', { name: 'Invoke', exact: true }).click()
  const result = page.getByTestId('result')
  await result.getByRole('heading', { name: 'Success' }).waitFor()
  await result.getByText('"p1"').first().waitFor()
  await result.getByText('served by', { exact: false }).waitFor()
  await assertFits(page, 'invoke result')
  await shot(page, 'invoke-result', { docs: true })

  // Browser validation: the schema's pattern, under the field, nothing sent.
  await pid.fill('nobody')
  await page.getByRole('button', { name: 'Invoke', exact: true }).click()
  const fieldErrors = page.locator('.form-group:has(#root_player_id) .error-detail')
  await fieldErrors.filter({ hasText: 'pattern' }).waitFor()
  assert.equal(await result.count(), 0, 'an invalid payload was sent')
  await shot(page, 'invoke-inline-error', { docs: true })

  // Without browser validation the server refuses it; its JSON pointer
  // puts the reason on the same field, and the error box shows code and status.
  await page.getByLabel('Validate in the browser', { exact: false }).uncheck()
  await page.getByRole('button', { name: 'Invoke', exact: true }).click()
  await page.getByRole('alert').filter({ hasText: '400 INVALID_PAYLOAD' }).waitFor()
  await fieldErrors.filter({ hasText: "'nobody' does not match pattern" }).waitFor() // the server's reason, not ajv's
  assert.equal(await fieldErrors.filter({ hasText: 'must match pattern' }).count(), 0)
  assert.deepEqual(page.errors, [])
})

test('routing: broadcast shows a per-instance table, targeted picks an instance; the CLI equivalent', async () => {
  const page = await signIn('alice')
  await page.goto(url + '#/functions/game.stats')
  await page.getByRole('heading', { name: 'Instance stats' }).waitFor()
  const routing = page.getByRole('combobox', { name: 'Routing' })
  await routing.selectOption('broadcast')
  await page.getByRole('button', { name: 'Invoke', exact: true }).click()
  const table = page.getByTestId('result').getByRole('table', { name: 'Per instance' })
  await table.getByRole('cell', { name: 'dev-agent/demo-1' }).waitFor()
  await routing.selectOption('targeted')
  await page.getByRole('combobox', { name: 'Instance' }).selectOption('dev-agent/demo-1')
  await page.getByRole('button', { name: 'Invoke', exact: true }).click()
  await page.getByTestId('result').getByText('served by dev-agent/demo-1').waitFor()
  await routing.selectOption('hash')
  await page.getByLabel('Hash key').fill('p42')
  await page.getByRole('button', { name: 'Invoke', exact: true }).click()
  await page.getByTestId('result').getByText('served by dev-agent/demo-1').waitFor()
  await routing.selectOption('targeted')
  await page.getByRole('combobox', { name: 'Instance' }).selectOption('dev-agent/demo-1')
  await page.getByText('CLI and curl equivalents').click()
  await page.getByText("croupier invoke game.stats --game 'demo' --env 'dev' --payload '{}' --route targeted --target 'dev-agent/demo-1'").waitFor()
  await shot(page, 'invoke-targeted')
})

async function startMail(page, delayMs) {
  await page.goto(url + '#/functions/mail.broadcast')
  await page.getByRole('heading', { name: 'Broadcast mail' }).waitFor()
  await page.locator('#root_subject').fill('Welcome')
  await page.locator('#root_body').fill('Have fun')
  // recipients has minItems 1: the form starts with one item.
  await page.locator('#root_recipients_0').fill('*')
  await page.locator('#root_delay_ms').fill(String(delayMs))
  await page.getByRole('button', { name: 'Start job' }).click()
  await page.waitForURL(/#\/jobs\/.+/)
  return decodeURIComponent(page.url().split('#/jobs/')[1])
}

test('mail.broadcast: the progress bar reaches 100 %; replay', async () => {
  const page = await signIn('alice')
  await startMail(page, 10)
  await page.getByTestId('job-percent').filter({ hasText: '100 %' }).waitFor()
  await page.getByTestId('job-status').filter({ hasText: 'completed' }).waitFor()
  assert.equal(await page.locator('#job-progress').getAttribute('value'), '100')
  await page.getByTestId('job-log').getByText('done: 100 sent, 0 skipped').waitFor()
  await assertFits(page, 'job')
  await shot(page, 'job-done', { docs: true })
  const events = await page.getByTestId('job-log').locator('li').count()
  await page.getByRole('button', { name: 'Replay events' }).click()
  await page.getByTestId('job-percent').filter({ hasText: '100 %' }).waitFor()
  await page.getByTestId('job-log').getByText('done: 100 sent, 0 skipped').waitFor()
  assert.equal(await page.getByTestId('job-log').locator('li').count(), events)
})

test('cancel a long job', async () => {
  const page = await signIn('alice')
  const id = await startMail(page, 3000) // 100 players × 3 s
  await page.getByTestId('job-status').filter({ hasText: /running|pending/ }).waitFor()
  // The jobs list follows a running job's progress.
  await page.goto(url + '#/jobs')
  await page.waitForFunction((id) => Number(document.querySelector(`progress[aria-label="progress of ${id}"]`)?.value) > 0, id, { timeout: STEP })
  await page.getByRole('link', { name: id }).click()
  await page.getByRole('button', { name: 'Cancel job' }).click()
  await page.getByTestId('job-status').filter({ hasText: 'canceled' }).waitFor()
  assert.equal(await page.getByRole('button', { name: 'Cancel job' }).count(), 0)
  await shot(page, 'job-canceled')
})

test('player.ban: requested by alice, approved by bob in another browser context', async () => {
  const alice = await signIn('alice')
  await alice.goto(url + '#/functions/player.ban')
  await alice.getByRole('heading', { name: 'Ban player' }).waitFor()
  // sensitive_fields: the reason is typed like a password.
  assert.equal(await alice.locator('#root_reason').getAttribute('type'), 'password')
  await alice.locator('#root_player_id').fill('p7')
  await alice.locator('#root_reason').fill('botting')
  await alice.locator('#root_duration_seconds').fill('3600')
  await alice.getByRole('button', { name: 'Invoke', exact: true }).click()
  const dialog = alice.getByRole('dialog')
  await dialog.getByText('Ban this player?').waitFor()
  await dialog.getByRole('button', { name: 'Confirm' }).click()
  const result = alice.getByTestId('result')
  await result.getByRole('heading', { name: 'Waiting for approval' }).waitFor()
  const id = (await result.locator('code').textContent()).trim()
  assert.match(id, /\S+/)

  // Alice sees her request waiting, never approvable by her.
  await alice.goto(url + '#/approvals')
  const mine = alice.getByTestId(`approval-${id}`)
  await mine.getByText('Your request: waiting for another approver.').waitFor()
  assert.equal(await mine.getByRole('button', { name: 'Approve' }).count(), 0)

  const bob = await signIn('bob')
  await bob.goto(url + '#/approvals')
  const card = bob.getByTestId(`approval-${id}`)
  await card.getByText('botting', { exact: false }).or(card.getByText('***')).first().waitFor()
  await shot(bob, 'approvals', { docs: true })
  await card.getByLabel('Comment or reason', { exact: false }).fill('checked with support')
  // The decision lands after bob has moved the filter to "any" (the approve
  // call is held until that list has been answered, showing the request
  // still pending): the list the page reloads then is the one it shows, and
  // no older answer overwrites it (useLoad in ui.tsx).
  let release
  const held = new Promise((ok) => (release = ok))
  await bob.route((u) => u.pathname.endsWith(':approve'), async (route) => {
    await held
    await route.continue()
  })
  await card.getByRole('button', { name: 'Approve' }).click()
  const anyStatus = bob.waitForResponse((r) => /\/api\/v1\/approvals\?/.test(r.url()) && !r.url().includes('status='))
  await bob.getByRole('combobox', { name: 'Status' }).selectOption('')
  await anyStatus
  release()
  const decided = bob.getByTestId(`approval-${id}`)
  await decided.getByText('Decided by', { exact: false }).waitFor()
  const jobLink = decided.getByRole('link')
  await jobLink.waitFor()
  await jobLink.click()
  await bob.getByTestId('job-status').filter({ hasText: 'completed' }).waitFor()
})

test('audit: rows with masked payloads, and the chain verifies', async () => {
  const page = await signIn('admin', ADMIN_PW)
  await page.goto(url + '#/audit')
  await page.getByRole('heading', { name: 'Audit' }).waitFor()
  const rows = page.locator('table.audit tbody tr')
  await rows.first().waitFor()
  assert.ok((await rows.count()) > 0)
  await page.getByLabel('Action').fill('approval.request')
  await page.getByRole('button', { name: 'Filter' }).click()
  const ban = rows.filter({ hasText: 'player.ban' }).first()
  await ban.waitFor()
  await ban.getByText('"***"').waitFor() // /reason is a sensitive field
  assert.equal(await ban.getByText('botting').count(), 0)
  await page.getByLabel('Action').fill('')
  await page.getByRole('button', { name: 'Filter' }).click()
  await page.getByRole('button', { name: 'Verify chain' }).click()
  await page.getByTestId('verify-result').filter({ hasText: /^Chain intact: \d+ rows checked$/ }).waitFor()
  await shot(page, 'audit', { docs: true })
})

test('a viewer sees no invoke button and gets the 403 when forcing calls', async () => {
  const page = await signIn('vera')
  await page.goto(url + '#/functions/player.get')
  await page.getByRole('heading', { name: 'Get player' }).waitFor()
  await page.getByTestId('no-invoke').waitFor()
  assert.equal(await page.getByRole('button', { name: 'Invoke', exact: true }).count(), 0)
  assert.equal(await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Audit' }).count(), 0)
  await shot(page, 'viewer')
  // Forcing the page the navigation hides: the server's 403 names the permission.
  await page.goto(url + '#/audit')
  const alert = page.getByRole('alert').filter({ hasText: '403 PERMISSION_DENIED' })
  await alert.waitFor()
  await alert.getByText('audit:read').first().waitFor()
  await shot(page, 'viewer-403', { docs: true })
  // Forcing the invoke with the viewer's token: the server still refuses.
  const res = await page.evaluate(async () => {
    const t = JSON.parse(localStorage.getItem('croupier.session')).access
    const r = await fetch('/api/v1/functions/player.get:invoke', {
      method: 'POST',
      headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ game_id: 'demo', env: 'dev', payload: { player_id: 'p1' } }),
    })
    return { status: r.status, body: await r.json() }
  })
  assert.equal(res.status, 403)
  assert.match(res.body.message, /function:invoke/)
})

test('gateway: the page is offered when gateway.stats is registered and shows a row per gateway instance', async () => {
  await poll('gateway.stats answers', () => cli(['invoke', 'gateway.stats', '--game', 'demo', '--env', 'dev']))
  const page = await signIn('alice')
  // croupier dev's gateway registers gateway.stats through dev's agent (instance gateway-1).
  const link = page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Gateway' })
  await link.click()
  await page.getByRole('heading', { name: 'Gateway' }).waitFor()
  const table = page.getByTestId('gateways')
  const row = table.getByRole('row', { name: /gateway-1/ })
  await row.waitFor()
  assert.match(await row.getByTestId('gateway-online').innerText(), /^\d+$/)
  await page.getByRole('button', { name: 'Refresh' }).click()
  await page.getByRole('status').filter({ hasText: /^1 gateway instance, \d+ online$/ }).waitFor()
  await assertFits(page, 'gateway')
  await shot(page, 'gateway')
  assert.deepEqual(page.errors, [])
})

test('agents and instances live over SSE; users, fleets; dark mode; 1280×720', async () => {
  const page = await signIn('admin', ADMIN_PW)
  await page.goto(url + '#/agents')
  await page.getByRole('status').getByText('live').waitFor()
  await page.getByTestId('instances').getByText('demo-1').first().waitFor()
  await assertFits(page, 'agents')
  await shot(page, 'agents', { docs: true })
  await page.goto(url + '#/users')
  await page.getByRole('cell', { name: 'vera', exact: true }).waitFor()
  // Add a user and grant a role through the forms.
  const add = page.getByRole('form', { name: 'Add user' })
  await add.getByLabel('Username').fill('carol')
  await add.getByLabel('Password').fill(PW)
  await add.getByRole('button', { name: 'Add' }).click()
  await page.getByRole('cell', { name: 'carol', exact: true }).waitFor()
  const grant = page.getByRole('form', { name: 'Grant role' })
  await grant.getByLabel('User').fill('carol')
  await grant.getByLabel('Role').selectOption('auditor')
  await grant.getByLabel('Scope').fill('game:demo/*')
  await grant.getByRole('button', { name: 'Grant' }).click()
  const carol = page.getByRole('row', { name: /carol/ })
  await carol.getByText('auditor @ game:demo/*').waitFor()
  await carol.getByRole('button', { name: 'revoke auditor on game:demo/* from carol' }).click()
  await carol.getByText('auditor @ game:demo/*').waitFor({ state: 'detached' })
  await carol.getByRole('button', { name: 'Disable' }).click()
  await carol.getByRole('cell', { name: 'disabled' }).waitFor()
  await carol.getByRole('button', { name: 'Enable' }).click()
  await carol.getByRole('cell', { name: 'active' }).waitFor()
  const create = page.getByRole('form', { name: 'Create role' })
  await create.getByLabel('Name').fill('support')
  await create.getByLabel('Permissions', { exact: false }).fill('job:read, audit:read')
  await create.getByRole('button', { name: 'Create' }).click()
  const support = page.getByRole('row', { name: /^support / })
  await support.getByRole('cell', { name: 'audit:read, job:read' }).waitFor() // stored sorted
  await support.getByRole('button', { name: 'Delete' }).click()
  await support.waitFor({ state: 'detached' })
  await assertFits(page, 'users')
  await shot(page, 'users')
  await page.goto(url + '#/fleets')
  await page.getByRole('cell', { name: 'demo-fleet' }).waitFor()
  await page.locator('tbody a').first().click()
  await page.getByRole('heading', { name: 'Processes' }).waitFor()
  await page.getByRole('cell', { name: 'ACTIVE', exact: false }).first().waitFor()
  await page.getByRole('button', { name: /^log stdout of / }).first().click()
  await page.getByText(/^stdout of dev-agent\.\S+ \(\d+ bytes/).waitFor()
  // The session search takes the GSE filter grammar; a bad filter shows the server's 400.
  await page.getByLabel('Filter').fill('hasAvailablePlayerSessions=')
  await page.getByRole('button', { name: 'Search' }).click()
  await page.getByRole('alert').filter({ hasText: /^400 / }).waitFor()
  // A session with a player, made with the CLI, then found and opened here.
  const fleetId = decodeURIComponent(page.url().split('#/fleets/')[1])
  cli(['session', 'create', '--fleet', fleetId, '--max-players', '4', '--name', 'lobby', '--id', 'console-s1'])
  await poll('p1 joins console-s1', () => cli(['player', 'join', 'console-s1', 'p1']))
  await page.getByLabel('Filter').fill('hasAvailablePlayerSessions=true')
  await page.getByRole('button', { name: 'Search' }).click()
  const lobby = page.getByRole('row', { name: /console-s1/ })
  await lobby.getByRole('cell', { name: '1/4' }).waitFor()
  await lobby.getByRole('button', { name: 'Players' }).click()
  await page.getByRole('heading', { name: 'Player sessions' }).waitFor()
  await page.getByRole('cell', { name: 'p1', exact: true }).waitFor()
  await assertFits(page, 'fleet')
  await shot(page, 'fleet')
  await page.goto(url + '#/jobs')
  await page.getByRole('cell', { name: 'mail.broadcast' }).first().waitFor()
  await assertFits(page, 'jobs')
  await shot(page, 'jobs')

  const dark = await signIn('alice', PW, { colorScheme: 'dark' })
  await dark.goto(url + '#/functions/player.grant_item')
  await dark.getByRole('heading', { name: 'Grant item' }).waitFor()
  const bg = await dark.evaluate(() => getComputedStyle(document.body).backgroundColor)
  assert.equal(bg, 'rgb(15, 20, 25)')
  // Keyboard: the form is reachable and submittable without a mouse.
  await dark.locator('#root_player_id').focus()
  await dark.keyboard.type('p2')
  await dark.keyboard.press('Tab')
  await dark.keyboard.type('sword')
  await dark.keyboard.press('Tab')
  await dark.keyboard.type('1')
  await dark.keyboard.press('Enter')
  await dark.getByTestId('result').getByRole('heading', { name: 'Success' }).waitFor()
  await shot(dark, 'dark', { docs: true })
})
