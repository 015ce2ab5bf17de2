// Types of @tabsync/client: the contract of clients/js/API.md in TypeScript.

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** What a token function is told: who connects, and why a token is needed. */
export interface TokenContext {
  device: { id: string; fingerprint: string; type: DeviceType };
  tab: string;
  reason: 'connect' | 'reconnect' | 'expiring';
}

export type DeviceType = 'browser' | 'mobile' | 'desktop' | 'server' | 'cli';
export type ElectScope = 'session' | 'device';

export interface ClientOptions {
  /** Server origin; default: location.origin. */
  url?: string;
  /** A JWT, or a function returning one (sync or async): called before every (re)connect and on `token_expiring`. */
  token: string | ((ctx: TokenContext) => string | Promise<string>);
  /** Default: a persistent id and random fingerprint kept in localStorage ('tabsync.device'). */
  device?: { id?: string; fingerprint?: string; type?: DeviceType };
  /** Default: a random id per page load. */
  tab?: string;
  /** Default {scopes: ['session']}; false: no elections. */
  elect?: false | { scopes?: ElectScope[]; observer?: boolean; scores?: boolean };
  /** Default 'indexeddb' where present, else 'memory'. */
  storage?: 'indexeddb' | 'memory';
  /** IndexedDB database `tabsync-<name>` (one per app). Default 'default'. */
  name?: string;
  /** What to do with a `version` conflict. Default 'rebase'. */
  conflicts?: ConflictPolicy | ((conflict: ConflictInfo) => ConflictPolicy);
  reconnect?: { minDelayMs?: number; maxDelayMs?: number; jitter?: number };
  /** The least time between two presence sends (good / poor connection). */
  presence?: { intervalMs?: number; poorIntervalMs?: number };
  /** Extra socket.io-client options (e.g. transports). */
  io?: Record<string, unknown>;
}

export type ConflictPolicy = 'rebase' | 'drop';
export interface ConflictInfo {
  change: Change;
  conflicts: Conflict[];
}
export interface Conflict {
  path: string;
  ver: number;
  value?: Json;
}

// ---- shared state ----------------------------------------------------------

export type PatchOp =
  | { op: 'add' | 'replace' | 'test'; path: string; value: Json }
  | { op: 'remove'; path: string }
  | { op: 'move' | 'copy'; from: string; path: string }
  | { op: 'incr'; path: string; value: number }
  | { op: 'sadd' | 'srem'; path: string; value: Json };

export type Ops = PatchOp[] | { merge: { [key: string]: Json } };

export interface UpdateOptions {
  /** The ver the change was made against; 'current': the ver the tab has now. */
  base?: number | 'current';
  /** A fenced change: only while this tab leads that scope, sent with its term. */
  lead?: ElectScope;
  type?: string;
}

export interface PathResult {
  path: string;
  status: 'applied' | 'superseded';
  value?: Json;
}

export interface Change {
  id: string;
  client: string;
  mut: number;
  status: 'pending' | 'confirmed' | 'rejected';
  result?: { seq: number; ver: number; duplicate?: boolean; results: PathResult[] };
  error?: { code: string; message: string };
  conflict?: { conflicts: Conflict[]; resolution: 'rebased' | 'dropped' };
  /** With `conflicts: 'rebase'`: the id of the change that replaced this one. */
  rebasedAs?: string;
  /** Settles (never rejects) when confirmed or rejected. */
  done: Promise<Change>;
}

export interface QueuedChange {
  id: string;
  mut: number;
  status: 'pending' | 'sending';
  ops: Ops;
  createdAt: number;
  attempts: number;
}

export interface Confirmed {
  state: { [key: string]: Json };
  ver: number;
  seq: number;
  epoch: string | null;
}

export type StateSource = 'local' | 'remote' | 'confirm' | 'rollback' | 'reset';

// ---- wire messages (docs/PROTOCOL.md, docs/ELECTION.md) -----------------------

export type Prio = 'control' | 'state' | 'event' | 'presence' | 'telemetry';
export type Target = 'session' | 'user' | 'device';

export interface From {
  user: string;
  device: string;
  tab: string;
}

/** An envelope from another tab; history entries have kind, seq and ts. */
export interface Envelope<B = Json> {
  v: number;
  type: string;
  id: string;
  cid?: string;
  prio?: Prio;
  to?: Target;
  body: B;
  from: From;
  kind?: 'event';
  seq?: number;
  ts?: number;
  client?: string;
  mut?: number;
}

export type Effect = { op: 'set'; path: string; value: Json } | { op: 'del'; path: string };

/** A remote state change entry. */
export interface ChangeEntry {
  kind: 'change';
  v: number;
  type?: string;
  id: string;
  cid?: string;
  prio: 'state';
  to: 'session';
  from: From;
  client: string;
  mut?: number;
  base?: number;
  ts: number;
  hlc: number;
  ver: number;
  seq: number;
  effects: Effect[];
  meta?: unknown;
}

export interface Refusal {
  ok: false;
  error: { code: string; message: string; retry_after_ms?: number };
  [key: string]: unknown;
}

export type PublishAck = { ok: true; id: string; seq?: number; ts?: number; duplicate?: boolean } | Refusal;
export type ElectAck = { ok: true; term?: number; [key: string]: unknown } | Refusal;

export interface Holder {
  device: string;
  tab: string;
  score?: number;
}

export type Role = 'leader' | 'backup' | 'follower' | 'observer';

export interface Task {
  name: string;
  assignee: { device: string; tab: string } | null;
  state: 'assigned' | 'running' | 'done' | 'failed';
  pct: number;
  term: number;
  by: 'leader' | 'server';
}

/** An `elect` view (docs/ELECTION.md). */
export interface ElectView {
  scope: ElectScope;
  term: number;
  leader: Holder | null;
  backup: Holder | null;
  role: Role;
  reason: string;
  lease_ms: number;
  hb_ms: number;
  since: number;
  step_down?: true;
  grant?: string;
  members: Array<{ device: string; tab: string; role: Role; score?: number; parts?: Record<string, number> }>;
  tasks: Task[];
}

// ---- the client ------------------------------------------------------------

export interface ErrorInfo {
  code: string;
  message: string;
  retry_after_ms?: number;
}

export interface NetworkInfo {
  effectiveType: string | null;
  downlink: number | null;
  rtt: number | null;
  saveData: boolean;
}

export type Quality = 'good' | 'poor' | 'offline';

export interface ConnectionInfo {
  status: 'connecting' | 'online' | 'reconnecting' | 'offline' | 'closed';
  transport: 'polling' | 'websocket' | null;
  /** Measured by the library (ack round trips), smoothed. */
  rttMs: number | null;
  /** Connections after the first. */
  reconnects: number;
  quality: Quality;
  network: NetworkInfo | null;
  /** While reconnecting: ms until the next attempt. */
  nextRetryMs: number | null;
  lastError: { code: string; message: string } | null;
}

export interface LeaderContext {
  term: number;
  /** Aborts when this tab stops leading. */
  signal: AbortSignal;
}

export interface TaskContext {
  name: string;
  scope: ElectScope;
  term: number;
  /** Aborts when the task is reassigned or cancelled. */
  signal: AbortSignal;
  progress(pct: number): void;
}

export interface Election {
  /** The last view of a scope, or null. */
  view(scope?: ElectScope): ElectView | null;
  /** True only from the first acknowledged heartbeat until t_sent + lease × 0.99 − 50 ms after the last one. */
  isLeader(scope?: ElectScope): boolean;
  /** The term this tab leads with, or null. */
  term(scope?: ElectScope): number | null;
  /** The leader's grant (a JWT an application's backend verifies), or null. */
  grant(scope?: ElectScope): string | null;
  /** fn runs each time this tab starts leading; its signal aborts when it stops. Returns off(). */
  whileLeader(scope: ElectScope, fn: (ctx: LeaderContext) => unknown): () => void;
  whileLeader(fn: (ctx: LeaderContext) => unknown): () => void;
  /** fn runs when the task is assigned to this tab; resolved: `done`, thrown: `fail`. Returns off(). */
  onTask(name: string, fn: (ctx: TaskContext) => unknown): () => void;
  /** Leader only (rejects with Error('not_leader') otherwise). */
  declareTask(name: string, opts?: { to?: { device: string; tab: string }; stallMs?: number; scope?: ElectScope }): Promise<ElectAck>;
  resign(scope?: ElectScope): Promise<ElectAck>;
}

export interface Peer {
  device: string;
  tab: string;
  user: string;
  state: Json;
  /** Date.now() when last heard of. */
  at: number;
}

export interface Presence {
  /** This tab's presence (the latest wins). */
  set(state: Json): void;
  /** The other tabs: "<device>/<tab>" → peer. */
  readonly peers: Map<string, Peer>;
}

export interface LogEntry {
  at: number;
  dir: 'in' | 'out' | 'info';
  name: string;
  cid?: string;
  id?: string;
  summary: string;
}

export interface ClientEvents {
  status: ConnectionInfo;
  quality: { quality: Quality; reason: string };
  state: { state: { [key: string]: Json }; source: StateSource };
  change: ChangeEntry;
  event: Envelope;
  queue: QueuedChange[];
  settled: Change;
  conflict: { change: Change; conflicts: Conflict[]; resolution: 'rebased' | 'dropped' };
  election: ElectView;
  leadership: { scope: ElectScope; leading: boolean; term: number; reason: string };
  presence: Map<string, Peer>;
  error: ErrorInfo;
  log: LogEntry;
}

export interface TabsyncClient {
  /** Resolves once the first welcome and the initial sync are done; rejects when the server refuses for good. */
  readonly ready: Promise<void>;
  /** Resolves once the storage is open (the cached state and queue are loaded). */
  readonly opened: Promise<void>;

  readonly user: string | null;
  readonly session: string | null;
  readonly device: { id: string; type: DeviceType };
  readonly tab: string;
  readonly clientId: string | null;

  readonly state: { [key: string]: Json };
  readonly confirmed: Confirmed;
  get(path?: string): Json | undefined;
  subscribe(path: string, fn: (value: Json | undefined, info: { path: string; source: StateSource }) => void): () => void;
  update(ops: Ops, opts?: UpdateOptions): Change;
  queue(): QueuedChange[];
  publish<B extends Json = Json>(type: string, body: B, opts?: { prio?: Prio; to?: Target; cid?: string }): Promise<PublishAck>;

  /** The recent `log` entries (the last 200), oldest first: what the debug console shows. */
  readonly logs: readonly LogEntry[];

  readonly connection: ConnectionInfo;
  readonly election: Election;
  readonly presence: Presence;

  on<K extends keyof ClientEvents>(name: K, fn: (arg: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(name: K, fn: (arg: ClientEvents[K]) => void): void;
  once<K extends keyof ClientEvents>(name: K, fn: (arg: ClientEvents[K]) => void): () => void;

  /** Resigns what it leads, closes the socket and the storage. */
  close(): Promise<void>;
}

export function createClient(opts: ClientOptions): TabsyncClient;

/** The type of presence envelopes ('tabsync.presence'). */
export const PRESENCE_TYPE: 'tabsync.presence';
/** The /session protocol version this library speaks. */
export const PROTOCOL: 4;
