// Types for chatscale-client.js (an ES module; no build step needed to use it from JavaScript or TypeScript).

/** Where the client is. */
export type ChatScaleState = 'idle' | 'connecting' | 'online' | 'reconnecting' | 'stopped';

/** What the token factory is told about the attempt it provides a token for. */
export interface TokenRequestContext {
  /** 0 for the first attempt after the socket was last open, then 1, 2, ... */
  readonly attempt: number;
  /**
   * Attempts in a row whose socket closed before it opened: the node was down, or it refused the token (a browser
   * cannot tell a 401 from a refused connection). Above 0 is the moment to fetch a fresh token.
   */
  readonly failedHandshakes: number;
}

export interface ChatScaleClientOptions {
  /** The WebSocket endpoint, e.g. '/ws' (resolved against the page; http(s) becomes ws(s)). */
  url: string | URL;
  /**
   * Called before every connection attempt; its token goes in the query string (browsers cannot set headers on a
   * WebSocket handshake), which the server validates like a bearer header. Omit it for cookie authentication.
   */
  accessToken?: (context: TokenRequestContext) => string | null | undefined | Promise<string | null | undefined>;
  /** Query-string parameter that carries the token. Default 'access_token' (the SignalR convention). */
  tokenParameter?: string;
  /** The first retry's step in ms. Default 100. */
  minDelay?: number;
  /**
   * The cap on the back-off step in ms; each wait is 50-100 % of its step (jitter). Default 1000: a chat is usable
   * again about a second after its node is. Raise it when very many clients share a node.
   */
  maxDelay?: number;
  /** WebSocket sub-protocols. */
  protocols?: string | string[];
  /** A WebSocket constructor other than globalThis.WebSocket. */
  WebSocket?: typeof WebSocket;
}

export interface StateDetail {
  readonly state: ChatScaleState;
  readonly previous: ChatScaleState;
  /** Failed attempts so far, while connecting or reconnecting. */
  readonly attempt?: number;
  /** While reconnecting: when the next attempt runs (ms since the epoch); null while an attempt is under way. */
  readonly retryAt?: number | null;
  /** While reconnecting: the wait before the next attempt, in ms. */
  readonly delay?: number;
}

export interface OpenDetail {
  /** True when the socket was open before: what arrived meanwhile was missed, so catch up. */
  readonly reconnected: boolean;
}

export interface MessageDetail<T = unknown> {
  /** The frame parsed as JSON (a binary frame is passed as it came). */
  readonly data: T;
  /** The frame as received. */
  readonly raw: string | ArrayBuffer | Blob;
}

export interface CloseDetail {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
  /** False when the socket closed before it opened (refused). */
  readonly opened: boolean;
}

export interface ErrorDetail {
  readonly error: unknown;
  /** 'token': the token factory threw; 'parse': a text frame was not JSON (raw has it). */
  readonly phase: 'token' | 'parse';
  readonly raw?: string;
}

export interface ChatScaleEventMap<T = unknown> {
  state: StateDetail;
  open: OpenDetail;
  reconnected: Record<string, never>;
  message: MessageDetail<T>;
  close: CloseDetail;
  error: ErrorDetail;
}

/**
 * One WebSocket to a ChatScale endpoint, kept open: reconnects with capped, jittered exponential back-off, at once
 * when the page comes back online or visible, and tells you when to catch up.
 *
 * @example
 * const client = new ChatScaleClient({ url: '/ws', accessToken: () => getToken() });
 * client.on('message', ({ data }) => show(data));
 * client.onReconnected(() => fetchMissedMessages());
 * await client.start();
 */
export declare class ChatScaleClient<T = unknown> extends EventTarget {
  constructor(options: ChatScaleClientOptions);
  /** Where the client is now. */
  readonly state: ChatScaleState;
  /** While reconnecting, when the next attempt runs (ms since the epoch); otherwise null. */
  readonly retryAt: number | null;
  /** Starts connecting; resolves when the socket is first open. It keeps reconnecting until stop(). */
  start(): Promise<void>;
  /** Closes the socket and stops reconnecting. */
  stop(code?: number, reason?: string): void;
  /** While waiting to reconnect: tries now. */
  retryNow(): void;
  /** Sends a frame (strings and binary as they are, anything else as JSON); false when the socket is not open. */
  send(data: unknown): boolean;
  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof ChatScaleEventMap<T>>(type: K, listener: (detail: ChatScaleEventMap<T>[K]) => void): () => void;
  /** Runs after every reconnect (not the first connect): fetch what was missed now. Returns a function removing it. */
  onReconnected(listener: () => void): () => void;
}
