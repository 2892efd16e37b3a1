/**
 * The page's style (served as `{path}/assets/app.css`): the system font, light and dark schemes
 * (`prefers-color-scheme`), no web font and nothing loaded from elsewhere.
 *
 * | width        | tables                                                             |
 * | ------------ | ------------------------------------------------------------------ |
 * | over 640px   | ordinary tables, scrolling sideways inside their box when too wide |
 * | 640px, less  | each row a card, each cell labelled with its column (`data-label`) |
 *
 * Colours: badges and counts say state by tone (`ok` green, `warn` amber, `bad` red, `idle` grey)
 * and by their words, never by colour alone.
 */
export const DASHBOARD_STYLE = `:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --panel: #ffffff; --text: #1b1f24; --muted: #5b6470; --line: #d9dde3;
  --accent: #0b5cd5; --accent-text: #ffffff; --bad: #b42318; --bad-bg: #fde8e6; --warn: #8a5300;
  --warn-bg: #fff1d6; --ok: #146c2e; --ok-bg: #e3f5e8; --idle: #4b5563; --idle-bg: #eceef1;
  --code-bg: #f1f3f6;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #111418; --panel: #1a1e24; --text: #e6e8eb; --muted: #9aa3ad; --line: #2e353e;
    --accent: #4c8dff; --accent-text: #0b0d10; --bad: #ff8a80; --bad-bg: #3a1715; --warn: #f5c26b;
    --warn-bg: #3a2c10; --ok: #7bd88f; --ok-bg: #12301b; --idle: #b4bcc6; --idle-bg: #262c34;
    --code-bg: #14171c;
  }
}
[hidden] { display: none !important; }
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--text); line-height: 1.4; font-size: 15px;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
.mono, .pre, .err-shape, code {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 13px;
}
h1 { font-size: 20px; margin: 0; }
h2 { font-size: 17px; margin: 0 0 10px; display: flex; align-items: center; gap: 8px; }
h4 { font-size: 13px; margin: 12px 0 4px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
p { margin: 0; }
a { color: var(--accent); }
.muted, .updated { color: var(--muted); }
.small { font-size: 13px; }
.err { color: var(--bad); }
header.top {
  display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 16px; padding: 14px 16px;
  background: var(--panel); border-bottom: 1px solid var(--line);
}
.title { display: flex; align-items: baseline; gap: 10px; flex-wrap: wrap; min-width: 0; }
.title h1 { overflow-wrap: anywhere; }
.sub { color: var(--muted); font-size: 14px; }
.updated { margin-left: auto; font-size: 13px; }
.ro-note {
  padding: 2px 10px; border-radius: 999px; background: var(--warn-bg); color: var(--warn);
  font-size: 13px; font-weight: 600;
}
.status {
  position: sticky; top: 0; z-index: 2; display: flex; align-items: flex-start; gap: 10px;
  padding: 10px 16px; border-bottom: 1px solid var(--line); background: var(--panel);
}
.status-text { flex: 1; overflow-wrap: anywhere; }
.status-error { background: var(--bad-bg); color: var(--bad); }
.status-ok { background: var(--ok-bg); color: var(--ok); }
main { max-width: 1280px; margin: 0 auto; padding: 12px 16px 40px; display: grid; gap: 16px; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 14px; min-width: 0; }
.overview { display: flex; flex-wrap: wrap; gap: 10px; }
.card {
  flex: 1 1 180px; min-width: 0; background: var(--panel); border: 1px solid var(--line);
  border-radius: 8px; padding: 10px 12px; display: grid; gap: 6px; align-content: start;
  color: inherit; text-decoration: none;
}
.card-link:hover, .card-link:focus-visible { border-color: var(--accent); }
.card-title { overflow-wrap: anywhere; }
.badges { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.badge {
  display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12.5px; font-weight: 600;
  white-space: nowrap;
}
.badge-ok { background: var(--ok-bg); color: var(--ok); }
.badge-warn { background: var(--warn-bg); color: var(--warn); }
.badge-bad { background: var(--bad-bg); color: var(--bad); }
.badge-idle { background: var(--idle-bg); color: var(--idle); }
.count {
  display: inline-block; min-width: 24px; padding: 0 8px; border-radius: 999px; text-align: center;
  font-size: 13px; font-weight: 700; background: var(--idle-bg); color: var(--idle);
}
.count-bad { background: var(--bad); color: var(--panel); }
button {
  font: inherit; font-size: 14px; padding: 5px 12px; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--line); background: var(--panel); color: var(--text); min-height: 32px;
}
button:hover { border-color: var(--muted); }
button:focus-visible, input:focus-visible, select:focus-visible, a:focus-visible {
  outline: 2px solid var(--accent); outline-offset: 2px;
}
button:disabled { opacity: .55; cursor: progress; }
button.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-text); font-weight: 600; }
button.danger { color: var(--bad); border-color: var(--bad); }
button.quiet { background: transparent; }
button.dismiss { border: 0; background: transparent; color: inherit; font-size: 20px; line-height: 1; padding: 2px 8px; }
.filters { display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: end; margin-bottom: 12px; }
.filters label { display: grid; gap: 2px; font-size: 13px; color: var(--muted); flex: 1 1 160px; min-width: 0; }
.filters input, .filters select {
  font: inherit; font-size: 14px; padding: 5px 8px; border: 1px solid var(--line); border-radius: 6px;
  background: var(--bg); color: var(--text); width: 100%; min-width: 0;
}
.jobs { display: grid; gap: 8px; margin-bottom: 8px; }
.job { border: 1px solid var(--line); border-left: 4px solid var(--accent); border-radius: 6px; padding: 8px 10px; display: grid; gap: 4px; }
.job-ok { border-left-color: var(--ok); }
.job-bad { border-left-color: var(--bad); }
.job-head { display: flex; justify-content: space-between; align-items: center; gap: 8px; font-weight: 600; }
.job progress { width: 100%; }
.job-group, .failures { overflow-wrap: anywhere; font-size: 13px; }
.failures { margin: 0; padding-left: 18px; }
.groups { display: grid; gap: 10px; }
.empty { padding: 16px; text-align: center; color: var(--muted); }
.group { border: 1px solid var(--line); border-left: 4px solid var(--bad); border-radius: 8px; padding: 10px 12px; min-width: 0; }
.group-head { display: flex; flex-wrap: wrap; gap: 10px; justify-content: space-between; align-items: flex-start; }
.group-main { flex: 1 1 320px; min-width: 0; display: grid; gap: 4px; }
.group-title { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
.err-class { font-size: 15.5px; overflow-wrap: anywhere; }
.err-shape { color: var(--bad); overflow-wrap: anywhere; white-space: pre-wrap; }
.meta { color: var(--muted); font-size: 13px; overflow-wrap: anywhere; }
.actions, .buttons { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.letters { margin-top: 10px; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table.grid { border-collapse: collapse; width: 100%; font-size: 14px; }
.grid th, .grid td { padding: 6px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
.grid th { font-size: 12.5px; color: var(--muted); font-weight: 600; }
.grid td.num, .grid th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.grid time { white-space: nowrap; }
.grid td.mono { overflow-wrap: break-word; }
.grid .buttons { flex-wrap: nowrap; }
.grid td.err { min-width: 200px; }
.err-text { display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 3; line-clamp: 3; overflow: hidden; overflow-wrap: anywhere; }
.grid td.row-actions { white-space: nowrap; }
.grid tbody tr:hover { background: var(--bg); }
.detail-cell { background: var(--bg); }
.detail { display: grid; min-width: 0; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; font-size: 13px; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; overflow-wrap: anywhere; min-width: 0; }
.headers dt, .headers dd { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.pre {
  margin: 0; padding: 8px 10px; background: var(--code-bg); border: 1px solid var(--line); border-radius: 6px;
  white-space: pre-wrap; overflow-wrap: anywhere; max-height: 360px; overflow: auto;
}
.body-note { text-transform: none; letter-spacing: 0; font-weight: 400; }
@media (max-width: 640px) {
  body { font-size: 14px; }
  header.top, main { padding-left: 10px; padding-right: 10px; }
  .panel { padding: 10px; }
  .updated { margin-left: 0; width: 100%; }
  .grid thead { display: none; }
  .grid, .grid tbody, .grid tr, .grid td { display: block; width: 100%; }
  .grid tr { border: 1px solid var(--line); border-radius: 6px; margin-bottom: 8px; padding: 4px 0; }
  .grid tr.detail-row { margin-top: -8px; border-top: 0; }
  .grid td { display: flex; gap: 10px; justify-content: space-between; border: 0; padding: 3px 10px; text-align: right; }
  .grid td.num { text-align: right; }
  .grid td::before { content: attr(data-label); color: var(--muted); font-size: 12.5px; text-align: left; flex: 0 0 auto; }
  .grid td.row-actions::before, .grid td.detail-cell::before { content: none; }
  .grid td.row-actions { justify-content: flex-end; }
  .grid td.err { min-width: 0; }
  .grid td > * { min-width: 0; }
  .grid td.mono { overflow-wrap: anywhere; }
  .grid td.err { text-align: left; }
  .grid td.detail-cell { display: block; text-align: left; }
  .facts { grid-template-columns: 1fr; }
  .facts dd { margin-bottom: 4px; }
  .group-head .actions { width: 100%; }
}
`;
