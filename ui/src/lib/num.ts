// u64 fields may be typed `number` or `bigint` by the generated types; JSON gives numbers. Every
// reader goes through `num`, so arithmetic and comparisons work either way.

export function num(v: number | bigint | string | null | undefined): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isFinite(n) ? n : NaN;
  }
  return NaN;
}

/** `num`, or null for null/undefined/unparsable. */
export function numOrNull(v: number | bigint | string | null | undefined): number | null {
  const n = num(v);
  return Number.isFinite(n) ? n : null;
}
