// ChatScale sample client: no framework, no build step.
// Flow: sign in (dev token) -> the ChatScale browser client (clients/js, served as lib/chatscale-client.js) keeps a
// WebSocket to /ws?access_token=... open for live messages -> HTTP API for everything else.
// Every message carries seq, its number in its conversation (1, 2, 3, ...). The page keeps the last contiguous seq of
// the open conversation (every number up to it is shown) and fetches GET .../messages?after=<that seq> on every
// (re)connect and whenever a live message skips a number, so nothing sent while the socket was down, or published
// out of order by another node, is lost. Messages are kept by id and seq, so one seen twice is shown once.
// Sending goes through an outbox: the box is cleared at once, each message keeps one id for all its retries, and
// messages go out one at a time in the order they were written.
import { ChatScaleClient } from './lib/chatscale-client.js';

const $ = (id) => document.getElementById(id);
const PAGE = 50;
const MAX_TEXT = 4000;   // the API's limit (Validation.MaxTextLength)
const state = {
  user: null,
  token: null,
  client: null,
  timers: [],
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
  outbox: [],                 // { id, conversationId, text, status: 'queued' | 'sending' | 'failed', error }
  sending: false,
  countdown: null,
};

// ---- HTTP -------------------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(message, status, retryAfter, network) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
    this.network = network;   // not the user's fault and not final: the server could not be reached or was unavailable
  }
}

async function api(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: {
        'Content-Type': 'application/json',
        ...(state.token ? { Authorization: `Bearer ${state.token}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError('The server cannot be reached right now.', 0, 1, true);
  }
  if (response.status === 401 && state.token) {
    signOut();
    throw new ApiError('Your session expired; sign in again.', 401, 0, false);
  }
  const json = response.headers.get('content-type')?.includes('json') ? await response.json() : null;
  if (!response.ok) {
    // RFC 7807 problem details: show the field errors, else the title.
    const errors = json?.errors ? Object.values(json.errors).flat().join(' ') : '';
    const unavailable = response.status === 503 || response.status === 502 || response.status === 504;
    const error = new ApiError(
      unavailable ? 'The chat service is busy or restarting.' : (errors || json?.detail || json?.title || `HTTP ${response.status}`),
      response.status,
      Number(response.headers.get('Retry-After')) || 1,
      unavailable);
    error.tooFast = response.status === 429;   // a rate limit: wait as told, then the same request again
    throw error;
  }
  return json;
}

// ---- Sign in / out ------------------------------------------------------------------------------------------
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
  $('signout').hidden = false;
  connect();
  refreshConversations();
  state.timers.push(setInterval(refreshConversations, 3000), setInterval(refreshPresence, 5000));
}

function signOut() {
  sessionStorage.removeItem('chatscale.session');
  state.client?.stop();
  state.timers.forEach(clearInterval);
  location.reload();
}

// ---- WebSocket: the ChatScale client reconnects (capped, jittered back-off; at once when back online) ---------
function connect() {
  const client = new ChatScaleClient({
    url: '/ws',
    // Called before every attempt. Attempts refused twice in a row may mean the token expired (a browser cannot
    // see the 401): ask the API, which signs the page out on 401.
    accessToken: async ({ failedHandshakes }) => {
      if (failedHandshakes >= 2 && failedHandshakes % 2 === 0) {
        await api('GET', '/api/conversations').catch(() => {});
      }
      return state.token;
    },
  });
  state.client = client;
  client.on('state', showState);
  client.on('open', () => {
    // Registered in presence before the upgrade completed: from here on nothing is missed, so catch up now.
    clearTransientErrors();
    refreshConversations();
    catchUp();
    refreshPresence();
    flushOutbox(true);
  });
  client.on('message', ({ data }) => {
    if (data?.type === 'message') receive(data.message);
  });
  client.on('error', ({ error, phase }) => console.warn(`chatscale client (${phase})`, error));
  client.start();
}

function showState({ state: name, retryAt }) {
  clearInterval(state.countdown);
  state.countdown = null;
  const status = $('status');
  status.dataset.state = name;
  $('retry-now').hidden = name !== 'reconnecting';
  if (name === 'reconnecting' && retryAt) {
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      status.textContent = seconds > 0 ? `offline: reconnecting in ${seconds} s` : 'reconnecting…';
    };
    tick();
    state.countdown = setInterval(tick, 250);
  } else {
    status.textContent = { online: 'online', connecting: 'connecting…', reconnecting: 'reconnecting…' }[name] ?? 'offline';
  }
  showOwnPresence();
}

// ---- Conversations ----------------------------------------------------------------------------------------
async function refreshConversations() {
  try {
    const list = await api('GET', '/api/conversations');
    const current = state.current && state.conversations.get(state.current);
    state.conversations = new Map(list.map((c) => [c.id, c]));
    // Not in the list: just created (the list was read before), beyond the list's 100, or gone. Ask to be sure.
    if (current && !state.conversations.has(current.id)) {
      state.conversations.set(current.id, current);
      checkConversation(current.id);
    }
    renderConversations();
  } catch (error) {
    console.warn(error);
  }
}

async function checkConversation(id) {
  try {
    await api('GET', `/api/conversations/${id}`);
  } catch (error) {
    if (error.status === 404 && state.current === id) {
      state.conversations.delete(id);
      conversationGone();
      renderConversations();
    }
  }
}

// The open conversation is no longer on the server: e.g. a single node with the in-memory store restarted.
function conversationGone() {
  state.current = null;
  state.outbox = state.outbox.filter((item) => state.conversations.has(item.conversationId));
  $('conversation').hidden = true;
  delete $('conversation').dataset.id;
  $('messages').replaceChildren();
  renderOutbox();
  showNotice('That conversation is no longer on the server (it restarted without a database). Start a new one.');
}

function showNotice(text) {
  $('notice').textContent = text;
  $('notice').hidden = !text;
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
  showNotice('');
  const c = state.conversations.get(id);
  $('conversation').hidden = false;
  $('conversation').dataset.id = id;
  $('conversation-title').textContent = c ? conversationName(c) : '';
  $('messages').replaceChildren();
  $('members').replaceChildren();
  renderOutbox();
  renderConversations();
  let page;
  try {
    page = await api('GET', `/api/conversations/${id}/messages?limit=${PAGE}`);
  } catch (error) {
    if (state.current !== id) return;
    if (error.status === 404) {
      state.loading = null;
      state.conversations.delete(id);
      conversationGone();
      return;
    }
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
      if (error.status === 404 && state.current === id) {
        state.conversations.delete(id);
        conversationGone();
      } else {
        console.warn('catch-up failed', error);
      }
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
    showOwnPresence();
  } catch (error) {
    console.warn(error);
  }
}

// Whatever the server last said, this page knows best whether its own socket is up.
function showOwnPresence() {
  const me = [...$('members').children].find((li) => li.dataset.user === state.user);
  if (!me) return;
  const online = state.client?.state === 'online';
  me.className = online ? 'online' : 'offline';
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

const sameDay = (a, b) => a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();

// A short date and time: "1 Dec, 21:40" (with the year when it is not this year); the full form as a tooltip.
function formatTime(iso) {
  const date = new Date(iso);
  const now = new Date();
  const day = date.toLocaleDateString(undefined, { day: 'numeric', month: 'short', ...(date.getFullYear() === now.getFullYear() ? {} : { year: 'numeric' }) });
  const time = date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  return { text: `${sameDay(date, now) ? 'Today' : day}, ${time}`, title: date.toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'medium' }) };
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
  const shown = formatTime(message.sentAt);
  time.textContent = shown.text;
  time.title = shown.title;
  li.append(sender, text, time);

  const list = $('messages');
  const next = [...list.children].find((other) => Number(other.dataset.seq) > message.seq);
  list.insertBefore(li, next ?? null);
  if (!next) list.scrollTop = list.scrollHeight;
}

// ---- Outbox -------------------------------------------------------------------------------------------------
// An ObjectId-shaped id chosen here, so a retried send is the same message, never a second copy.
function newMessageId() {
  const seconds = Math.floor(Date.now() / 1000).toString(16).padStart(8, '0');
  const random = crypto.getRandomValues(new Uint8Array(8));
  return seconds + Array.from(random, (b) => b.toString(16).padStart(2, '0')).join('');
}

function queueMessage(text) {
  state.outbox.push({ id: newMessageId(), conversationId: state.current, text, status: 'queued', error: '' });
  renderOutbox();
  flushOutbox(false);
}

// Sends queued messages one at a time, oldest first. A 503 (saved, delivery not yet queued) or an unreachable server
// is retried with the same id a few times; then the message waits, marked "not sent", for Retry or the next reconnect.
async function flushOutbox(includeFailed) {
  if (includeFailed) state.outbox.forEach((item) => { if (item.status === 'failed' && item.retryable) item.status = 'queued'; });
  if (state.sending) return;
  state.sending = true;
  try {
    for (let item = nextQueued(); item; item = nextQueued()) {
      item.status = 'sending';
      renderOutbox();
      await sendOne(item);
      renderOutbox();
    }
  } finally {
    state.sending = false;
  }
}

const nextQueued = () => state.outbox.find((item) => item.status === 'queued');

async function sendOne(item) {
  for (let attempt = 1, throttled = 0; ; attempt++) {
    try {
      const saved = await api('POST', `/api/conversations/${item.conversationId}/messages`, { id: item.id, text: item.text });
      state.outbox.splice(state.outbox.indexOf(item), 1);
      if (saved.conversationId === state.current && !state.loading) {
        accept([saved]);
        if (state.maxSeq > state.lastSeq) fillGaps();   // others wrote in between: their frames may still be on the way
      }
      return;
    } catch (error) {
      if (error.status === 404) {
        state.outbox.splice(state.outbox.indexOf(item), 1);
        state.conversations.delete(item.conversationId);
        if (item.conversationId === state.current) conversationGone();
        return;
      }
      if (error.tooFast && throttled < 20) {
        // Sending faster than the server's per-user limit: the message waits its turn (same id, so still one copy).
        throttled += 1;
        attempt -= 1;
        item.error = 'Sending… (waiting: many messages in a row)';
        renderOutbox();
        await new Promise((resolve) => setTimeout(resolve, Math.min(10, error.retryAfter) * 1000));
        continue;
      }
      if (!error.network || attempt >= 4) {
        item.status = 'failed';
        item.retryable = error.network;
        item.error = error.network ? 'Not sent yet: the chat service is unavailable. Press Retry, or it goes out when the connection comes back.' : `Not sent: ${error.message}`;
        return;
      }
      item.error = 'Sending… (the chat service is busy, trying again)';
      renderOutbox();
      await new Promise((resolve) => setTimeout(resolve, Math.min(5, error.retryAfter * attempt) * 1000));
    }
  }
}

function renderOutbox() {
  $('outbox').replaceChildren(...state.outbox.filter((item) => item.conversationId === state.current).map((item) => {
    const li = document.createElement('li');
    li.dataset.id = item.id;
    li.className = item.status;
    const sender = document.createElement('span');
    sender.className = 'sender';
    sender.textContent = state.user;
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = item.text;
    const status = document.createElement('span');
    status.className = 'state';
    status.textContent = item.status === 'failed' ? item.error : (item.error || 'sending…');
    li.append(sender, text, status);
    if (item.status === 'failed') {
      const retry = document.createElement('button');
      retry.type = 'button';
      retry.className = 'retry';
      retry.textContent = 'Retry';
      retry.onclick = () => { item.status = 'queued'; item.error = ''; renderOutbox(); flushOutbox(false); };
      const discard = document.createElement('button');
      discard.type = 'button';
      discard.className = 'discard';
      discard.textContent = 'Discard';
      discard.onclick = () => { state.outbox.splice(state.outbox.indexOf(item), 1); renderOutbox(); };
      li.append(retry, discard);
    }
    return li;
  }));
}

// ---- The message box ----------------------------------------------------------------------------------------
function updateCounter() {
  const length = $('text').value.length;
  const over = length - MAX_TEXT;
  $('counter').textContent = over > 0
    ? `${over.toLocaleString()} character${over === 1 ? '' : 's'} too long (${length.toLocaleString()} of ${MAX_TEXT.toLocaleString()}): shorten it or split it into two messages.`
    : length > MAX_TEXT * 0.9 ? `${(MAX_TEXT - length).toLocaleString()} characters left` : '';
  $('counter').classList.toggle('over', over > 0);
  $('send').disabled = $('text').value.trim() === '' || over > 0;
}

// ---- Wiring -----------------------------------------------------------------------------------------------
function guard(errorElement, action) {
  return async (event) => {
    event?.preventDefault();
    $(errorElement).textContent = '';
    delete $(errorElement).dataset.transient;
    try {
      await action();
    } catch (error) {
      $(errorElement).textContent = error.message;
      if (error.network) $(errorElement).dataset.transient = 'true';
    }
  };
}

// Errors that only said "the server is unreachable" are stale once the socket is open again.
function clearTransientErrors() {
  for (const id of ['create-error', 'send-error']) {
    if ($(id).dataset.transient) {
      $(id).textContent = '';
      delete $(id).dataset.transient;
    }
  }
}

$('signin-form').onsubmit = guard('signin-error', () => signIn($('user').value.trim()));
$('signout').onclick = signOut;
$('retry-now').onclick = () => state.client?.retryNow();
$('create-form').onsubmit = guard('create-error', async () => {
  const participants = $('participants').value.split(',').map((p) => p.trim()).filter(Boolean);
  if (!participants.some((p) => p !== state.user)) throw new Error('Name at least one other participant.');
  await createConversation(participants, $('title').value.trim());
  $('participants').value = '';
  $('title').value = '';
});
$('send-form').onsubmit = (event) => {
  event.preventDefault();
  const text = $('text').value;
  if (text.trim() === '' || text.length > MAX_TEXT || !state.current) return;
  // Cleared now, not when the server answers: whatever the user types next stays in the box.
  $('text').value = '';
  updateCounter();
  queueMessage(text);
};
$('text').addEventListener('input', updateCounter);
$('text').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $('send-form').requestSubmit();
  }
});
$('older').onclick = guard('send-error', loadOlder);

const saved = JSON.parse(sessionStorage.getItem('chatscale.session') ?? 'null');
if (saved) start(saved.user, saved.token);
