/**
 * A hand-written SVG bar chart of each contender's throughput relative to the raw client of the same
 * broker (raw amqplib on the same queue type, its volatile RPC for request/reply, raw ioredis, raw
 * nats.js; 1.0 = raw), one group of bars per workload. No chart library.
 */
import { referenceOf, type ContenderDef } from './plan';
import { key, ratio, type Results } from './report';

const COLORS: Record<string, string> = {
  ours: '#2f6fdf',
  'nest-rmq': '#e0602c',
  golevelup: '#3a9a4a',
  'ours-redis': '#8e44ad',
  'ours-nats': '#138d90',
};

/** A bar's colour: per broker for the library, per contender family otherwise. */
const colorOf = (c: ContenderDef): string =>
  COLORS[`${c.kind}-${c.broker ?? ''}`] ?? COLORS[c.kind] ?? '#777';
const BAR = 14;
const GAP = 4;
const GROUP_GAP = 18;
const LEFT = 280;
const PLOT = 520;
const TOP = 76;
const HEADER = 20;

const escape = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function renderSvg(results: Results): string {
  const groups = results.workloads
    .map((w) => ({
      workload: w,
      bars: results.contenders
        .filter((c) => referenceOf(c, w) !== undefined)
        .map((c) => {
          const cell = results.cells.get(key(c.id, w.name));
          return { contender: c, value: cell ? ratio(results, cell, 'rate') : undefined, cell };
        }),
    }))
    .map((g) => ({ ...g, bars: g.bars.filter((b) => b.cell && b.cell.status !== 'n/a') }))
    .filter((g) => g.bars.length > 0);
  const max = Math.max(
    1.25,
    ...groups.flatMap((g) => g.bars.map((b) => b.value ?? 0)).map((v) => Math.ceil(v * 4) / 4),
  );
  const x = (v: number): number => LEFT + (v / max) * PLOT;
  const rows = groups.reduce((h, g) => h + HEADER + g.bars.length * (BAR + GAP) + GROUP_GAP, 0);
  const height = TOP + rows + 40;
  const width = LEFT + PLOT + 90;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Throughput relative to the raw client of the same broker (1.0 = raw)</text>`,
    `<text x="${width / 2}" y="40" text-anchor="middle" fill="#555">${escape(results.machine.date)}, median of ${results.runs} run(s); msgs/s, calls/s for request/reply, drain rate for the backlog</text>`,
    `<text x="${width / 2}" y="58" text-anchor="middle" fill="#555">dashed line: the raw client (amqplib on the same queue type or its volatile RPC, ioredis, nats.js); <tspan fill="#c00">red line: AmqpBackend's 0.9x target in fire-and-forget</tspan></text>`,
  ];
  for (let t = 0; t <= max + 1e-9; t += 0.25) {
    const major = Math.abs(t * 2 - Math.round(t * 2)) < 1e-9;
    parts.push(
      `<line x1="${x(t)}" y1="${TOP - 6}" x2="${x(t)}" y2="${height - 30}" stroke="${Math.abs(t - 1) < 1e-9 ? '#000' : '#ddd'}" stroke-width="${Math.abs(t - 1) < 1e-9 ? 1.5 : 1}"${Math.abs(t - 1) < 1e-9 ? ' stroke-dasharray="5,3"' : ''}/>`,
    );
    if (major) {
      parts.push(
        `<text x="${x(t)}" y="${height - 14}" text-anchor="middle" fill="#333">${t.toFixed(2)}x</text>`,
      );
    }
  }
  let y = TOP;
  for (const group of groups) {
    parts.push(
      `<text x="8" y="${y + 12}" font-weight="bold">${escape(group.workload.name)}</text>`,
    );
    y += HEADER;
    if (group.workload.kind === 'fire-and-forget') {
      // The target of AmqpBackend: 0.9x raw, across the RabbitMQ bars (they come first).
      const n = group.bars.filter((b) => b.contender.broker === 'rabbitmq').length;
      const h = n * (BAR + GAP) - GAP;
      if (n > 0) {
        parts.push(
          `<line x1="${x(0.9)}" y1="${y - 2}" x2="${x(0.9)}" y2="${y + h + 2}" stroke="#c00" stroke-width="2"/>`,
        );
      }
    }
    for (const bar of group.bars) {
      const label = bar.contender.label;
      parts.push(
        `<text x="${LEFT - 6}" y="${y + BAR - 3}" text-anchor="end" fill="#333">${escape(label)}</text>`,
      );
      if (bar.value === undefined) {
        parts.push(
          `<text x="${LEFT + 4}" y="${y + BAR - 3}" fill="#c00" font-weight="bold">${bar.cell?.status === 'not run' ? 'NOT RUN' : 'FAILED'}</text>`,
        );
      } else {
        const color = colorOf(bar.contender);
        const opacity = bar.contender.queueType === 'classic' ? 0.6 : 1;
        parts.push(
          `<rect x="${LEFT}" y="${y}" width="${Math.max(1, x(bar.value) - LEFT).toFixed(1)}" height="${BAR}" fill="${color}" fill-opacity="${opacity}"/>`,
          `<text x="${(x(bar.value) + 4).toFixed(1)}" y="${y + BAR - 3}" fill="#000">${bar.value.toFixed(2)}x</text>`,
        );
      }
      y += BAR + GAP;
    }
    y += GROUP_GAP;
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
