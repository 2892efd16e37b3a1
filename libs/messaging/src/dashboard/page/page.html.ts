/** What the page is rendered with. */
export interface PageSettings {
  /** The dashboard's path (`/messaging`): the page's script and API live under it. */
  readonly basePath: string;
  /** The service's name, in the title. */
  readonly service: string;
  /** The CSRF token every POST of the page carries. */
  readonly csrfToken: string;
  readonly readOnly: boolean;
  /** How often the page refreshes its data, in milliseconds. */
  readonly pollMs: number;
}

/** The page's HTML. Every value in it is escaped; data is filled in by the script as text only. */
export function renderPage(settings: PageSettings): string {
  const base = escapeHtml(settings.basePath.replace(/\/+$/, ''));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="${escapeHtml(settings.csrfToken)}">
<meta name="dashboard-base" content="${base}">
<meta name="dashboard-read-only" content="${settings.readOnly ? 'true' : 'false'}">
<meta name="dashboard-poll-ms" content="${settings.pollMs}">
<title>${escapeHtml(settings.service)} · messaging</title>
<link rel="stylesheet" href="${base}/assets/app.css">
</head>
<body>
<main id="app"><h1>${escapeHtml(settings.service)}</h1><p>Loading…</p></main>
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
