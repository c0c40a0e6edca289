/** Just enough of a CREATE TABLE parser to hold the shipped DDL against the zod schemas. */
export interface DdlTable {
  name: string;
  columns: string[];
  primaryKey: string[];
  references: string[];
}

function splitTopLevel(body: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of body) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

const unquote = (ident: string) => ident.replace(/^"|"$/g, '');

export function parseCreateTables(ddl: string): DdlTable[] {
  const sql = ddl.replace(/--[^\n]*/g, '');
  const tables: DdlTable[] = [];
  for (const m of sql.matchAll(/CREATE TABLE IF NOT EXISTS (\w+) \(([\s\S]*?)\);/g)) {
    const table: DdlTable = { name: m[1]!, columns: [], primaryKey: [], references: [] };
    for (const item of splitTopLevel(m[2]!)) {
      const pk = /^PRIMARY KEY \(([^)]*)\)/.exec(item);
      if (pk) table.primaryKey.push(...pk[1]!.split(',').map((c) => unquote(c.trim())));
      else if (/^(UNIQUE|CHECK|CONSTRAINT|FOREIGN)\b/.test(item)) continue;
      else {
        const column = unquote(item.split(/\s+/)[0]!);
        table.columns.push(column);
        if (/\bPRIMARY KEY\b/.test(item)) table.primaryKey.push(column);
      }
      for (const ref of item.matchAll(/REFERENCES (\w+)/g)) table.references.push(ref[1]!);
    }
    tables.push(table);
  }
  return tables;
}
