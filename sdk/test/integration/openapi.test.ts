// `synckairos openapi` (what `make sdk-types` generates the SDK's wire types
// from) prints exactly the document a running server with auth on serves
// (with auth off it leaves out the security requirements it does not apply).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { authEnv, serverBin, startServer, type RunningServer } from '../support/server.js';

describe('synckairos openapi', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer(0, authEnv().env);
  });
  after(async () => {
    await server?.stop();
  });

  it('prints the document GET /openapi.json serves', async () => {
    const printed = JSON.parse(execFileSync(serverBin(), ['openapi'], { encoding: 'utf8' })) as Record<string, unknown>;
    const r = await fetch(server.url + '/openapi.json');
    assert.equal(r.status, 200);
    const served = (await r.json()) as Record<string, unknown>;
    assert.deepEqual(printed, served);
    assert.ok(typeof printed.openapi === 'string' && printed.openapi.startsWith('3.'), 'an OpenAPI 3 document');
  });
});
