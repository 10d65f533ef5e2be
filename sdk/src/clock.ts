/**
 * Server clock estimation. A client must show what the server will enforce,
 * so it needs `server_now ≈ local_now + offset`. Each sample is one round
 * trip (PING with `client_time` → PONG, or `GET /v1/time`):
 *
 *   offset_i = server_time − (sent + rtt/2),   |error_i| ≤ rtt/2
 *
 * The error of one sample is (down − up)/2, half the asymmetry of the two
 * one-way delays, so it is zero on symmetric paths and never exceeds rtt/2.
 * We keep a window of recent samples, take the lowest-RTT ones (least
 * queueing noise; at most `bestOf`, and only those within 2×+1 ms of the
 * best round trip) and use the median of their offsets. The reported
 * uncertainty is the largest rtt/2 among them: a hard bound on the error
 * whatever the asymmetry, as long as the clocks do not drift within the window.
 */

/** One round-trip measurement, all in ms. */
export interface ClockSample {
  /** Local clock when the request left. */
  sentAt: number;
  /** Server clock stamped into the reply. */
  serverTime: number;
  /** Local clock when the reply arrived. */
  receivedAt: number;
}

/** The current estimate. */
export interface ClockEstimate {
  /** Add to the local clock to get the server clock. */
  offsetMs: number;
  /** Hard bound on |error| of `offsetMs` (largest rtt/2 of the samples used). */
  uncertaintyMs: number;
  /** Smallest round trip seen in the window. */
  bestRttMs: number;
  /** How many samples were combined (the lowest-RTT ones). */
  samplesUsed: number;
  /** How many samples are in the window. */
  samplesInWindow: number;
}

/** Tuning of {@link ClockEstimator}. */
export interface ClockEstimatorOptions {
  /** Samples kept, newest first out (default 24). */
  windowSize?: number;
  /** How many of the lowest-RTT samples feed the median (default 5). */
  bestOf?: number;
  /** Samples older than this are dropped, so a clock step is forgotten (default 10 min). */
  maxAgeMs?: number;
  /**
   * Slack (ms) before a sample that contradicts the estimate is treated as a
   * clock step (default 25). Without steps, every sample's interval
   * `offset ± rtt/2` contains the true offset; a sample whose interval misses
   * the current one by more than this means a clock jumped (NTP step, a
   * suspended laptop whose monotonic clock paused), and the old samples are
   * dropped instead of outvoting the new truth.
   */
  stepToleranceMs?: number;
}

/** The local clock used everywhere in the SDK: epoch ms, monotonic where the platform allows. */
export function localNow(): number {
  const p = (globalThis as { performance?: Performance }).performance;
  if (p && typeof p.now === 'function' && typeof p.timeOrigin === 'number' && p.timeOrigin > 0) {
    return p.timeOrigin + p.now();
  }
  return Date.now();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Collects round-trip samples and turns them into an offset estimate. Pure: no timers, no I/O. */
export class ClockEstimator {
  private samples: Array<{ offset: number; rtt: number; at: number }> = [];
  private readonly windowSize: number;
  private readonly bestOf: number;
  private readonly maxAgeMs: number;
  private readonly stepToleranceMs: number;
  private steps = 0;
  private cached: ClockEstimate | null = null;

  constructor(options: ClockEstimatorOptions = {}) {
    this.windowSize = Math.max(1, options.windowSize ?? 24);
    this.bestOf = Math.max(1, options.bestOf ?? 5);
    this.maxAgeMs = options.maxAgeMs ?? 10 * 60_000;
    this.stepToleranceMs = options.stepToleranceMs ?? 25;
  }

  /** Adds one round trip; returns false (and ignores it) when it is impossible (negative RTT, NaN). */
  addSample(s: ClockSample): boolean {
    const rtt = s.receivedAt - s.sentAt;
    if (!Number.isFinite(rtt) || rtt < 0 || !Number.isFinite(s.serverTime)) return false;
    const offset = s.serverTime - (s.sentAt + rtt / 2);
    const est = this.estimate();
    if (est && Math.abs(offset - est.offsetMs) > rtt / 2 + est.uncertaintyMs + this.stepToleranceMs) {
      // The intervals cannot both hold: a clock stepped. Start over from this sample.
      this.samples = [];
      this.steps += 1;
    }
    this.samples.push({ offset, rtt, at: s.receivedAt });
    const cutoff = s.receivedAt - this.maxAgeMs;
    this.samples = this.samples.filter((x) => x.at >= cutoff);
    if (this.samples.length > this.windowSize) this.samples.splice(0, this.samples.length - this.windowSize);
    this.cached = null;
    return true;
  }

  /** How many clock steps were detected (each one restarted the window). */
  get stepCount(): number {
    return this.steps;
  }

  /** Number of samples in the window. */
  get size(): number {
    return this.samples.length;
  }

  /** The estimate, or null before the first sample. */
  estimate(): ClockEstimate | null {
    if (this.cached) return this.cached;
    if (this.samples.length === 0) return null;
    const sorted = [...this.samples].sort((a, b) => a.rtt - b.rtt || b.at - a.at);
    const floor = sorted[0]!.rtt;
    // Of the lowest-RTT samples, keep those near the best one: a sample that
    // waited in a queue has a wide error bound and adds nothing but noise.
    const best = sorted.slice(0, this.bestOf).filter((x) => x.rtt <= floor * 2 + 1);
    this.cached = {
      offsetMs: median(best.map((x) => x.offset)),
      uncertaintyMs: Math.max(...best.map((x) => x.rtt)) / 2,
      bestRttMs: best[0]!.rtt,
      samplesUsed: best.length,
      samplesInWindow: this.samples.length,
    };
    return this.cached;
  }

  /** Offset to add to the local clock (0 before any sample). */
  get offsetMs(): number {
    return this.estimate()?.offsetMs ?? 0;
  }

  /** Server clock now, from a local reading (defaults to {@link localNow}). */
  serverNow(local: number = localNow()): number {
    return local + this.offsetMs;
  }

  /** Forgets every sample (e.g. after the local clock stepped). */
  reset(): void {
    this.samples = [];
    this.cached = null;
  }
}

/**
 * Samples the server clock over `GET /v1/time` (for code that has no
 * subscription open): `samples` sequential round trips into `estimator`.
 */
export async function sampleClockOverHttp(
  time: () => Promise<{ timestamp_ms: number }>,
  estimator: ClockEstimator,
  samples = 5,
  now: () => number = localNow,
): Promise<ClockEstimate | null> {
  for (let i = 0; i < samples; i++) {
    const sentAt = now();
    const t = await time();
    const receivedAt = now();
    // Whole-ms server stamps are truncated: use the midpoint of [t, t+1).
    estimator.addSample({ sentAt, serverTime: t.timestamp_ms + 0.5, receivedAt });
  }
  return estimator.estimate();
}
