/**
 * Wire types of the SyncKairos v1 contract (shared/API.md), so that every
 * field a client reads is checked by the compiler instead of guessed.
 *
 * The REST types are the server's own: generated from its OpenAPI document
 * into `./generated/openapi.ts` (`make sdk-types`; `make test-sdk` fails while
 * that file is stale). This module only names them. It reaches into the
 * document by what the contract fixes — the schema names API.md uses
 * (`SyncState`, `SwitchResult`) and the endpoints' paths — never by the server's
 * internal type names, so a refactor on the server does not break these names.
 * The WebSocket messages are not in the OpenAPI document and are written here.
 */
import type { components, paths } from './generated/openapi.js';

type Schemas = components['schemas'];

/** The JSON body of a request or response object of the generated `paths`. */
type Json<T> = T extends { content: { 'application/json': infer B } } ? B : never;

/**
 * `T` with its contract extensions `K` optional: this server always sends
 * them, a plain 2.0 server does not, and the SDK works with both.
 */
type WithExtensions<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;

/** The full session state (`SyncState`), as sent by REST and WebSocket. */
export type SyncState = WithExtensions<Schemas['SyncState'], 'server_time_ms' | 'deadline_ms'>;

/** One participant as the server renders it at `server_time_ms`. */
export type SyncParticipant = SyncState['participants'][number];

/** How the session's clocks run; see API.md "Modes and timeouts". */
export type SyncMode = SyncState['sync_mode'];

/** Lifecycle of a session; `expired`, `completed` and `cancelled` are terminal. */
export type SessionStatus = SyncState['status'];

/** What the server does when a running clock reaches zero; extra fields are echoed back unchanged. */
export type TimeoutAction = SyncState['action_on_timeout'];

/** Body of `POST /v1/sessions/{id}/switch`. */
export type SwitchResult = WithExtensions<
  Schemas['SwitchResult'],
  'version' | 'server_time_ms' | 'deadline_ms' | 'expired_participant_id'
>;

/** Body of `POST /v1/sessions`. `session_id`: a UUID; use {@link newSessionId} when you have none. */
export type CreateSessionRequest = Json<paths['/v1/sessions']['post']['requestBody']>;

/** A participant in a create request. */
export type CreateParticipant = CreateSessionRequest['participants'][number];

/** Body of a switch; every field optional. */
export type SwitchRequest = NonNullable<Json<paths['/v1/sessions/{id}/switch']['post']['requestBody']>>;

/** `GET /v1/time`. */
export type ServerTime = WithExtensions<Json<paths['/v1/time']['get']['responses'][200]>, 'build_version'>;

/** What the document says `GET /v1/sessions/{id}/events` answers (nothing, while it has no schema). */
type EventsBody = Json<paths['/v1/sessions/{id}/events']['get']['responses'][200]>;

/**
 * `GET /v1/sessions/{id}/events`: one page of the audit trail. The generated
 * type once the server documents the body; until then the contract's shape.
 */
export type EventsPage = [EventsBody] extends [never]
  ? { data: Array<Record<string, unknown>>; next_cursor: string | null }
  : EventsBody;

/** The generated operations of `path`, or never while the document does not have it. */
type PathItem<P extends string> = P extends keyof paths ? paths[P] : never;

/** What the document says the token endpoint takes and answers (never until it documents it). */
type MintBody = Json<PathItem<'/v1/sessions/{id}/tokens'>['post']['requestBody']>;
type MintedBody = Json<PathItem<'/v1/sessions/{id}/tokens'>['post']['responses'][201]>;

/** A session token's role (API.md "Authentication and authorization"). */
export type TokenRole = 'viewer' | 'participant' | 'controller';

/**
 * Body of `POST /v1/sessions/{id}/tokens` (API key only): the generated type
 * once the server documents the route; until then the contract's shape.
 */
export type MintTokenRequest = [MintBody] extends [never]
  ? { role: TokenRole; participant_id?: string; ttl_seconds?: number }
  : MintBody;

/** A minted session token: send it as `token` to a client on the user's device. */
export type MintedToken = [MintedBody] extends [never]
  ? { token: string; expires_at: string; role: TokenRole; participant_id?: string }
  : MintedBody extends { data: infer D }
    ? D
    : never;

/** Messages the server sends over the WebSocket. */
export type ServerMessage =
  | { type: 'CONNECTED'; sessionId: string; timestamp: number }
  | { type: 'STATE_UPDATE'; sessionId: string; timestamp: number; state: SyncState }
  | { type: 'STATE_SYNC'; sessionId: string; timestamp: number; state: SyncState }
  | {
      type: 'TIME_EXPIRED';
      sessionId: string;
      timestamp: number;
      participant_id: string | null;
      action: TimeoutAction;
    }
  | { type: 'SESSION_DELETED'; sessionId: string; timestamp: number }
  | { type: 'PONG'; timestamp: number; client_time?: number }
  | { type: 'ERROR'; code: string; message: string };
