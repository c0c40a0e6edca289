import type { JsonValue } from './transform-api.js';

/**
 * JSON numbers kept exact between the raw topic and the target. A json/jsonb number may hold more digits than a
 * double (an id of 2^63, a price with 20 decimals); `JSON.parse` would round it, and V2 would silently differ from
 * legacy. The apply stage parses change events with `parseJsonExactly`: a number a double holds exactly is a
 * number, any other is a string carrying its text behind a NUL marker (`\u0000#`). Text and jsonb values never
 * hold U+0000 (PostgreSQL refuses it); only a legacy *json* column can, and a string there shaped exactly like a
 * marked number would be written as that number — such a string could not reach a jsonb V2 column anyway. Every JSON text written to the target goes through
 * `stringifyJsonExactly`, which puts such numbers back as written. Node 20 has neither `JSON.rawJSON` nor
 * `JSON.parse`'s source text, hence the marker.
 */

const MARK = '\u0000#';

/** A number's text where a double would not hold it, as `parseJsonExactly` leaves it; a plain string otherwise. */
export function exactNumberText(value: string): string | undefined {
  return value.startsWith(MARK) ? value.slice(MARK.length) : undefined;
}

/** The JSON number `text` as the marked string `parseJsonExactly` makes of it (tests build expected values so). */
export function markExactNumber(text: string): string {
  return `${MARK}${text}`;
}

const JSON_NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const JSON_STRING = /"(?:[^"\\]|\\.)*"/y;
const JSON_SPACE = /[ \t\n\r]*/y;

/**
 * Parses JSON text handing each number's text to `number` (a duplicate key: the last wins, as in jsonb). Slower
 * than `JSON.parse`; use it when numbers must keep their digits.
 */
export function parseJsonWithNumbers<N>(text: string, number: (text: string) => N): ExactJson<N> {
  let at = 0;
  const space = () => {
    JSON_SPACE.lastIndex = at;
    JSON_SPACE.exec(text);
    at = JSON_SPACE.lastIndex;
  };
  const token = (re: RegExp): string => {
    re.lastIndex = at;
    const m = re.exec(text);
    if (m === null) throw new SyntaxError(`invalid JSON at ${at}: ${text.slice(at, at + 20)}`);
    at = re.lastIndex;
    return m[0];
  };
  const value = (): ExactJson<N> => {
    space();
    const c = text[at];
    if (c === '{') {
      at++;
      // Collected without a prototype, then spread (which defines, never sets): a '__proto__' key stays data.
      const out: { [key: string]: ExactJson<N> } = Object.create(null);
      space();
      if (text[at] === '}') {
        at++;
        return { ...out };
      }
      for (;;) {
        space();
        const key = JSON.parse(token(JSON_STRING)) as string;
        space();
        if (text[at++] !== ':') throw new SyntaxError(`invalid JSON at ${at - 1}: expected ':'`);
        out[key] = value();
        space();
        const next = text[at++];
        if (next === '}') return { ...out };
        if (next !== ',') throw new SyntaxError(`invalid JSON at ${at - 1}: expected ',' or '}'`);
      }
    }
    if (c === '[') {
      at++;
      const out: ExactJson<N>[] = [];
      space();
      if (text[at] === ']') {
        at++;
        return out;
      }
      for (;;) {
        out.push(value());
        space();
        const next = text[at++];
        if (next === ']') return out;
        if (next !== ',') throw new SyntaxError(`invalid JSON at ${at - 1}: expected ',' or ']'`);
      }
    }
    if (c === '"') return JSON.parse(token(JSON_STRING)) as string;
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return v;
      }
    }
    return number(token(JSON_NUMBER));
  };
  const out = value();
  space();
  if (at !== text.length) throw new SyntaxError(`invalid JSON at ${at}: trailing text`);
  return out;
}

export type ExactJson<N> = null | boolean | string | N | ExactJson<N>[] | { [key: string]: ExactJson<N> };

/** A decimal's value as text (`-` digits `e` exponent, no insignificant zeros): equal values, equal keys. */
function decimalKey(text: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (m === null) return text;
  const fraction = m[3] ?? '';
  const lead = `${m[2]}${fraction}`.replace(/^0+/, '');
  if (lead === '') return '0';
  const digits = lead.replace(/0+$/, '');
  return `${m[1]}${digits}e${Number(m[4] ?? 0) - fraction.length + (lead.length - digits.length)}`;
}

/** A number when the double nearest the text is the text's value (JS prints it back as the same decimal). */
function exactNumber(text: string): number | string {
  const n = Number(text);
  return Number.isFinite(n) && decimalKey(String(n)) === decimalKey(text) ? n : markExactNumber(text);
}

/**
 * A number (after `:`, `[` or `,`) of 16 digits or more (a point allowed), or with a three-digit exponent: where a
 * double may not be exact. Text inside strings can match too; that only costs the slower parse.
 */
const MAYBE_INEXACT = /[:[,]\s*-?\d(?:[\d.]{15}|[\d.]*[eE][+-]?\d{3})/;

/**
 * `JSON.parse`, except that a number a double cannot hold exactly becomes its marked text (see above). With
 * `exactBefore`, numbers from that offset on may be read as doubles (a caller that knows its text's layout): the
 * slow parse is needed only when a number before it may be inexact.
 */
export function parseJsonExactly(text: string, exactBefore = text.length): JsonValue {
  const head = exactBefore < text.length ? text.slice(0, exactBefore) : text;
  if (!MAYBE_INEXACT.test(head)) return JSON.parse(text) as JsonValue;
  return parseJsonWithNumbers(text, exactNumber) as JsonValue;
}

const MARKED = /"\\u0000#([-+.\deE]+)"/g;

/** `JSON.stringify`, writing numbers that `parseJsonExactly` marked back as the numbers they were. */
export function stringifyJsonExactly(value: unknown): string {
  const text = JSON.stringify(value);
  return text.includes('\\u0000#') ? text.replace(MARKED, '$1') : text;
}
