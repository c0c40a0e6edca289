import type {
  JsonValue,
  LegacyChange,
  TransformModule,
  TransformResult,
} from '../src/contracts/transform-api.js';
import { normalizeEmail } from './email.js';
import { legacyCustomerKvSchema, legacyCustomerProfileValueSchema } from './legacy-schema.js';
import { readLegacyRow } from './read-legacy-row.js';
import { ReasonCodes, reject } from './reason-codes.js';
import { recomputeUsersOp, upsertOp } from './v2-ops.js';
import type { CustomerProfile } from './v2-schema.js';

const TABLE = 'public.customers_kv';
/** Keys of profiles; the store's other keys (e.g. 'email_to_customer_<hash>' indexes) are skipped. */
const PROFILE_KEY_PREFIX = 'customer_';

/**
 * `name` split at its first run of white space: 'Ada  Lovelace King' → ['Ada', 'Lovelace King']; one word →
 * [word, null]; missing or blank → [null, null]. Surrounding white space is trimmed first.
 */
export function splitName(name: string | null | undefined): [first: string | null, last: string | null] {
  const trimmed = (name ?? '').trim();
  if (trimmed === '') return [null, null];
  const m = /^(\S+)\s+(.+)$/s.exec(trimmed);
  return m === null ? [trimmed, null] : [m[1]!, m[2]!];
}

/** A customerId as text: a non-empty string, or an integer (JSON stores sometimes keep ids as numbers). */
function customerIdOf(value: JsonValue | undefined): string | null {
  if (typeof value === 'string') return value === '' ? null : value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  return null;
}

/** A 'customer_<id>' row → [upsert customer_profiles, recompute users [email]]. */
function transformCustomerKv(change: LegacyChange): TransformResult {
  if (change.table !== TABLE) {
    return reject(
      ReasonCodes.UNKNOWN_TABLE,
      `customer-profiles: not a table of this module: ${change.table}`,
    );
  }
  // Other keys are not profiles: skipped before any validation, so they are never dead-lettered.
  const key = change.after?.key;
  if (typeof key === 'string' && !key.startsWith(PROFILE_KEY_PREFIX)) {
    return { ok: true, ops: [] };
  }
  const read = readLegacyRow(change, legacyCustomerKvSchema);
  if (!read.ok) return read.result;
  const row = read.row;
  if (!row.key.startsWith(PROFILE_KEY_PREFIX)) return { ok: true, ops: [] };

  const parsed = legacyCustomerProfileValueSchema.safeParse(row.value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map(
      (i) => `${['value', ...i.path].map(String).join('.')}: ${i.message}`,
    );
    return reject(ReasonCodes.LEGACY_ROW_INVALID, `${TABLE} ${row.key}: not a profile: ${issues.join('; ')}`);
  }
  const value = parsed.data;
  const email = normalizeEmail(value.email);
  if (email === null) {
    return reject(
      ReasonCodes.PROFILE_INVALID_EMAIL,
      `${TABLE} ${row.key}: email is missing or not a valid email`,
    );
  }
  const customerId = customerIdOf(value.customerId);
  if (customerId === null) {
    return reject(
      ReasonCodes.PROFILE_MISSING_CUSTOMER_ID,
      `${TABLE} ${row.key}: customerId is missing, empty or not a string`,
    );
  }
  const [firstName, lastName] = splitName(value.name);
  const profile: CustomerProfile = {
    customer_id: customerId,
    email,
    first_name: firstName,
    last_name: lastName,
    company_name: value.companyName ?? null,
    plan: value.plan ?? null,
    status: value.status ?? null,
    created_at: value.createdAt ?? row.updated_at,
  };
  return { ok: true, ops: [upsertOp('customer_profiles', profile), recomputeUsersOp([email])] };
}

/** public.customers_kv → V2 customer_profiles and (recomputed) users. */
export const customerProfilesModule: TransformModule = {
  name: 'customer-profiles',
  tables: [TABLE],
  legacySchemas: { [TABLE]: legacyCustomerKvSchema },
  topicFor: (table) => {
    if (table !== TABLE) throw new Error(`customer-profiles: not a table of this module: ${table}`);
    return 'customer_profiles';
  },
  transform: transformCustomerKv,
};
