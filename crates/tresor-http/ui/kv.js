// The secrets screens: the mounts, and a KV (v1 and v2) browser whose navigation comes from
// the token's resultant ACL as well as from listing, so a path the token may use shows up
// even when it cannot list the folders above it, and a listed key it cannot use does not.
import { api, h, field, form, errorBox, actionButton, pretty, say, link, go, show, session, badges } from './lib.js';

const trim = (m) => m.replace(/^\/+/, '').replace(/\/*$/, '/');

async function mounts() {
  return (await api('GET', 'sys/internal/ui/mounts')).data.secret || {};
}
async function mountInfo(mount) {
  const r = await api('GET', 'sys/internal/ui/mounts/' + mount.replace(/\/$/, ''));
  const d = r.data || {};
  const version = d.type === 'kv' && String((d.options || {}).version || '1') === '2' ? 2 : 1;
  return { type: d.type, version };
}
export async function acl() {
  if (!session.acl) session.acl = (await api('GET', 'sys/internal/ui/resultant-acl')).data || {};
  return session.acl;
}

// The ACL paths that grant something (deny wins in the server's merge, so it is left out).
function grants(a) {
  const out = [];
  for (const [kind, glob] of [['exact_paths', false], ['glob_paths', true]]) {
    for (const [path, rule] of Object.entries(a[kind] || {})) {
      const caps = rule.capabilities || [];
      if (caps.length && !caps.includes('deny')) out.push({ path, glob, caps });
    }
  }
  return out;
}

// The entries directly under `dir` that the ACL names below one of `bases`: 'name' for a
// path, 'name/' for a folder on the way to one.
function aclChildren(a, bases, dir) {
  const kids = new Map();
  for (const g of grants(a)) {
    for (const base of bases) {
      const full = base + dir;
      if (!g.path.startsWith(full) || g.path === full) continue;
      const rest = g.path.slice(full.length);
      const i = rest.indexOf('/');
      if (i < 0 && g.glob) continue; // a name-prefix glob ("app*") names no one entry
      const name = i < 0 ? rest : rest.slice(0, i + 1);
      kids.set(name, true);
    }
  }
  return kids;
}

export async function secretsScreen() {
  const all = await mounts();
  const rows = Object.entries(all).sort();
  const open = (path, m) => {
    if (m.type === 'kv') return link('kv', { mount: path });
    if (m.type === 'pki') return link('pki', { mount: path });
    return null;
  };
  show('Secrets engines',
    rows.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Path'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Description'))),
      h('tbody', {}, rows.map(([path, m]) => {
        const href = open(path, m);
        const type = m.type === 'kv' ? `kv v${String((m.options || {}).version || '1')}` : m.type;
        return h('tr', {}, h('td', {}, href ? h('a', { href }, path) : path), h('td', {}, type), h('td', {}, m.description || ''));
      })))
      : h('p', {}, 'Your token can use no secrets engine.'));
}

function crumbs(mount, dir) {
  const parts = dir.split('/').filter(Boolean);
  const items = [h('li', {}, h('a', { href: link('kv', { mount }) }, mount.replace(/\/$/, '')))];
  parts.forEach((p, i) => items.push(h('li', {}, h('a', { href: link('kv', { mount, path: parts.slice(0, i + 1).join('/') + '/' }) }, p))));
  return h('nav', { 'aria-label': 'Breadcrumb' }, h('ol', { class: 'crumbs' }, items));
}

export async function kvScreen(p) {
  const mount = trim(p.mount || '');
  const dir = (p.path || '').replace(/^\/+/, '');
  const info = await mountInfo(mount);
  const bases = info.version === 2 ? [mount + 'data/', mount + 'metadata/'] : [mount];
  const listBase = info.version === 2 ? mount + 'metadata/' : mount;
  const a = await acl();
  const notes = [];
  const names = new Map(); // name -> 'listed' | 'policy'
  try {
    const r = await api('LIST', listBase + dir);
    for (const k of (r.data && r.data.keys) || []) names.set(k, 'listed');
  } catch (e) {
    if (e.status === 403) notes.push(h('p', { class: 'note' }, 'You cannot list this folder: showing the paths your policies name.'));
    else if (e.status !== 404) notes.push(errorBox(e));
  }
  if (!a.root) {
    for (const k of aclChildren(a, bases, dir).keys()) if (!names.has(k)) names.set(k, 'policy');
  }
  // What the token may do on each entry, from the server (sys/capabilities-self).
  const entries = [...names.keys()].sort();
  const pathsOf = (k) => bases.map((b) => b + dir + k);
  let caps = {};
  if (entries.length) {
    try {
      caps = (await api('POST', 'sys/capabilities-self', { paths: entries.flatMap(pathsOf) })).data || {};
    } catch (e) {
      notes.push(errorBox(e));
    }
  }
  const capsOf = (k) => new Set(pathsOf(k).flatMap((x) => caps[x] || []).filter((c) => c !== 'deny'));
  // A listed entry the token can do nothing with, and under which its policies name nothing,
  // is not shown.
  const visible = entries.filter((k) => a.root || names.get(k) === 'policy' || capsOf(k).size > 0 || (k.endsWith('/') && aclChildren(a, bases, dir + k).size > 0));
  const rows = visible.map((k) => {
    const folder = k.endsWith('/');
    const href = folder ? link('kv', { mount, path: dir + k }) : link('secret', { mount, path: dir + k });
    return h('tr', {},
      h('td', {}, h('a', { href }, k)),
      h('td', {}, folder ? 'folder' : 'secret'),
      h('td', {}, badges(capsOf(k)), names.get(k) === 'policy' ? h('span', { class: 'muted' }, ' (named by your policies)') : null));
  });
  show(`${mount}${dir}`,
    crumbs(mount, dir),
    h('p', { class: 'muted' }, `KV version ${info.version}`),
    notes,
    rows.length ? h('table', { id: 'kv-list' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Kind'), h('th', { scope: 'col' }, 'Your capabilities'))), h('tbody', {}, rows))
      : h('p', {}, 'Nothing here that your token can use.'),
    h('div', { class: 'actions' }, h('a', { href: link('secret-new', { mount, path: dir }) }, 'Create secret')));
}

function parseJSONObject(text) {
  let v;
  try { v = JSON.parse(text); } catch (e) { throw new Error('the data is not valid JSON: ' + e.message); }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('the data must be a JSON object');
  return v;
}

async function write(mount, info, path, data) {
  if (info.version === 2) return api('POST', `${mount}data/${path}`, { data });
  return api('PUT', mount + path, data);
}

export async function newSecretScreen(p) {
  const mount = trim(p.mount || '');
  const info = await mountInfo(mount);
  const path = field('Path', { value: (p.path || '').replace(/^\/+/, ''), required: true, autofocus: true, spellcheck: 'false', hint: `Inside ${mount}` });
  const data = field('Data (JSON object)', { spellcheck: 'false', value: '{\n  "key": "value"\n}' }, 'textarea');
  show('Create secret', crumbs(mount, p.path || ''),
    form('Create secret', [path, data], 'Save', async () => {
      const target = path.control.value.replace(/^\/+/, '');
      if (!target || target.endsWith('/')) throw new Error('the path must name a secret, not a folder');
      await write(mount, info, target, parseJSONObject(data.control.value));
      say(`Saved ${mount}${target}.`);
      go('secret', { mount, path: target });
    }));
}

const kvTable = (data) => h('table', { class: 'kv-data' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Value'))),
  h('tbody', {}, Object.entries(data || {}).map(([k, v]) => h('tr', {}, h('td', { class: 'mono' }, k), h('td', { class: 'mono' }, typeof v === 'string' ? v : JSON.stringify(v))))));

export async function secretScreen(p) {
  const mount = trim(p.mount || '');
  const path = (p.path || '').replace(/^\/+/, '');
  const info = await mountInfo(mount);
  const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/') + 1) : '';
  const msg = h('div', {});
  const editor = h('div', {});
  let data = null;
  let meta = null;
  let shown = null; // the version on screen (v2)
  const parts = [crumbs(mount, dir), msg];
  if (info.version === 2) {
    const query = p.version ? { version: p.version } : undefined;
    try {
      const r = await api('GET', `${mount}data/${path}`, undefined, query);
      data = r.data.data;
      shown = r.data.metadata;
    } catch (e) {
      // A deleted or destroyed version answers 404 with its metadata.
      const m = e.body && e.body.data && e.body.data.metadata;
      if (e.status === 404 && m) shown = m;
      else if (e.status !== 403) throw e;
      else parts.push(errorBox(e));
    }
    try {
      meta = (await api('GET', `${mount}metadata/${path}`)).data;
    } catch (e) {
      if (e.status !== 403) parts.push(errorBox(e));
    }
  } else {
    data = (await api('GET', mount + path)).data;
  }
  const reload = () => go('secret', { mount, path });
  const edit = () => {
    const text = field('Data (JSON object)', { spellcheck: 'false', value: pretty(data || {}), autofocus: true }, 'textarea');
    editor.replaceChildren(h('h2', {}, 'Edit'),
      form('Edit secret', [text], info.version === 2 ? 'Save as a new version' : 'Save', async () => {
        await write(mount, info, path, parseJSONObject(text.control.value));
        say(`Saved ${mount}${path}.`);
        reload();
      }, [h('button', { type: 'button', class: 'secondary', onclick: () => editor.replaceChildren() }, 'Cancel')]));
    text.control.focus();
  };
  const v2op = (op, version, what) => actionButton(what, 'secondary', msg, async () => {
    if (op !== 'undelete' && !confirm(`${what} version ${version} of ${path}?`)) return;
    await api(op === 'destroy' ? 'PUT' : 'POST', `${mount}${op}/${path}`, { versions: [Number(version)] });
    say(`${what}: version ${version}.`);
    go('secret', { mount, path, version: String(version) });
  });
  if (shown) {
    const state = shown.destroyed ? 'destroyed' : shown.deletion_time ? `deleted at ${shown.deletion_time}` : `created ${shown.created_time}`;
    parts.push(h('p', { id: 'version-state' }, `Version ${shown.version}: ${state}`));
  }
  if (data) parts.push(kvTable(data), h('h2', {}, 'JSON'), h('pre', { id: 'secret-json' }, pretty(data)));
  const buttons = [h('button', { type: 'button', onclick: edit }, data ? 'Edit' : 'Write new data')];
  if (info.version === 2 && shown) {
    if (!shown.deletion_time && !shown.destroyed) buttons.push(v2op('delete', shown.version, 'Delete'));
    if (shown.deletion_time && !shown.destroyed) buttons.push(v2op('undelete', shown.version, 'Undelete'));
    if (!shown.destroyed) buttons.push(v2op('destroy', shown.version, 'Destroy'));
  }
  buttons.push(actionButton(info.version === 2 ? 'Delete all versions and metadata' : 'Delete', 'danger', msg, async () => {
    if (!confirm(`Permanently delete ${mount}${path}${info.version === 2 ? ' and all its versions' : ''}?`)) return;
    await api('DELETE', info.version === 2 ? `${mount}metadata/${path}` : mount + path);
    say(`Deleted ${mount}${path}.`);
    go('kv', { mount, path: dir });
  }));
  parts.push(h('div', { class: 'actions' }, buttons), editor);
  if (meta) {
    const versions = Object.entries(meta.versions || {}).sort((x, y) => Number(y[0]) - Number(x[0]));
    parts.push(h('h2', {}, 'Versions'),
      h('p', { class: 'muted' }, `Current version ${meta.current_version}; keeps ${meta.max_versions || 'all'} versions; created ${meta.created_time}`),
      h('table', { id: 'versions' }, h('thead', {}, h('tr', {}, ['Version', 'Created', 'State', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, versions.map(([n, v]) => h('tr', {},
          h('td', {}, n),
          h('td', {}, v.created_time),
          h('td', {}, v.destroyed ? 'destroyed' : v.deletion_time ? 'deleted' : 'live'),
          h('td', {}, String(shown && shown.version) === n ? h('span', { class: 'muted' }, 'shown') : h('a', { href: link('secret', { mount, path, version: n }), 'aria-label': `View version ${n}` }, 'View')))))));
  }
  show(`${mount}${path}`, ...parts);
}

