// The published shape: ESM entry points resolvable by package name (Node's
// self-reference through "exports"), declarations beside them, no runtime deps.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// This file's directory (import.meta.dirname needs Node ≥ 20.11).
const HERE = fileURLToPath(new URL('.', import.meta.url));

const root = join(HERE, '..', '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, any>;

describe('package', () => {
  it('has no runtime dependencies; React is an optional peer', () => {
    assert.equal(pkg.dependencies, undefined);
    assert.equal(pkg.peerDependenciesMeta?.react?.optional, true);
    assert.equal(pkg.type, 'module');
  });

  it('exports resolve to ESM files with type declarations', async () => {
    for (const [entry, map] of Object.entries(pkg.exports as Record<string, { import: string; types: string }>)) {
      assert.ok(existsSync(join(root, map.import)), `${entry}: ${map.import} built`);
      assert.ok(existsSync(join(root, map.types)), `${entry}: ${map.types} built`);
    }
    const name = '@synckairos/client';
    const main = await import(name);
    for (const k of ['SyncKairosClient', 'SessionSubscription', 'subscribe', 'ClockEstimator', 'SyncKairosError', 'participantRemainingMs', 'formatClock', 'newSessionId']) {
      assert.equal(typeof main[k], 'function', `${name} exports ${k}`);
    }
    const react = await import(`${name}/react`);
    assert.equal(typeof react.useSyncKairos, 'function');
  });
});
