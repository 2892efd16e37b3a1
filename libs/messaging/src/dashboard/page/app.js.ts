import { SCRIPT_KIT } from './app-kit.js';
import { SCRIPT_LETTERS } from './app-letters.js';

/**
 * The overview part of the page's script, and the start: the connections and backlog strip, the
 * handlers table, and the polling loop.
 *
 * | when                      | the page                                                           |
 * | ------------------------- | ------------------------------------------------------------------ |
 * | loaded                    | reads overview and dead letters at once                            |
 * | every `pollMs`            | reads them again; what did not change is left as it is (open groups and letters stay open) |
 * | tab hidden                | stops polling (`data-polling="paused"` on `<main>`)               |
 * | tab shown again           | reads at once, then polls again (`data-polling="on"`)             |
 * | a read fails              | says so in the status line; the next good read clears it           |
 */
const SCRIPT_OVERVIEW = String.raw`
var STATE_TONES = {
  attached: ['attached', 'ok'], paused: ['paused', 'idle'], 'circuit-open': ['circuit open', 'bad'],
  'circuit-half-open': ['circuit half-open', 'warn'], detached: ['detached', 'idle'],
};

var HANDLER_COLUMNS = [
  { label: 'Handler', cls: 'mono' }, { label: 'Topic', cls: 'mono' }, { label: 'Queue', cls: 'mono' },
  { label: 'Connection' }, { label: 'Concurrency', cls: 'num' }, { label: 'State' },
  { label: 'In flight', cls: 'num' }, { label: 'Handled', cls: 'num' }, { label: 'Retried', cls: 'num' },
  { label: 'Dead-lettered', cls: 'num' }, { label: 'Rate/s', cls: 'num' },
];

async function loadOverview() {
  var o = await api('GET', '/api/overview');
  if (o && o.readOnly && !S.readOnly) becomeReadOnly();
  $('updated').textContent = 'Updated ' + new Date().toLocaleTimeString();
  var json = JSON.stringify([o.connections, o.outbox, o.deadLetters]);
  if (json !== S.last.overview) {
    S.last.overview = json;
    renderOverview(o);
  }
  json = JSON.stringify(o.handlers);
  if (json !== S.last.handlers) {
    S.last.handlers = json;
    renderHandlers(o.handlers || []);
  }
}

/** The server says read-only though the page was not rendered so: drop the buttons, say why. */
function becomeReadOnly() {
  S.readOnly = true;
  S.groupCache.clear();
  S.last.groups = '';
  var note = h('p', { class: 'ro-note', 'data-testid': 'read-only', text: 'Read-only: replay and purge are turned off.' });
  document.querySelector('header.top').insertBefore(note, $('updated'));
}

function connectionTone(status) {
  if (status === 'connected') return 'ok';
  if (status === 'closed' || status === 'failed') return 'bad';
  return 'warn';
}

function renderOverview(o) {
  var cards = (o.connections || []).map(function (c) {
    return h('div', { class: 'card', 'data-testid': 'connection', 'data-connection': c.name }, [
      h('p', { class: 'card-title' }, [h('strong', { text: c.name }), ' ', h('span', { class: 'muted', text: c.backend })]),
      h('p', { class: 'badges' }, [
        badge(c.status, connectionTone(c.status)),
        badge(c.health, c.health === 'up' ? 'ok' : 'bad'),
        c.blocked ? badge('blocked', 'bad') : null,
      ]),
    ]);
  });
  if (o.outbox) {
    cards.push(h('div', { class: 'card', 'data-testid': 'outbox' }, [
      h('p', { class: 'card-title' }, [h('strong', { text: 'Outbox' })]),
      h('p', {}, [badge(plural(o.outbox.backlog, 'message') + ' waiting', o.outbox.backlog > 0 ? 'warn' : 'ok')]),
      o.outbox.lastError ? h('p', { class: 'err small', text: 'Last error: ' + o.outbox.lastError }) : null,
    ]));
  }
  var dl = o.deadLetters || { total: 0, groups: 0 };
  cards.push(h('a', { class: 'card card-link', href: '#dead-letters' }, [
    h('p', { class: 'card-title' }, [h('strong', { text: 'Dead letters' })]),
    h('p', {}, [badge(plural(dl.total, 'letter') + ' in ' + plural(dl.groups, 'group'), dl.total > 0 ? 'bad' : 'ok')]),
  ]));
  replace($('overview'), cards);
}

function renderHandlers(handlers) {
  var c = HANDLER_COLUMNS;
  if (!handlers.length) {
    return replace($('handlers-body'), [h('p', { class: 'empty', text: 'No handlers in this service.' })]);
  }
  var rows = handlers.map(function (x) {
    var tone = STATE_TONES[x.state] || [x.state, 'idle'];
    return h('tr', { 'data-testid': 'handler-row', 'data-handler': x.name }, [
      cell(c[0], x.name),
      cell(c[1], x.topic ? x.topic : h('span', { class: 'muted', text: '(queue)' })),
      cell(c[2], x.queue),
      cell(c[3], x.connection),
      cell(c[4], num(x.concurrency)),
      cell(c[5], badge(tone[0], tone[1])),
      cell(c[6], num(x.inFlight)),
      cell(c[7], num(x.handled)),
      cell(c[8], num(x.retried)),
      cell(c[9], x.deadLettered > 0 ? h('span', { class: 'err', text: num(x.deadLettered) }) : num(x.deadLettered)),
      cell(c[10], typeof x.ratePerSecond === 'number' ? x.ratePerSecond.toFixed(x.ratePerSecond < 10 ? 2 : 1) : '–'),
    ]);
  });
  replace($('handlers-body'), [table('handlers-table', c, rows)]);
}

function polling(state) {
  $('app').setAttribute('data-polling', state);
}

function schedule() {
  clearTimeout(S.timer);
  S.timer = null;
  if (document.hidden) return polling('paused');
  polling('on');
  S.timer = setTimeout(refresh, S.pollMs);
}

async function refresh() {
  clearTimeout(S.timer);
  if (S.busy) return;
  S.busy = true;
  var errors = [];
  function note(what) {
    return function (e) {
      errors.push(what + ': ' + (e && e.message ? e.message : String(e)));
    };
  }
  await Promise.all([
    loadOverview().catch(note('Reading the overview failed')),
    loadLetters().catch(note('Reading the dead letters failed')),
  ]);
  S.busy = false;
  if (errors.length) say(errors[0], 'error', true);
  else if (S.statusFromPoll) unsay();
  schedule();
}

function start() {
  $('status-dismiss').addEventListener('click', unsay);
  watchFilters();
  document.addEventListener('visibilitychange', function () {
    if (document.hidden) {
      clearTimeout(S.timer);
      polling('paused');
    } else {
      refresh();
    }
  });
  refresh();
}

start();
`;

/**
 * The page's script (plain browser JavaScript, served as `{path}/assets/app.js`). It builds the page
 * with DOM calls and `textContent` only, so a dead letter's body or header renders as text; it needs
 * no inline script or style, so the page runs under a CSP of `'self'` only.
 */
export const DASHBOARD_SCRIPT = `(function () {
'use strict';
${SCRIPT_KIT}${SCRIPT_LETTERS}${SCRIPT_OVERVIEW}})();
`;
