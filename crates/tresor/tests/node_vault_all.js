// Every command in node-vault's command table that a Vault Community server serves, called the
// way node-vault's README and examples call it, against a fresh (not dev) Tresor; run by
// node_vault_all.rs. Each answer is checked against Vault's documented behaviour. Steps run in
// order and every failure is collected, so one run names every mismatch.
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const https = require('https');
const nodeVault = require('node-vault');

const ADDR = process.env.VAULT_ADDR;
const TLS_ADDR = process.env.VAULT_TLS_ADDR;
const TMP = process.env.NV_TMP;
const PG_URL = process.env.NV_PG_URL; // postgresql://{{username}}:{{password}}@127.0.0.1:PORT/postgres
const LDAP_URL = process.env.NV_LDAP_URL; // ldap://127.0.0.1:PORT (common/ldap.rs's slapd)
const LDAP_BASE = process.env.NV_LDAP_BASE;
const K8S_CA = process.env.NV_K8S_CA; // the CA of api.crt, the TokenReview endpoint's certificate

// node-vault logs each answer's HTTP status through its `debug` hook: remember the last one, so
// the codes of answers node-vault resolves (sys/health's 429/472/473/501/503) can be checked.
let lastStatus = 0;
const debug = (...a) => {
  if (typeof a[0] === 'number') lastStatus = a[0];
};
const client = (token) => nodeVault({ apiVersion: 'v1', endpoint: ADDR, token, debug });
const vault = client();

const failures = [];
async function step(name, f) {
  try {
    await f();
  } catch (e) {
    const body = e && e.response ? ` [${e.response.statusCode} ${JSON.stringify(e.response.body)}]` : '';
    const where = e && e.stack ? (e.stack.split('\n').find((l) => l.includes('node_vault_all.js')) || '').trim() : '';
    failures.push(`${name}: ${e && e.message ? e.message : e}${body} ${where}`);
  }
}
// A rejection node-vault raises for a non-2xx answer, with its status and Vault's error envelope.
async function rejects(p, code, what) {
  let e;
  try {
    await p;
  } catch (err) {
    e = err;
  }
  assert.ok(e, `${what}: resolved, expected ${code}`);
  assert.ok(e.response, `${what}: not an API error: ${e}`);
  assert.strictEqual(e.response.statusCode, code, `${what}: ${JSON.stringify(e.response.body)}`);
  assert.ok(Array.isArray(e.response.body.errors), `${what}: no errors array`);
  return e;
}
// Vault answers 204 when an endpoint returns nothing, and 200 with only `warnings` when it
// has something to say. node-vault's schemaless calls send their path arguments in the body;
// Vault reports such parameters (ignored, or replaced by the path's value) only on a response
// the endpoint gives anyway, so a write that answers nothing stays a 204.
function noContent(r, what) {
  assert.strictEqual(lastStatus, 204, `${what}: ${JSON.stringify(r)}`);
  assert.strictEqual(r, '', what);
}
function done(r, what, warning) {
  if (lastStatus === 204) {
    assert.ok(!warning, `${what}: 204, expected a warning matching ${warning}`);
    assert.strictEqual(r, '', what);
    return;
  }
  assert.strictEqual(lastStatus, 200, what);
  assert.strictEqual(r.data, null, `${what}: ${JSON.stringify(r)}`);
  assert.ok(Array.isArray(r.warnings) && r.warnings.length > 0, `${what}: ${JSON.stringify(r)}`);
  if (warning) assert.ok(r.warnings.some((w) => warning.test(w)), `${what}: ${JSON.stringify(r.warnings)}`);
}
const isStr = (v, what) => assert.strictEqual(typeof v, 'string', `${what}: ${JSON.stringify(v)}`);
const isInt = (v, what) => assert.ok(Number.isInteger(v), `${what}: ${JSON.stringify(v)}`);
const isBool = (v, what) => assert.strictEqual(typeof v, 'boolean', `${what}: ${JSON.stringify(v)}`);
function checkAuth(auth, what) {
  assert.ok(auth, `${what}: no auth`);
  isStr(auth.client_token, `${what}.client_token`);
  isStr(auth.accessor, `${what}.accessor`);
  assert.ok(Array.isArray(auth.policies), `${what}.policies`);
  isInt(auth.lease_duration, `${what}.lease_duration`);
  isBool(auth.renewable, `${what}.renewable`);
}
function checkSealStatus(s, what) {
  isBool(s.sealed, `${what}.sealed`);
  isInt(s.t, `${what}.t`);
  isInt(s.n, `${what}.n`);
  isInt(s.progress, `${what}.progress`);
  assert.strictEqual(s.type, 'shamir', what);
}

(async () => {
  let keys;
  let root;
  // ---- init / status / unseal / seal, health and its codes on each state ----
  await step('initialized (fresh)', async () => {
    assert.deepStrictEqual(await vault.initialized(), { initialized: false });
  });
  await step('health uninitialized', async () => {
    const h = await vault.health();
    assert.strictEqual(lastStatus, 501);
    assert.strictEqual(h.initialized, false);
    assert.strictEqual(h.sealed, true);
    await vault.health({ uninitcode: 200 });
    assert.strictEqual(lastStatus, 200);
  });
  await step('status (uninitialized)', async () => {
    const s = await vault.status();
    assert.strictEqual(s.initialized, false);
    assert.strictEqual(s.sealed, true);
  });
  await step('init', async () => {
    const r = await vault.init({ secret_shares: 1, secret_threshold: 1 });
    assert.strictEqual(r.keys.length, 1);
    assert.strictEqual(r.keys_base64.length, 1);
    isStr(r.root_token, 'root_token');
    keys = r.keys;
    root = r.root_token;
  });
  if (!root) {
    console.error(failures.join('\n'));
    process.exit(1);
  }
  await step('init again: 400 "Vault is already initialized"', async () => {
    const e = await rejects(vault.init({ secret_shares: 1, secret_threshold: 1 }), 400, 'init again');
    assert.strictEqual(e.message, 'Vault is already initialized');
  });
  await step('initialized / status sealed / health sealed', async () => {
    assert.deepStrictEqual(await vault.initialized(), { initialized: true });
    const s = await vault.status();
    checkSealStatus(s, 'status');
    assert.deepStrictEqual([s.sealed, s.t, s.n, s.progress], [true, 1, 1, 0]);
    const h = await vault.health();
    assert.strictEqual(lastStatus, 503);
    assert.deepStrictEqual([h.initialized, h.sealed], [true, true]);
    await vault.health({ sealedcode: 200 });
    assert.strictEqual(lastStatus, 200);
  });
  await step('unseal', async () => {
    const s = await vault.unseal({ secret_shares: 1, key: keys[0] });
    checkSealStatus(s, 'unseal');
    assert.strictEqual(s.sealed, false);
    assert.strictEqual(s.progress, 0);
    isStr(s.cluster_id, 'unseal.cluster_id');
  });
  vault.token = root;
  await step('health (active) and its query options', async () => {
    const h = await vault.health();
    assert.strictEqual(lastStatus, 200);
    assert.deepStrictEqual([h.initialized, h.sealed, h.standby], [true, false, false]);
    isInt(h.server_time_utc, 'server_time_utc');
    isStr(h.version, 'version');
    isStr(h.cluster_id, 'cluster_id');
    isStr(h.cluster_name, 'cluster_name');
    await vault.health({ standbyok: true, activecode: 299 });
    assert.strictEqual(lastStatus, 299);
    await vault.health({ standbycode: 200, sealedcode: 200, uninitcode: 200 });
    assert.strictEqual(lastStatus, 200);
  });
  await step('leader', async () => {
    const l = await vault.leader();
    isBool(l.ha_enabled, 'ha_enabled');
    isBool(l.is_self, 'is_self');
    isStr(l.leader_address, 'leader_address');
  });
  await step('seal, sealed status, unseal with reset then key', async () => {
    assert.strictEqual(await vault.seal(), '');
    assert.strictEqual(lastStatus, 204);
    assert.strictEqual((await vault.status()).sealed, true);
    // A sealed server refuses reads with 503.
    await rejects(vault.read('sys/mounts'), 503, 'read while sealed');
    const r = await vault.unseal({ reset: true });
    assert.deepStrictEqual([r.sealed, r.progress], [true, 0]);
    assert.strictEqual((await vault.unseal({ key: keys[0] })).sealed, false);
  });
  await step('rotate', async () => {
    await vault.rotate();
    assert.strictEqual(lastStatus, 204);
    const k = await vault.read('sys/key-status');
    assert.strictEqual(k.term, 2);
  });

  // ---- generate-root (OTP) ----
  await step('generateRootInit / Update / Cancel', async () => {
    const st = await vault.read('sys/generate-root/attempt');
    assert.strictEqual(st.started, false);
    isInt(st.otp_length, 'otp_length');
    const otp = crypto.randomBytes(64).toString('base64').replace(/[^A-Za-z0-9]/g, '').slice(0, st.otp_length);
    const init = await vault.generateRootInit({ otp });
    assert.strictEqual(init.started, true);
    isStr(init.nonce, 'nonce');
    assert.deepStrictEqual([init.progress, init.required, init.complete, init.pgp_fingerprint], [0, 1, false, '']);
    await vault.generateRootCancel();
    assert.strictEqual(lastStatus, 204);
    assert.strictEqual((await vault.read('sys/generate-root/attempt')).started, false);
    const again = await vault.generateRootInit({ otp });
    const done = await vault.generateRootUpdate({ key: keys[0], nonce: again.nonce });
    assert.strictEqual(done.complete, true);
    isStr(done.encoded_token, 'encoded_token');
    assert.strictEqual(done.encoded_root_token, done.encoded_token);
    const raw = Buffer.from(done.encoded_token, 'base64');
    const tok = Buffer.from(raw.map((b, i) => b ^ otp.charCodeAt(i))).toString();
    const self = await client(tok).tokenLookupSelf();
    assert.deepStrictEqual(self.data.policies, ['root']);
  });

  // ---- secret mounts (examples/secret_mounts.js), generic read/write/list/delete/update/help ----
  await step('mounts', async () => {
    const m = await vault.mounts();
    assert.ok(m['sys/'] && m.data['sys/'], 'sys/ in mounts and data');
    assert.strictEqual(m.data['cubbyhole/'].type, 'cubbyhole');
  });
  await step('mount generic, write/read, remount, unmount', async () => {
    noContent(await vault.mount({ mount_point: 'test', type: 'generic', description: 'just a test' }), 'mount');
    const m = await vault.mounts();
    // Vault keeps the type as given ("generic" is served by the kv backend).
    assert.strictEqual(m.data['test/'].type, 'generic');
    assert.strictEqual(m.data['test/'].description, 'just a test');
    await vault.write('test/hello', { value: 'world', lease: '1s' });
    assert.strictEqual(lastStatus, 204);
    const r = await vault.read('test/hello');
    assert.deepStrictEqual(r.data, { value: 'world', lease: '1s' });
    assert.strictEqual(r.lease_duration, 1);
    const rm = await vault.remount({ from: 'test', to: 'test2' });
    isStr(rm.migration_id, 'remount.migration_id');
    let moved;
    for (let i = 0; i < 50 && !moved; i += 1) {
      const s = await vault.read(`sys/remount/status/${rm.migration_id}`);
      if (s.data.migration_info.status === 'success') moved = true;
      else await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(moved, 'remount did not finish');
    assert.strictEqual((await vault.read('test2/hello')).data.value, 'world');
    await rejects(vault.read('test/hello'), 404, 'read from the old mount');
    await vault.unmount({ mount_point: 'test2' });
    assert.strictEqual(lastStatus, 204);
    assert.ok(!(await vault.mounts()).data['test2/']);
  });
  await step('kv v2: write/read/update/list/delete and 404', async () => {
    await vault.mount({ mount_point: 'secret', type: 'kv', options: { version: '2' } });
    const w = await vault.write('secret/data/hello', { data: { value: 'world' } });
    assert.strictEqual(w.data.version, 1);
    const u = await vault.update('secret/data/hello', { data: { other: 'x' } });
    assert.strictEqual(u.data.version, 2);
    const r = await vault.read('secret/data/hello');
    assert.deepStrictEqual(r.data.data, { value: 'world', other: 'x' });
    const l = await vault.list('secret/metadata/');
    assert.deepStrictEqual(l.data.keys, ['hello']);
    const l2 = await nodeVault({ endpoint: ADDR, token: root, noCustomHTTPVerbs: true }).list('secret/metadata/');
    assert.deepStrictEqual(l2.data.keys, ['hello']);
    await vault.delete('secret/data/hello');
    assert.strictEqual(lastStatus, 204);
    // A deleted version is a 404 that still carries the version's metadata (no errors).
    const e = await vault.read('secret/data/hello').then(() => null, (x) => x);
    assert.strictEqual(e.response.statusCode, 404);
    assert.strictEqual(e.response.body.data.data, null);
    assert.ok(e.response.body.data.metadata.deletion_time.length > 0);
    await rejects(vault.read('secret/data/nothing'), 404, 'never written');
    await rejects(vault.list('secret/metadata/none/'), 404, 'empty list');
  });
  await step('help', async () => {
    const h = await vault.help('sys/policy');
    isStr(h.help, 'help');
  });

  // ---- policies (examples/policies.js, including its legacy JSON rules) ----
  await step('policies / addPolicy / getPolicy / removePolicy', async () => {
    const p = await vault.policies();
    assert.deepStrictEqual(p.policies, ['default', 'root']);
    assert.deepStrictEqual(p.data.keys, ['default', 'root']);
    done(await vault.addPolicy({ name: 'mypolicy', rules: '{ "path": { "secret/*": { "policy": "write" } } }' }), 'addPolicy', /'rules' is deprecated/);
    const g = await vault.getPolicy({ name: 'mypolicy' });
    assert.strictEqual(g.name, 'mypolicy');
    assert.strictEqual(g.rules, '{ "path": { "secret/*": { "policy": "write" } } }');
    assert.strictEqual(g.data.rules, g.rules);
    assert.deepStrictEqual((await vault.policies()).policies, ['default', 'mypolicy', 'root']);
    await vault.addPolicy({ name: 'reader', rules: 'path "secret/data/*" { capabilities = ["read"] }' });
    await vault.removePolicy({ name: 'mypolicy' });
    assert.strictEqual(lastStatus, 204);
    await rejects(vault.getPolicy({ name: 'mypolicy' }), 404, 'removed policy');
    await rejects(vault.addPolicy({ name: 'bad', rules: 'path "x" { capabilities = ["fly"] }' }), 400, 'bad rules');
  });

  // ---- audit devices (examples/audits.js) ----
  await step('audits / enableAudit / disableAudit', async () => {
    assert.deepStrictEqual((await vault.audits()).data, {});
    const path = `${TMP}/audit.log`;
    noContent(await vault.enableAudit({ name: 'testlog', type: 'file', options: { path } }), 'enableAudit');
    const a = await vault.audits();
    assert.strictEqual(a['testlog/'].type, 'file');
    assert.strictEqual(a.data['testlog/'].options.path, path);
    await vault.write('secret/data/audited', { data: { v: 1 } });
    const lines = fs.readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.some((l) => l.type === 'response' && l.request.path === 'secret/data/audited'));
    await vault.disableAudit({ name: 'testlog' });
    assert.strictEqual(lastStatus, 204);
    assert.deepStrictEqual((await vault.audits()).data, {});
  });

  // ---- tokens and token roles ----
  await step('token commands', async () => {
    const tc = client(root);
    await vault.addPolicy({ name: 'creator', policy: 'path "auth/token/create" { capabilities = ["update"] }' });
    const t = await tc.tokenCreate({ policies: ['reader', 'creator'], ttl: '1h', meta: { app: 'node' }, display_name: 'nv' });
    checkAuth(t.auth, 'tokenCreate');
    assert.strictEqual(tc.token, t.auth.client_token, 'tokenCreate switches the client to the new token');
    assert.deepStrictEqual(t.auth.policies, ['creator', 'default', 'reader']);
    assert.strictEqual(t.auth.lease_duration, 3600);
    const lk = await vault.tokenLookup({ token: t.auth.client_token });
    assert.strictEqual(lk.data.id, t.auth.client_token);
    assert.strictEqual(lk.data.display_name, 'token-nv');
    assert.deepStrictEqual(lk.data.meta, { app: 'node' });
    isInt(lk.data.num_uses, 'num_uses');
    assert.strictEqual(lk.data.path, 'auth/token/create');
    const la = await vault.tokenLookupAccessor({ accessor: t.auth.accessor });
    assert.strictEqual(la.data.id, '');
    assert.strictEqual(la.data.accessor, t.auth.accessor);
    const acc = await vault.tokenAccessors();
    assert.ok(acc.data.keys.includes(t.auth.accessor));
    const me = client(t.auth.client_token);
    const self = await me.tokenLookupSelf();
    assert.strictEqual(self.data.id, t.auth.client_token);
    const rs = await me.tokenRenewSelf({ increment: '2h' });
    checkAuth(rs.auth, 'tokenRenewSelf');
    assert.strictEqual(rs.auth.client_token, t.auth.client_token);
    const rn = await vault.tokenRenew({ token: t.auth.client_token, increment: 1800 });
    assert.strictEqual(rn.auth.lease_duration, 1800);
    assert.strictEqual(vault.token, t.auth.client_token, 'tokenRenew is a token source in node-vault');
    vault.token = root;
    // A child, revoked with revoke-orphan: the child lives on.
    const child = await me.tokenCreate({ policies: ['reader'] });
    const childToken = child.auth.client_token;
    await vault.tokenRevokeOrphan({ token: t.auth.client_token });
    assert.strictEqual(lastStatus, 204);
    const orphaned = await vault.tokenLookup({ token: childToken });
    assert.strictEqual(orphaned.data.orphan, true);
    await rejects(vault.tokenLookup({ token: t.auth.client_token }), 403, 'lookup of a revoked token');
    await vault.tokenRevokeAccessor({ accessor: child.auth.accessor });
    assert.strictEqual(lastStatus, 204);
    await rejects(client(childToken).tokenLookupSelf(), 403, 'revoked by accessor');
    const o = await client(root).tokenCreateOrphan({ policies: ['reader'], no_default_policy: true, num_uses: 5, renewable: false });
    assert.deepStrictEqual(o.auth.policies, ['reader']);
    assert.strictEqual(o.auth.orphan, true);
    assert.strictEqual(o.auth.renewable, false);
    assert.strictEqual((await vault.tokenLookup({ token: o.auth.client_token })).data.num_uses, 5);
    // revoke-self is granted by the default policy: a token without it is refused.
    await rejects(client(o.auth.client_token).tokenRevokeSelf(), 403, 'revoke-self without default policy');
    await vault.tokenRevoke({ token: o.auth.client_token });
    const o2 = await client(root).tokenCreateOrphan({ policies: ['reader'] });
    const oc = client(o2.auth.client_token);
    await oc.tokenRevokeSelf();
    assert.strictEqual(lastStatus, 204);
    await rejects(oc.tokenLookupSelf(), 403, 'after revoke-self');
    const bad = await rejects(vault.tokenLookup({ token: 'hvs.nosuchtoken' }), 403, 'lookup of an unknown token');
    assert.strictEqual(bad.message, 'bad token');
  });
  await step('token roles', async () => {
    await vault.addTokenRole({ role_name: 'nvrole', allowed_policies: 'reader', orphan: true, period: 3600, renewable: true, path_suffix: 'nv' });
    assert.strictEqual(lastStatus, 204);
    const g = await vault.getTokenRole({ role_name: 'nvrole' });
    assert.strictEqual(g.data.name, 'nvrole');
    assert.deepStrictEqual(g.data.allowed_policies, ['reader']);
    assert.strictEqual(g.data.orphan, true);
    assert.strictEqual(g.data.period, 3600);
    assert.strictEqual(g.data.path_suffix, 'nv');
    const l = await vault.tokenRoles();
    assert.deepStrictEqual(l.data.keys, ['nvrole']);
    const c = await client(root).tokenCreateRole({ role_name: 'nvrole', policies: ['reader'] });
    checkAuth(c.auth, 'tokenCreateRole');
    assert.strictEqual(c.auth.orphan, true);
    assert.strictEqual(c.auth.lease_duration, 3600);
    assert.deepStrictEqual(c.auth.policies, ['default', 'reader']);
    const lk = await vault.tokenLookup({ token: c.auth.client_token });
    assert.strictEqual(lk.data.path, 'auth/token/create/nvrole/nv');
    assert.strictEqual(lk.data.role, 'nvrole');
    await rejects(client(root).tokenCreateRole({ role_name: 'nvrole', policies: ['root'] }), 400, 'policy outside allowed_policies');
    await vault.removeTokenRole({ role_name: 'nvrole' });
    assert.strictEqual(lastStatus, 204);
    await rejects(vault.getTokenRole({ role_name: 'nvrole' }), 404, 'removed role');
  });

  // ---- response wrapping (X-Vault-Wrap-TTL) and unwrap ----
  await step('wrapped token create and unwrap', async () => {
    const w = await vault.write('auth/token/create', { policies: ['reader'] }, { headers: { 'X-Vault-Wrap-TTL': '5m' } });
    assert.strictEqual(w.auth, null);
    isStr(w.wrap_info.token, 'wrap_info.token');
    assert.strictEqual(w.wrap_info.ttl, 300);
    assert.strictEqual(w.wrap_info.creation_path, 'auth/token/create');
    const u = await vault.unwrap({ token: w.wrap_info.token });
    checkAuth(u.auth, 'unwrap');
    assert.deepStrictEqual(u.auth.policies, ['default', 'reader']);
    await rejects(vault.unwrap({ token: w.wrap_info.token }), 400, 'second unwrap');
    // Unwrapping with the wrapping token as the client's token and no body (as Vault allows).
    const w2 = await vault.read('secret/data/audited', { headers: { 'X-Vault-Wrap-TTL': '60' } });
    const u2 = await client(w2.wrap_info.token).unwrap();
    assert.deepStrictEqual(u2.data.data, { v: 1 });
  });

  // ---- auth methods: userpass, approle, jwt, cert ----
  await step('auths / enableAuth / userpassLogin / disableAuth', async () => {
    const a = await vault.auths();
    assert.strictEqual(a['token/'].type, 'token');
    assert.strictEqual(a.data['token/'].type, 'token');
    noContent(await vault.enableAuth({ mount_point: 'userpass', type: 'userpass', description: 'userpass auth' }), 'enableAuth');
    assert.strictEqual((await vault.auths()).data['userpass/'].description, 'userpass auth');
    await vault.write('auth/userpass/users/me', { password: 'foo', policies: 'reader' });
    const c = client();
    const r = await c.userpassLogin({ username: 'me', password: 'foo' });
    checkAuth(r.auth, 'userpassLogin');
    assert.deepStrictEqual(r.auth.policies, ['default', 'reader']);
    assert.strictEqual(r.auth.metadata.username, 'me');
    assert.strictEqual(c.token, r.auth.client_token);
    await rejects(client().userpassLogin({ username: 'me', password: 'wrong' }), 400, 'wrong password');
    await vault.enableAuth({ mount_point: 'up2', type: 'userpass' });
    await vault.write('auth/up2/users/you', { password: 'bar' });
    const r2 = await client().userpassLogin({ mount_point: 'up2', username: 'you', password: 'bar' });
    assert.strictEqual(r2.auth.metadata.username, 'you');
    await vault.disableAuth({ mount_point: 'up2' });
    assert.strictEqual(lastStatus, 204);
    assert.ok(!(await vault.auths()).data['up2/']);
    await rejects(client().userpassLogin({ mount_point: 'up2', username: 'you', password: 'bar' }), 403, 'login on a disabled mount');
  });
  await step('approle commands', async () => {
    await vault.enableAuth({ mount_point: 'approle', type: 'approle', description: 'Approle auth' });
    done(await vault.addApproleRole({ role_name: 'test-role', policies: 'reader, default', secret_id_num_uses: 10, token_ttl: 600 }), 'addApproleRole');
    const roles = await vault.approleRoles();
    assert.deepStrictEqual(roles.data.keys, ['test-role']);
    const g = await vault.getApproleRole({ role_name: 'test-role' });
    // The deprecated `policies` is parsed as a sorted, deduplicated policy list.
    assert.deepStrictEqual(g.data.token_policies, ['default', 'reader']);
    assert.strictEqual(g.data.token_ttl, 600);
    assert.strictEqual(g.data.secret_id_num_uses, 10);
    const id = await vault.getApproleRoleId({ role_name: 'test-role' });
    isStr(id.data.role_id, 'role_id');
    done(await vault.updateApproleRoleId({ role_name: 'test-role', role_id: 'my-role-id' }), 'updateApproleRoleId');
    assert.strictEqual((await vault.getApproleRoleId({ role_name: 'test-role' })).data.role_id, 'my-role-id');
    const sec = await vault.getApproleRoleSecret({ role_name: 'test-role', metadata: '{"app":"node"}', cidr_list: ['127.0.0.1/32'] });
    isStr(sec.data.secret_id, 'secret_id');
    isStr(sec.data.secret_id_accessor, 'secret_id_accessor');
    assert.strictEqual(sec.data.secret_id_num_uses, 10);
    const accs = await vault.approleSecretAccessors({ role_name: 'test-role' });
    assert.deepStrictEqual(accs.data.keys, [sec.data.secret_id_accessor]);
    const lk = await vault.approleSecretLookup({ role_name: 'test-role', secret_id: sec.data.secret_id });
    assert.deepStrictEqual(lk.data.metadata, { app: 'node' });
    assert.deepStrictEqual(lk.data.cidr_list, ['127.0.0.1/32']);
    const alk = await vault.approleSecretAccessorLookup({ role_name: 'test-role', secret_id_accessor: sec.data.secret_id_accessor });
    assert.strictEqual(alk.data.secret_id_accessor, sec.data.secret_id_accessor);
    const c = client();
    const login = await c.approleLogin({ role_id: 'my-role-id', secret_id: sec.data.secret_id });
    checkAuth(login.auth, 'approleLogin');
    assert.deepStrictEqual(login.auth.policies, ['default', 'reader']);
    assert.strictEqual(login.auth.lease_duration, 600);
    assert.strictEqual(login.auth.metadata.role_name, 'test-role');
    assert.strictEqual(c.token, login.auth.client_token);
    assert.strictEqual((await c.read('secret/data/audited')).data.data.v, 1);
    await rejects(client().approleLogin({ role_id: 'my-role-id', secret_id: 'nope' }), 400, 'wrong secret_id');
    await vault.approleSecretDestroy({ role_name: 'test-role', secret_id: sec.data.secret_id });
    assert.strictEqual(lastStatus, 204);
    await rejects(client().approleLogin({ role_id: 'my-role-id', secret_id: sec.data.secret_id }), 400, 'destroyed secret_id');
    const sec2 = await vault.getApproleRoleSecret({ role_name: 'test-role' });
    // approleSecretAccessorDestroy has no schema: node-vault sends all its arguments as the body.
    await rejects(vault.approleSecretAccessorDestroy({ role_name: 'test-role' }), 400, 'accessor destroy without accessor');
    done(await vault.approleSecretAccessorDestroy({ role_name: 'test-role', secret_id_accessor: sec2.data.secret_id_accessor }), 'approleSecretAccessorDestroy');
    assert.deepStrictEqual((await vault.approleSecretAccessors({ role_name: 'test-role' }).catch((e) => e.response.statusCode)), 404);
    // The usual hand-off: a response-wrapped secret_id (requestOptions headers), unwrapped by
    // the application with the wrapping token as its token, then used to log in.
    const ws = await vault.getApproleRoleSecret({ role_name: 'test-role', requestOptions: { headers: { 'X-Vault-Wrap-TTL': '120s' } } });
    assert.strictEqual(ws.data, null);
    assert.strictEqual(ws.wrap_info.ttl, 120);
    assert.strictEqual(ws.wrap_info.creation_path, 'auth/approle/role/test-role/secret-id');
    const uw = await client(ws.wrap_info.token).unwrap();
    checkAuth((await client().approleLogin({ role_id: 'my-role-id', secret_id: uw.data.secret_id })).auth, 'login with an unwrapped secret_id');
    await vault.deleteApproleRole({ role_name: 'test-role' });
    assert.strictEqual(lastStatus, 204);
    await rejects(vault.getApproleRole({ role_name: 'test-role' }), 404, 'deleted role');
  });
  await step('jwtLogin with a locally signed JWT', async () => {
    const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    await vault.enableAuth({ mount_point: 'jwt', type: 'jwt' });
    await vault.write('auth/jwt/config', {
      jwt_validation_pubkeys: [publicKey.export({ type: 'spki', format: 'pem' })],
      bound_issuer: 'https://issuer.test',
    });
    await vault.write('auth/jwt/role/app', {
      role_type: 'jwt', bound_audiences: ['nv'], user_claim: 'sub', policies: ['reader'], ttl: '10m',
    });
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims) => {
      const data = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims)}`;
      return `${data}.${crypto.sign('sha256', Buffer.from(data), privateKey).toString('base64url')}`;
    };
    const jwt = sign({ iss: 'https://issuer.test', aud: 'nv', sub: 'svc-1', iat: now, nbf: now, exp: now + 300 });
    const c = client();
    const r = await c.jwtLogin({ role: 'app', jwt });
    checkAuth(r.auth, 'jwtLogin');
    assert.deepStrictEqual(r.auth.policies, ['default', 'reader']);
    assert.strictEqual(r.auth.lease_duration, 600);
    assert.strictEqual(r.auth.metadata.role, 'app');
    assert.strictEqual(c.token, r.auth.client_token);
    const bad = sign({ iss: 'https://issuer.test', aud: 'other', sub: 'svc-1', iat: now, exp: now + 300 });
    await rejects(client().jwtLogin({ role: 'app', jwt: bad }), 400, 'wrong audience');
  });
  if (TLS_ADDR) {
    await step('certLogin over TLS', async () => {
      const pem = fs.readFileSync(`${TMP}/client.crt`, 'utf8');
      await vault.enableAuth({ mount_point: 'cert', type: 'cert' });
      await vault.write('auth/cert/certs/web', { display_name: 'web', policies: 'reader', certificate: pem, ttl: 3600 });
      // node-vault 0.10 hands TLS to Node's default agent: give it the CA and the client pair.
      https.globalAgent = new https.Agent({
        ca: fs.readFileSync(`${TMP}/listener.crt`),
        cert: pem,
        key: fs.readFileSync(`${TMP}/client.key`),
      });
      const c = nodeVault({ endpoint: TLS_ADDR, debug });
      const r = await c.certLogin();
      checkAuth(r.auth, 'certLogin');
      assert.deepStrictEqual(r.auth.policies, ['default', 'reader']);
      assert.strictEqual(r.auth.metadata.cert_name, 'web');
      assert.strictEqual(c.token, r.auth.client_token);
      assert.strictEqual((await c.read('secret/data/audited')).data.data.v, 1);
      https.globalAgent = new https.Agent({ ca: fs.readFileSync(`${TMP}/listener.crt`) });
      await rejects(nodeVault({ endpoint: TLS_ADDR }).certLogin(), 400, 'no client certificate');
    });
  }

  if (LDAP_URL) {
    await step('ldapLogin against slapd', async () => {
      await vault.enableAuth({ mount_point: 'ldap', type: 'ldap', description: 'ldap auth' });
      await vault.write('auth/ldap/config', {
        url: LDAP_URL,
        userdn: `ou=users,${LDAP_BASE}`,
        userattr: 'uid',
        groupdn: `ou=groups,${LDAP_BASE}`,
        groupfilter: '(member={{.UserDN}})',
        groupattr: 'cn',
        binddn: `cn=admin,${LDAP_BASE}`,
        bindpass: 'adminpw',
      });
      await vault.write('auth/ldap/groups/devs', { policies: 'reader' });
      const c = client();
      const r = await c.ldapLogin({ username: 'alice', password: 'alicepw' });
      checkAuth(r.auth, 'ldapLogin');
      assert.deepStrictEqual(r.auth.policies, ['default', 'reader']);
      assert.strictEqual(r.auth.metadata.username, 'alice');
      assert.strictEqual(c.token, r.auth.client_token);
      await rejects(client().ldapLogin({ username: 'alice', password: 'wrong' }), 400, 'wrong LDAP password');
    });
  }
  if (K8S_CA) {
    await step('kubernetesLogin reviewed by a local TokenReview endpoint', async () => {
      // A stand-in for the Kubernetes API server's TokenReview: it authenticates the
      // service-account JWTs this script issued, for the reviewer's bearer token only.
      const issued = new Map();
      const api = https.createServer({ cert: fs.readFileSync(`${TMP}/api.crt`), key: fs.readFileSync(`${TMP}/api.key`) }, (req, res) => {
        let body = '';
        req.on('data', (d) => { body += d; });
        req.on('end', () => {
          const reply = (code, o) => {
            res.writeHead(code, { 'content-type': 'application/json' });
            res.end(JSON.stringify(o));
          };
          if (req.method !== 'POST' || req.url !== '/apis/authentication.k8s.io/v1/tokenreviews') return reply(404, { kind: 'Status' });
          if (req.headers.authorization !== 'Bearer reviewer-token') return reply(401, { kind: 'Status', code: 401 });
          const spec = JSON.parse(body).spec || {};
          const who = issued.get(spec.token);
          const status = who
            ? { authenticated: true, user: { username: `system:serviceaccount:${who.ns}:${who.name}`, uid: 'uid-1', groups: ['system:serviceaccounts'] } }
            : { authenticated: false, error: 'invalid token' };
          return reply(201, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec, status });
        });
      });
      await new Promise((res) => api.listen(0, '127.0.0.1', res));
      try {
        const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
        const now = Math.floor(Date.now() / 1000);
        const saJwt = (ns, name) => {
          const t = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({
            iss: 'kubernetes/serviceaccount', sub: `system:serviceaccount:${ns}:${name}`, iat: now, exp: now + 600,
            'kubernetes.io': { namespace: ns, serviceaccount: { name, uid: 'uid-1' } },
          })}.${crypto.randomBytes(32).toString('base64url')}`;
          issued.set(t, { ns, name });
          return t;
        };
        await vault.enableAuth({ mount_point: 'kubernetes', type: 'kubernetes', description: 'Kubernetes auth' });
        await vault.write('auth/kubernetes/config', {
          token_reviewer_jwt: 'reviewer-token',
          kubernetes_host: `https://127.0.0.1:${api.address().port}`,
          kubernetes_ca_cert: fs.readFileSync(K8S_CA, 'utf8'),
        });
        await vault.write('auth/kubernetes/role/some-app', {
          bound_service_account_names: 'some-app', bound_service_account_namespaces: 'default', policies: 'reader', ttl: '1h',
        });
        const g = await vault.getKubernetesRole({ role_name: 'some-app', kubernetesPath: 'kubernetes' });
        assert.deepStrictEqual(g.data.bound_service_account_names, ['some-app']);
        assert.deepStrictEqual(g.data.bound_service_account_namespaces, ['default']);
        assert.strictEqual(g.data.token_ttl, 3600);
        const c = client();
        const r = await c.kubernetesLogin({ role: 'some-app', jwt: saJwt('default', 'some-app'), kubernetesPath: 'kubernetes' });
        checkAuth(r.auth, 'kubernetesLogin');
        assert.deepStrictEqual(r.auth.policies, ['default', 'reader']);
        assert.strictEqual(r.auth.lease_duration, 3600);
        assert.strictEqual(r.auth.metadata.service_account_name, 'some-app');
        assert.strictEqual(r.auth.metadata.service_account_namespace, 'default');
        assert.strictEqual(c.token, r.auth.client_token);
        const r2 = await client().kubernetesLogin({ mount_point: 'kubernetes', role: 'some-app', jwt: saJwt('default', 'some-app') });
        checkAuth(r2.auth, 'kubernetesLogin by mount_point');
        await rejects(client().kubernetesLogin({ role: 'some-app', jwt: saJwt('prod', 'some-app'), kubernetesPath: 'kubernetes' }), 400, 'other namespace');
        await vault.deleteKubernetesRole({ role_name: 'some-app', kubernetesPath: 'kubernetes' });
        assert.strictEqual(lastStatus, 204);
        await rejects(vault.getKubernetesRole({ role_name: 'some-app', kubernetesPath: 'kubernetes' }), 404, 'deleted kubernetes role');
      } finally {
        api.close();
      }
    });
  }

  // ---- transit (examples/transit.js, with Vault's field names) ----
  await step('encryptData / decryptData', async () => {
    await vault.mount({ mount_point: 'transit', type: 'transit' });
    await vault.write('transit/keys/transit-encryption-key', {});
    const plaintext = Buffer.from('super-secret-text').toString('base64');
    const e = await vault.encryptData({ name: 'transit-encryption-key', plaintext });
    assert.ok(e.data.ciphertext.startsWith('vault:v1:'), e.data.ciphertext);
    isInt(e.data.key_version, 'key_version');
    const d = await vault.decryptData({ name: 'transit-encryption-key', ciphertext: e.data.ciphertext });
    assert.strictEqual(Buffer.from(d.data.plaintext, 'base64').toString(), 'super-secret-text');
    // The example's camel-cased fields are not Vault's: refused like Vault refuses them.
    await rejects(vault.encryptData({ name: 'transit-encryption-key', plainText: plaintext }), 400, 'plainText');
    await rejects(vault.decryptData({ name: 'transit-encryption-key', ciphertext: 'nope' }), 400, 'bad ciphertext');
  });

  // ---- leases: renew, revoke, revokePrefix, database credentials ----
  if (PG_URL) {
    await step('generateDatabaseCredentials / renew / revoke / revokePrefix', async () => {
      await vault.mount({ mount_point: 'database', type: 'database' });
      await vault.write('database/config/pg', {
        plugin_name: 'postgresql-database-plugin',
        connection_url: PG_URL,
        username: 'admin',
        password: 'pw',
        allowed_roles: 'readonly',
      });
      await vault.write('database/roles/readonly', {
        db_name: 'pg',
        creation_statements: "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        default_ttl: '1h',
        max_ttl: '24h',
      });
      const c = await vault.generateDatabaseCredentials({ databasePath: 'database', name: 'readonly' });
      assert.ok(c.lease_id.startsWith('database/creds/readonly/'), c.lease_id);
      assert.strictEqual(c.renewable, true);
      assert.strictEqual(c.lease_duration, 3600);
      isStr(c.data.username, 'username');
      isStr(c.data.password, 'password');
      const rn = await vault.renew({ lease_id: c.lease_id, increment: 1800 });
      assert.strictEqual(rn.lease_id, c.lease_id);
      assert.strictEqual(rn.renewable, true);
      assert.strictEqual(rn.lease_duration, 1800);
      await vault.revoke({ lease_id: c.lease_id });
      assert.strictEqual(lastStatus, 204);
      await rejects(vault.renew({ lease_id: c.lease_id }), 400, 'renew a revoked lease');
      const c2 = await vault.generateDatabaseCredentials({ databasePath: 'database', name: 'readonly' });
      const c3 = await vault.generateDatabaseCredentials({ databasePath: 'database', name: 'readonly' });
      noContent(await vault.revokePrefix({ path_prefix: 'database/creds/readonly' }), 'revokePrefix');
      for (const x of [c2, c3]) {
        const lk = await vault.write('sys/leases/lookup', { lease_id: x.lease_id }).catch((e) => e.response.statusCode);
        assert.strictEqual(lk, 400, `${x.lease_id} still there`);
      }
    });
  }
  await step('revoke / renew without a lease', async () => {
    await rejects(vault.renew({ lease_id: 'secret/data/nothing/abc' }), 400, 'renew unknown lease');
  });

  // ---- HA: step-down on a single node ----
  await step('stepDown', async () => {
    await vault.stepDown();
    assert.strictEqual(lastStatus, 204);
    // A single node with no HA backend stays active.
    const h = await vault.health();
    assert.strictEqual(h.sealed, false);
  });

  // ---- denied and unauthenticated calls are 403 ----
  await step('403s', async () => {
    await rejects(client('hvs.bogus').mounts(), 403, 'bogus token');
    await rejects(client().policies(), 403, 'no token');
  });

  if (failures.length) {
    console.error(`${failures.length} failure(s):\n${failures.join('\n')}`);
    process.exit(1);
  }
  console.log('ok');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
