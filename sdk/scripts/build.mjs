// Builds the package (dist/: ESM + .d.ts via tsc, each with a sourcemap into
// src/, which the package ships), the tests (.build/) and, with --demo, the
// demo page bundle (esbuild) into --out (default ../server/assets/demo).
// Usage: node scripts/build.mjs [--demo [--sourcemap]] [--out DIR]
//   --sourcemap  inline a sourcemap (with the sources) into demo.js, for
//                debugging the page in a browser's devtools. Not for commits:
//                the binary embeds demo.js, and the map grows it from 18 KB to ~120 KB;
//                `make demo-check` fails while such a build is in place.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

function run(cmd, argv) {
  execFileSync(process.execPath, [cmd, ...argv], { cwd: root, stdio: 'inherit' });
}

if (args.includes('--demo')) {
  const i = args.indexOf('--out');
  const out = i >= 0 ? resolve(args[i + 1]) : resolve(root, '..', 'server', 'assets', 'demo');
  const esbuild = await import('esbuild');
  const sourcemap = args.includes('--sourcemap');
  const result = await esbuild.build({
    entryPoints: [join(root, 'demo', 'main.ts')],
    // Where the server serves it from, whatever --out is: the map's source
    // paths are relative to it (/demo/demo.js → /sdk/src/*.ts in devtools).
    outfile: join(root, '..', 'server', 'assets', 'demo', 'demo.js'),
    ...(sourcemap ? { sourcemap: 'inline', sourcesContent: true } : {}),
    bundle: true,
    format: 'esm',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    minify: true,
    legalComments: 'none',
    write: false,
    logLevel: 'warning',
  });
  const js = result.outputFiles[0].text;
  const css = readFileSync(join(root, 'demo', 'demo.css'), 'utf8');
  const icon = readFileSync(join(root, 'demo', 'favicon.svg'), 'utf8');
  const tag = (s) => createHash('sha256').update(s).digest('hex').slice(0, 12);
  // Content hashes in the URLs let the server send the assets as immutable.
  const html = readFileSync(join(root, 'demo', 'index.html'), 'utf8')
    .replace('{{DEMO_JS}}', `/demo/demo.js?v=${tag(js)}`)
    .replace('{{DEMO_CSS}}', `/demo/demo.css?v=${tag(css)}`)
    .replace('{{DEMO_ICON}}', `/demo/favicon.svg?v=${tag(icon)}`);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'index.html'), html);
  writeFileSync(join(out, 'demo.js'), js);
  writeFileSync(join(out, 'demo.css'), css);
  writeFileSync(join(out, 'favicon.svg'), icon);
  console.log(`demo built into ${out} (demo.js ${js.length} bytes)`);
} else {
  rmSync(join(root, 'dist'), { recursive: true, force: true });
  rmSync(join(root, '.build'), { recursive: true, force: true });
  run(tsc, ['-p', 'tsconfig.json']);
  run(tsc, ['-p', 'tsconfig.test.json']);
}
