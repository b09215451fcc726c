// The web UI end to end in Debian's chromium, driven by playwright-core (crates/tresor/tests/
// ui_browser.rs starts the servers and runs this). Every step is bounded in time; any failed
// step, page error, CSP violation or request to another host fails the run (exit 1).
//
// Env: TRESOR_ADDR (a sealed, uninitialised `tresor server` with ui = true), IDP_ADDR (an
// oidc-provider-mock), SCREENSHOTS (a
// directory), BROWSER_PID_FILE (where chromium's PID goes, so the harness can kill it),
// NODE_PATH (playwright-core's node_modules), CHROMIUM (the browser executable).
import { createRequire } from 'node:module';
import { writeFileSync, mkdirSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';

const require = createRequire(join(process.env.NODE_PATH, 'x.js'));
const { chromium } = require('playwright-core');

const ADDR = process.env.TRESOR_ADDR;
const SHOTS = process.env.SCREENSHOTS;
const ORIGIN = new URL(ADDR).origin;
mkdirSync(SHOTS, { recursive: true });

const problems = [];
const results = [];
let shotN = 0;
let browser;
let server;

async function step(name, ms, fn) {
  const t0 = Date.now();
  let timer;
  try {
    await Promise.race([fn(), new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms`)), ms); })]);
  } catch (e) {
    results.push(`FAIL ${name} (${Date.now() - t0} ms): ${e.stack || e}`);
    throw new Error(`step ${name}: ${e.message}`);
  } finally {
    clearTimeout(timer);
  }
  results.push(`ok   ${name} (${Date.now() - t0} ms)`);
}

function expect(cond, what) {
  if (!cond) throw new Error('expected ' + what);
}

async function shot(page, name) {
  // Accessibility on every screen: each control has a label, and nothing is focusable that
  // keyboard users cannot see.
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el.type !== 'hidden' && !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
    .map((el) => el.outerHTML.slice(0, 80)));
  expect(unlabelled.length === 0, `${name}: every control labelled, not ${unlabelled}`);
  shotN += 1;
  await page.screenshot({ path: join(SHOTS, `${String(shotN).padStart(2, '0')}-${name}.png`), fullPage: true });
}

// The API directly (setup and cross-checks), as any client would.
async function api(method, path, token, body) {
  const r = await fetch(`${ADDR}/v1/${path}`, {
    method,
    headers: { ...(token ? { 'X-Vault-Token': token } : {}), 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(20000),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}
async function must(method, path, token, body) {
  const r = await api(method, path, token, body);
  if (r.status >= 400) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

function watch(page, idp) {
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (idp && page.url().startsWith(idp)) return; // the provider's page, not ours
    const t = m.text();
    if (/Content Security Policy|Trusted Type/i.test(t)) problems.push('CSP: ' + t);
    if (m.type() === 'error' && !/status of 4\d\d/.test(t)) problems.push('console error: ' + t);
  });
  page.on('request', (r) => {
    const u = r.url();
    // In the OIDC step the browser goes to the identity provider's page (which is not ours).
    if (idp && (new URL(u).origin === idp || page.url().startsWith(idp))) return;
    if (!u.startsWith('data:') && new URL(u).origin !== ORIGIN) problems.push('request to another host: ' + u);
  });
  page.on('dialog', (d) => d.accept());
  page.setDefaultTimeout(10000);
}

const main = (page) => page.locator('main');
const heading = (page, text) => page.locator('main h1', { hasText: text }).waitFor();

try {
  server = await chromium.launchServer({ executablePath: process.env.CHROMIUM, args: ['--no-sandbox', '--disable-gpu'], timeout: 30000 });
  writeFileSync(process.env.BROWSER_PID_FILE, String(server.process().pid));
  browser = await chromium.connect(server.wsEndpoint(), { timeout: 30000 });
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await ctx.newPage();
  watch(page);
  let keys = [];
  let root = '';

  // First load: every byte the browser receives (compressed, headers included) for /ui/.
  await step('first load under 300 KB', 20000, async () => {
    let bytes = 0;
    const urls = [];
    const done = [];
    const onDone = (req) => done.push(req.sizes().then((s) => { bytes += s.responseBodySize + s.responseHeadersSize; urls.push(req.url()); }));
    page.on('requestfinished', onDone);
    await page.goto(ADDR + '/ui/', { waitUntil: 'networkidle' });
    await heading(page, 'Initialize Tresor');
    await Promise.all(done);
    page.off('requestfinished', onDone);
    console.log(`first load: ${bytes} bytes in ${urls.length} responses`);
    expect(bytes > 0 && bytes < 300 * 1024, `under 300 KB, got ${bytes}`);
  });

  await step('init through the UI', 20000, async () => {
    await shot(page, 'init');
    await page.getByLabel('Key shares').fill('3');
    await page.getByLabel('Key threshold').fill('2');
    await page.getByRole('button', { name: 'Initialize' }).click();
    await heading(page, 'Initialized');
    keys = await page.locator('#unseal-keys .key-hex').allTextContents();
    root = (await page.locator('#root-token').textContent()).trim();
    expect(keys.length === 3 && root.length > 10, '3 keys and a root token');
    await shot(page, 'init-keys');
    await page.getByRole('button', { name: 'Continue to unseal' }).click();
  });

  await step('unseal through the UI', 20000, async () => {
    await heading(page, 'Unseal Tresor');
    await shot(page, 'unseal');
    await page.getByLabel('Unseal key').fill(keys[0]);
    await page.getByLabel('Unseal key').press('Enter');
    await page.locator('#unseal-progress', { hasText: '1 of 2' }).waitFor();
    expect((await must('GET', 'sys/seal-status')).sealed === true, 'still sealed after one key');
    await shot(page, 'unseal-progress');
    await page.getByLabel('Unseal key').fill(keys[2]);
    await page.getByRole('button', { name: 'Unseal', exact: true }).click();
    await heading(page, 'Sign in');
    expect((await must('GET', 'sys/seal-status')).sealed === false, 'unsealed');
    await shot(page, 'login');
  });

  await step('setup through the API', 30000, async () => {
    await must('POST', 'sys/auth/userpass', root, { type: 'userpass' });
    await must('POST', 'sys/mounts/secret', root, { type: 'kv', options: { version: '2' } });
    await must('POST', 'sys/mounts/pki', root, { type: 'pki', config: { max_lease_ttl: '87600h' } });
    await must('POST', 'pki/root/generate/internal', root, { common_name: 'UI Test Root', ttl: '8760h', issuer_name: 'ui-root' });
    await must('POST', 'pki/roles/web', root, { allowed_domains: 'example.com', allow_subdomains: true, max_ttl: '72h' });
    await must('PUT', 'sys/policies/acl/app', root, { policy: `
path "secret/data/app/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "secret/metadata/app/*" { capabilities = ["read", "list", "delete"] }
path "secret/delete/app/*" { capabilities = ["update"] }
path "secret/undelete/app/*" { capabilities = ["update"] }
path "secret/destroy/app/*" { capabilities = ["update"] }
path "secret/metadata/" { capabilities = ["list"] }
path "secret/data/team/deep/config" { capabilities = ["read"] }
path "sys/policies/acl" { capabilities = ["list"] }
path "sys/policies/acl/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "pki/*" { capabilities = ["create", "read", "update", "list"] }
path "sys/leases/lookup" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
` });
    await must('POST', 'pki/roles/leased', root, { allowed_domains: 'example.com', allow_subdomains: true, max_ttl: '72h', generate_lease: true });
    await must('POST', 'auth/userpass/users/alice', root, { password: 'wonderland-7', policies: 'app' });
    await must('POST', 'secret/data/team/deep/config', root, { data: { owner: 'ops' } });
    await must('POST', 'secret/data/hidden/x', root, { data: { a: 1 } });
  });

  await step('log in with userpass', 20000, async () => {
    await page.getByLabel('Method').selectOption('userpass');
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('wonderland-7');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await heading(page, 'Secrets engines');
    const stored = await page.evaluate(() => [localStorage.length, sessionStorage.getItem('tresor.token'), location.href]);
    expect(stored[0] === 0 && stored[1] === null && !stored[2].includes('hvs.'), `no token stored or in the URL (${stored})`);
    await shot(page, 'secrets-engines');
  });

  await step('KV navigation from the resultant ACL', 20000, async () => {
    await main(page).getByRole('link', { name: 'secret/' }).click();
    await page.locator('#kv-list').waitFor();
    const names = await page.locator('#kv-list tbody tr td:first-child').allTextContents();
    expect(names.includes('team/') && !names.includes('hidden/'), `team/ shown and hidden/ not: ${names}`);
    await shot(page, 'kv-root');
    await page.getByRole('link', { name: 'team/' }).click();
    // alice cannot list secret/metadata/team/: the path comes from her policy.
    await main(page).getByText('You cannot list this folder').waitFor();
    await page.getByRole('link', { name: 'deep/' }).click();
    await page.getByRole('link', { name: 'config' }).click();
    await page.locator('#secret-json', { hasText: '"owner": "ops"' }).waitFor();
    await shot(page, 'kv-acl-only-path');
  });

  await step('KV create', 20000, async () => {
    await page.goto(`${ADDR}/ui/#/secret-new?mount=secret%2F&path=app%2F`);
    await page.getByLabel('Path').fill('app/db');
    await page.getByLabel('Data (JSON object)').fill('{"user": "u1", "password": "p1"}');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#version-state', { hasText: 'Version 1' }).waitFor();
    await page.locator('#secret-json', { hasText: '"user": "u1"' }).waitFor();
    await shot(page, 'kv-created');
  });

  await step('KV edit as JSON', 20000, async () => {
    await page.getByRole('button', { name: 'Edit' }).click();
    await page.getByLabel('Data (JSON object)').fill('{"user": "u2", "password": "p2"}');
    await page.getByRole('button', { name: 'Save as a new version' }).click();
    await page.locator('#version-state', { hasText: 'Version 2' }).waitFor();
    await page.locator('#secret-json', { hasText: '"user": "u2"' }).waitFor();
    expect(await page.locator('#versions tbody tr').count() === 2, 'two versions listed');
    const r = await must('GET', 'secret/data/app/db', root);
    expect(r.data.data.user === 'u2' && r.data.metadata.version === 2, 'the server has version 2');
    await shot(page, 'kv-edited');
  });

  await step('KV versions: read, delete, undelete, destroy', 30000, async () => {
    await page.getByRole('link', { name: 'View version 1' }).click();
    await page.locator('#secret-json', { hasText: '"user": "u1"' }).waitFor();
    await shot(page, 'kv-version-1');
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.locator('#version-state', { hasText: 'deleted at' }).waitFor();
    await shot(page, 'kv-version-1-deleted');
    await page.getByRole('button', { name: 'Undelete' }).click();
    await page.locator('#secret-json', { hasText: '"user": "u1"' }).waitFor();
    await page.getByRole('button', { name: 'Destroy' }).click();
    await page.locator('#version-state', { hasText: 'destroyed' }).waitFor();
    const m = await must('GET', 'secret/metadata/app/db', root);
    expect(m.data.versions['1'].destroyed === true && m.data.versions['2'].destroyed === false, 'version 1 destroyed on the server');
    await shot(page, 'kv-version-1-destroyed');
  });

  await step('KV delete', 20000, async () => {
    await page.goto(`${ADDR}/ui/#/secret?mount=secret%2F&path=app%2Fdb`);
    await page.locator('#version-state', { hasText: 'Version 2' }).waitFor();
    await page.getByRole('button', { name: 'Delete all versions and metadata' }).click();
    await page.locator('main h1').filter({ hasText: /^secret\/app\/$/ }).waitFor();
    expect((await api('GET', 'secret/metadata/app/db', root)).status === 404, 'the secret is gone');
    await shot(page, 'kv-deleted');
  });

  await step('policy with a syntax error shows the server error', 20000, async () => {
    const bad = 'path "secret/*" {\n  capabilities = ["read"\n}\n';
    const want = (await api('PUT', 'sys/policies/acl/broken', root, { policy: bad })).json.errors;
    expect(Array.isArray(want) && want.length > 0, 'the server refuses the policy');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Policies' }).click();
    await page.locator('#policy-list').waitFor();
    await shot(page, 'policies');
    await main(page).getByLabel('Name').fill('broken');
    await main(page).getByLabel('Name').press('Enter');
    await page.getByLabel('Policy (HCL or JSON)').fill(bad);
    await page.getByRole('button', { name: 'Save' }).click();
    const box = page.locator('.errors[role=alert]');
    await box.waitFor();
    const shown = await box.locator('li').allTextContents();
    expect(JSON.stringify(shown) === JSON.stringify(want), `the server's errors ${JSON.stringify(want)}, shown ${JSON.stringify(shown)}`);
    await shot(page, 'policy-syntax-error');
    await page.getByLabel('Policy (HCL or JSON)').fill('path "secret/data/broken/*" {\n  capabilities = ["read"]\n}\n');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('main h1', { hasText: 'Policy broken' }).waitFor();
    await page.locator('.live', { hasText: 'Saved the policy broken' }).waitFor();
    expect((await must('GET', 'sys/policies/acl/broken', root)).data.policy.includes('broken/*'), 'the fixed policy saved');
  });

  await step('capabilities checker', 15000, async () => {
    await page.getByRole('link', { name: 'Capabilities' }).click();
    await page.getByLabel('Path').fill('secret/data/app/x');
    await page.getByLabel('Path').press('Enter');
    await page.locator('#capabilities-out .badge').first().waitFor();
    const caps = await page.locator('#capabilities-out .badge').allTextContents();
    expect(caps.join(',') === 'create,delete,list,read,update', `alice's capabilities: ${caps}`);
    await shot(page, 'capabilities');
  });

  await step('PKI: issuers, roles and an issued certificate', 30000, async () => {
    await page.getByRole('link', { name: 'PKI' }).click();
    await page.locator('#pki-issuers', { hasText: 'ui-root' }).waitFor();
    await page.locator('#pki-roles', { hasText: 'web' }).waitFor();
    await page.getByLabel('Role').selectOption('web');
    await page.getByLabel('Common name').fill('www.example.com');
    await page.getByLabel('TTL').fill('1h');
    await page.getByRole('button', { name: 'Issue' }).click();
    const pem = await page.locator('#issued-certificate').textContent();
    expect(pem.startsWith('-----BEGIN CERTIFICATE-----'), 'a PEM certificate');
    expect((await page.locator('#issued-key').textContent()).includes('PRIVATE KEY-----'), 'the private key, once');
    expect(!(await page.locator('#issued').textContent()).includes('[object'), 'no stringified objects');
    const serial = (await page.locator('#issued .note').textContent()).match(/serial ([0-9a-f:]+)/)[1];
    const onServer = await must('GET', `pki/cert/${serial}`, root);
    expect(onServer.data.certificate.trim() === pem.trim(), 'the certificate the server stored');
    await shot(page, 'pki-issued');
  });

  await step('leases: look up and revoke', 30000, async () => {
    await page.getByLabel('Role').selectOption('leased');
    await page.getByLabel('Common name').fill('api.example.com');
    await page.getByRole('button', { name: 'Issue' }).click();
    const lease = (await page.locator('#issued-lease').textContent()).trim();
    expect(lease.startsWith('pki/issue/leased/'), 'a lease for the certificate: ' + lease);
    await page.locator('#issued-lease').click();
    await heading(page, 'Leases');
    await page.getByLabel('Lease ID', { exact: true }).press('Enter');
    await page.locator('#lease-out pre', { hasText: lease }).waitFor();
    await shot(page, 'lease-lookup');
    await page.getByRole('button', { name: 'Revoke this lease' }).click();
    await page.locator('#lease-out', { hasText: 'Revoked' }).waitFor();
    const after = await api('PUT', 'sys/leases/lookup', root, { lease_id: lease });
    expect(after.status === 400, `the lease is gone on the server (${after.status})`);
    await shot(page, 'lease-revoked');
  });

  await step('console', 15000, async () => {
    await page.getByRole('link', { name: 'Console' }).click();
    const cmd = page.getByLabel('Command');
    await cmd.fill('write secret/data/app/c data={"k":"from-console"}');
    await cmd.press('Enter');
    await page.locator('#console-output', { hasText: '"version": 1' }).waitFor();
    await cmd.fill('read secret/data/app/c');
    await cmd.press('Enter');
    await page.locator('#console-output', { hasText: '"k": "from-console"' }).waitFor();
    await cmd.fill('read secret/data/hidden/x');
    await cmd.press('Enter');
    await page.locator('#console-output', { hasText: '"permission denied"' }).waitFor();
    await shot(page, 'console');
  });

  await step('keyboard-only login', 20000, async () => {
    const kctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    const kp = await kctx.newPage();
    watch(kp);
    await kp.goto(ADDR + '/ui/');
    await heading(kp, 'Sign in');
    const focused = () => kp.evaluate(() => {
      const el = document.activeElement;
      return el && el.labels && el.labels[0] ? el.labels[0].textContent : el.tagName;
    });
    // The method chooser has focus on arrival; the arrow key picks userpass.
    expect(await focused() === 'Method', 'focus starts on Method, got ' + await focused());
    await kp.keyboard.press('ArrowDown');
    await kp.keyboard.press('Tab');
    expect(await focused() === 'Mount path', 'Tab goes to Mount path, got ' + await focused());
    await kp.keyboard.press('Tab');
    expect(await focused() === 'Username', 'then Username, got ' + await focused());
    await kp.keyboard.type('alice');
    await kp.keyboard.press('Tab');
    expect(await focused() === 'Password', 'then Password');
    await kp.keyboard.type('wonderland-7');
    const ring = await kp.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    expect(ring !== 'none', 'a visible focus ring');
    await shot(kp, 'keyboard-login');
    await kp.keyboard.press('Enter');
    await heading(kp, 'Secrets engines');
    await shot(kp, 'keyboard-logged-in');
    // Logging out revokes the token this sign-in got.
    const [revoke] = await Promise.all([
      kp.waitForRequest((r) => r.url().endsWith('/v1/auth/token/revoke-self')),
      kp.getByRole('button', { name: 'Log out' }).click(),
    ]);
    const signedIn = revoke.headers()['x-vault-token'];
    await heading(kp, 'Sign in');
    const looked = await api('POST', 'auth/token/lookup', root, { token: signedIn });
    expect(signedIn && looked.status >= 400, `the signed-in token is revoked (${looked.status})`);
    await kctx.close();
  });

  await step('log out of a pasted token forgets it and does not revoke it', 20000, async () => {
    await must('POST', 'auth/token/create', root, { policies: ['app'], ttl: '1h' }).then(async (v) => {
      const pasted = v.auth.client_token;
      const pctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
      const pp = await pctx.newPage();
      watch(pp);
      let revoked = false;
      pp.on('request', (r) => { if (r.url().endsWith('/v1/auth/token/revoke-self')) revoked = true; });
      await pp.goto(ADDR + '/ui/');
      await heading(pp, 'Sign in');
      await pp.getByLabel('Token', { exact: true }).fill(pasted);
      await pp.getByRole('button', { name: 'Sign in' }).click();
      await heading(pp, 'Secrets engines');
      await pp.getByRole('button', { name: 'Log out' }).click();
      await heading(pp, 'Sign in');
      expect(!revoked, 'no revoke-self for a pasted token');
      const looked = await must('POST', 'auth/token/lookup', root, { token: pasted });
      expect(looked.data && looked.data.ttl > 0, 'the pasted token is still valid');
      await pctx.close();
    });
  });

  await step('LDAP sign-in with a group\'s policy', 30000, async () => {
    const base = process.env.LDAP_BASE;
    await must('POST', 'sys/auth/ldap', root, { type: 'ldap' });
    await must('POST', 'auth/ldap/config', root, {
      url: process.env.LDAP_URL, userdn: `ou=users,${base}`, userattr: 'uid',
      groupdn: `ou=groups,${base}`, groupfilter: '(&(objectClass=groupOfNames)(member={{.UserDN}}))', groupattr: 'cn',
      binddn: `cn=admin,${base}`, bindpass: 'adminpw',
    });
    await must('POST', 'auth/ldap/groups/devs', root, { policies: 'app' });
    const lctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    const lp = await lctx.newPage();
    watch(lp);
    await lp.goto(ADDR + '/ui/');
    await heading(lp, 'Sign in');
    await lp.getByLabel('Method').selectOption('ldap');
    await lp.getByLabel('Username').fill('alice');
    await lp.getByLabel('Password').fill('wrong');
    await lp.getByRole('button', { name: 'Sign in' }).click();
    await lp.getByRole('alert').filter({ hasText: 'failed to bind as user' }).waitFor();
    await shot(lp, 'ldap-wrong-password');
    await lp.getByLabel('Password').fill('alicepw');
    await lp.getByRole('button', { name: 'Sign in' }).click();
    await heading(lp, 'Secrets engines');
    const who = await lp.locator('#who').textContent();
    expect(who.includes('app') && who.includes('alice'), `signed in as alice with the group's policy: ${who}`);
    await shot(lp, 'ldap-logged-in');
    await lctx.close();
  });

  await step('OIDC login through the provider and the callback page', 40000, async () => {
    const IDP = new URL(process.env.IDP_ADDR).origin;
    const callback = `${ADDR}/ui/vault/auth/oidc/oidc/callback`;
    await must('POST', 'sys/auth/oidc', root, { type: 'oidc' });
    await must('PUT', 'auth/oidc/config', root, { oidc_discovery_url: IDP, oidc_client_id: 'tresor', oidc_client_secret: 's3cret', default_role: 'web' });
    await must('PUT', 'auth/oidc/role/web', root, { user_claim: 'sub', allowed_redirect_uris: [callback], token_policies: ['app'] });
    const octx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    const op = await octx.newPage();
    watch(op, IDP);
    await op.goto(ADDR + '/ui/');
    await op.getByLabel('Method').selectOption('oidc');
    await shot(op, 'oidc-login');
    await op.getByRole('button', { name: 'Sign in' }).click();
    await op.waitForURL((u) => u.origin === IDP);
    await op.locator('input[name=sub]').fill('carol');
    await op.getByRole('button', { name: 'Authorize' }).click();
    await heading(op, 'Secrets engines');
    const where = await op.evaluate(() => [location.pathname, location.search, localStorage.length, sessionStorage.length]);
    expect(where[0] === '/ui/' && where[1] === '' && where[2] === 0 && where[3] === 0, `the code is gone from the URL and nothing is stored (${where})`);
    expect((await op.locator('#who').textContent()).includes('app'), 'signed in with the role\'s policy');
    await shot(op, 'oidc-logged-in');
    await octx.close();
  });

  // Tresor as an OIDC provider: an application (at an address the browser never reaches: the
  // test answers its callback itself) sends the user to the provider's authorization_endpoint,
  // the UI signs alice in and sends the browser back with a code, which the application
  // exchanges with PKCE and its secret.
  await step('an application signs alice in through the OIDC provider page', 40000, async () => {
    const APP = 'http://127.0.0.1:9';
    const callback = `${APP}/callback`;
    await must('PUT', 'identity/oidc/key/web', root, { allowed_client_ids: ['*'] });
    await must('PUT', 'identity/oidc/scope/profile', root, { template: '{"entity_name": {{identity.entity.name}} }' });
    await must('PUT', 'identity/oidc/client/shop', root, { key: 'web', redirect_uris: [callback], assignments: ['allow_all'] });
    const client = (await must('GET', 'identity/oidc/client/shop', root)).data;
    await must('PUT', 'identity/oidc/provider/web', root, { issuer: ORIGIN, allowed_client_ids: [client.client_id], scopes_supported: ['profile'] });
    const conf = (await api('GET', 'identity/oidc/provider/web/.well-known/openid-configuration')).json;
    expect(conf.authorization_endpoint === `${ORIGIN}/ui/vault/identity/oidc/provider/web/authorize`, `authorization_endpoint ${conf.authorization_endpoint}`);
    const verifier = randomBytes(48).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const state = randomBytes(12).toString('hex');
    const nonce = randomBytes(12).toString('hex');
    const start = (redirect) => {
      const u = new URL(conf.authorization_endpoint);
      for (const [k, v] of Object.entries({ client_id: client.client_id, response_type: 'code', scope: 'openid profile', redirect_uri: redirect, state, nonce, code_challenge: challenge, code_challenge_method: 'S256' })) u.searchParams.set(k, v);
      return u.toString();
    };
    const signInAsAlice = async (p) => {
      await heading(p, 'Sign in');
      await p.getByLabel('Method').selectOption('userpass');
      await p.getByLabel('Username').fill('alice');
      await p.getByLabel('Password').fill('wonderland-7');
      await p.getByRole('button', { name: 'Sign in' }).click();
    };
    const actx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    const ap = await actx.newPage();
    watch(ap, APP);
    await ap.route(`${APP}/**`, (r) => r.fulfill({ status: 200, contentType: 'text/plain', body: 'the application' }));
    await ap.goto(start(callback));
    await ap.locator('#provider-note').waitFor();
    await shot(ap, 'provider-sign-in');
    await signInAsAlice(ap);
    await ap.waitForURL((u) => u.origin === APP);
    const back = new URL(ap.url());
    expect(back.pathname === '/callback' && back.searchParams.get('state') === state, `back at the application with its state: ${back}`);
    const code = back.searchParams.get('code');
    expect(code && code.length === 32, 'a code');
    const tr = await fetch(conf.token_endpoint, {
      method: 'POST',
      headers: { Authorization: 'Basic ' + Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64'), 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: callback, code_verifier: verifier }),
      signal: AbortSignal.timeout(20000),
    });
    const tok = await tr.json();
    expect(tr.status === 200 && tok.id_token && tok.access_token, `tokens: ${tr.status} ${JSON.stringify(tok)}`);
    const claims = JSON.parse(Buffer.from(tok.id_token.split('.')[1], 'base64url').toString());
    expect(claims.aud === client.client_id && claims.nonce === nonce && claims.iss === conf.issuer && typeof claims.entity_name === 'string', `ID token claims ${JSON.stringify(claims)}`);
    // A redirect URI the client does not have: the page says so and goes nowhere.
    await ap.goto(start(`${APP}/elsewhere`));
    await signInAsAlice(ap);
    await heading(ap, 'Sign-in for an application failed');
    await ap.getByRole('alert').filter({ hasText: 'invalid_redirect_uri' }).waitFor();
    expect(new URL(ap.url()).origin === ORIGIN, 'still on Tresor');
    expect((await ap.evaluate(() => sessionStorage.getItem('tresor.oidc-provider'))) === null, 'the request is gone');
    await shot(ap, 'provider-bad-redirect');
    // A client registered with a javascript: redirect URI: the page refuses to go there.
    await must('PUT', 'identity/oidc/client/evil', root, { key: 'web', redirect_uris: ['javascript:alert(1)'], assignments: ['allow_all'] });
    const evil = (await must('GET', 'identity/oidc/client/evil', root)).data;
    await must('PUT', 'identity/oidc/provider/web', root, { allowed_client_ids: [client.client_id, evil.client_id] });
    let dialogs = 0;
    ap.on('dialog', () => { dialogs += 1; });
    const eu = new URL(conf.authorization_endpoint);
    for (const [k, v] of Object.entries({ client_id: evil.client_id, response_type: 'code', scope: 'openid', redirect_uri: 'javascript:alert(1)', state })) eu.searchParams.set(k, v);
    await ap.goto(eu.toString());
    await signInAsAlice(ap);
    await heading(ap, 'Sign-in for an application failed');
    await ap.getByRole('alert').filter({ hasText: 'not an http(s) address' }).waitFor();
    expect(dialogs === 0 && new URL(ap.url()).origin === ORIGIN, `no script ran and the page stayed (${dialogs} dialogs, at ${ap.url()})`);
    await actx.close();
  });

  expect(problems.length === 0, 'no page errors, CSP violations or foreign requests:\n' + problems.join('\n'));
  console.log(results.join('\n'));
  console.log('ok');
} catch (e) {
  console.log(results.join('\n'));
  if (problems.length) console.log('problems:\n' + problems.join('\n'));
  console.log('FAILED: ' + e.message);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.close().catch(() => {});
}
