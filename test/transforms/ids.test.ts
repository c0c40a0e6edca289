import fc from 'fast-check';
import { v5 as uuidv5, validate, version } from 'uuid';
import { describe, expect, it } from 'vitest';
import { BUNDLES_NS, bundleId, PAYMENTS_NS, paymentId, USERS_NS, userId } from '../../transforms/ids.js';

describe('deterministic ids', () => {
  it('are uuid v5 under three distinct fixed namespaces', () => {
    expect(new Set([USERS_NS, PAYMENTS_NS, BUNDLES_NS]).size).toBe(3);
    for (const id of [
      userId('ada@example.com'),
      paymentId('6f1c2a4e-8b3d-4c5e-9f70-1a2b3c4d5e6f'),
      bundleId('ai_fbt_bundles', 3),
    ]) {
      expect(validate(id)).toBe(true);
      expect(version(id)).toBe(5);
    }
  });

  it('are stable (pinned: changing a namespace would orphan every V2 row written)', () => {
    expect(userId('ada@example.com')).toMatchInlineSnapshot(`"bd52a0a5-724b-57de-8cf8-1044f100e7a0"`);
    expect(paymentId('6f1c2a4e-8b3d-4c5e-9f70-1a2b3c4d5e6f')).toMatchInlineSnapshot(
      `"769717e8-ad94-5c18-9359-de117641b7b0"`,
    );
    expect(bundleId('bundle_discount_id', 7)).toMatchInlineSnapshot(`"0a87fd90-fdc6-5f6a-ab18-d87475f0fd2e"`);
  });

  it('depend on their whole input', () => {
    expect(userId('ada@example.com')).not.toBe(userId('ada@example.org'));
    expect(bundleId('bundle_discount_id', 7)).not.toBe(bundleId('ai_fbt_bundles', 7));
    expect(bundleId('bundle_discount_id', 7)).toBe(bundleId('bundle_discount_id', '7'));
    expect(paymentId('6F1C2A4E-8B3D-4C5E-9F70-1A2B3C4D5E6F')).toBe(
      paymentId('6f1c2a4e-8b3d-4c5e-9f70-1a2b3c4d5e6f'),
    );
  });
});

describe('the fast uuid v5', () => {
  it('equals the uuid package’s v5 for any name, in every namespace', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (name) => {
        expect(userId(name)).toBe(uuidv5(name, USERS_NS));
        expect(bundleId('ai_fbt_bundles', name)).toBe(uuidv5(`ai_fbt_bundles:${name}`, BUNDLES_NS));
      }),
    );
  });
});
