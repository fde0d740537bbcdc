// ChatScale sample client: no framework, no build step.
// Flow: sign in (dev token) -> WebSocket /ws?access_token=... for live messages -> HTTP API for everything else.
// On every (re)connect the open conversation catches up with GET .../messages?after=<last id seen>, so messages sent
// while the socket was down are not lost; messages are kept by id, so one seen twice is shown once.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const PAGE = 50;
  const state = {
    user: null,
    token: null,
    conversations: new Map(),   // id -> conversation
    unread: new Map(),          // id -> count
    current: null,              // open conversation id
    messages: new Map(),        // id -> message, of the open conversation
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
      throw new Error(errors || json?.detail || json?.title || `HTTP ${response.status}`);
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
      const unread = state.unread.get(c.id);
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
    state.unread.delete(id);
    const c = state.conversations.get(id);
    $('conversation').hidden = false;
    $('conversation').dataset.id = id;
    $('conversation-title').textContent = c ? conversationName(c) : '';
    $('messages').replaceChildren();
    renderConversations();
    const page = await api('GET', `/api/conversations/${id}/messages?limit=${PAGE}`);
    if (state.current !== id) return;
    page.messages.forEach(addMessage);
    $('older').hidden = page.messages.length < PAGE;
    refreshPresence();
  }

  async function loadOlder() {
    const id = state.current;
    const oldest = [...state.messages.keys()].sort()[0];
    const page = await api('GET', `/api/conversations/${id}/messages?limit=${PAGE}${oldest ? `&before=${oldest}` : ''}`);
    if (state.current !== id) return;
    page.messages.forEach(addMessage);
    $('older').hidden = page.messages.length < PAGE;
  }

  // Fetches what the open conversation missed while the socket was down, page by page.
  async function catchUp() {
    const id = state.current;
    if (!id) return;
    try {
      for (;;) {
        const newest = [...state.messages.keys()].sort().at(-1);
        const query = newest ? `after=${newest}&limit=200` : `limit=${PAGE}`;
        const page = await api('GET', `/api/conversations/${id}/messages?${query}`);
        if (state.current !== id) return;
        page.messages.forEach(addMessage);
        if (!newest || page.messages.length < 200) return;
      }
    } catch (error) {
      console.warn('catch-up failed', error);
    }
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
      addMessage(message);
      return;
    }
    state.unread.set(message.conversationId, (state.unread.get(message.conversationId) ?? 0) + 1);
    if (state.conversations.has(message.conversationId)) {
      renderConversations();
    } else {
      refreshConversations();   // a conversation someone just started with us
    }
  }

  // Keeps messages unique by id and in id order (ids are ObjectIds: they sort by time as strings).
  function addMessage(message) {
    if (state.messages.has(message.id)) return;
    state.messages.set(message.id, message);
    const li = document.createElement('li');
    li.dataset.id = message.id;
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
    const next = [...list.children].find((other) => other.dataset.id > message.id);
    list.insertBefore(li, next ?? null);
    if (!next) list.scrollTop = list.scrollHeight;
  }

  async function send(text) {
    const saved = await api('POST', `/api/conversations/${state.current}/messages`, { text });
    if (saved.conversationId === state.current) addMessage(saved);
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
