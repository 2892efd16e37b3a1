/**
 * Plain-text tables for the command line: aligned columns, no borders, no colours, no dependency.
 * Pure: rows in, lines out.
 */

/** One column of a table. */
export interface TableColumn {
  readonly header: string;
  /** `right` for numbers. @default 'left' */
  readonly align?: 'left' | 'right';
  /** Longer cells are cut to this many characters, the last one `…`. @default no limit */
  readonly maxWidth?: number;
}

/** Space between two columns. */
const GAP = '  ';

/**
 * C0 and C1 control characters and DEL. Dead letters are untrusted input, and a terminal obeys
 * the escape sequences they could carry, so no cell prints one.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]+/g;

/** `text` on one line, without control characters: each run of them becomes one space. */
export function cleanCell(text: string): string {
  return text.replace(CONTROL, ' ');
}

/** `text` cut to `max` characters (code points), ending in `…` when it was longer. */
export function truncate(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, Math.max(0, max - 1)).join('')}…`;
}

/** Length in code points: what a terminal shows for most text (wide CJK characters aside). */
function width(text: string): number {
  return [...text].length;
}

function pad(text: string, size: number, align: 'left' | 'right'): string {
  const fill = ' '.repeat(Math.max(0, size - width(text)));
  return align === 'right' ? fill + text : text + fill;
}

/**
 * The header line and one line per row, each column as wide as its widest cell. Cells are cleaned
 * of control characters and cut to the column's `maxWidth`; lines carry no trailing spaces.
 *
 * @example
 * renderTable([{ header: 'TOPIC' }, { header: 'COUNT', align: 'right' }], [['order.created', '3']]);
 * // ['TOPIC          COUNT', 'order.created      3']
 */
export function renderTable(columns: readonly TableColumn[], rows: readonly string[][]): string[] {
  const cells = rows.map((row) =>
    columns.map((column, i) => {
      const text = cleanCell(row[i] ?? '');
      return column.maxWidth === undefined ? text : truncate(text, column.maxWidth);
    }),
  );
  const widths = columns.map((column, i) =>
    Math.max(width(column.header), ...cells.map((row) => width(row[i]))),
  );
  const line = (row: readonly string[]): string =>
    columns
      .map((column, i) => pad(row[i], widths[i], column.align ?? 'left'))
      .join(GAP)
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map((row) => line(row))];
}

/**
 * Label and value pairs, the values aligned after the longest label (for one record shown in
 * full). A value of several lines continues under the first, indented as far.
 */
export function renderFields(fields: readonly (readonly [string, string])[]): string[] {
  const labels = fields.map(([label]) => cleanCell(label));
  const size = Math.max(0, ...labels.map(width));
  return fields.flatMap(([, value], n) =>
    value
      .split('\n')
      .map((part, i) =>
        `${pad(i === 0 ? labels[n] : '', size, 'left')}${GAP}${cleanCell(part)}`.trimEnd(),
      ),
  );
}
