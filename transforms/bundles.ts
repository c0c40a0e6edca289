import type {
  JsonValue,
  LegacyChange,
  TransformModule,
  TransformResult,
  V2Op,
} from '../src/contracts/transform-api.js';
import { isNegativeDecimal } from './decimal.js';
import { bundleId } from './ids.js';
import {
  type LegacyAiFbtBundle,
  type LegacyBundleDiscountId,
  legacyAiFbtBundleSchema,
  legacyBundleDiscountIdSchema,
} from './legacy-schema.js';
import { isJsonObject, readLegacyRow } from './read-legacy-row.js';
import { ReasonCodes, reject } from './reason-codes.js';
import { slugify } from './slugify.js';
import { replaceChildrenOp, upsertOp } from './v2-ops.js';
import type { Bundle, BundleComponent, BundleDiscount } from './v2-schema.js';

const MANUAL_TABLE = 'public.bundle_discount_id';
const AI_TABLE = 'public.ai_fbt_bundles';
const MAX_INT4 = 2_147_483_647;

type ComponentsOutcome = { ok: true; components: BundleComponent[] } | { ok: false; result: TransformResult };

/**
 * `products` ([{ productId, variantId?, quantity? }], cached from a Shopify metaobject) → components at positions
 * 0..n-1, in the array's order.
 */
export function componentsFromProducts(bundle: string, products: JsonValue): ComponentsOutcome {
  if (!Array.isArray(products)) {
    return { ok: false, result: reject(ReasonCodes.BUNDLE_INVALID_PRODUCTS, 'products is not an array') };
  }
  const components: BundleComponent[] = [];
  for (const [position, product] of products.entries()) {
    const where = `products[${position}]`;
    if (!isJsonObject(product)) {
      return { ok: false, result: reject(ReasonCodes.BUNDLE_INVALID_PRODUCTS, `${where} is not an object`) };
    }
    const { productId, variantId, quantity } = product;
    if (typeof productId !== 'string') {
      return {
        ok: false,
        result: reject(ReasonCodes.BUNDLE_INVALID_PRODUCTS, `${where}.productId is missing or not a string`),
      };
    }
    if (productId.trim() === '') {
      return { ok: false, result: reject(ReasonCodes.BUNDLE_EMPTY_FIELD, `${where}.productId is empty`) };
    }
    if (variantId !== undefined && variantId !== null && typeof variantId !== 'string') {
      return {
        ok: false,
        result: reject(ReasonCodes.BUNDLE_INVALID_PRODUCTS, `${where}.variantId is not a string`),
      };
    }
    if (
      quantity !== undefined &&
      quantity !== null &&
      !(typeof quantity === 'number' && Number.isInteger(quantity) && quantity >= 1 && quantity <= MAX_INT4)
    ) {
      return {
        ok: false,
        result: reject(
          ReasonCodes.BUNDLE_INVALID_QUANTITY,
          `${where}.quantity ${JSON.stringify(quantity)} is not an integer from 1 to ${MAX_INT4}`,
        ),
      };
    }
    components.push({
      bundle_id: bundle,
      position,
      shopify_product_id: productId,
      shopify_variant_id: variantId ?? null,
      quantity: quantity ?? 1,
    });
  }
  return { ok: true, components };
}

/** The first of `fields` that is blank (empty or white space only), if any. */
function blankField<T extends object>(row: T, fields: readonly (keyof T & string)[]): string | undefined {
  return fields.find((f) => {
    const v = row[f];
    return typeof v === 'string' && v.trim() === '';
  });
}

/** [upsert bundles, replace-children bundle_components (always, so removed products go), upsert discount?]. */
function bundleOps(bundle: Bundle, components: BundleComponent[], discount: BundleDiscount | null): V2Op[] {
  const ops = [
    upsertOp('bundles', bundle),
    replaceChildrenOp('bundle_components', { bundle_id: bundle.id }, components),
  ];
  if (discount !== null) ops.push(upsertOp('bundle_discounts', discount));
  return ops;
}

/** `rawProducts` is the column as received: parsed copies of JSON objects could turn a '__proto__' key into a
 * prototype whose productId would then be read. */
function manualBundle(legacy: LegacyBundleDiscountId, rawProducts: JsonValue): TransformResult {
  const blank = blankField(legacy, ['bundleId', 'bundleName', 'shop']);
  if (blank !== undefined) {
    return reject(ReasonCodes.BUNDLE_EMPTY_FIELD, `bundle_discount_id ${legacy.id}: ${blank} is empty`);
  }
  if (isNegativeDecimal(legacy.discountPercent) || Number(legacy.discountPercent) > 100) {
    return reject(
      ReasonCodes.BUNDLE_INVALID_DISCOUNT,
      `bundle_discount_id ${legacy.id}: discountPercent ${legacy.discountPercent} is not from 0 to 100`,
    );
  }
  const id = bundleId('bundle_discount_id', legacy.id);
  const components = componentsFromProducts(id, rawProducts);
  if (!components.ok) return components.result;
  const bundle: Bundle = {
    id,
    shop: legacy.shop,
    name: legacy.bundleName,
    title: legacy.bundleName,
    // The legacy id keeps slugs unique per shop when names repeat.
    slug: `${slugify(legacy.bundleName)}-${legacy.id}`,
    type: 'FIXED',
    status: 'ACTIVE',
    source: 'MANUAL',
    shopify_metaobject_id: legacy.bundleId,
    metadata: {},
    created_at: legacy.createdAt,
  };
  const discount: BundleDiscount | null =
    legacy.discountId === null
      ? null
      : {
          bundle_id: id,
          shopify_discount_id: legacy.discountId,
          discount_type: 'automatic',
          percent: legacy.discountPercent,
          is_active: true,
        };
  return { ok: true, ops: bundleOps(bundle, components.components, discount) };
}

function aiBundle(legacy: LegacyAiFbtBundle): TransformResult {
  const id = bundleId('ai_fbt_bundles', legacy.id);
  const productIds = [legacy.productId, ...legacy.bundledProductIds];
  const missing = productIds.indexOf(null);
  if (missing >= 0) {
    return reject(ReasonCodes.BUNDLE_INVALID_PRODUCTS, `bundledProductIds[${missing - 1}] is NULL`);
  }
  const empty = productIds.findIndex((p) => p !== null && p.trim() === '');
  if (empty >= 0) {
    const field = empty === 0 ? 'productId' : `bundledProductIds[${empty - 1}]`;
    return reject(ReasonCodes.BUNDLE_EMPTY_FIELD, `ai_fbt_bundles ${legacy.id}: ${field} is empty`);
  }
  const blank = blankField(legacy, ['shop']);
  if (blank !== undefined) {
    return reject(ReasonCodes.BUNDLE_EMPTY_FIELD, `ai_fbt_bundles ${legacy.id}: ${blank} is empty`);
  }
  for (const score of ['confidenceScore', 'support', 'lift'] as const) {
    const v = legacy[score];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      return reject(
        ReasonCodes.BUNDLE_INVALID_SCORE,
        `ai_fbt_bundles ${legacy.id}: ${score} ${String(v)} is not a finite number`,
      );
    }
  }
  const components: BundleComponent[] = productIds.map((productId, position) => ({
    bundle_id: id,
    position,
    shopify_product_id: productId!,
    shopify_variant_id: null,
    quantity: 1,
  }));
  const bundle: Bundle = {
    id,
    shop: legacy.shop,
    name: `AI Bundle - ${legacy.productId}`,
    title: 'Frequently Bought Together',
    slug: `ai-fbt-${legacy.id}`,
    type: 'FIXED',
    status: legacy.isActive ? 'ACTIVE' : 'PAUSED',
    source: 'AI',
    shopify_metaobject_id: legacy.bundleMetaobjectId,
    metadata: {
      ai_bundle_id: legacy.id,
      confidence: legacy.confidenceScore,
      support: legacy.support,
      lift: legacy.lift,
    },
    created_at: legacy.createdAt,
  };
  const discount: BundleDiscount | null =
    legacy.discountId === null
      ? null
      : {
          bundle_id: id,
          shopify_discount_id: legacy.discountId,
          discount_type: 'automatic',
          percent: null,
          is_active: legacy.isActive,
        };
  return { ok: true, ops: bundleOps(bundle, components, discount) };
}

/** Either legacy bundle table → a V2 bundle with its components and discount; a delete → [] (the sink's lineage
 * deletes the bundle, and components and discount cascade). */
function transformBundle(change: LegacyChange): TransformResult {
  if (change.table === MANUAL_TABLE) {
    const read = readLegacyRow(change, legacyBundleDiscountIdSchema);
    return read.ok ? manualBundle(read.row, read.raw.products ?? null) : read.result;
  }
  if (change.table === AI_TABLE) {
    const read = readLegacyRow(change, legacyAiFbtBundleSchema);
    return read.ok ? aiBundle(read.row) : read.result;
  }
  return reject(ReasonCodes.UNKNOWN_TABLE, `bundles: not a table of this module: ${change.table}`);
}

/** public.bundle_discount_id (MANUAL) and public.ai_fbt_bundles (AI) → V2 bundles, components and discounts. */
export const bundlesModule: TransformModule = {
  name: 'bundles',
  tables: [MANUAL_TABLE, AI_TABLE],
  legacySchemas: { [MANUAL_TABLE]: legacyBundleDiscountIdSchema, [AI_TABLE]: legacyAiFbtBundleSchema },
  topicFor: (table) => {
    if (table !== MANUAL_TABLE && table !== AI_TABLE)
      throw new Error(`bundles: not a table of this module: ${table}`);
    return 'bundles';
  },
  transform: transformBundle,
};
