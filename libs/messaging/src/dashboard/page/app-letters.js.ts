/**
 * The dead-letter part of the page's script (joined after `app-kit.js.ts` by `app.js.ts`): the
 * groups, their letters, a letter's headers and body, Replay and Purge, and the progress of a
 * group's job.
 *
 * | what the operator does     | request                                       | then                                   |
 * | -------------------------- | --------------------------------------------- | -------------------------------------- |
 * | opens a group              | none (the letters came with the groups)       | stays open across refreshes            |
 * | `View` on a letter         | GET `api/dead-letters/:id`                    | headers and body, as text; stays open  |
 * | `Replay` on a letter       | POST `api/dead-letters/:id/replay`            | status line, letters reloaded          |
 * | `Replay` on a group        | POST `api/groups/:fingerprint/replay`         | a job line: "Replaying 12/40…", outcome |
 * | `Purge` on a group         | `confirm()`, then POST `…/purge` `{ confirm }` | the same job line                      |
 * | types in a filter          | GET `api/dead-letters?topic=&error=&q=`       | after a pause of 300 ms                |
 */
export const SCRIPT_LETTERS = String.raw`
var LETTER_COLUMNS = [
  { label: 'Topic', cls: 'mono' },
  { label: 'Error', cls: 'err' },
  { label: 'Attempts', cls: 'num' },
  { label: 'First failure' },
  { label: 'Last failure' },
  { label: 'Age', cls: 'num' },
  { label: '', cls: 'row-actions' },
];

async function loadLetters() {
  var seq = ++S.seq;
  var f = S.filters;
  var query = new URLSearchParams();
  ['topic', 'error', 'q'].forEach(function (k) {
    if (f[k]) query.set(k, f[k]);
  });
  var qs = query.toString();
  var data = await api('GET', '/api/dead-letters' + (qs ? '?' + qs : ''));
  if (seq !== S.seq) return;
  var json = JSON.stringify(data) + qs;
  if (json === S.last.groups) return;
  S.last.groups = json;
  renderGroups(data || { total: 0, groups: [], truncated: false });
}

function renderGroups(data) {
  var groups = Array.isArray(data.groups) ? data.groups : [];
  var filtered = S.filters.topic || S.filters.error || S.filters.q;
  $('dl-total').textContent = num(data.total);
  $('dl-total').className = 'count' + (data.total > 0 ? ' count-bad' : '');
  groups.forEach(function (g) {
    (g.topics || []).forEach(function (t) {
      S.topics.add(t);
    });
  });
  fillTopics();
  var seen = new Set();
  var items = groups.map(function (g) {
    seen.add(g.fingerprint);
    var json = JSON.stringify(g);
    var cached = S.groupCache.get(g.fingerprint);
    if (cached && cached.json === json) return cached.el;
    var el = groupEl(g);
    S.groupCache.set(g.fingerprint, { json: json, el: el });
    return el;
  });
  S.groupCache.forEach(function (_v, fp) {
    if (!seen.has(fp)) S.groupCache.delete(fp);
  });
  if (!items.length) {
    items = [h('p', { class: 'empty', text: filtered ? 'No dead letters match these filters.' : 'No dead letters. All messages were handled.' })];
  }
  if (data.truncated) {
    items.unshift(h('p', { class: 'muted', text: 'More letters exist than were read: the newest are listed. Narrow them with the filters.' }));
  }
  replace($('groups'), items);
}

function fillTopics() {
  var select = $('f-topic');
  var have = new Set(Array.prototype.map.call(select.options, function (o) {
    return o.value;
  }));
  Array.from(S.topics).sort().forEach(function (t) {
    if (!have.has(t)) select.appendChild(h('option', { value: t, text: t }));
  });
}

var groupIds = new Map();
function domId(prefix, key) {
  if (!groupIds.has(key)) groupIds.set(key, groupIds.size + 1);
  return prefix + groupIds.get(key);
}

function groupEl(g) {
  var fp = g.fingerprint;
  var open = S.expanded.has(fp);
  var listId = domId('letters-', fp);
  var letters = Array.isArray(g.letters) ? g.letters : [];
  var panel = h('div', { id: listId, class: 'letters', hidden: !open }, [
    letters.length < g.count ? h('p', { class: 'muted', text: 'Showing ' + num(letters.length) + ' of ' + num(g.count) + ' letters.' }) : null,
    table('letters-table', LETTER_COLUMNS, [].concat.apply([], letters.map(letterRows))),
  ]);
  var toggle = h('button', {
    type: 'button', class: 'quiet toggle', 'aria-expanded': open ? 'true' : 'false', 'aria-controls': listId,
    text: open ? 'Hide letters' : 'Show letters',
    onclick: function () {
      var now = !S.expanded.has(fp);
      if (now) S.expanded.add(fp);
      else S.expanded.delete(fp);
      panel.hidden = !now;
      toggle.setAttribute('aria-expanded', now ? 'true' : 'false');
      toggle.textContent = now ? 'Hide letters' : 'Show letters';
    },
  });
  var all = g.count === 1 ? 'the letter' : 'all ' + num(g.count) + ' letters';
  var actions = [toggle];
  if (!S.readOnly) {
    actions.push(h('button', {
      type: 'button', class: 'primary', text: 'Replay', title: 'Replay ' + all + ' of this group',
      onclick: function (ev) {
        startJob(ev.currentTarget, g, 'replay', {});
      },
    }));
    actions.push(h('button', {
      type: 'button', class: 'danger', text: 'Purge', title: 'Delete ' + all + ' of this group (asks first)',
      onclick: function (ev) {
        var ask = 'Delete ' + all + ' of this group for good? They cannot be replayed afterwards.\n\n' + g.errorClass + ': ' + g.errorShape;
        if (window.confirm(ask)) startJob(ev.currentTarget, g, 'purge', { confirm: fp });
      },
    }));
  }
  var topics = g.topics || [];
  return h('article', { class: 'group', 'data-testid': 'dead-letter-group', 'data-fingerprint': fp }, [
    h('div', { class: 'group-head' }, [
      h('div', { class: 'group-main' }, [
        h('p', { class: 'group-title' }, [
          h('span', { class: 'count count-bad', text: num(g.count) }),
          h('strong', { class: 'err-class', text: g.errorClass || 'Error' }),
        ]),
        h('p', { class: 'err-shape', text: g.errorShape }),
        h('p', { class: 'meta' }, [
          (topics.length === 1 ? 'Topic ' : 'Topics ') + (topics.join(', ') || '–'),
          ' · first failed ' + since(g.firstFailedAt) + ' · last ' + since(g.lastFailedAt),
        ]),
      ]),
      h('div', { class: 'actions' }, actions),
    ]),
    panel,
  ]);
}

function letterRows(l) {
  var c = LETTER_COLUMNS;
  var isOpen = S.open.has(l.id);
  var detailCell = h('td', { colspan: c.length, class: 'detail-cell' });
  var detailRow = h('tr', { class: 'detail-row', hidden: !isOpen }, [detailCell]);
  var view = h('button', {
    type: 'button', class: 'quiet', text: isOpen ? 'Hide' : 'View', 'aria-expanded': isOpen ? 'true' : 'false',
    title: 'Headers and body of letter ' + l.id,
    onclick: function () {
      var now = !S.open.has(l.id);
      if (now) S.open.add(l.id);
      else S.open.delete(l.id);
      detailRow.hidden = !now;
      view.textContent = now ? 'Hide' : 'View';
      view.setAttribute('aria-expanded', now ? 'true' : 'false');
      if (now) showDetail(l.id, detailCell);
    },
  });
  var buttons = [view];
  if (!S.readOnly) {
    buttons.push(h('button', {
      type: 'button', class: 'primary', text: 'Replay', title: 'Replay letter ' + l.id,
      onclick: function (ev) {
        replayLetter(ev.currentTarget, l);
      },
    }));
  }
  if (isOpen) showDetail(l.id, detailCell);
  var row = h('tr', { 'data-testid': 'dead-letter-row', 'data-id': l.id }, [
    cell(c[0], l.topic),
    cell(c[1], h('span', { class: 'err-text', title: l.error, text: l.error })),
    cell(c[2], num(l.attempts)),
    cell(c[3], when(l.firstFailedAt)),
    cell(c[4], when(l.lastFailedAt)),
    cell(c[5], ago(l.ageMs)),
    cell(c[6], h('span', { class: 'buttons' }, buttons)),
  ]);
  return [row, detailRow];
}

async function showDetail(id, target) {
  var cached = S.details.get(id);
  if (cached) return replace(target, [detailEl(cached)]);
  replace(target, [h('p', { class: 'muted', text: 'Loading…' })]);
  try {
    var d = await api('GET', '/api/dead-letters/' + encodeURIComponent(id));
    S.details.set(id, d);
    replace(target, [detailEl(d)]);
  } catch (e) {
    var gone = e.status === 404;
    replace(target, [h('p', { class: 'err', text: gone ? 'This letter is gone (replayed or purged).' : e.message })]);
    if (!gone) say('Could not read letter ' + id + ': ' + e.message, 'error');
  }
}

function prettyBody(d) {
  if (d.bodyEncoding !== 'utf8' || d.bodyTruncated) return d.body;
  try {
    var v = JSON.parse(d.body);
    return typeof v === 'object' && v !== null ? JSON.stringify(v, null, 2) : d.body;
  } catch (e) {
    return d.body;
  }
}

function detailEl(d) {
  var facts = [
    ['Message id', d.messageId], ['Connection', d.connection], ['Queue', d.queue], ['Reason', d.reason],
    ['Error class', d.errorClass], ['Dead-lettered', d.deadLetteredAt], ['Content type', d.contentType],
    ['Content encoding', d.contentEncoding],
  ].filter(function (f) {
    return f[1] !== undefined && f[1] !== null && f[1] !== '';
  });
  var headers = d.headers && typeof d.headers === 'object' ? Object.keys(d.headers) : [];
  var notes = [];
  if (d.bodyEncoding === 'base64') notes.push('base64: the body is bytes, not text');
  if (d.bodyTruncated) notes.push('truncated, ' + num(d.bodyBytes) + ' bytes in all');
  else notes.push(plural(d.bodyBytes, 'byte'));
  return h('div', { class: 'detail' }, [
    h('dl', { class: 'facts' }, [].concat.apply([], facts.map(function (f) {
      return [h('dt', { text: f[0] }), h('dd', { text: String(f[1]) })];
    }))),
    h('h4', { text: 'Error' }),
    h('pre', { class: 'pre err-full', text: d.error }),
    h('h4', { text: 'Headers (' + headers.length + ')' }),
    headers.length
      ? h('dl', { class: 'facts headers' }, [].concat.apply([], headers.map(function (k) {
          var v = d.headers[k];
          return [h('dt', { text: k }), h('dd', { text: typeof v === 'string' ? v : JSON.stringify(v) })];
        })))
      : h('p', { class: 'muted', text: 'No headers.' }),
    h('h4', {}, ['Body ', h('span', { class: 'muted body-note', text: '(' + notes.join('; ') + ')' })]),
    h('pre', { class: 'pre body', 'data-testid': 'letter-body', 'data-encoding': d.bodyEncoding, text: prettyBody(d) }),
  ]);
}

async function replayLetter(button, l) {
  button.disabled = true;
  try {
    var r = await api('POST', '/api/dead-letters/' + encodeURIComponent(l.id) + '/replay', {});
    if (r && r.replayed === false) say('Letter ' + l.id + ' was not replayed.', 'error');
    else say('Replayed letter ' + l.id + ' to ' + l.topic + '.', 'ok');
    S.open.delete(l.id);
    S.details.delete(l.id);
  } catch (e) {
    say('Replay of letter ' + l.id + ' failed: ' + e.message, 'error');
  } finally {
    button.disabled = false;
  }
  await loadLetters().catch(fail('Reloading the dead letters failed'));
}

var JOB_WORDS = { replay: ['Replaying', 'Replay', 'replayed'], purge: ['Purging', 'Purge', 'purged'] };

async function startJob(button, g, kind, body) {
  button.disabled = true;
  try {
    var job = await api('POST', '/api/groups/' + encodeURIComponent(g.fingerprint) + '/' + kind, body);
    followJob(job, g);
  } catch (e) {
    say(JOB_WORDS[kind][1] + ' of the group "' + g.errorClass + '" failed: ' + e.message, 'error');
  } finally {
    button.disabled = false;
  }
}

/** A line in the jobs list that follows a group job (GET api/jobs/:id) until it is finished. */
function followJob(job, g) {
  var words = JOB_WORDS[job.kind] || JOB_WORDS.replay;
  var label = g.errorClass + ': ' + g.errorShape;
  var bar = h('progress', { max: Math.max(1, job.total), value: job.done });
  var text = h('span', { class: 'job-text' });
  var failures = h('ul', { class: 'failures' });
  var dismiss = h('button', { type: 'button', class: 'dismiss', 'aria-label': 'Dismiss', text: '×', hidden: true, onclick: function () { line.remove(); } });
  var line = h('div', { class: 'job', 'data-testid': 'job', 'data-job': job.id, role: 'status' }, [
    h('div', { class: 'job-head' }, [text, dismiss]), bar, h('p', { class: 'muted job-group', text: label }), failures,
  ]);
  $('jobs').prepend(line);
  var period = Math.max(250, Math.min(1000, S.pollMs));
  function show(j) {
    bar.value = j.done;
    bar.max = Math.max(1, j.total);
    var failed = Array.isArray(j.failed) ? j.failed : [];
    if (!j.finished) {
      text.textContent = words[0] + ' ' + num(j.done) + '/' + num(j.total) + '…';
      return;
    }
    line.classList.add(failed.length ? 'job-bad' : 'job-ok');
    text.textContent = words[1] + ' finished: ' + num(Math.max(0, j.done - failed.length)) + ' of ' + num(j.total) + ' ' + words[2] + (failed.length ? ', ' + num(failed.length) + ' failed:' : '.');
    replace(failures, failed.map(function (f) {
      return h('li', {}, [h('span', { class: 'mono', text: f.id }), ': ', h('span', { class: 'err', text: f.error })]);
    }));
    dismiss.hidden = false;
  }
  async function tick(j) {
    show(j);
    if (j.finished) return loadLetters().catch(fail('Reloading the dead letters failed'));
    await new Promise(function (r) {
      setTimeout(r, period);
    });
    try {
      tick(await api('GET', '/api/jobs/' + encodeURIComponent(job.id)));
    } catch (e) {
      if (e.status === 404) {
        text.textContent = words[1] + ': the job is gone (the service restarted?).';
        dismiss.hidden = false;
        return;
      }
      say('Following the ' + job.kind + ' job failed: ' + e.message, 'error');
      tick(j);
    }
  }
  tick(job);
}

function watchFilters() {
  var form = $('filters');
  var pause = null;
  function apply() {
    clearTimeout(pause);
    pause = setTimeout(function () {
      S.filters = { topic: $('f-topic').value, error: $('f-error').value.trim(), q: $('f-q').value.trim() };
      loadLetters().catch(fail('Reading the dead letters failed'));
    }, 300);
  }
  form.addEventListener('input', apply);
  form.addEventListener('reset', function () {
    setTimeout(apply, 0);
  });
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    apply();
  });
}
`;
