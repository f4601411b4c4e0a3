/** Horizontal SVG bar charts (time per planner, % of floor, KV read). */
import { s, tip } from './dom.js';

export interface Bar {
  label: string;
  value: number;
  /** Whisker range (p10–p90). */
  lo?: number;
  hi?: number;
  color: string;
  text: string;
  tooltip?: string;
}

export interface BarChartOptions {
  title: string;
  bars: Bar[];
  /** A vertical reference line (the floor, the unique KV). */
  ref?: { value: number; label: string };
  /** Fixed axis maximum (100 for percentages). */
  max?: number;
  width?: number;
}

export function barChart(o: BarChartOptions): SVGElement {
  const width = o.width ?? 440;
  const labelW = 90;
  const textW = 92;
  const barH = 22;
  const gap = 10;
  const top = 26;
  const plotW = width - labelW - textW;
  const height = top + o.bars.length * (barH + gap) + 18;
  const max =
    o.max ?? Math.max(1e-12, ...o.bars.map((b) => Math.max(b.value, b.hi ?? 0)), o.ref ? o.ref.value : 0) * 1.05;
  const x = (v: number): number => labelW + (Math.max(0, Math.min(v, max)) / max) * plotW;
  const svg = s('svg', { class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': o.title });
  svg.append(s('text', { x: 0, y: 14, class: 'chart-title' }, o.title));
  svg.append(s('line', { x1: labelW, x2: labelW, y1: top - 4, y2: height - 14, class: 'axis' }));
  o.bars.forEach((b, i) => {
    const y = top + i * (barH + gap);
    svg.append(s('text', { x: labelW - 6, y: y + barH / 2 + 4, 'text-anchor': 'end', class: 'bar-label' }, b.label));
    const rect = s('rect', { x: labelW, y, width: Math.max(1, x(b.value) - labelW), height: barH, fill: b.color, rx: 2 });
    if (b.tooltip) rect.append(tip(b.tooltip));
    svg.append(rect);
    if (b.lo !== undefined && b.hi !== undefined) {
      const cy = y + barH / 2;
      svg.append(s('line', { x1: x(b.lo), x2: x(b.hi), y1: cy, y2: cy, class: 'whisker' }));
      svg.append(s('line', { x1: x(b.lo), x2: x(b.lo), y1: cy - 5, y2: cy + 5, class: 'whisker' }));
      svg.append(s('line', { x1: x(b.hi), x2: x(b.hi), y1: cy - 5, y2: cy + 5, class: 'whisker' }));
    }
    svg.append(s('text', { x: labelW + plotW + 6, y: y + barH / 2 + 4, class: 'bar-text' }, b.text));
  });
  if (o.ref) {
    const rx = x(o.ref.value);
    svg.append(s('line', { x1: rx, x2: rx, y1: top - 6, y2: height - 14, class: 'ref-line' }));
    svg.append(s('text', { x: rx, y: height - 3, 'text-anchor': 'middle', class: 'ref-label' }, o.ref.label));
  }
  return svg;
}
