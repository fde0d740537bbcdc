// ChatScale browser client: one WebSocket to a ChatScale endpoint (MapChatScale), kept open.
// An ES module with no dependencies and no build step; types in chatscale-client.d.ts.
//
// - connect with a token factory, called before every attempt (so an expired token is replaced, never reused);
// - reconnect with exponential back-off, capped (default 1 s) and jittered (each delay is 50-100 % of the step), so a
//   restarted node is back in use within about a second without every client arriving at the same instant;
// - retry at once when the page comes back online or becomes visible again;
// - 'state' events (connecting, online, reconnecting with the time of the next attempt, stopped);
// - 'reconnected': the socket is open again after a drop; fetch what was missed (your history endpoint) now;
// - 'message' events with the frame parsed as JSON ('error' event for a frame that is not JSON).
const defaults = Object.freeze({
  tokenParameter: 'access_token',
  minDelay: 100,
  maxDelay: 1000,
  protocols: undefined,
});

/** A ChatScale WebSocket that reconnects by itself. See chatscale-client.d.ts. */
export class ChatScaleClient extends EventTarget {
  #options;
  #socket = null;
  #state = 'idle';
  #attempt = 0;
  #failedHandshakes = 0;
  #everOpened = false;
  #timer = null;
  #retryAt = null;
  #connecting = null;
  #onWake;

  constructor(options) {
    super();
    if (!options || !options.url) throw new TypeError('ChatScaleClient: options.url is required');
    if (options.accessToken !== undefined && typeof options.accessToken !== 'function') {
      throw new TypeError('ChatScaleClient: options.accessToken must be a function returning a token (or a promise of one)');
    }
    this.#options = { ...defaults, ...options };
    if (!(this.#options.minDelay >= 0) || !(this.#options.maxDelay >= this.#options.minDelay)) {
      throw new RangeError('ChatScaleClient: need 0 <= minDelay <= maxDelay');
    }
    this.#onWake = () => {
      if (this.#state === 'reconnecting' && (globalThis.document?.visibilityState ?? 'visible') === 'visible') this.retryNow();
    };
  }

  /** 'idle' | 'connecting' | 'online' | 'reconnecting' | 'stopped'. */
  get state() { return this.#state; }

  /** When the next attempt runs (ms since the epoch), while reconnecting; otherwise null. */
  get retryAt() { return this.#retryAt; }

  /** Starts connecting; resolves when the socket is first open (it keeps reconnecting after that). */
  start() {
    if (this.#state !== 'idle' && this.#state !== 'stopped') return this.#connecting ?? Promise.resolve();
    this.#attempt = 0;
    this.#failedHandshakes = 0;
    this.#everOpened = false;
    globalThis.addEventListener?.('online', this.#onWake);
    globalThis.document?.addEventListener('visibilitychange', this.#onWake);
    this.#connecting = new Promise((resolve) => {
      const opened = () => { this.removeEventListener('open', opened); resolve(); };
      this.addEventListener('open', opened);
    });
    this.#connect();
    return this.#connecting;
  }

  /** Closes the socket and stops reconnecting. */
  stop(code = 1000, reason = '') {
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#retryAt = null;
    globalThis.removeEventListener?.('online', this.#onWake);
    globalThis.document?.removeEventListener('visibilitychange', this.#onWake);
    const socket = this.#socket;
    this.#socket = null;
    this.#setState('stopped');
    if (socket && socket.readyState <= 1) socket.close(code, reason);
  }

  /** While reconnecting: skips the rest of the wait and tries now. */
  retryNow() {
    if (this.#state !== 'reconnecting' || this.#timer === null) return;   // an attempt is already under way
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#connect();
  }

  /** Sends a frame: strings as they are, anything else as JSON. False when the socket is not open. */
  send(data) {
    const socket = this.#socket;
    if (!socket || socket.readyState !== 1) return false;
    socket.send(typeof data === 'string' || data instanceof ArrayBuffer || ArrayBuffer.isView(data) ? data : JSON.stringify(data));
    return true;
  }

  /** Adds a listener for 'state', 'open', 'reconnected', 'message', 'close' or 'error'; returns a function removing it. */
  on(type, listener) {
    const handler = (event) => listener(event.detail);
    this.addEventListener(type, handler);
    return () => this.removeEventListener(type, handler);
  }

  /** The hook for catching up: runs after every reconnect (not the first connect). Returns a function removing it. */
  onReconnected(listener) { return this.on('reconnected', listener); }

  async #connect() {
    this.#retryAt = null;
    this.#setState(this.#everOpened || this.#attempt > 0 ? 'reconnecting' : 'connecting', { attempt: this.#attempt, retryAt: null });
    let url;
    try {
      url = new URL(this.#options.url, globalThis.location?.href);
      if (url.protocol === 'http:') url.protocol = 'ws:';
      if (url.protocol === 'https:') url.protocol = 'wss:';
      if (this.#options.accessToken) {
        const token = await this.#options.accessToken({ attempt: this.#attempt, failedHandshakes: this.#failedHandshakes });
        if (this.#state === 'stopped') return;
        if (token) url.searchParams.set(this.#options.tokenParameter, token);
      }
    } catch (error) {
      if (this.#state === 'stopped') return;
      this.#emit('error', { error, phase: 'token' });
      this.#scheduleRetry();
      return;
    }

    const WebSocketType = this.#options.WebSocket ?? globalThis.WebSocket;
    const socket = new WebSocketType(url.toString(), this.#options.protocols);
    this.#socket = socket;
    let opened = false;
    socket.onopen = () => {
      if (this.#socket !== socket) return;
      opened = true;
      const reconnected = this.#everOpened;
      this.#everOpened = true;
      this.#attempt = 0;
      this.#failedHandshakes = 0;
      this.#setState('online');
      this.#emit('open', { reconnected });
      if (reconnected) this.#emit('reconnected', {});
    };
    socket.onmessage = (event) => {
      if (this.#socket !== socket) return;
      if (typeof event.data !== 'string') {
        this.#emit('message', { data: event.data, raw: event.data });
        return;
      }
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (error) {
        this.#emit('error', { error, phase: 'parse', raw: event.data });
        return;
      }
      this.#emit('message', { data, raw: event.data });
    };
    socket.onclose = (event) => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      // A socket that never opened was refused (node down, or 401 for a bad token: browsers cannot tell them apart),
      // so the token factory hears of it and can fetch a fresh token.
      if (!opened) this.#failedHandshakes += 1;
      this.#emit('close', { code: event.code, reason: event.reason, wasClean: event.wasClean, opened });
      this.#scheduleRetry();
    };
  }

  #scheduleRetry() {
    if (this.#state === 'stopped') return;
    const { minDelay, maxDelay } = this.#options;
    // The first retry after a drop waits only minDelay (a node that closed gracefully often has a sibling ready);
    // then each step doubles up to maxDelay, and the wait is 50-100 % of the step so clients spread out.
    const step = Math.min(maxDelay, minDelay * 2 ** this.#attempt);
    const delay = step / 2 + Math.random() * step / 2;
    this.#attempt += 1;
    this.#retryAt = Date.now() + delay;
    this.#setState('reconnecting', { attempt: this.#attempt, retryAt: this.#retryAt, delay });
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#connect();
    }, delay);
  }

  #setState(state, detail = {}) {
    const previous = this.#state;
    this.#state = state;
    this.#emit('state', { state, previous, ...detail });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
