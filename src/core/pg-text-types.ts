import pg from 'pg';

const AS_TEXT = new Set([1082, 1114, 1184, 1083, 1266, 1186]); // date, timestamp(tz), time(tz), interval

/**
 * Type parsers for connections whose values flow on as data: timestamps stay the server's text (JS Date would
 * drop microseconds and time zones), numerics and int8 stay strings (pg's default already).
 */
export const textTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    AS_TEXT.has(oid)
      ? (v: string) => v
      : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

/** Session settings under which every value's text form is the one the change events are built from (UTC, ISO). */
export const TEXT_FORMAT_OPTIONS =
  '-c DateStyle=ISO,YMD -c TimeZone=UTC -c IntervalStyle=iso_8601 -c extra_float_digits=3 -c bytea_output=hex';
