/**
 * The dashboard's page: one HTML document, its script and its style, served by the dashboard's own
 * controller from the same origin (no asset, font or script from anywhere else; no build step).
 */
export { renderPage, DEFAULT_PAGE_POLL_MS, type PageSettings } from './page.html';
export { DASHBOARD_SCRIPT } from './app.js';
export { DASHBOARD_STYLE } from './app.css';
