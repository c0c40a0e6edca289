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

/**
 * A pg_attribute row (alias `a`) of a column whose values PostgreSQL may store out of line (TOAST): a varlena type
 * (attlen -1: text, varchar, json, jsonb, bytea, numeric, arrays…) whose storage is not PLAIN. An UPDATE that leaves
 * such a value unchanged while it is stored out of line is decoded without it unless REPLICA IDENTITY is FULL.
 */
export const TOASTABLE_ATTRIBUTE = "a.attlen = -1 AND a.attstorage <> 'p'";
