/** Quotes a SQL identifier (table, column, slot, publication…) the way PostgreSQL's quote_ident does. */
export function quoteIdent(name: string): string {
  if (name.includes('\u0000')) throw new TypeError('identifier contains a NUL byte');
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quotes a SQL string literal; used only where the protocol admits no bind parameters (replication commands). */
export function quoteLiteral(value: string): string {
  if (value.includes('\u0000')) throw new TypeError('literal contains a NUL byte');
  return `'${value.replaceAll("'", "''")}'`;
}

/** `"schema"."table"` */
export function qualifiedName(schema: string, table: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}
