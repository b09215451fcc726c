// Tresor's web UI: the shell, the router and the seal, init, unseal and login screens.
// Every screen talks to the server only through /v1/ (lib.js).
import { api, h, field, form, errorBox, say, link, go, show, session, setToken, forgetToken, restoreToken, hasToken, tokenIssuedHere } from './lib.js';
import { secretsScreen, kvScreen, secretScreen, newSecretScreen } from './kv.js';
import { policiesScreen, policyScreen, capabilitiesScreen, leasesScreen, pkiScreen, consoleScreen } from './tools.js';

const OIDC_KEY = 'tresor.oidc';
const PROVIDER_KEY = 'tresor.oidc-provider';
// How long an application's sign-in request waits for the user to sign in.
const PROVIDER_WAIT_MS = 10 * 60 * 1000;

const NAV = [
  ['secrets', 'Secrets'], ['policies', 'Policies'], ['capabilities', 'Capabilities'],
  ['leases', 'Leases'], ['pki', 'PKI'], ['console', 'Console'], ['status', 'Status'],
];
const SCREENS = {
  secrets: secretsScreen, kv: kvScreen, secret: secretScreen, 'secret-new': newSecretScreen,
  policies: policiesScreen, policy: policyScreen, capabilities: capabilitiesScreen,
  leases: leasesScreen, pki: pkiScreen, console: consoleScreen, status: statusScreen,
};

function route() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [name, qs] = raw.split('?');
  return { name: name || 'secrets', params: Object.fromEntries(new URLSearchParams(qs || '')) };
}

function renderNav(current) {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  if (!hasToken()) {
    nav.hidden = true;
    who.replaceChildren();
    return;
  }
  nav.hidden = false;
  nav.replaceChildren(h('ul', {}, NAV.map(([id, text]) => h('li', {}, h('a', { href: link(id), 'aria-current': id === current ? 'page' : null }, text)))));
  const self = session.self;
  who.replaceChildren(
    self ? h('span', {}, self.display_name || 'token', ' · ', (self.policies || []).join(', ')) : '',
    h('button', { type: 'button', class: 'link', onclick: logout }, 'Log out'),
  );
}

// A token this page got by logging in is revoked; a pasted one is only forgotten (it may be
// in use elsewhere).
async function logout() {
  const revoke = tokenIssuedHere();
  if (revoke) {
    try {
      await api('PUT', 'auth/token/revoke-self');
    } catch (e) {
      // Expired or already revoked: nothing left to do.
    }
  }
  forgetToken();
  session.self = null;
  session.acl = null;
  say(revoke ? 'Logged out: the token of this sign-in is revoked.' : 'Logged out: the token is forgotten by this page (a pasted token stays valid).');
  go('login');
}

async function render() {
  const { name, params } = route();
  let status;
  try {
    status = await api('GET', 'sys/seal-status');
  } catch (e) {
    renderNav(null);
    return show('Tresor is not reachable', errorBox(e));
  }
  if (!status.initialized) { renderNav(null); return initScreen(); }
  if (status.sealed) { renderNav(null); return unsealScreen(status); }
  if (providerPending() && hasToken() && name !== 'login') { renderNav(null); return providerAuthorize(); }
  if (!hasToken() || name === 'login') { forgetToken(); renderNav(null); return loginScreen(); }
  if (!session.self) {
    try {
      session.self = (await api('GET', 'auth/token/lookup-self')).data;
    } catch (e) {
      forgetToken();
      renderNav(null);
      return loginScreen(e);
    }
  }
  renderNav(name in SCREENS ? name : null);
  const screen = SCREENS[name];
  if (!screen) return show('Not found', h('p', {}, 'There is no such page. ', h('a', { href: link('secrets') }, 'Go to the secrets.')));
  try {
    await screen(params);
  } catch (e) {
    show('Error', errorBox(e));
  }
}

// ---- init (the keys are shown once and kept nowhere) ----
function initScreen() {
  const shares = field('Key shares', { type: 'number', min: 1, max: 255, value: '5', required: true, autofocus: true });
  const threshold = field('Key threshold', { type: 'number', min: 1, max: 255, value: '3', required: true });
  show('Initialize Tresor',
    h('p', {}, 'This server has no keys yet. Choose how many unseal key shares to make and how many of them unseal it.'),
    form('Initialize', [shares, threshold], 'Initialize', async () => {
      const r = await api('PUT', 'sys/init', { secret_shares: Number(shares.control.value), secret_threshold: Number(threshold.control.value) });
      const cont = h('button', { type: 'button', onclick: () => render() }, 'Continue to unseal');
      show('Initialized: save these now',
        h('div', { class: 'note', role: 'alert' }, 'These keys and this root token are shown once. Store them somewhere safe; Tresor cannot show them again.'),
        h('h2', {}, 'Unseal keys'),
        h('ol', { class: 'keys', id: 'unseal-keys' }, r.keys.map((k, i) => h('li', {}, h('span', { class: 'key-hex' }, k), h('br'), h('span', { class: 'muted key-b64' }, (r.keys_base64 || [])[i] || '')))),
        h('h2', {}, 'Initial root token'),
        h('p', { class: 'mono', id: 'root-token' }, r.root_token),
        h('div', { class: 'actions' }, cont));
      cont.focus();
    }));
}

// ---- unseal ----
function unsealScreen(status) {
  const progress = h('p', { id: 'unseal-progress' }, `Unseal progress: ${status.progress} of ${status.t} keys`);
  const bar = h('progress', { max: status.t, value: status.progress, 'aria-label': 'Unseal progress' });
  const key = field('Unseal key', { type: 'password', autocomplete: 'off', required: true, autofocus: true, hint: 'One key share, hex or base64' });
  show('Unseal Tresor',
    h('p', {}, `This server is sealed. Enter ${status.t} of its ${status.n} key shares, one at a time.`),
    bar, progress,
    form('Unseal', [key], 'Unseal', async () => {
      const r = await api('PUT', 'sys/unseal', { key: key.control.value.trim() });
      key.control.value = '';
      if (!r.sealed) {
        say('Unsealed.');
        return render();
      }
      bar.value = r.progress;
      progress.textContent = `Unseal progress: ${r.progress} of ${r.t} keys`;
      say(progress.textContent);
      key.control.focus();
    }, [h('button', { type: 'button', class: 'secondary', onclick: async () => { await api('PUT', 'sys/unseal', { reset: true }); render(); } }, 'Reset progress')]));
}

// ---- login ----
const METHODS = [['token', 'Token'], ['userpass', 'Username and password'], ['ldap', 'LDAP'], ['oidc', 'OIDC']];

function loginScreen(error) {
  const method = field('Method', { options: METHODS, autofocus: true });
  const fields = h('div', {});
  const remember = field('Remember in this tab (sessionStorage, gone when the tab closes)', { type: 'checkbox' });
  let inputs = {};
  const fill = () => {
    const m = method.control.value;
    inputs = {};
    if (m !== 'token') inputs.mount = field('Mount path', { value: m, autocomplete: 'off', spellcheck: 'false' });
    if (m === 'token') inputs.token = field('Token', { type: 'password', autocomplete: 'off', required: true });
    if (m === 'userpass' || m === 'ldap') {
      inputs.username = field('Username', { autocomplete: 'username', required: true, spellcheck: 'false' });
      inputs.password = field('Password', { type: 'password', autocomplete: 'current-password', required: true });
    }
    if (m === 'oidc') inputs.role = field('Role', { autocomplete: 'off', hint: 'Empty for the default role' });
    fields.replaceChildren(...Object.values(inputs));
  };
  method.control.addEventListener('change', fill);
  fill();
  const v = (k) => inputs[k].control.value;
  const app = providerPending();
  show('Sign in to Tresor',
    error ? errorBox(error) : null,
    app ? h('div', { class: 'note', id: 'provider-note' }, 'An application asks you to sign in: after you sign in, Tresor sends you back to it. ',
      h('button', { type: 'button', class: 'link', onclick: () => { sessionStorage.removeItem(PROVIDER_KEY); say('The application\'s sign-in request is cancelled.'); loginScreen(); } }, 'Cancel')) : null,
    form('Sign in', [method, fields, remember], 'Sign in', async () => {
      const m = method.control.value;
      const keep = remember.control.checked;
      const mount = m === 'token' ? 'token' : v('mount').replace(/^\/+|\/+$/g, '') || m;
      if (m === 'oidc') return oidcStart(mount, v('role'), keep);
      if (m === 'token') return finishLogin(v('token').trim(), keep, false);
      const tok = (await api('PUT', `auth/${mount}/login/${v('username')}`, { password: v('password') })).auth.client_token;
      await finishLogin(tok, keep, true);
    }));
}

async function finishLogin(tok, keep, fromLogin) {
  setToken(tok, keep, fromLogin);
  try {
    session.self = (await api('GET', 'auth/token/lookup-self')).data;
  } catch (e) {
    forgetToken();
    throw e;
  }
  session.acl = null;
  say('Signed in.');
  const app = providerPending();
  if (app) {
    app.signedIn = true;
    sessionStorage.setItem(PROVIDER_KEY, JSON.stringify(app));
    return providerAuthorize();
  }
  go('secrets');
}

// ---- an application's sign-in through one of Tresor's OIDC providers ----
// The provider's authorization_endpoint is /ui/vault/identity/oidc/provider/<name>/authorize.
// The request waits in sessionStorage (10 minutes at most) while the user signs in; then the
// authorize endpoint answers a code for the user's entity and the browser goes back to the
// application's redirect_uri. The server checks the client and its redirect URI before any
// other error, so only those first errors are shown here instead of going back with them.
function providerPending() {
  const p = JSON.parse(sessionStorage.getItem(PROVIDER_KEY) || 'null');
  if (p && Date.now() - p.at > PROVIDER_WAIT_MS) {
    sessionStorage.removeItem(PROVIDER_KEY);
    return null;
  }
  return p;
}

function backToApp(uri, values) {
  const u = new URL(uri);
  // Only a web address: never javascript:, data: or the like, whatever a client registered.
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    return show('Sign-in for an application failed', errorBox(new Error(`the application's redirect URI is not an http(s) address: ${u.protocol}`)));
  }
  for (const [k, v] of Object.entries(values)) u.searchParams.set(k, v);
  location.assign(u.toString());
}

async function providerAuthorize() {
  const app = providerPending();
  const params = Object.fromEntries(new URLSearchParams(app.query));
  const prompt = params.prompt;
  delete params.prompt;
  if (prompt === 'login' && !app.signedIn) {
    forgetToken();
    return loginScreen(new Error('The application asks you to sign in again.'));
  }
  const failed = (e) => show('Sign-in for an application failed', errorBox(e));
  let r;
  try {
    r = await api('GET', `identity/oidc/provider/${app.name}/authorize`, undefined, params);
  } catch (e) {
    const err = e.body && e.body.error;
    if (!err) {
      if (e.status === 403) { forgetToken(); return loginScreen(e); }
      sessionStorage.removeItem(PROVIDER_KEY);
      return failed(e);
    }
    if (err === 'max_age_violation') {
      forgetToken();
      app.signedIn = false;
      sessionStorage.setItem(PROVIDER_KEY, JSON.stringify(app));
      return loginScreen(new Error('The application asks for a recent sign-in: sign in again.'));
    }
    sessionStorage.removeItem(PROVIDER_KEY);
    const unchecked = err === 'invalid_client_id' || err === 'invalid_redirect_uri' || !params.redirect_uri;
    if (unchecked) return failed(new Error(`${err}: ${e.body.error_description || ''}`));
    return backToApp(params.redirect_uri, { error: err, error_description: e.body.error_description || '', state: e.body.state ?? '' });
  }
  sessionStorage.removeItem(PROVIDER_KEY);
  say('Returning to the application.');
  backToApp(params.redirect_uri, { code: r.code, state: r.state ?? '' });
}

// OIDC: the provider sends the browser back to /ui/vault/auth/<mount>/oidc/callback, which
// completes the login with the mount's callback endpoint. Only the mount, a client nonce and
// the "remember" choice wait in sessionStorage meanwhile (no token exists yet).
async function oidcStart(mount, role, keep) {
  const nonce = Array.from(crypto.getRandomValues(new Uint8Array(20)), (b) => b.toString(16).padStart(2, '0')).join('');
  const redirect = `${location.origin}/ui/vault/auth/${mount}/oidc/callback`;
  const r = await api('PUT', `auth/${mount}/oidc/auth_url`, { role, redirect_uri: redirect, client_nonce: nonce });
  const url = r && r.data && r.data.auth_url;
  if (!url) throw new Error('the server returned no auth_url: check the role and its allowed_redirect_uris (this page is ' + redirect + ')');
  sessionStorage.setItem(OIDC_KEY, JSON.stringify({ mount, nonce, keep }));
  location.assign(url);
}

async function oidcCallback(mount) {
  const q = new URLSearchParams(location.search);
  // The code must not stay in the address bar or history.
  history.replaceState(null, '', '/ui/');
  const pending = JSON.parse(sessionStorage.getItem(OIDC_KEY) || 'null');
  sessionStorage.removeItem(OIDC_KEY);
  try {
    if (q.get('error')) throw new Error(`the provider refused: ${q.get('error')} ${q.get('error_description') || ''}`);
    if (!pending || pending.mount !== mount) throw new Error('no OIDC login was started from this tab');
    const r = await api('GET', `auth/${mount}/oidc/callback`, undefined, { state: q.get('state') || '', code: q.get('code') || '', client_nonce: pending.nonce });
    await finishLogin(r.auth.client_token, pending.keep, true);
  } catch (e) {
    location.hash = '#/login';
    show('OIDC sign-in failed', errorBox(e), h('p', {}, h('a', { href: '#/login', onclick: () => setTimeout(render) }, 'Back to sign in')));
  }
}

// ---- status ----
async function statusScreen() {
  const seal = await api('GET', 'sys/seal-status');
  const self = (await api('GET', 'auth/token/lookup-self')).data;
  const rows = (o, keys) => h('table', {}, h('tbody', {}, keys.map((k) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, Array.isArray(o[k]) ? o[k].join(', ') : String(o[k] ?? ''))))));
  show('Status',
    h('h2', {}, 'Seal'), rows(seal, ['type', 'initialized', 'sealed', 't', 'n', 'progress', 'version', 'cluster_name']),
    h('h2', {}, 'Your token'), rows(self, ['display_name', 'policies', 'ttl', 'renewable', 'entity_id', 'accessor']));
}

// ---- start ----
window.addEventListener('hashchange', () => render());
const cb = location.pathname.match(/^\/ui\/vault\/auth\/(.+)\/oidc\/callback\/?$/);
const pa = location.pathname.match(/^\/ui\/vault\/identity\/oidc\/provider\/([^/]+)\/authorize\/?$/);
if (cb) {
  oidcCallback(decodeURIComponent(cb[1]));
} else {
  const provider = pa ? decodeURIComponent(pa[1]) : '';
  // A provider's name is one path segment: anything else is not a provider's request.
  if (pa && !/[/\\]/.test(provider) && provider !== '.' && provider !== '..') {
    sessionStorage.setItem(PROVIDER_KEY, JSON.stringify({ name: provider, query: location.search, at: Date.now(), signedIn: false }));
  }
  if (location.pathname !== '/ui/') history.replaceState(null, '', '/ui/' + location.hash);
  restoreToken();
  render();
}
