// ACL policies and the capabilities checker, leases, PKI and the console.
import { api, h, field, form, errorBox, actionButton, pretty, say, link, go, show, badges } from './lib.js';

// ---- policies ----
export async function policiesScreen() {
  const names = ((await api('LIST', 'sys/policies/acl')).data || {}).keys || [];
  const name = field('Name', { required: true, spellcheck: 'false' });
  show('ACL policies',
    h('ul', { id: 'policy-list' }, names.map((n) => h('li', {}, h('a', { href: link('policy', { name: n }) }, n)))),
    h('h2', {}, 'New policy'),
    form('New policy', [name], 'Create', async () => {
      const n = name.control.value.trim();
      if (!n) throw new Error('a policy needs a name');
      go('policy', { name: n, new: '1' });
    }));
}

export async function policyScreen(p) {
  const name = p.name || '';
  let text = '';
  if (!p.new) text = ((await api('GET', `sys/policies/acl/${name}`)).data || {}).policy || '';
  else text = `# ${name}\npath "secret/data/${name}/*" {\n  capabilities = ["read"]\n}\n`;
  const editable = name !== 'root';
  const policy = field('Policy (HCL or JSON)', { spellcheck: 'false', value: text, readonly: !editable, autofocus: editable }, 'textarea');
  const msg = h('div', {});
  const extra = [];
  if (editable && name !== 'default' && !p.new) {
    extra.push(actionButton('Delete policy', 'danger', msg, async () => {
      if (!confirm(`Delete the policy ${name}?`)) return;
      await api('DELETE', `sys/policies/acl/${name}`);
      say(`Deleted the policy ${name}.`);
      go('policies');
    }));
  }
  show(`Policy ${name}`,
    h('p', {}, h('a', { href: link('policies') }, 'All policies')),
    msg,
    editable ? form('Edit policy', [policy], 'Save', async () => {
      // The server parses and validates; its errors are shown as it sent them.
      await api('PUT', `sys/policies/acl/${name}`, { policy: policy.control.value });
      say(`Saved the policy ${name}.`);
      go('policy', { name });
    }, extra) : policy);
}

export async function capabilitiesScreen(p) {
  const path = field('Path', { required: true, spellcheck: 'false', value: p.path || '', autofocus: true, hint: 'For example secret/data/app/config' });
  const out = h('div', { id: 'capabilities-out', 'aria-live': 'polite' });
  show('Capabilities',
    h('p', {}, 'What your token may do on a path (sys/capabilities-self).'),
    form('Check capabilities', [path], 'Check', async () => {
      const target = path.control.value.trim().replace(/^\/+/, '');
      const r = await api('POST', 'sys/capabilities-self', { paths: [target] });
      const caps = (r.data || {})[target] || (r.data || {}).capabilities || [];
      out.replaceChildren(h('p', {}, h('span', { class: 'mono' }, target), ': ', badges(caps)));
    }), out);
}

// ---- leases ----
export async function leasesScreen(p) {
  const id = field('Lease ID', { required: true, spellcheck: 'false', value: p.lease || '', autofocus: true });
  const out = h('div', { id: 'lease-out' });
  const prefix = field('Prefix', { spellcheck: 'false', hint: 'For example pki/issue/web/ (needs sudo)' });
  const listed = h('div', {});
  show('Leases',
    form('Look up a lease', [id], 'Look up', async () => {
      const lease = id.control.value.trim();
      const r = await api('PUT', 'sys/leases/lookup', { lease_id: lease });
      out.replaceChildren(h('pre', {}, pretty(r.data)),
        h('div', { class: 'actions' }, actionButton('Revoke this lease', 'danger', out, async () => {
          if (!confirm(`Revoke ${lease}?`)) return;
          await api('PUT', 'sys/leases/revoke', { lease_id: lease });
          out.replaceChildren(h('p', { class: 'ok' }, `Revoked ${lease}.`));
          say('Lease revoked.');
        })));
    }), out,
    h('h2', {}, 'List lease IDs'),
    form('List leases by prefix', [prefix], 'List', async () => {
      const pre = prefix.control.value.trim().replace(/^\/+/, '');
      const keys = ((await api('LIST', `sys/leases/lookup/${pre}`)).data || {}).keys || [];
      listed.replaceChildren(keys.length ? h('ul', {}, keys.map((k) => h('li', {}, k.endsWith('/')
        ? h('button', { type: 'button', class: 'link', onclick: () => { prefix.control.value = pre + k; prefix.control.form.requestSubmit(); } }, k)
        : h('button', { type: 'button', class: 'link', onclick: () => { id.control.value = pre + k; id.control.form.requestSubmit(); } }, k)))) : h('p', {}, 'No leases under this prefix.'));
    }), listed);
}

// ---- PKI ----
async function pkiMounts() {
  const all = (await api('GET', 'sys/internal/ui/mounts')).data.secret || {};
  return Object.entries(all).filter(([, m]) => m.type === 'pki').map(([path]) => path).sort();
}

export async function pkiScreen(p) {
  const mounts = await pkiMounts();
  const mount = p.mount || mounts[0];
  if (!mount) return show('PKI', h('p', {}, 'Your token can use no PKI mount.'));
  const list = async (path) => {
    try {
      return (await api('LIST', mount + path)).data || {};
    } catch (e) {
      if (e.status === 404) return {};
      return { error: e };
    }
  };
  const [issuers, roles, certs] = await Promise.all([list('issuers'), list('roles'), list('certs')]);
  const section = (title, r, render) => [h('h2', {}, title), r.error ? errorBox(r.error) : (r.keys || []).length ? render(r) : h('p', { class: 'muted' }, 'None.')];
  const certOut = h('div', {});
  const showCert = async (serial) => {
    const r = await api('GET', `${mount}cert/${serial}`);
    certOut.replaceChildren(h('h3', {}, `Certificate ${serial}`), h('pre', {}, r.data.certificate));
  };
  const roleNames = roles.keys || [];
  const role = field('Role', { options: roleNames.map((r) => [r, r]), required: true });
  const cn = field('Common name', { required: true, spellcheck: 'false' });
  const alt = field('Alternative names', { spellcheck: 'false', hint: 'Comma-separated DNS names or emails' });
  const ttl = field('TTL', { spellcheck: 'false', hint: 'For example 24h; empty for the role default' });
  const issued = h('div', { id: 'issued' });
  show(`PKI: ${mount}`,
    mounts.length > 1 ? h('p', {}, 'Mounts: ', mounts.map((m) => [h('a', { href: link('pki', { mount: m }) }, m), ' '])) : null,
    h('div', { class: 'grid' },
      h('div', {}, section('Issuers', issuers, (r) => h('ul', { id: 'pki-issuers' }, r.keys.map((k) => h('li', {}, h('span', { class: 'mono' }, k), ' ', ((r.key_info || {})[k] || {}).issuer_name || ''))))),
      h('div', {}, section('Roles', roles, (r) => h('ul', { id: 'pki-roles' }, r.keys.map((k) => h('li', {}, k)))))),
    section('Certificates', certs, (r) => h('ul', { id: 'pki-certs' }, r.keys.map((k) => h('li', {}, h('button', { type: 'button', class: 'link mono', onclick: () => showCert(k).catch((e) => certOut.replaceChildren(errorBox(e))) }, k))))),
    certOut,
    h('h2', {}, 'Issue a certificate'),
    roleNames.length ? form('Issue a certificate', [role, cn, alt, ttl], 'Issue', async () => {
      const body = { common_name: cn.control.value.trim() };
      if (alt.control.value.trim()) body.alt_names = alt.control.value.trim();
      if (ttl.control.value.trim()) body.ttl = ttl.control.value.trim();
      const whole = await api('POST', `${mount}issue/${role.control.value}`, body);
      const r = whole.data;
      issued.replaceChildren(h('div', {},
        h('p', { class: 'note', role: 'alert', tabindex: '-1' }, `Issued serial ${r.serial_number}, expires ${new Date(r.expiration * 1000).toISOString()}. The private key is shown once.`),
        whole.lease_id ? h('p', {}, 'Lease: ', h('a', { href: link('leases', { lease: whole.lease_id }), id: 'issued-lease' }, whole.lease_id)) : null,
        h('h3', {}, 'Certificate'), h('pre', { id: 'issued-certificate' }, r.certificate),
        h('h3', {}, 'Issuing CA'), h('pre', {}, r.issuing_ca),
        r.private_key ? [h('h3', {}, `Private key (${r.private_key_type})`), h('pre', { id: 'issued-key' }, r.private_key)] : null));
      issued.querySelector('p').focus();
    }) : h('p', { class: 'muted' }, 'This mount has no role to issue from (or your token cannot list them).'),
    issued);
}

// ---- console ----
// `read PATH [k=v ...]`, `write PATH k=v ...`, `list PATH`, `delete PATH`, `clear`, `help`.
// A value that parses as JSON (a number, true, an object) is sent as that; anything else as a
// string, as the CLI does for `k=v`.
function parseArgs(words) {
  const out = {};
  for (const w of words) {
    const i = w.indexOf('=');
    if (i <= 0) throw new Error(`expected key=value, got ${w}`);
    const v = w.slice(i + 1);
    let val = v;
    if (/^[[{]|^(true|false|null|-?\d+(\.\d+)?)$/.test(v)) {
      try { val = JSON.parse(v); } catch { val = v; }
    }
    out[w.slice(0, i)] = val;
  }
  return out;
}

function tokenize(line) {
  const words = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  let m;
  while ((m = re.exec(line))) words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2] !== undefined ? m[2] : m[3]);
  return words;
}

const NONE = Symbol('no output');
const HELP = 'Commands: read PATH [k=v ...] · write PATH k=v ... · list PATH · delete PATH · clear · help';

export async function consoleScreen() {
  const log = h('pre', { id: 'console-output', class: 'console', 'aria-live': 'polite', tabindex: '0', 'aria-label': 'Console output' }, HELP + '\n');
  const cmd = field('Command', { spellcheck: 'false', autocomplete: 'off', autofocus: true, hint: HELP });
  const history = [];
  let at = 0;
  cmd.control.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowUp' && at > 0) { at -= 1; cmd.control.value = history[at]; e.preventDefault(); }
    if (e.key === 'ArrowDown' && at < history.length) { at += 1; cmd.control.value = history[at] || ''; e.preventDefault(); }
  });
  const print = (text) => { log.append(text + '\n'); log.scrollTop = log.scrollHeight; };
  show('Console',
    form('Console', [cmd], 'Run', async () => {
      const line = cmd.control.value.trim();
      if (!line) return;
      history.push(line);
      at = history.length;
      cmd.control.value = '';
      print('> ' + line);
      const [verb, path, ...rest] = tokenize(line);
      const p = (path || '').replace(/^\/+/, '');
      const run = async () => {
        switch (verb) {
          case 'help': return HELP;
          case 'clear': log.replaceChildren(); return NONE;
          case 'read': return api('GET', p, undefined, parseArgs(rest));
          case 'list': return api('LIST', p);
          case 'write': return api('PUT', p, parseArgs(rest));
          case 'delete': return api('DELETE', p);
          default: throw new Error(`unknown command ${verb}: ${HELP}`);
        }
      };
      if (verb !== 'help' && verb !== 'clear' && !p) { print('Error: a path is needed'); return; }
      try {
        const r = await run();
        if (r === NONE) return;
        print(typeof r === 'string' ? r : r === undefined || r === null ? 'Success! (no content)' : pretty(r));
      } catch (e) {
        print(pretty({ errors: e.errors || [e.message], status: e.status }));
      }
      cmd.control.focus();
    }), log);
}
