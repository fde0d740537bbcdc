// ChatScale sample client: no framework, no build step.
// Flow: sign in (dev token) -> WebSocket /ws?access_token=... for live messages -> HTTP API for everything else.
// Every message carries seq, its number in its conversation (1, 2, 3, ...). The page keeps the last contiguous seq of
// the open conversation (every number up to it is shown) and fetches GET .../messages?after=<that seq> on every
// (re)connect and whenever a live message skips a number, so nothing sent while the socket was down, or published
// out of order by another node, is lost. Messages are kept by id and seq, so one seen twice is shown once.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const PAGE = 50;
  const state = {
    user: null,
    token: null,
    conversations: new Map(),   // id -> conversation
    unread: new Map(),          // conversation id -> Set of unread message ids (a re-sent frame counts once)
    current: null,              // open conversation id
    messages: new Map(),        // id -> message, of the open conversation
    bySeq: new Map(),           // seq -> message, of the open conversation
    lastSeq: 0,                 // last contiguous seq of the open conversation: every number up to it is shown (or a hole)
    maxSeq: 0,                  // highest seq shown; above lastSeq means a gap to fill
    loading: null,              // live messages that arrived while the open conversation's first page was loading
    filling: null,              // the running gap fill (one at a time)
    refill: false,              // a gap appeared while filling: fill again
    holeCheck: null,            // timer of the delayed second look at a gap nothing filled
    socket: null,
    attempt: 0,
    reconnectTimer: null,
  };

  // ---- HTTP -------------------------------------------------------------------------------------------------
  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: {
        'Content-Type': 'application/json',
        ...(state.token ? { Authorization: `Bearer ${state.token}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && state.token) {
      signOut();
      throw new Error('Your session expired; sign in again.');
    }
    const json = response.headers.get('content-type')?.includes('json') ? await response.json() : null;
    if (!response.ok) {
      // RFC 7807 problem details: show the field errors, else the title.
      const errors = json?.errors ? Object.values(json.errors).flat().join(' ') : '';
      const error = new Error(errors || json?.detail || json?.title || `HTTP ${response.status}`);
      error.status = response.status;
      error.retryAfter = Number(response.headers.get('Retry-After')) || 1;
      throw error;
    }
    return json;
  }

  // ---- Sign in ----------------------------------------------------------------------------------------------
  async function signIn(user) {
    const { token } = await api('POST', '/api/dev/token', { user });
    sessionStorage.setItem('chatscale.session', JSON.stringify({ user, token }));
    start(user, token);
  }

  function start(user, token) {
    state.user = user;
    state.token = token;
    $('whoami').textContent = `signed in as ${user}`;
    $('signin-view').hidden = true;
    $('chat-view').hidden = false;
    connect();
    refreshConversations();
    setInterval(refreshConversations, 3000);
    setInterval(refreshPresence, 5000);
  }

  function signOut() {
    sessionStorage.removeItem('chatscale.session');
    location.reload();
  }

  // ---- WebSocket with back-off ------------------------------------------------------------------------------
  function setStatus(stateName, text) {
    $('status').dataset.state = stateName;
    $('status').textContent = text;
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/ws?access_token=${encodeURIComponent(state.token)}`);
    state.socket = socket;
    socket.onopen = () => {
      state.attempt = 0;
      setStatus('online', 'online');
      // Registered in presence before the upgrade completed: from here on nothing is missed, so catch up now.
      catchUp();
      refreshPresence();
    };
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === 'message') {
        receive(frame.message);
      }
    };
    socket.onclose = () => {
      if (state.socket !== socket) return;
      state.attempt += 1;
      // Exponential back-off with jitter, capped at 30 s, so a restarted node is not stampeded.
      const delay = Math.min(30000, 500 * 2 ** Math.min(state.attempt, 6)) * (0.5 + Math.random() / 2);
      setStatus('reconnecting', `reconnecting in ${Math.ceil(delay / 1000)} s`);
      state.reconnectTimer = setTimeout(connect, delay);
    };
  }

  // ---- Conversations ----------------------------------------------------------------------------------------
  async function refreshConversations() {
    try {
      const list = await api('GET', '/api/conversations');
      state.conversations = new Map(list.map((c) => [c.id, c]));
      renderConversations();
    } catch (error) {
      console.warn(error);
    }
  }

  function conversationName(c) {
    return c.title || c.participants.filter((p) => p !== state.user).join(', ') || '(just you)';
  }

  function renderConversations() {
    const list = $('conversations');
    list.replaceChildren(...[...state.conversations.values()].map((c) => {
      const li = document.createElement('li');
      li.dataset.id = c.id;
      li.textContent = conversationName(c);
      li.title = c.participants.join(', ');
      li.classList.toggle('active', c.id === state.current);
      const unread = state.unread.get(c.id)?.size;
      if (unread) {
        const badge = document.createElement('span');
        badge.className = 'unread';
        badge.textContent = unread;
        li.append(badge);
      }
      li.onclick = () => openConversation(c.id);
      return li;
    }));
  }

  async function createConversation(participants, title) {
    const created = await api('POST', '/api/conversations', { participants, title: title || null });
    state.conversations.set(created.id, created);
    await openConversation(created.id);
    refreshConversations();
  }

  async function openConversation(id) {
    state.current = id;
    state.messages = new Map();
    state.bySeq = new Map();
    state.lastSeq = 0;
    state.maxSeq = 0;
    state.loading = [];
    clearTimeout(state.holeCheck);
    state.holeCheck = null;
    state.unread.delete(id);
    const c = state.conversations.get(id);
    $('conversation').hidden = false;
    $('conversation').dataset.id = id;
    $('conversation-title').textContent = c ? conversationName(c) : '';
    $('messages').replaceChildren();
    renderConversations();
    let page;
    try {
      page = await api('GET', `/api/conversations/${id}/messages?limit=${PAGE}`);
    } catch (error) {
      if (state.current !== id) return;
      // Live messages must not stay parked: show them and let the gap fill fetch from the start.
      console.warn('loading the conversation failed', error);
      page = { messages: [] };
    }
    if (state.current !== id) return;
    // The newest page: numbers below its first one are older history ("older" button), not a gap.
    state.lastSeq = page.messages.length ? page.messages[0].seq - 1 : 0;
    const arrived = state.loading;
    state.loading = null;
    accept([...page.messages, ...arrived]);
    $('older').hidden = page.messages.length < PAGE || page.messages[0].seq === 1;
    if (state.maxSeq > state.lastSeq) fillGaps();
    refreshPresence();
  }

  async function loadOlder() {
    const id = state.current;
    const oldest = Math.min(...state.bySeq.keys());
    const page = await api('GET', `/api/conversations/${id}/messages?limit=${PAGE}${Number.isFinite(oldest) ? `&before=${oldest}` : ''}`);
    if (state.current !== id) return;
    accept(page.messages);
    $('older').hidden = page.messages.length < PAGE || page.messages[0].seq === 1;
  }

  // Adds messages of the open conversation and moves lastSeq over every number now shown without a gap.
  function accept(messages) {
    messages.forEach(addMessage);
    while (state.bySeq.has(state.lastSeq + 1)) state.lastSeq += 1;
  }

  // Fetches everything after the last contiguous seq: on (re)connect, and when a message skipped a number. One fill
  // runs at a time; a gap found meanwhile makes it go round again. Resolves to whether the fetches succeeded.
  function fillGaps() {
    const id = state.current;
    if (!id || state.loading) return Promise.resolve(false);
    if (state.filling) {
      state.refill = true;
      return state.filling;
    }
    state.filling = (async () => {
      try {
        do {
          state.refill = false;
          await fetchAfter(id, state.lastSeq);
        } while (state.refill && state.current === id);
        if (state.current === id && state.maxSeq > state.lastSeq) expectHoles(id);
        return true;
      } catch (error) {
        console.warn('catch-up failed', error);
        return false;
      } finally {
        state.filling = null;
      }
    })();
    return state.filling;
  }

  async function fetchAfter(id, after) {
    for (;;) {
      const page = await api('GET', `/api/conversations/${id}/messages?after=${after}&limit=200`);
      if (state.current !== id) return;
      accept(page.messages);
      if (page.messages.length < 200) return;
      after = page.messages.at(-1).seq;
    }
  }

  // A number still missing after a fetch is either being saved right now (the server takes the number, then saves the
  // message: another node's later message can be visible first), or a hole: a number taken and never used (a node
  // died in between, or two retries of one send raced). Look again a little later; what is still missing then is a
  // hole, and lastSeq moves past it. Should it turn out to be a late message after all, its live frame still shows it.
  function expectHoles(id) {
    if (state.holeCheck) return;   // one look at a time; it covers every number missing when it runs
    const upTo = state.maxSeq;
    const timer = setTimeout(async () => {
      try {
        if (state.current !== id) return;
        // Only a successful fetch can show that nothing was saved under a number; a failed one leaves the gap open
        // for the next reconnect or live message.
        const fetched = await fillGaps();
        if (!fetched || state.current !== id || state.lastSeq >= upTo) return;
        console.info(`seq ${state.lastSeq + 1}..${upTo}: nothing saved under the missing numbers, moving past them`);
        state.lastSeq = upTo;
        accept([]);
      } finally {
        if (state.holeCheck === timer) state.holeCheck = null;
      }
      if (state.current === id && state.maxSeq > state.lastSeq) expectHoles(id);
    }, 5000);
    state.holeCheck = timer;
  }

  // On every (re)connect: what the open conversation missed while the socket was down.
  function catchUp() {
    fillGaps();
  }

  async function refreshPresence() {
    const id = state.current;
    if (!id) return;
    try {
      const members = await api('GET', `/api/conversations/${id}/presence`);
      if (state.current !== id) return;
      $('members').replaceChildren(...members.map((m) => {
        const li = document.createElement('li');
        li.textContent = m.user;
        li.dataset.user = m.user;
        li.className = m.online ? 'online' : 'offline';
        return li;
      }));
    } catch (error) {
      console.warn(error);
    }
  }

  // ---- Messages ---------------------------------------------------------------------------------------------
  function receive(message) {
    if (message.conversationId === state.current) {
      if (state.loading) {
        state.loading.push(message);
        return;
      }
      accept([message]);
      // A skipped number: another node's message was published out of order, or one was missed. Fetch across it.
      if (state.maxSeq > state.lastSeq) fillGaps();
      return;
    }
    const unread = state.unread.get(message.conversationId) ?? new Set();
    unread.add(message.id);
    state.unread.set(message.conversationId, unread);
    if (state.conversations.has(message.conversationId)) {
      renderConversations();
    } else {
      refreshConversations();   // a conversation someone just started with us
    }
  }

  // Keeps messages unique by id and seq, shown in seq order.
  function addMessage(message) {
    if (state.messages.has(message.id) || state.bySeq.has(message.seq)) return;
    state.messages.set(message.id, message);
    state.bySeq.set(message.seq, message);
    state.maxSeq = Math.max(state.maxSeq, message.seq);
    const li = document.createElement('li');
    li.dataset.id = message.id;
    li.dataset.seq = message.seq;
    const sender = document.createElement('span');
    sender.className = 'sender';
    sender.textContent = message.sender;
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = message.text;
    const time = document.createElement('time');
    time.className = 'time';
    time.dateTime = message.sentAt;
    time.textContent = new Date(message.sentAt).toLocaleTimeString();
    li.append(sender, text, time);

    const list = $('messages');
    const next = [...list.children].find((other) => Number(other.dataset.seq) > message.seq);
    list.insertBefore(li, next ?? null);
    if (!next) list.scrollTop = list.scrollHeight;
  }

  // An ObjectId-shaped id chosen here, so a retried send is the same message, never a second copy.
  function newMessageId() {
    const seconds = Math.floor(Date.now() / 1000).toString(16).padStart(8, '0');
    const random = crypto.getRandomValues(new Uint8Array(8));
    return seconds + Array.from(random, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  async function send(text) {
    const body = { id: newMessageId(), text };
    let saved;
    for (let attempt = 1; ; attempt++) {
      try {
        saved = await api('POST', `/api/conversations/${state.current}/messages`, body);
        break;
      } catch (error) {
        // 503: saved, but delivery could not be queued (Redis down); the same request again finishes the job.
        if (error.status !== 503 || attempt >= 5) throw error;
        await new Promise((resolve) => setTimeout(resolve, error.retryAfter * 1000 * attempt));
      }
    }
    if (saved.conversationId !== state.current || state.loading) return;
    accept([saved]);
    if (state.maxSeq > state.lastSeq) fillGaps();   // others wrote in between: their frames may still be on the way
  }

  // ---- Wiring -----------------------------------------------------------------------------------------------
  function guard(errorElement, action) {
    return async (event) => {
      event.preventDefault();
      $(errorElement).textContent = '';
      try {
        await action();
      } catch (error) {
        $(errorElement).textContent = error.message;
      }
    };
  }

  $('signin-form').onsubmit = guard('signin-error', () => signIn($('user').value.trim()));
  $('create-form').onsubmit = guard('create-error', async () => {
    const participants = $('participants').value.split(',').map((p) => p.trim()).filter(Boolean);
    await createConversation(participants, $('title').value.trim());
    $('participants').value = '';
    $('title').value = '';
  });
  $('send-form').onsubmit = guard('send-error', async () => {
    const text = $('text').value;
    await send(text);
    $('text').value = '';
  });
  $('older').onclick = guard('send-error', loadOlder);

  const saved = JSON.parse(sessionStorage.getItem('chatscale.session') ?? 'null');
  if (saved) start(saved.user, saved.token);
})();
