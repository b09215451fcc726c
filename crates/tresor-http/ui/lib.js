// The API client and DOM helpers shared by every screen.
//
// The token lives in this module's memory. Only when the user ticks "remember in this tab" is
// it also kept in sessionStorage (gone when the tab closes); it is never written to
// localStorage, a cookie or a URL.

const KEY = 'tresor.token';
const ISSUED = 'tresor.token.issued';
let token = null;
// Whether this page obtained the token by logging in (and so revokes it at log-out); a token
// the user pasted is theirs, and is only forgotten.
let issued = false;

export function restoreToken() {
  token = sessionStorage.getItem(KEY);
  issued = token !== null && sessionStorage.getItem(ISSUED) === '1';
  return token;
}
export function setToken(t, remember, fromLogin) {
  token = t;
  issued = !!fromLogin;
  if (remember) {
    sessionStorage.setItem(KEY, t);
    if (issued) sessionStorage.setItem(ISSUED, '1');
    else sessionStorage.removeItem(ISSUED);
  } else {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(ISSUED);
  }
}
export function forgetToken() {
  token = null;
  issued = false;
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ISSUED);
}
export const hasToken = () => token !== null;
export const tokenIssuedHere = () => token !== null && issued;

export class ApiError extends Error {
  constructor(status, errors, body) {
    super(errors.join('; ') || `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
    this.body = body;
  }
}

// A path for the URL: each segment percent-encoded, the slashes kept.
export const encPath = (p) => p.split('/').map(encodeURIComponent).join('/');

// One call to the Vault API. `method` is GET/PUT/POST/DELETE or LIST (sent as GET ?list=true).
export async function api(method, path, body, query) {
  const q = new URLSearchParams(query || {});
  if (method === 'LIST') {
    method = 'GET';
    q.set('list', 'true');
  }
  const headers = { 'X-Vault-Request': 'true' };
  if (token !== null) headers['X-Vault-Token'] = token;
  const init = { method, headers, credentials: 'omit', cache: 'no-store', redirect: 'error', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 30000);
  init.signal = ctl.signal;
  const qs = q.toString();
  let r;
  try {
    r = await fetch('/v1/' + encPath(path.replace(/^\/+/, '')) + (qs ? '?' + qs : ''), init);
  } catch (e) {
    throw new ApiError(0, [ctl.signal.aborted ? 'the server did not answer within 30 s' : 'request failed: ' + e.message]);
  } finally {
    clearTimeout(timer);
  }
  const text = await r.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = null; }
  }
  if (!r.ok) {
    let errors = json && Array.isArray(json.errors) ? json.errors.map(String) : [];
    if (!errors.length) errors = [r.status === 404 ? 'not found' : `HTTP ${r.status} ${r.statusText}`.trim()];
    throw new ApiError(r.status, errors, json);
  }
  return json;
}

// h('tag', {attrs, onclick: fn, ...}, children...): DOM from nodes and text only (no HTML
// strings anywhere: the CSP's Trusted Types rule would refuse them).
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  append(el, kids);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  return el;
}
function append(el, kids) {
  for (const k of kids) {
    if (k === null || k === undefined || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else el.append(k instanceof Node ? k : String(k));
  }
}

let seq = 0;
// A labelled control: returns the wrapper; `.control` is the input.
export function field(label, attrs = {}, tag = 'input') {
  const { options, hint, ...rest } = attrs;
  if (options) tag = 'select';
  const id = 'f' + ++seq;
  const a = { id, ...rest };
  if (tag === 'input' && !a.type) a.type = 'text';
  if (hint) a['aria-describedby'] = id + 'h';
  const control = h(tag, a, ...(options || []).map(([v, t]) => h('option', { value: v }, t)));
  const wrap = a.type === 'checkbox'
    ? h('div', { class: 'field check' }, control, h('label', { for: id }, label))
    : h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('span', { class: 'muted', id: id + 'h' }, hint) : null);
  wrap.control = control;
  return wrap;
}

// Vault's `errors` list, as the server sent it.
export function errorBox(e) {
  const errors = e instanceof ApiError ? e.errors : [e && e.message ? e.message : String(e)];
  const status = e instanceof ApiError && e.status ? ` (HTTP ${e.status})` : '';
  return h('div', { class: 'errors', role: 'alert' }, h('strong', {}, 'Error' + status), h('ul', {}, errors.map((x) => h('li', {}, x))));
}

// A form whose submit (button or Enter) runs `action`; errors show above the buttons.
export function form(label, children, submit, action, extra = []) {
  const err = h('div', { class: 'form-errors' });
  const button = h('button', { type: 'submit' }, submit);
  const f = h('form', { 'aria-label': label, novalidate: true }, children, err, h('div', { class: 'actions' }, button, extra));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.replaceChildren();
    button.disabled = true;
    try {
      await action(f);
    } catch (e) {
      err.replaceChildren(errorBox(e));
    } finally {
      button.disabled = false;
    }
  });
  return f;
}

// A button whose click runs `action`, reporting errors into `where`.
export function actionButton(text, cls, where, action) {
  const b = h('button', { type: 'button', class: cls }, text);
  b.addEventListener('click', async () => {
    b.disabled = true;
    where.replaceChildren();
    try { await action(); } catch (e) { where.replaceChildren(errorBox(e)); } finally { b.disabled = false; }
  });
  return b;
}

export const pretty = (v) => JSON.stringify(v, null, 2);

export function say(text) {
  const live = document.getElementById('live');
  live.textContent = text;
  clearTimeout(say.t);
  say.t = setTimeout(() => { live.textContent = ''; }, 6000);
}

// '#/screen?k=v' links.
export const link = (screen, params) => '#/' + screen + (params ? '?' + new URLSearchParams(params) : '');

export function go(screen, params) {
  const target = link(screen, params);
  if (location.hash === target) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = target;
}

// What the signed-in token is (lookup-self) and may do (resultant ACL), cached per login.
export const session = { self: null, acl: null };

// Shows a screen: a heading and its content; focus moves to the first [autofocus] control or
// to the main region, so keyboard and screen-reader users start at the new content.
export function show(title, ...content) {
  const main = document.getElementById('main');
  document.title = title + ' · Tresor';
  main.replaceChildren(h('h1', {}, title));
  append(main, content);
  const first = main.querySelector('[autofocus]');
  (first || main).focus();
}

// Capability badges.
export const badges = (caps) => h('span', { class: 'caps' }, [...caps].sort().map((c) => h('span', { class: 'badge' }, c)));
