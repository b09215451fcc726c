// Drives Tresor with node-vault (npm), the way a Node.js application would; run by node_vault.rs.
const assert = require('assert');
const vault = require('node-vault')({ apiVersion: 'v1', endpoint: process.env.VAULT_ADDR, token: 'root' });
(async () => {
  const st = await vault.status();
  assert.strictEqual(st.sealed, false);
  const h = await vault.health();
  assert.strictEqual(h.initialized, true);
  await vault.write('secret/data/node', { data: { answer: '42' } });
  const r = await vault.read('secret/data/node');
  assert.strictEqual(r.data.data.answer, '42');
  await vault.policies();
  await vault.addPolicy({ name: 'node', rules: 'path "secret/data/node" { capabilities = ["read"] }' });
  const p = await vault.getPolicy({ name: 'node' });
  assert.ok(p.rules.includes('secret/data/node'));
  const t = await vault.tokenCreate({ policies: ['node'], ttl: '1h' });
  vault.token = 'root'; // node-vault switches a client to the token it just created
  const client = require('node-vault')({ endpoint: process.env.VAULT_ADDR, token: t.auth.client_token });
  const self = await client.tokenLookupSelf();
  assert.deepStrictEqual(self.data.policies, ['default', 'node']);
  assert.strictEqual((await client.read('secret/data/node')).data.data.answer, '42');
  await assert.rejects(client.write('secret/data/node', { data: { answer: 'x' } }), (e) => e.response.statusCode === 403);
  await vault.mount({ mount_point: 'nodekv', type: 'kv', description: 'from node' });
  const mounts = await vault.mounts();
  assert.ok(mounts['nodekv/'] || mounts.data['nodekv/']);
  await vault.write('nodekv/x', { v: 'y' });
  assert.strictEqual((await vault.read('nodekv/x')).data.v, 'y');
  const list = await vault.list('secret/metadata/');
  assert.deepStrictEqual(list.data.keys, ['node']);
  await vault.tokenRevoke({ token: t.auth.client_token });
  await assert.rejects(client.tokenLookupSelf(), (e) => e.response.statusCode === 403);
  await vault.unmount({ mount_point: 'nodekv' });
  console.log('ok');
})().catch((e) => { console.error(e); process.exit(1); });
