/**
 * The first part of the page's script (see `app.js.ts`, which joins the parts into one function
 * body): the settings from the page's `<meta>` tags, the DOM builder, the API calls and the status
 * line. Plain browser JavaScript in a string: no build step, nothing loaded from elsewhere.
 *
 * | piece          | what it does                                                               |
 * | -------------- | -------------------------------------------------------------------------- |
 * | `S`            | the page's state: settings, open groups and letters, filters, timers       |
 * | `h(tag, a, c)` | builds an element; text goes in as text nodes, `on*` keys become listeners |
 * | `api(m, p, b)` | fetch under the base path; a POST carries `x-csrf-token` and JSON          |
 * | `say(t, kind)` | the status line: shown until dismissed (a polling error clears itself)     |
 * | `ago`, `when`  | "3 min", local time with the ISO time as a tooltip                        |
 */
export const SCRIPT_KIT = String.raw`
function meta(name) {
  var m = document.querySelector('meta[name="' + name + '"]');
  return m ? m.getAttribute('content') || '' : '';
}

var S = {
  base: meta('dashboard-base').replace(/\/+$/, ''),
  token: meta('csrf-token'),
  readOnly: meta('dashboard-read-only') === 'true',
  pollMs: Number(meta('dashboard-poll-ms')) > 0 ? Number(meta('dashboard-poll-ms')) : 5000,
  expanded: new Set(),
  open: new Set(),
  details: new Map(),
  groupCache: new Map(),
  topics: new Set(),
  filters: { topic: '', error: '', q: '' },
  seq: 0,
  timer: null,
  busy: false,
  statusFromPoll: false,
  last: { overview: '', groups: '', handlers: '' },
};

function $(id) {
  return document.getElementById(id);
}

/** An element: attributes as given (a 'text' key sets textContent, 'on<event>' keys add listeners). */
function h(tag, attrs, children) {
  var e = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (k) {
    var v = attrs[k];
    if (v === null || v === undefined || v === false) return;
    if (k === 'text') e.textContent = String(v);
    else if (k === 'class') e.className = v;
    else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  });
  (children || []).forEach(function (c) {
    if (c === null || c === undefined || c === false) return;
    e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  });
  return e;
}

function replace(parent, children) {
  parent.replaceChildren.apply(parent, children.filter(Boolean));
}

function ApiError(status, message) {
  this.status = status;
  this.message = message;
}

function reasonOf(status, data) {
  var m = data && (data.message || data.error);
  if (Array.isArray(m)) m = m.join('; ');
  if (typeof m !== 'string' || !m) m = '';
  var names = { 401: 'Not signed in', 403: 'Refused', 404: 'Not found', 409: 'Conflict' };
  var name = names[status] || (status >= 500 ? 'The service failed' : 'Request failed');
  return name + ' (' + status + ')' + (m ? ': ' + m : '');
}

/** Calls the dashboard's API; rejects with an ApiError whose message is fit for the status line. */
async function api(method, path, body) {
  var init = { method: method, headers: { accept: 'application/json' }, cache: 'no-store', credentials: 'same-origin' };
  if (method !== 'GET') {
    init.headers['content-type'] = 'application/json';
    init.headers['x-csrf-token'] = S.token;
    init.body = JSON.stringify(body || {});
  }
  var res;
  try {
    res = await fetch(S.base + path, init);
  } catch (e) {
    throw new ApiError(0, 'Cannot reach the service (network error). The page keeps trying.');
  }
  var text = await res.text();
  var data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    var msg = reasonOf(res.status, data);
    if (res.status === 403 && method !== 'GET') msg += '. The dashboard may be read-only, or the page is stale: reload it.';
    throw new ApiError(res.status, msg);
  }
  return data;
}

/** Shows a message in the status line until dismissed; kind is 'error', 'ok' or 'info'. */
function say(text, kind, fromPoll) {
  var box = $('status');
  $('status-text').textContent = text;
  box.className = 'status status-' + (kind || 'info');
  box.hidden = false;
  S.statusFromPoll = !!fromPoll;
}

function unsay() {
  $('status').hidden = true;
  S.statusFromPoll = false;
}

function fail(prefix) {
  return function (e) {
    say(prefix + ': ' + (e && e.message ? e.message : String(e)), 'error');
  };
}

function num(n) {
  return typeof n === 'number' && isFinite(n) ? n.toLocaleString('en-US') : '–';
}

function plural(n, one, many) {
  return num(n) + ' ' + (n === 1 ? one : many || one + 's');
}

/** A duration in a human form: "42 s", "3 min", "5 h", "2 d". */
function ago(ms) {
  var s = Math.max(0, Math.floor((Number(ms) || 0) / 1000));
  if (s < 60) return s + ' s';
  var m = Math.floor(s / 60);
  if (m < 60) return m + ' min';
  var hr = Math.floor(m / 60);
  if (hr < 48) return hr + ' h';
  return Math.floor(hr / 24) + ' d';
}

function since(iso) {
  var t = Date.parse(iso);
  return isNaN(t) ? '–' : ago(Date.now() - t) + ' ago';
}

/** A <time> element: local time (the time of day alone when today), the ISO time as a tooltip. */
function when(iso) {
  var d = new Date(iso);
  if (isNaN(d.getTime())) return h('span', { class: 'muted', text: '–' });
  var today = d.toDateString() === new Date().toDateString();
  var text = today
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  return h('time', { datetime: iso, title: iso, text: text });
}

function badge(text, tone) {
  return h('span', { class: 'badge badge-' + tone, text: text });
}

/** A table that becomes a list of cards on a narrow screen (each cell shows its column's name). */
function table(cls, columns, rows) {
  var head = h('tr', {}, columns.map(function (c) {
    return h('th', { scope: 'col', class: c.cls, text: c.label });
  }));
  return h('div', { class: 'table-wrap' }, [
    h('table', { class: 'grid ' + cls }, [h('thead', {}, [head]), h('tbody', {}, rows)]),
  ]);
}

function cell(column, content) {
  return h('td', { class: column.cls, 'data-label': column.label }, [content]);
}
`;
