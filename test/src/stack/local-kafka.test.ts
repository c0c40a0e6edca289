import { describe, expect, it } from 'vitest';
import { newClusterId } from '../../../src/stack/local-kafka.js';

describe('local Kafka', () => {
  it('makes cluster ids StorageTool accepts: 22 base64url characters, never a leading "-" (read as an option)', () => {
    // Of 2,000 unfiltered ids about 31 would start with '-'.
    const ids = Array.from({ length: 2_000 }, () => newClusterId());
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
