/**
 * `@synckairos/client`: typed REST, live subscriptions, server clock
 * estimation and "calculate, don't count" time helpers. The React hook lives
 * in `@synckairos/client/react` so that this entry point needs no React.
 */
export * from './types.js';
export * from './errors.js';
export {
  Credentials,
  decodeTokenClaims,
  keepTokenFresh,
  tokenExpiresAtMs,
  type CredentialOptions,
  type KeepFreshOptions,
  type RefreshTimers,
  type TokenClaims,
  type TokenProvider,
} from './auth.js';
export { SyncKairosClient, newSessionId, type ClientOptions } from './rest.js';
export {
  ClockEstimator,
  localNow,
  sampleClockOverHttp,
  type ClockEstimate,
  type ClockEstimatorOptions,
  type ClockSample,
} from './clock.js';
export * from './time.js';
export {
  SessionSubscription,
  subscribe,
  serverStampMidpoint,
  type ConnectionStatus,
  type StateSource,
  type SubscriptionEvents,
  type SubscriptionOptions,
  type TimeExpired,
  type Timers,
  type WebSocketFactory,
  type WebSocketLike,
} from './subscription.js';
