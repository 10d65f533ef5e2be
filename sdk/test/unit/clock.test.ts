// Clock estimation over a simulated network with virtual time: the client's
// clock is 5 s off, the server stamps whole ms, delays are symmetric or not.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClockEstimator, sampleClockOverHttp } from '../../src/clock.js';
import { SessionSubscription } from '../../src/subscription.js';
import { FakeNet, VirtualTime, rng } from '../support/sim.js';

const SID = '6f1c1d3e-9a55-4d2e-9a31-2a4d6f6f0b11';

/** Opens a subscription over `net`, lets `ms` of virtual time pass, returns it. */
function run(net: FakeNet, ms: number, extra: Partial<ConstructorParameters<typeof SessionSubscription>[1]> = {}) {
  const sub = new SessionSubscription(SID, {
    baseUrl: 'http://sim.invalid',
    WebSocket: net.WebSocket,
    now: net.clientNow,
    timers: net.vt,
    random: rng(7),
    ...extra,
  });
  net.vt.advance(ms);
  return sub;
}

for (const skew of [-5_000, 5_000]) {
  describe(`client clock ${skew > 0 ? 'ahead' : 'behind'} by 5 s`, () => {
    it('symmetric jittery path: offset within 2 ms of the truth', () => {
      const vt = new VirtualTime();
      const r = rng(42);
      // 20 ms base each way plus independent queueing jitter (exponential, mean 6 ms) per direction.
      const jitter = () => -Math.log(1 - r()) * 6;
      const net = new FakeNet(vt, { up: () => 20 + jitter(), down: () => 20 + jitter() }, skew);
      const sub = run(net, 60_000);
      const est = sub.clock.estimate();
      assert.ok(est, 'an estimate exists');
      const truth = -skew; // server − client
      const err = est.offsetMs - truth;
      console.log(`  symmetric: offset error ${err.toFixed(3)} ms, uncertainty ${est.uncertaintyMs.toFixed(2)} ms, ${est.samplesInWindow} samples`);
      assert.ok(Math.abs(err) <= 2, `error ${err} ms exceeds 2 ms`);
      assert.ok(Math.abs(err) <= est.uncertaintyMs, 'the reported uncertainty bounds the error');
      // serverNow() agrees with the server's clock to the same precision.
      assert.ok(Math.abs(sub.serverNow() - vt.t) <= 2);
      sub.close();
    });

    it('asymmetric path (5 ms up, 45 ms down): error is half the asymmetry and within the reported bound', () => {
      const vt = new VirtualTime();
      const net = new FakeNet(vt, { up: () => 5, down: () => 45 }, skew);
      const sub = run(net, 5_000);
      const est = sub.clock.estimate();
      assert.ok(est);
      const err = est.offsetMs - -skew;
      console.log(`  asymmetric: offset error ${err.toFixed(3)} ms, uncertainty ${est.uncertaintyMs.toFixed(2)} ms`);
      // The client cannot see asymmetry: it believes the reply left at sent + rtt/2 = sent + 25 ms,
      // but the server stamped at sent + 5 ms, so it overestimates the client's lag by 20 ms → offset low by 20.
      assert.ok(Math.abs(err - -20) <= 1, `error ${err} should be -20 ± 1 ms`);
      assert.ok(Math.abs(err) <= est.uncertaintyMs, `|${err}| must be ≤ uncertainty ${est.uncertaintyMs}`);
      sub.close();
    });
  });
}

describe('ClockEstimator', () => {
  it('keeps the lowest-RTT samples: one congested sample does not move the median', () => {
    const e = new ClockEstimator({ bestOf: 3 });
    const truth = 1234;
    // Good samples: symmetric 10 ms RTT.
    for (let i = 0; i < 4; i++) e.addSample({ sentAt: i * 1000, serverTime: i * 1000 + 5 + truth, receivedAt: i * 1000 + 10 });
    // Congested: 400 ms stuck on the way back.
    e.addSample({ sentAt: 9000, serverTime: 9005 + truth, receivedAt: 9410 });
    const est = e.estimate();
    assert.ok(est);
    assert.equal(est.offsetMs, truth);
    assert.equal(est.uncertaintyMs, 5);
    assert.equal(est.samplesUsed, 3);
    assert.equal(est.samplesInWindow, 5);
  });

  it('rejects impossible samples and forgets old ones', () => {
    const e = new ClockEstimator({ maxAgeMs: 1000 });
    assert.equal(e.addSample({ sentAt: 10, serverTime: 5, receivedAt: 5 }), false);
    assert.equal(e.addSample({ sentAt: 0, serverTime: NaN, receivedAt: 5 }), false);
    assert.equal(e.estimate(), null);
    assert.equal(e.offsetMs, 0);
    e.addSample({ sentAt: 0, serverTime: 1000, receivedAt: 10 });
    e.addSample({ sentAt: 5000, serverTime: 5005 + 50, receivedAt: 5010 });
    assert.equal(e.size, 1, 'the sample older than maxAgeMs is gone');
    assert.equal(e.offsetMs, 50);
  });

  it('detects a clock step and follows it at once instead of being outvoted by old samples', () => {
    const e = new ClockEstimator();
    for (let i = 0; i < 10; i++) e.addSample({ sentAt: i * 1000, serverTime: i * 1000 + 5 + 700, receivedAt: i * 1000 + 10 });
    assert.equal(e.offsetMs, 700);
    // The client's clock jumps 30 s forward (the server's does not): the true offset is now 700 − 30000.
    const t = 20_000;
    e.addSample({ sentAt: t + 30_000, serverTime: t + 5 + 700, receivedAt: t + 30_010 });
    assert.equal(e.offsetMs, 700 - 30_000);
    assert.equal(e.stepCount, 1);
    assert.equal(e.size, 1);
    // Ordinary jitter is not a step.
    e.addSample({ sentAt: t + 31_000, serverTime: t + 1_000 + 20 + 700, receivedAt: t + 31_040 });
    assert.equal(e.stepCount, 1);
  });

  it('samples over GET /v1/time too', async () => {
    let t = 100_000; // true time; client clock = t - 5000
    const time = async () => {
      t += 7; // request travels 7 ms
      const stamp = Math.floor(t);
      t += 7;
      return { timestamp_ms: stamp };
    };
    const est = await sampleClockOverHttp(time, new ClockEstimator(), 5, () => t - 5000);
    assert.ok(est);
    assert.ok(Math.abs(est.offsetMs - 5000) <= 1, `offset ${est.offsetMs}`);
  });
});

describe('subscription clock sampling', () => {
  it('heartbeat PINGs keep sampling after the initial burst', () => {
    const vt = new VirtualTime();
    const net = new FakeNet(vt, { up: () => 10, down: () => 10 }, 0);
    const sub = run(net, 100, { heartbeatIntervalMs: 1_000, clockBurst: 3, clockResampleMs: 60_000 });
    assert.equal(sub.clock.size, 3, 'the burst: 3 samples');
    vt.advance(5_000);
    assert.ok(sub.clock.size >= 7, `heartbeats add samples (have ${sub.clock.size})`);
    const pings = net.received.filter((m) => m.type === 'PING');
    assert.ok(pings.every((p) => Number.isInteger(p.client_time)), 'client_time goes out as an integer');
    sub.close();
  });

  it('a client clock step (e.g. NTP, laptop resume) is followed by the next heartbeat', () => {
    const vt = new VirtualTime();
    const net = new FakeNet(vt, { up: () => 10, down: () => 10 }, -5_000);
    const sub = run(net, 30_000, { heartbeatIntervalMs: 1_000 });
    assert.ok(Math.abs(sub.serverNow() - vt.t) <= 2);
    net.clientSkewMs = 25_000; // the local clock jumps 30 s
    vt.advance(1_100);
    assert.ok(Math.abs(sub.serverNow() - vt.t) <= 2, `serverNow off by ${sub.serverNow() - vt.t} ms after the step`);
    assert.equal(sub.clock.stepCount, 1);
    sub.close();
  });

  it('warm-up bursts at 1.5 s and 5 s, then every resample interval', () => {
    const vt = new VirtualTime();
    const net = new FakeNet(vt, { up: () => 10, down: () => 10 }, 0);
    const sub = run(net, 200, { heartbeatIntervalMs: 600_000, heartbeatTimeoutMs: 600_000, clockBurst: 5, clockResampleMs: 30_000 });
    const sizes = [sub.clock.size];
    let at = 200;
    for (const t of [1_700, 5_200, 30_000, 35_300]) {
      vt.advance(t - at);
      at = t;
      sizes.push(sub.clock.size);
    }
    // At 0: 5; 1.5 s: +3; 5 s: +3; 35 s: +3 (the 30 s interval counts from the last warm-up burst).
    assert.deepEqual(sizes, [5, 8, 11, 11, 14]);
    sub.close();
  });

  it('works with a server that does not echo client_time (PONGs in order)', () => {
    const vt = new VirtualTime();
    const net = new FakeNet(vt, { up: () => 15, down: () => 15 }, -5_000);
    net.echoClientTime = false;
    const sub = run(net, 2_000);
    const est = sub.clock.estimate();
    assert.ok(est && Math.abs(est.offsetMs - 5_000) <= 2, `offset ${est?.offsetMs}`);
    sub.close();
  });
});
