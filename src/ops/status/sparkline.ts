const BARS = '▁▂▃▄▅▆▇█';

/**
 * One bar (▁▂▃▄▅▆▇█) per value, the newest last, at most `width` of them (the newest). Bars are scaled from 0 (or
 * the lowest value, when below 0) to the highest value, so a steady non-zero rate draws full bars rather than the
 * flat line a min-to-max scale would make of it; all zeros draw ▁. An unknown value (null) is a space.
 */
export function sparkline(values: readonly (number | null)[], width = values.length): string {
  const shown = width > 0 ? values.slice(-width) : [];
  const known = shown.filter((v): v is number => v !== null && Number.isFinite(v));
  if (known.length === 0) return ' '.repeat(shown.length);
  const lo = Math.min(0, ...known);
  const hi = Math.max(...known);
  return shown
    .map((v) => {
      if (v === null || !Number.isFinite(v)) return ' ';
      if (hi === lo) return BARS[0];
      const i = Math.round(((v - lo) / (hi - lo)) * (BARS.length - 1));
      return BARS[Math.max(0, Math.min(BARS.length - 1, i))];
    })
    .join('');
}
