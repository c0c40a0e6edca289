/**
 * PostgreSQL log sequence numbers. Internally a bigint; on the wire and in events the server's text form
 * (`16/B374D848`: uppercase hex, unpadded). Parsing accepts padded and unpadded forms alike, because
 * pg-logical-replication emits both and the catalog views emit the unpadded one.
 */
export type Lsn = bigint;

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function parseLsn(text: string): Lsn {
  const m = LSN_TEXT.exec(text);
  if (!m) throw new TypeError(`not an LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function readLsn(buf: Buffer, offset: number): Lsn {
  return buf.readBigUInt64BE(offset);
}

export const maxLsn = (a: Lsn, b: Lsn): Lsn => (a > b ? a : b);
