/** The page's style (served as `{path}/assets/app.css`): readable on a phone, no web font. */
export const DASHBOARD_STYLE = `body { font-family: system-ui, sans-serif; margin: 0; }
`;
