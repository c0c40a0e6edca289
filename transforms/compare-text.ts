/**
 * Orders strings by Unicode code point, which is PostgreSQL's `COLLATE "C"` order on UTF-8 text. JS `<` compares
 * UTF-16 code units and differs for characters beyond U+FFFF; the database's default collation differs more, so
 * SQL that must agree with these transforms ("the smallest customer_id wins") has to use `COLLATE "C"`.
 */
export function compareText(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; ) {
    const ca = a.codePointAt(i)!;
    const cb = b.codePointAt(i)!;
    if (ca !== cb) return ca < cb ? -1 : 1;
    i += ca > 0xffff ? 2 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}
