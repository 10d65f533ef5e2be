/**
 * `useSyncKairos`: the React binding. One subscription per (session, server),
 * kept across re-renders; while a clock runs the hook re-renders once per
 * animation frame with a fresh server-time estimate, so the displayed time is
 * computed each frame rather than counted down.
 */
import { useEffect, useMemo, useRef, useState } from 'react';
import { keepTokenFresh } from './auth.js';
import type { ClockEstimate } from './clock.js';
import {
  SessionSubscription,
  type ConnectionStatus,
  type SubscriptionOptions,
  type TimeExpired,
} from './subscription.js';
import { activeRemainingMs, participantRemainingMs } from './time.js';
import type { SyncState } from './types.js';

/**
 * Options of {@link useSyncKairos}: subscription options plus rendering
 * control. With auth on, pass `token` (a session token) and `refreshToken`
 * (resolves to a fresh one): the hook calls it `refreshMarginMs` (default
 * 30 s) before the token's `exp`, and a new `token` prop is used from the
 * next connection on, without re-subscribing.
 */
export interface UseSyncKairosOptions extends SubscriptionOptions {
  /** Re-render every animation frame while the session runs (default true). */
  live?: boolean;
}

/** What {@link useSyncKairos} returns. */
export interface UseSyncKairosResult {
  /** Newest session state, null until the first arrives. */
  state: SyncState | null;
  /** Connection status of the subscription. */
  status: ConnectionStatus;
  /** Estimated server time for this render (epoch ms). */
  serverNow: number;
  /** Remaining time of a participant at `serverNow`. */
  remainingMs: (participantId: string) => number | undefined;
  /** Remaining time of the active participant at `serverNow`. */
  activeRemainingMs: number | undefined;
  /** Current clock estimate (offset and uncertainty). */
  clock: ClockEstimate | null;
  /** The last TIME_EXPIRED received. */
  lastExpired: TimeExpired | null;
  /** The last protocol error. */
  error: { code: string; message: string } | null;
  /** The underlying subscription (null without a session id). */
  subscription: SessionSubscription | null;
}

type Frame = (cb: () => void) => () => void;

function frameScheduler(): Frame {
  const g = globalThis as {
    requestAnimationFrame?: (cb: () => void) => number;
    cancelAnimationFrame?: (h: number) => void;
  };
  if (typeof g.requestAnimationFrame === 'function' && typeof g.cancelAnimationFrame === 'function') {
    const raf = g.requestAnimationFrame.bind(globalThis);
    const caf = g.cancelAnimationFrame.bind(globalThis);
    return (cb) => {
      const h = raf(cb);
      return () => caf(h);
    };
  }
  return (cb) => {
    const h = setTimeout(cb, 16);
    return () => clearTimeout(h);
  };
}

/**
 * Follows a session: `const { state, remainingMs } = useSyncKairos(id, { baseUrl })`.
 * Changing options other than `baseUrl` does not re-subscribe.
 */
export function useSyncKairos(
  sessionId: string | null | undefined,
  options: UseSyncKairosOptions = {},
): UseSyncKairosResult {
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const baseUrl = options.baseUrl ?? options.client?.baseUrl;
  const live = options.live ?? true;

  const [subscription, setSubscription] = useState<SessionSubscription | null>(null);
  const [state, setState] = useState<SyncState | null>(null);
  const [status, setStatus] = useState<ConnectionStatus>('connecting');
  const [clock, setClock] = useState<ClockEstimate | null>(null);
  const [lastExpired, setLastExpired] = useState<TimeExpired | null>(null);
  const [error, setError] = useState<{ code: string; message: string } | null>(null);
  const [serverNow, setServerNow] = useState<number>(() => Date.now());

  useEffect(() => {
    if (!sessionId) {
      setSubscription(null);
      setState(null);
      setStatus('closed');
      return undefined;
    }
    const { live: _live, ...subOptions } = optionsRef.current;
    // The newest callback from the props, whichever render created the subscription.
    if (subOptions.refreshToken) subOptions.refreshToken = () => optionsRef.current.refreshToken!();
    const sub = new SessionSubscription(sessionId, subOptions);
    setSubscription(sub);
    setState(sub.state);
    setStatus(sub.status);
    setError(null);
    setLastExpired(null);
    const offs = [
      sub.on('state', (s) => {
        setState(s);
        setServerNow(sub.serverNow());
      }),
      sub.on('status', setStatus),
      sub.on('clock', setClock),
      sub.on('expired', setLastExpired),
      sub.on('error', setError),
    ];
    const stopRefresh = keepTokenFresh(sub.credentials, {
      onError: (e) => setError({ code: 'UNAUTHORIZED', message: `token refresh failed: ${String((e as Error)?.message ?? e)}` }),
    });
    return () => {
      stopRefresh();
      for (const off of offs) off();
      sub.close();
    };
  }, [sessionId, baseUrl]);

  // A new token from the app: used from the next connection on.
  const token = typeof options.token === 'string' ? options.token : undefined;
  useEffect(() => {
    if (subscription && token !== undefined && subscription.credentials.token !== token) subscription.credentials.set(token);
  }, [subscription, token]);

  const running = state?.status === 'running';
  useEffect(() => {
    if (!subscription || !running || !live) return undefined;
    const schedule = frameScheduler();
    let cancel: () => void = () => undefined;
    const tick = () => {
      setServerNow(subscription.serverNow());
      cancel = schedule(tick);
    };
    cancel = schedule(tick);
    return () => cancel();
  }, [subscription, running, live]);

  return useMemo(
    () => ({
      state,
      status,
      serverNow,
      remainingMs: (pid: string) => (state ? participantRemainingMs(state, pid, serverNow) : undefined),
      activeRemainingMs: state ? activeRemainingMs(state, serverNow) : undefined,
      clock,
      lastExpired,
      error,
      subscription,
    }),
    [state, status, serverNow, clock, lastExpired, error, subscription],
  );
}

export type { ConnectionStatus, TimeExpired, SubscriptionOptions } from './subscription.js';
