import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonRow, LegacyChange, V2Op } from '../../src/contracts/transform-api.js';
import { bundlesModule } from '../../transforms/bundles.js';
import { bundleId } from '../../transforms/ids.js';
import { legacyAiFbtBundleSchema, legacyBundleDiscountIdSchema } from '../../transforms/legacy-schema.js';
import { ReasonCodes } from '../../transforms/reason-codes.js';
import { legacyAiBundleArb, legacyManualBundleArb } from './arbitraries.js';
import {
  AI_FBT_BUNDLES,
  BUNDLE_DISCOUNT_ID,
  change,
  deletion,
  expectOps,
  expectRejected,
  expectValidOps,
  legacyAiBundle,
  legacyManualBundle,
  ts,
  upserted,
} from './fixtures.js';

const manual = (row: JsonRow) => bundlesModule.transform(change(BUNDLE_DISCOUNT_ID, row));
const ai = (row: JsonRow) => bundlesModule.transform(change(AI_FBT_BUNDLES, row));
const MANUAL_ID = bundleId('bundle_discount_id', 7);
const AI_ID = bundleId('ai_fbt_bundles', 3);

function components(ops: readonly V2Op[]): JsonRow[] {
  const op = ops.find((o) => o.kind === 'replace-children');
  if (op?.kind !== 'replace-children') throw new Error('no replace-children op');
  return op.rows;
}

describe('bundles module', () => {
  it('declares its tables, schemas and topic', () => {
    expect(bundlesModule.name).toBe('bundles');
    expect(bundlesModule.tables).toEqual([BUNDLE_DISCOUNT_ID, AI_FBT_BUNDLES]);
    expect(bundlesModule.legacySchemas[BUNDLE_DISCOUNT_ID]).toBe(legacyBundleDiscountIdSchema);
    expect(bundlesModule.legacySchemas[AI_FBT_BUNDLES]).toBe(legacyAiFbtBundleSchema);
    expect(bundlesModule.topicFor(BUNDLE_DISCOUNT_ID)).toBe('bundles');
    expect(bundlesModule.topicFor(AI_FBT_BUNDLES)).toBe('bundles');
  });

  describe('bundle_discount_id (MANUAL)', () => {
    it.each([
      [{ bundleId: '' }, 'bundleId'],
      [{ bundleName: '   ' }, 'bundleName'],
      [{ shop: '' }, 'shop'],
      [{ products: [{ productId: '' }] }, 'products[0].productId'],
    ])('rejects a blank field → BUNDLE_EMPTY_FIELD (%j)', (overrides, field) => {
      const result = manual(legacyManualBundle(overrides));
      expectRejected(result, ReasonCodes.BUNDLE_EMPTY_FIELD);
      expect(!result.ok && result.rejection.message).toContain(`${field} is empty`);
    });

    it.each(['-50.00', '100.01'])('rejects a discount of %s %% → BUNDLE_INVALID_DISCOUNT', (percent) => {
      expectRejected(
        manual(legacyManualBundle({ discountPercent: percent })),
        ReasonCodes.BUNDLE_INVALID_DISCOUNT,
      );
    });

    it('accepts discounts of 0 % and 100 %', () => {
      for (const percent of ['0.00', '100.00']) {
        const ops = expectOps(manual(legacyManualBundle({ discountPercent: percent })));
        expect(upserted(ops, 'bundle_discounts')!.percent).toBe(percent);
      }
    });

    it('maps to [upsert bundles, replace-children bundle_components, upsert bundle_discounts]', () => {
      expect(expectOps(manual(legacyManualBundle()))).toEqual([
        {
          kind: 'upsert',
          entity: 'bundles',
          key: { id: MANUAL_ID },
          row: {
            id: MANUAL_ID,
            shop: 'demo.myshopify.com',
            name: 'Summer Sale Kit!',
            title: 'Summer Sale Kit!',
            slug: 'summer-sale-kit-7',
            type: 'FIXED',
            status: 'ACTIVE',
            source: 'MANUAL',
            shopify_metaobject_id: 'gid://shopify/Metaobject/555',
            metadata: {},
            created_at: ts(5),
          },
        },
        {
          kind: 'replace-children',
          entity: 'bundle_components',
          parentKey: { bundle_id: MANUAL_ID },
          childKey: ['bundle_id', 'position'],
          rows: [
            {
              bundle_id: MANUAL_ID,
              position: 0,
              shopify_product_id: 'gid://shopify/Product/1',
              shopify_variant_id: 'gid://shopify/ProductVariant/11',
              quantity: 2,
            },
            {
              bundle_id: MANUAL_ID,
              position: 1,
              shopify_product_id: 'gid://shopify/Product/2',
              shopify_variant_id: null,
              quantity: 1,
            },
          ],
        },
        {
          kind: 'upsert',
          entity: 'bundle_discounts',
          key: { bundle_id: MANUAL_ID },
          row: {
            bundle_id: MANUAL_ID,
            shopify_discount_id: 'gid://shopify/DiscountAutomaticNode/99',
            discount_type: 'automatic',
            percent: '15.00',
            is_active: true,
          },
        },
      ]);
    });

    it('has no discount op without a discountId', () => {
      const ops = expectOps(manual(legacyManualBundle({ discountId: null })));
      expect(ops.map((o) => o.kind)).toEqual(['upsert', 'replace-children']);
    });

    it('slugs the name and appends the legacy id', () => {
      const slug = (bundleName: string, id = 7) =>
        upserted(expectOps(manual(legacyManualBundle({ bundleName, id }))), 'bundles')!.slug;
      expect(slug('Summer  Sale (2024)!')).toBe('summer-sale-2024-7');
      expect(slug('--Kit & Co--', 12)).toBe('kit-co-12');
      // Literally slugify(name) + '-' + id, also when the name has no letters or digits.
      expect(slug('!!!')).toBe('-7');
    });

    it('follows the order of products: reordering moves positions', () => {
      const a = { productId: 'A', quantity: 3 };
      const b = { productId: 'B', variantId: 'B-1' };
      const forward = components(expectOps(manual(legacyManualBundle({ products: [a, b] }))));
      const reversed = components(expectOps(manual(legacyManualBundle({ products: [b, a] }))));
      expect(forward.map((c) => [c.position, c.shopify_product_id, c.quantity])).toEqual([
        [0, 'A', 3],
        [1, 'B', 1],
      ]);
      expect(
        reversed.map((c) => [c.position, c.shopify_product_id, c.shopify_variant_id, c.quantity]),
      ).toEqual([
        [0, 'B', 'B-1', 1],
        [1, 'A', null, 3],
      ]);
    });

    it('replaces the children with none when products is empty (so removed products go)', () => {
      const ops = expectOps(manual(legacyManualBundle({ products: [] })));
      expect(components(ops)).toEqual([]);
    });

    it('defaults a null quantity to 1 and ignores other product keys', () => {
      const rows = components(
        expectOps(manual(legacyManualBundle({ products: [{ productId: 'A', quantity: null, title: 'x' }] }))),
      );
      expect(rows).toEqual([
        { bundle_id: MANUAL_ID, position: 0, shopify_product_id: 'A', shopify_variant_id: null, quantity: 1 },
      ]);
    });

    it.each([
      ['not an array', { productId: 'A' }],
      ['a string', '[{"productId":"A"}]'],
      ['an element that is not an object', ['A']],
      ['a null element', [null]],
      ['an array element', [[{ productId: 'A' }]]],
      ['a missing productId', [{ variantId: 'V' }]],
      ['a numeric productId', [{ productId: 123 }]],
      ['a null productId', [{ productId: null }]],
      ['a numeric variantId', [{ productId: 'A', variantId: 5 }]],
      ['a productId only in the prototype', JSON.parse('[{"__proto__":{"productId":"A"}}]')],
    ])('products with %s → BUNDLE_INVALID_PRODUCTS', (_, products) => {
      expectRejected(manual(legacyManualBundle({ products })), ReasonCodes.BUNDLE_INVALID_PRODUCTS);
    });

    it.each([0, -1, 1.5, '2', true, 2_147_483_648, 1e300])(
      'quantity %j → BUNDLE_INVALID_QUANTITY',
      (quantity) => {
        const products: JsonRow[] = [{ productId: 'A' }, { productId: 'B', quantity }];
        expectRejected(manual(legacyManualBundle({ products })), ReasonCodes.BUNDLE_INVALID_QUANTITY);
      },
    );

    it('accepts the largest integer quantity', () => {
      const rows = components(
        expectOps(manual(legacyManualBundle({ products: [{ productId: 'A', quantity: 2_147_483_647 }] }))),
      );
      expect(rows[0]!.quantity).toBe(2_147_483_647);
    });

    it.each([
      ['a null shop', { shop: null }],
      ['a percent beyond numeric(5,2)', { discountPercent: '1000.00' }],
      ['createdAt infinity', { createdAt: 'infinity' }],
    ])('%s → LEGACY_ROW_INVALID', (_, overrides) => {
      expectRejected(manual(legacyManualBundle(overrides)), ReasonCodes.LEGACY_ROW_INVALID);
    });
  });

  describe('ai_fbt_bundles (AI)', () => {
    it('maps to a bundle, its components and its discount', () => {
      expect(expectOps(ai(legacyAiBundle()))).toEqual([
        {
          kind: 'upsert',
          entity: 'bundles',
          key: { id: AI_ID },
          row: {
            id: AI_ID,
            shop: 'demo.myshopify.com',
            name: 'AI Bundle - gid://shopify/Product/10',
            title: 'Frequently Bought Together',
            slug: 'ai-fbt-3',
            type: 'FIXED',
            status: 'ACTIVE',
            source: 'AI',
            shopify_metaobject_id: 'gid://shopify/Metaobject/777',
            metadata: { ai_bundle_id: 3, confidence: 0.82, support: 0.125, lift: 3.5 },
            created_at: ts(6),
          },
        },
        {
          kind: 'replace-children',
          entity: 'bundle_components',
          parentKey: { bundle_id: AI_ID },
          childKey: ['bundle_id', 'position'],
          rows: ['10', '11', '12'].map((n, position) => ({
            bundle_id: AI_ID,
            position,
            shopify_product_id: `gid://shopify/Product/${n}`,
            shopify_variant_id: null,
            quantity: 1,
          })),
        },
        {
          kind: 'upsert',
          entity: 'bundle_discounts',
          key: { bundle_id: AI_ID },
          row: {
            bundle_id: AI_ID,
            shopify_discount_id: 'gid://shopify/DiscountAutomaticNode/5',
            discount_type: 'automatic',
            percent: null,
            is_active: true,
          },
        },
      ]);
    });

    it('pauses an inactive bundle and its discount', () => {
      const ops = expectOps(ai(legacyAiBundle({ isActive: false })));
      expect(upserted(ops, 'bundles')!.status).toBe('PAUSED');
      expect(upserted(ops, 'bundle_discounts')!.is_active).toBe(false);
    });

    it('has only the main product with empty bundledProductIds', () => {
      const rows = components(expectOps(ai(legacyAiBundle({ bundledProductIds: [] }))));
      expect(rows.map((r) => [r.position, r.shopify_product_id])).toEqual([[0, 'gid://shopify/Product/10']]);
    });

    it('has no discount op without a discountId and keeps a null metaobject id', () => {
      const ops = expectOps(ai(legacyAiBundle({ discountId: null, bundleMetaobjectId: null })));
      expect(ops.map((o) => o.kind)).toEqual(['upsert', 'replace-children']);
      expect(upserted(ops, 'bundles')!.shopify_metaobject_id).toBeNull();
    });

    it.each([
      ['confidenceScore', 'NaN'],
      ['lift', 'Infinity'],
      ['support', '-Infinity'],
    ])('rejects a non-finite %s (%s) → BUNDLE_INVALID_SCORE, naming it', (field, value) => {
      const result = ai(legacyAiBundle({ [field]: value }));
      expectRejected(result, ReasonCodes.BUNDLE_INVALID_SCORE);
      expect(!result.ok && result.rejection.message).toContain(`${field} ${value}`);
    });

    it.each([
      [{ productId: '' }, 'productId'],
      [{ bundledProductIds: ['p-1', ' '] }, 'bundledProductIds[1]'],
      [{ shop: '' }, 'shop'],
    ])('rejects a blank field → BUNDLE_EMPTY_FIELD (%j)', (overrides, field) => {
      const result = ai(legacyAiBundle(overrides));
      expectRejected(result, ReasonCodes.BUNDLE_EMPTY_FIELD);
      expect(!result.ok && result.rejection.message).toContain(`${field} is empty`);
    });

    it('rejects a NULL in bundledProductIds → BUNDLE_INVALID_PRODUCTS', () => {
      const result = ai(legacyAiBundle({ bundledProductIds: ['p-1', null] }));
      expectRejected(result, ReasonCodes.BUNDLE_INVALID_PRODUCTS);
      expect(!result.ok && result.rejection.message).toContain('bundledProductIds[1]');
    });

    it.each([
      ['a multi-dimensional array', { bundledProductIds: [['a'], ['b']] }],
      ['a string confidence', { confidenceScore: '0.5' }],
      ['an integer id beyond int4', { id: 2 ** 31 }],
      ['a missing isActive', { isActive: null }],
    ])('%s → LEGACY_ROW_INVALID', (_, overrides) => {
      expectRejected(ai(legacyAiBundle(overrides)), ReasonCodes.LEGACY_ROW_INVALID);
    });
  });

  it('gives the two tables distinct bundle ids for one legacy id', () => {
    const m = upserted(expectOps(manual(legacyManualBundle({ id: 3 }))), 'bundles')!;
    const a = upserted(expectOps(ai(legacyAiBundle({ id: 3 }))), 'bundles')!;
    expect(m.id).not.toBe(a.id);
  });

  it('maps deletes of either table to no ops (lineage deletes the bundle; children cascade)', () => {
    expect(bundlesModule.transform(deletion(BUNDLE_DISCOUNT_ID, legacyManualBundle()))).toEqual({
      ok: true,
      ops: [],
    });
    expect(bundlesModule.transform(deletion(AI_FBT_BUNDLES, legacyAiBundle()))).toEqual({
      ok: true,
      ops: [],
    });
  });

  it('rejects other tables and truncates', () => {
    expectRejected(
      bundlesModule.transform(change('public.bookings', legacyAiBundle())),
      ReasonCodes.UNKNOWN_TABLE,
    );
    const truncate: LegacyChange = { op: 't', table: AI_FBT_BUNDLES, key: {}, before: null, after: null };
    expectRejected(bundlesModule.transform(truncate), ReasonCodes.TRUNCATE_UNSUPPORTED);
  });

  it('same input → same output, valid V2 rows, components at 0..n-1 under their bundle', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          legacyManualBundleArb().map((row) => change(BUNDLE_DISCOUNT_ID, row)),
          legacyAiBundleArb().map((row) => change(AI_FBT_BUNDLES, row)),
        ),
        (event) => {
          const first = bundlesModule.transform(event);
          expect(bundlesModule.transform(structuredClone(event))).toEqual(first);
          const ops = expectOps(first);
          expectValidOps(ops);
          const bundle = upserted(ops, 'bundles')!;
          expect(components(ops).map((c) => [c.bundle_id, c.position])).toEqual(
            components(ops).map((_, i) => [bundle.id, i]),
          );
        },
      ),
    );
  });
});
