/**
 * Lower-cased, each run of characters other than ASCII letters and digits replaced by one '-', '-' trimmed from
 * both ends: 'Summer  Sale (2024)!' → 'summer-sale-2024'. Where the database locale's lower() agrees with
 * JavaScript's (ASCII always does), SQL computes the same: `trim(both '-' from regexp_replace(lower(s),
 * '[^a-z0-9]+', '-', 'g'))`.
 */
export function slugify(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}
