// The published shape: ESM entry points resolvable by package name (Node's
// self-reference through "exports"), declarations beside them, no runtime deps,
// and sourcemaps that lead back to sources the package ships.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// This file's directory (import.meta.dirname needs Node ≥ 20.11).
const HERE = fileURLToPath(new URL('.', import.meta.url));

const root = join(HERE, '..', '..', '..');

interface Pkg {
  type?: string;
  files: string[];
  dependencies?: Record<string, string>;
  peerDependenciesMeta?: { react?: { optional?: boolean } };
  exports: Record<string, { import: string; types: string }>;
}
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Pkg;

/** The fields of a v3 sourcemap this test reads. */
interface SourceMap {
  version: number;
  file: string;
  sourceRoot?: string;
  sources: string[];
  mappings: string;
}

/** Whether `path` (inside the package) is published, per package.json "files". */
function published(path: string): boolean {
  const rel = relative(root, path).split(sep).join('/');
  return pkg.files.some((f) => rel === f || rel.startsWith(f.replace(/\/$/, '') + '/'));
}

/** Checks `generated`'s sourcemap: linked by its last line, naming it, every source a published file. */
function checkMap(generated: string): void {
  const name = basename(generated);
  const text = readFileSync(generated, 'utf8');
  assert.ok(text.trimEnd().endsWith(`//# sourceMappingURL=${name}.map`), `${name} links its map`);
  const mapPath = generated + '.map';
  assert.ok(existsSync(mapPath), `${name}.map built`);
  const map = JSON.parse(readFileSync(mapPath, 'utf8')) as SourceMap;
  assert.equal(map.version, 3);
  assert.equal(map.file, name);
  // A types-only module compiles to a bare `export {};`, which maps to nothing.
  const code = text.replace(/\/\/# sourceMappingURL=.*$/m, '').trim();
  if (code !== 'export {};') assert.ok(map.mappings.length > 0, `${name}.map maps something`);
  assert.ok(map.sources.length > 0, `${name}.map names its sources`);
  for (const s of map.sources) {
    const src = resolve(dirname(generated), map.sourceRoot ?? '', s);
    assert.ok(existsSync(src), `${name}.map: source ${s} exists (${src})`);
    assert.ok(src.endsWith('.ts') && !src.endsWith('.d.ts'), `${name}.map: ${s} is TypeScript source`);
    assert.ok(published(src), `${name}.map: ${s} is in the published files ${JSON.stringify(pkg.files)}`);
  }
}

describe('package', () => {
  it('has no runtime dependencies; React is an optional peer', () => {
    assert.equal(pkg.dependencies, undefined);
    assert.equal(pkg.peerDependenciesMeta?.react?.optional, true);
    assert.equal(pkg.type, 'module');
  });

  it('exports resolve to ESM files with type declarations', async () => {
    for (const [entry, map] of Object.entries(pkg.exports)) {
      assert.ok(existsSync(join(root, map.import)), `${entry}: ${map.import} built`);
      assert.ok(existsSync(join(root, map.types)), `${entry}: ${map.types} built`);
    }
    const name = '@synckairos/client';
    const main = (await import(name)) as Record<string, unknown>;
    for (const k of ['SyncKairosClient', 'SessionSubscription', 'subscribe', 'ClockEstimator', 'SyncKairosError', 'participantRemainingMs', 'formatClock', 'newSessionId']) {
      assert.equal(typeof main[k], 'function', `${name} exports ${k}`);
    }
    const react = (await import(`${name}/react`)) as Record<string, unknown>;
    assert.equal(typeof react.useSyncKairos, 'function');
  });

  it('every built .js and .d.ts has a sourcemap into the published TypeScript sources', () => {
    const dist = join(root, 'dist');
    const built = readdirSync(dist, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.js') || f.endsWith('.d.ts'))
      .map((f) => join(dist, f));
    assert.ok(built.some((f) => f.endsWith(join('dist', 'index.js'))), 'dist/index.js among the checked files');
    assert.ok(built.some((f) => f.endsWith(join('dist', 'index.d.ts'))), 'dist/index.d.ts among the checked files');
    for (const f of built) checkMap(f);
  });
});
