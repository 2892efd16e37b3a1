/**
 * The dashboard's HTML: a static frame (header, status line, the three sections) that the script
 * (`app.js.ts`) fills with data. Settings reach the script through `<meta>` tags, never inline script:
 * the server's CSP allows scripts and styles from the page's own origin only.
 *
 * | meta name             | read by the script as      | from                      |
 * | --------------------- | -------------------------- | ------------------------- |
 * | `csrf-token`          | `x-csrf-token` of a POST   | `PageSettings.csrfToken`  |
 * | `dashboard-base`      | prefix of assets and API   | `PageSettings.basePath`, no trailing `/` |
 * | `dashboard-read-only` | `true`: no Replay, no Purge | `PageSettings.readOnly`  |
 * | `dashboard-poll-ms`   | refresh period             | `PageSettings.pollMs` (default 5000 when not a positive number) |
 */

/** What the page is rendered with. */
export interface PageSettings {
  /** The dashboard's path (`/messaging`): the page's script and API live under it. */
  readonly basePath: string;
  /** The service's name, in the title. */
  readonly service: string;
  /** The CSRF token every POST of the page carries. */
  readonly csrfToken: string;
  /** True: the page shows no Replay or Purge button, and says it is read-only. */
  readonly readOnly: boolean;
  /** How often the page refreshes its data, in milliseconds. */
  readonly pollMs: number;
}

/** The refresh period when `pollMs` is not a positive number. @default 5000 */
export const DEFAULT_PAGE_POLL_MS = 5000;

/** The page's HTML. Every value in it is escaped; data is filled in by the script as text only. */
export function renderPage(settings: PageSettings): string {
  const base = escapeHtml(settings.basePath.replace(/\/+$/, ''));
  const service = escapeHtml(settings.service);
  const pollMs =
    Number.isFinite(settings.pollMs) && settings.pollMs > 0
      ? Math.round(settings.pollMs)
      : DEFAULT_PAGE_POLL_MS;
  const readOnlyNote = settings.readOnly
    ? '<p class="ro-note" data-testid="read-only">Read-only: replay and purge are turned off.</p>'
    : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<meta name="csrf-token" content="${escapeHtml(settings.csrfToken)}">
<meta name="dashboard-base" content="${base}">
<meta name="dashboard-read-only" content="${settings.readOnly ? 'true' : 'false'}">
<meta name="dashboard-poll-ms" content="${pollMs}">
<title>${service} · messaging</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${base}/assets/app.css">
</head>
<body>
<header class="top">
<div class="title"><h1>${service}</h1><span class="sub">messaging dashboard</span></div>
${readOnlyNote}
<p id="updated" class="updated"></p>
</header>
<div id="status" class="status" data-testid="status" role="status" aria-live="polite" hidden>
<span id="status-text" class="status-text"></span>
<button type="button" id="status-dismiss" class="dismiss" aria-label="Dismiss this message">×</button>
</div>
<main id="app" data-polling="starting">
<section id="overview" class="overview" aria-label="Connections and backlog"><p class="muted">Loading…</p></section>
<section id="dead-letters" class="panel" aria-labelledby="dl-title">
<h2 id="dl-title">Dead letters <span id="dl-total" class="count"></span></h2>
<form id="filters" class="filters" role="search" aria-label="Filter dead letters">
<label>Topic <select id="f-topic" name="topic"><option value="">All topics</option></select></label>
<label>Error <input id="f-error" name="error" type="search" placeholder="error text" autocomplete="off"></label>
<label>Search <input id="f-q" name="q" type="search" placeholder="id, topic, text…" autocomplete="off"></label>
<button type="reset" class="quiet">Clear</button>
</form>
<div id="jobs" class="jobs"></div>
<div id="groups" class="groups"><p class="muted">Loading…</p></div>
</section>
<section id="handlers" class="panel" aria-labelledby="h-title">
<h2 id="h-title">Handlers</h2>
<div id="handlers-body"><p class="muted">Loading…</p></div>
</section>
</main>
<noscript><p class="muted">The dashboard needs JavaScript.</p></noscript>
<script src="${base}/assets/app.js"></script>
</body>
</html>
`;
}

/** `text` safe inside HTML text and double-quoted attributes. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}
