// mock-upstream.mjs — an OpenAI-compatible upstream for the integration tests
// and the benchmarks.
//
// Purpose: the daemon under test needs a real HTTP/1.1 server on the other
// side that speaks the OpenAI wire protocol (JSON bodies, SSE streams, error
// bodies) and whose behaviour a test can steer and observe. This is it.
//
// Design:
// - node:http, no framework. Endpoints: POST /v1/chat/completions,
//   POST /v1/completions, POST /v1/embeddings, GET /v1/models[/ID];
//   GET /health; GET /__mock/stats, POST /__mock/reset (test controls).
// - Every answer is deterministic in the request content AND carries the
//   serial number of the upstream call that produced it:
//     content  "mock[h=<hash>] serial=<n> ..."   (chat / completions)
//     field    "mock_serial": n, "mock_hash": "<hash>" (every JSON body,
//               every stream chunk), header X-Mock-Serial / X-Mock-Hash.
//   The hash is SHA-256 (first 12 hex) of the request body with keys sorted
//   and `stream`, `stream_options` removed, so a streamed and a non-streamed
//   request for the same thing get the same content. A cached response keeps
//   the serial of the call that filled the cache; a fresh call gets a new one.
// - Controls come from request headers (`x-mock-delay: 500`) OR from tags
//   anywhere in the request body (`[mock:delay=500]` inside a message), because
//   a gateway is not guaranteed to forward client headers. Tags in the body
//   are part of the cache key like any other text, which is what tests want.
//     delay=MS           wait before the first byte
//     status=CODE        answer CODE with an OpenAI-style error body
//     tool_call[=N]      answer with N (default 1) tool calls, finish "tool_calls"
//     reasoning          add reasoning_content (message field / stream deltas)
//     length             finish_reason "length"
//     chunks=N           number of content pieces in a stream (default 4)
//     chunk_delay=MS     pause between stream events (default: option, 0)
//     size=N             make the content about N bytes long
//     drift              answer each call with another, unrelated statement
//                        (the answer has changed since it was cached)
//   The request's `n` (1..8) gives that many choices (index 1.. end in
//   " [choice i]"); streamed, each choice's events come in turn.
//     hang               never answer (socket kept open until the client goes)
//     stall_mid_stream   stream half the events, then never send more
//     drop_mid_stream    send half the answer, then destroy the socket
//     stream_error       stream half the events, then an SSE error event
//     bad_json           200 with a body (or stream event) that is not JSON
// - Stats: per-path call counts, serial, in-flight and peak in-flight upstream
//   calls, and a log of the last 200 calls (method, path, authorization,
//   stream flag, hash, controls, body size, selected headers, every header's name). In-process as
//   `mock.stats`, over HTTP as GET /__mock/stats.
//
// Invariants: serial increases by one for every API call the mock answers or
// starts to answer (including injected errors, hangs and drops), never for
// /health, /__mock/* or /v1/models. close() destroys every open socket,
// hanging ones included, so a test never leaks a handle.
//
// Use: `node mock-upstream.mjs --port P [--host H] [--delay MS]
//       [--chunk-delay MS] [--chunks N]` prints "mock-upstream listening on URL"
// or `import { startMock } from './mock-upstream.mjs'`.

import http from 'node:http';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const API_PATHS = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings'];
const MODELS = ['mock-gpt', 'mock-gpt-mini', 'mock-embed'];
const DRIFT = [
  'The quarterly report shows revenue grew by twelve percent in the northern region.',
  'Bananas are rich in potassium and grow best in warm, humid tropical climates.',
  'The museum closes early on public holidays and stays shut every Monday.',
  'A penguin can hold its breath for up to twenty minutes while diving for fish.',
];
const LOG_MAX = 200;

const ERROR_TYPES = {
  400: ['invalid_request_error', null],
  401: ['authentication_error', 'invalid_api_key'],
  403: ['permission_error', null],
  404: ['not_found_error', 'model_not_found'],
  408: ['timeout_error', null],
  409: ['conflict_error', null],
  422: ['invalid_request_error', null],
  429: ['rate_limit_error', 'rate_limit_exceeded'],
  500: ['server_error', null],
  502: ['server_error', null],
  503: ['server_error', 'overloaded'],
  504: ['timeout_error', null],
};

/** JSON with object keys sorted at every level (stable hashing input). */
function sortedJson(v) {
  if (Array.isArray(v)) return '[' + v.map(sortedJson).join(',') + ']';
  if (v && typeof v === 'object') {
    return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + sortedJson(v[k])).join(',') + '}';
  }
  return JSON.stringify(v);
}

/** The content hash of a request: stream flags excluded. */
export function requestHash(body) {
  const b = { ...body };
  delete b.stream;
  delete b.stream_options;
  return crypto.createHash('sha256').update(sortedJson(b)).digest('hex').slice(0, 12);
}

/** Parse controls from x-mock-* headers and [mock:key=value] tags in the body text. */
export function parseControls(headers, rawBody) {
  const c = {};
  for (const [k, v] of Object.entries(headers)) {
    if (k.startsWith('x-mock-')) c[k.slice(7).replace(/-/g, '_')] = String(v);
  }
  const re = /\[mock:([a-z_]+)(?:=([^\]\s"\\]*))?\]/g;
  let m;
  while ((m = re.exec(rawBody)) !== null) {
    if (!(m[1] in c)) c[m[1]] = m[2] === undefined ? '1' : m[2];
  }
  return c;
}

function intOr(v, dflt) {
  const n = Number.parseInt(v, 10);
  return Number.isFinite(n) ? n : dflt;
}

/** Text of a chat message's content (string or array of parts). */
function contentText(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((p) => (p && typeof p.text === 'string' ? p.text : '')).join('');
  }
  return '';
}

/** Split s into n pieces of near-equal length (n >= 1; pieces may be empty only if s is short). */
function splitPieces(s, n) {
  n = Math.max(1, Math.min(n, Math.max(1, s.length)));
  const out = [];
  const step = Math.ceil(s.length / n);
  for (let i = 0; i < s.length; i += step) out.push(s.slice(i, i + step));
  if (out.length === 0) out.push('');
  return out;
}

/** Deterministic unit vector of dimension dim from text (SHA-256 in counter mode). */
export function embedText(text, dim) {
  const v = new Float32Array(dim);
  let norm = 0;
  for (let i = 0; i < dim; i += 8) {
    const h = crypto.createHash('sha256').update(String(i / 8)).update('\0').update(text).digest();
    for (let j = 0; j < 8 && i + j < dim; j++) {
      const x = h.readInt32LE(j * 4) / 2147483648;
      v[i + j] = x;
      norm += x * x;
    }
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < dim; i++) v[i] = v[i] / norm;
  return v;
}

function errorBody(status, message, type, code) {
  const [t, c] = ERROR_TYPES[status] || [status >= 500 ? 'server_error' : 'invalid_request_error', null];
  return JSON.stringify({ error: { message, type: type || t, param: null, code: code === undefined ? c : code } });
}

/**
 * Start a mock upstream.
 * opts: port (0 = any free port), host ('127.0.0.1'), delayMs (default delay
 * before the first byte, 0), chunkDelayMs (default pause between stream
 * events, 0 = yield to the event loop only), chunks (default 4).
 * Resolves to { url: 'http://HOST:PORT/v1', origin, port, stats, reset(),
 * close() }. `stats` is live (the same object the server updates).
 */
export async function startMock(opts = {}) {
  const host = opts.host || '127.0.0.1';
  const dflt = {
    delayMs: opts.delayMs || 0,
    chunkDelayMs: opts.chunkDelayMs || 0,
    chunks: opts.chunks || 4,
  };
  const stats = newStats();
  const sockets = new Set();

  function newStats() {
    return { serial: 0, total: 0, calls: {}, inflight: 0, maxInflight: 0, log: [] };
  }
  // Calls still open survive a reset: they are counted in `inflight` (and
  // its peak) so the count never goes negative when they end later.
  function reset() {
    const fresh = newStats();
    fresh.inflight = stats.inflight;
    fresh.maxInflight = stats.inflight;
    for (const k of Object.keys(fresh)) stats[k] = fresh[k];
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      try {
        route(req, res, raw);
      } catch (e) {
        if (!res.headersSent) sendJson(res, 500, errorBody(500, 'mock internal error: ' + e.message));
        else res.destroy();
      }
    });
  });
  server.keepAliveTimeout = 60000;
  server.headersTimeout = 65000;
  server.requestTimeout = 0;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  function sendJson(res, status, body, extra = {}) {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extra });
    res.end(body);
  }

  function route(req, res, raw) {
    const url = new URL(req.url, 'http://mock');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (path === '/health') return sendJson(res, 200, '{"status":"ok"}');
    if (path === '/__mock/stats' && req.method === 'GET') return sendJson(res, 200, JSON.stringify(stats));
    if (path === '/__mock/reset' && req.method === 'POST') {
      reset();
      return sendJson(res, 200, '{"reset":true}');
    }
    if (path === '/v1/models' || path.startsWith('/v1/models/')) {
      if (req.method !== 'GET') return sendJson(res, 405, errorBody(405, 'Method not allowed'));
      const created = 1700000000;
      const list = MODELS.map((id) => ({ id, object: 'model', created, owned_by: 'llmcached-mock' }));
      if (path === '/v1/models') return sendJson(res, 200, JSON.stringify({ object: 'list', data: list }));
      const id = decodeURIComponent(path.slice('/v1/models/'.length));
      const m = list.find((x) => x.id === id);
      if (!m) return sendJson(res, 404, errorBody(404, `The model '${id}' does not exist`));
      return sendJson(res, 200, JSON.stringify(m));
    }
    if (!API_PATHS.includes(path)) {
      return sendJson(res, 404, errorBody(404, `Unknown request URL: ${req.method} ${url.pathname}`, 'invalid_request_error', 'unknown_url'));
    }
    if (req.method !== 'POST') return sendJson(res, 405, errorBody(405, `Method ${req.method} not allowed on ${path}`));
    apiCall(req, res, path, raw);
  }

  function apiCall(req, res, path, raw) {
    const serial = ++stats.serial;
    stats.total++;
    stats.calls[path] = (stats.calls[path] || 0) + 1;
    stats.inflight++;
    if (stats.inflight > stats.maxInflight) stats.maxInflight = stats.inflight;
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        stats.inflight--;
      }
    };
    res.on('close', finish);

    // Pending timers of this call, cancelled when the connection goes.
    const timers = new Map();
    const later = (ms, fn) => {
      const run = () => { timers.delete(t); fn(); };
      const t = ms > 0 ? setTimeout(run, ms) : setImmediate(run);
      timers.set(t, ms > 0);
    };
    res.on('close', () => {
      for (const [t, isTimeout] of timers) {
        if (isTimeout) clearTimeout(t);
        else clearImmediate(t);
      }
      timers.clear();
    });

    const controls = parseControls(req.headers, raw);
    let body = null;
    try {
      body = raw.length ? JSON.parse(raw) : null;
    } catch {
      body = null;
    }
    const hash = body && typeof body === 'object' ? requestHash(body) : '000000000000';
    const entry = {
      serial, method: req.method, path, hash, controls,
      stream: !!(body && body.stream), bytes: Buffer.byteLength(raw),
      authorization: req.headers.authorization || null,
      model: body && body.model,
      headers: pickHeaders(req.headers),
      header_names: Object.keys(req.headers), // every header that reached the upstream
      at: Date.now(),
    };
    stats.log.push(entry);
    if (stats.log.length > LOG_MAX) stats.log.shift();

    const ids = { 'x-mock-serial': String(serial), 'x-mock-hash': hash };
    const delay = intOr(controls.delay, dflt.delayMs);

    later(delay, () => {
      if (controls.hang) return; // never answer; close() or the client ends it
      if (!body || typeof body !== 'object' || Array.isArray(body)) {
        return sendJson(res, 400, errorBody(400, 'We could not parse the JSON body of your request.'), ids);
      }
      if (controls.status && intOr(controls.status, 200) !== 200) {
        const st = intOr(controls.status, 500);
        const extra = st === 429 ? { ...ids, 'retry-after': '1' } : ids;
        return sendJson(res, st, errorBody(st, `mock injected status ${st} (serial ${serial})`), extra);
      }
      const v = validate(path, body);
      if (v) return sendJson(res, 400, errorBody(400, v), ids);

      const ctx = { req, res, path, body, serial, hash, controls, ids, later };
      if (path === '/v1/embeddings') return embeddings(ctx);
      const answer = buildAnswer(ctx);
      if (body.stream) return stream(ctx, answer);
      return whole(ctx, answer);
    });
  }

  function validate(path, body) {
    if (typeof body.model !== 'string' || body.model === '') return "you must provide a model parameter";
    if (path === '/v1/chat/completions') {
      if (!Array.isArray(body.messages) || body.messages.length === 0) return "'messages' is a required property";
    } else if (path === '/v1/completions') {
      if (body.prompt === undefined) return "'prompt' is a required property";
    } else if (path === '/v1/embeddings') {
      if (body.input === undefined) return "'input' is a required property";
    }
    return null;
  }

  /** What the model "says": content, optional reasoning and tool calls, finish reason, usage. */
  function buildAnswer({ path, body, serial, hash, controls }) {
    let prompt;
    if (path === '/v1/chat/completions') {
      const users = body.messages.filter((m) => m && m.role === 'user');
      prompt = contentText((users[users.length - 1] || body.messages[body.messages.length - 1]).content);
    } else {
      prompt = Array.isArray(body.prompt) ? body.prompt.map(String).join(' ') : String(body.prompt);
    }
    const echo = prompt.replace(/\[mock:[^\]]*\]/g, '').replace(/\s+/g, ' ').trim().slice(0, 48);
    let content = `mock[h=${hash}] serial=${serial} echo: ${echo}`;
    // drift: the "world" changed between calls: each call says something else.
    if (controls.drift) content = DRIFT[serial % DRIFT.length];
    const size = intOr(controls.size, 0);
    if (size > content.length) {
      const pad = ' lorem ipsum dolor sit amet';
      content += pad.repeat(Math.ceil((size - content.length) / pad.length)).slice(0, size - content.length);
    }
    let toolCalls = null;
    if (controls.tool_call && path === '/v1/chat/completions') {
      const n = Math.max(1, intOr(controls.tool_call, 1));
      const tools = Array.isArray(body.tools) ? body.tools : [];
      toolCalls = [];
      for (let i = 0; i < n; i++) {
        const t = tools[i % Math.max(1, tools.length)];
        const name = (t && t.function && t.function.name) || 'get_weather';
        toolCalls.push({
          id: `call_${hash}_${i}`,
          type: 'function',
          function: { name, arguments: JSON.stringify({ query: echo, hash, serial, i }) },
        });
      }
      content = null;
    }
    const reasoning = controls.reasoning ? `reasoning[h=${hash}] serial=${serial}: the user asked "${echo}", so I answer.` : null;
    const finish = toolCalls ? 'tool_calls' : controls.length ? 'length' : 'stop';
    const promptTokens = Math.max(1, Math.ceil(JSON.stringify(body.messages || body.prompt).length / 4));
    const completionTokens = Math.max(1, Math.ceil(((content || '').length + (reasoning || '').length +
      (toolCalls ? JSON.stringify(toolCalls).length : 0)) / 4));
    const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
    return { content, reasoning, toolCalls, finish, usage };
  }

  /** `n` of the request, 1..8 (choices beyond the first differ by a suffix). */
  function choiceCount(body) {
    return Math.max(1, Math.min(8, intOr(body.n, 1)));
  }
  function choiceText(content, i) {
    return i === 0 || content === null ? content : `${content} [choice ${i}]`;
  }

  function common(ctx, object) {
    const chat = ctx.path === '/v1/chat/completions';
    return {
      id: `${chat ? 'chatcmpl' : 'cmpl'}-mock${ctx.hash}-${ctx.serial}`,
      object,
      created: 1700000000 + ctx.serial,
      model: ctx.body.model,
      system_fingerprint: 'fp_mock',
    };
  }

  function whole(ctx, a) {
    const { res, path, controls } = ctx;
    const n = choiceCount(ctx.body);
    let obj;
    if (path === '/v1/chat/completions') {
      const choices = [];
      for (let i = 0; i < n; i++) {
        const message = { role: 'assistant', content: choiceText(a.content, i) };
        if (a.reasoning) message.reasoning_content = a.reasoning;
        if (a.toolCalls) message.tool_calls = a.toolCalls;
        choices.push({ index: i, message, logprobs: null, finish_reason: a.finish });
      }
      obj = { ...common(ctx, 'chat.completion'), choices, usage: a.usage };
    } else {
      const choices = [];
      for (let i = 0; i < n; i++) {
        choices.push({ index: i, text: choiceText(a.content, i), logprobs: null, finish_reason: a.finish });
      }
      obj = { ...common(ctx, 'text_completion'), choices, usage: a.usage };
    }
    obj.mock_serial = ctx.serial;
    obj.mock_hash = ctx.hash;
    let text = JSON.stringify(obj);
    if (controls.bad_json) text = text.slice(0, Math.floor(text.length / 2)) + '<<not json';
    if (controls.drop_mid_stream || controls.stall_mid_stream) {
      // Promise the whole length, deliver half: a truncated body on the wire.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...ctx.ids });
      res.write(text.slice(0, Math.floor(text.length / 2)));
      if (controls.drop_mid_stream) ctx.later(intOr(controls.chunk_delay, dflt.chunkDelayMs), () => res.destroy());
      return;
    }
    sendJson(res, 200, text, ctx.ids);
  }

  function stream(ctx, a) {
    const { res, path, body, controls } = ctx;
    const chat = path === '/v1/chat/completions';
    const head = common(ctx, chat ? 'chat.completion.chunk' : 'text_completion');
    const nChunks = Math.max(1, intOr(controls.chunks, dflt.chunks));
    const events = [];
    const ev = (choice, extra = {}) => ({ ...head, choices: choice ? [choice] : [], ...extra,
      mock_serial: ctx.serial, mock_hash: ctx.hash });
    for (let c = 0; c < choiceCount(body); c++) {
      const content = choiceText(a.content, c);
      if (chat) {
        events.push(ev({ index: c, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }));
        if (a.reasoning) {
          for (const p of splitPieces(a.reasoning, nChunks)) {
            events.push(ev({ index: c, delta: { reasoning_content: p }, logprobs: null, finish_reason: null }));
          }
        }
        if (a.toolCalls) {
          a.toolCalls.forEach((tc, i) => {
            events.push(ev({ index: c, delta: { tool_calls: [{ index: i, id: tc.id, type: 'function',
              function: { name: tc.function.name, arguments: '' } }] }, logprobs: null, finish_reason: null }));
            for (const p of splitPieces(tc.function.arguments, nChunks)) {
              events.push(ev({ index: c, delta: { tool_calls: [{ index: i, function: { arguments: p } }] },
                logprobs: null, finish_reason: null }));
            }
          });
        } else {
          for (const p of splitPieces(content, nChunks)) {
            events.push(ev({ index: c, delta: { content: p }, logprobs: null, finish_reason: null }));
          }
        }
        events.push(ev({ index: c, delta: {}, logprobs: null, finish_reason: a.finish }));
      } else {
        for (const p of splitPieces(content, nChunks)) {
          events.push(ev({ index: c, text: p, logprobs: null, finish_reason: null }));
        }
        events.push(ev({ index: c, text: '', logprobs: null, finish_reason: a.finish }));
      }
    }
    if (body.stream_options && body.stream_options.include_usage) events.push(ev(null, { usage: a.usage }));

    let frames = events.map((e) => `data: ${JSON.stringify(e)}\n\n`);
    const half = Math.max(1, Math.floor(frames.length / 2));
    if (controls.bad_json) frames.splice(half, 0, 'data: {"id": "broken", "choices": [<<not json\n\n');
    let tail = 'done';
    if (controls.drop_mid_stream) { frames = frames.slice(0, half); tail = 'drop'; }
    else if (controls.stall_mid_stream) { frames = frames.slice(0, half); tail = 'stall'; }
    else if (controls.stream_error) {
      frames = frames.slice(0, half);
      frames.push(`data: ${JSON.stringify({ error: { message: `mock stream error (serial ${ctx.serial})`,
        type: 'server_error', param: null, code: null } })}\n\n`);
    }

    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache',
      connection: 'keep-alive', ...ctx.ids });
    res.flushHeaders();
    const gap = intOr(controls.chunk_delay, dflt.chunkDelayMs);
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      if (i < frames.length) {
        res.write(frames[i++]);
        return ctx.later(gap, next);
      }
      if (tail === 'drop') return res.destroy();
      if (tail === 'stall') return;
      res.end('data: [DONE]\n\n');
    };
    next();
  }

  function embeddings(ctx) {
    const { body, res, controls } = ctx;
    let inputs = body.input;
    if (typeof inputs === 'string') inputs = [inputs];
    else if (Array.isArray(inputs) && inputs.length && typeof inputs[0] === 'number') inputs = [inputs];
    if (!Array.isArray(inputs) || inputs.length === 0) {
      return sendJson(res, 400, errorBody(400, "'input' must be a non-empty string or array"), ctx.ids);
    }
    const dim = Math.max(1, Math.min(4096, intOr(body.dimensions, 64)));
    const fmt = body.encoding_format || 'float';
    if (fmt !== 'float' && fmt !== 'base64') {
      return sendJson(res, 400, errorBody(400, `Invalid encoding_format '${fmt}'`), ctx.ids);
    }
    let tokens = 0;
    const data = inputs.map((inp, index) => {
      const text = typeof inp === 'string' ? inp : JSON.stringify(inp);
      tokens += Math.max(1, Math.ceil(text.length / 4));
      const v = embedText(text, dim);
      const embedding = fmt === 'base64' ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v);
      return { object: 'embedding', index, embedding };
    });
    const obj = { object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens },
      mock_serial: ctx.serial, mock_hash: ctx.hash };
    let text = JSON.stringify(obj);
    if (controls.bad_json) text = text.slice(0, Math.floor(text.length / 2));
    if (controls.drop_mid_stream) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...ctx.ids });
      res.write(text.slice(0, Math.floor(text.length / 2)));
      return ctx.later(0, () => res.destroy());
    }
    sendJson(res, 200, text, ctx.ids);
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    // A deep accept queue: tests open thousands of connections at once.
    server.listen({ port: opts.port || 0, host, backlog: 8192 }, () => { server.off('error', reject); resolve(); });
  });
  const port = server.address().port;
  const origin = `http://${host}:${port}`;
  return {
    url: `${origin}/v1`,
    origin,
    port,
    stats,
    reset,
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        if (server.closeAllConnections) server.closeAllConnections();
      });
    },
  };
}

function pickHeaders(h) {
  const out = {};
  for (const k of ['content-type', 'user-agent', 'cache-control', 'x-llm-cache-namespace', 'openai-organization', 'x-request-id']) {
    if (h[k] !== undefined) out[k] = h[k];
  }
  return out;
}

// Command line: node mock-upstream.mjs --port P [--host H] [--delay MS] [--chunk-delay MS] [--chunks N]
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const get = (name, d) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : d;
  };
  const mock = await startMock({
    port: intOr(get('--port', '0'), 0),
    host: get('--host', '127.0.0.1'),
    delayMs: intOr(get('--delay', '0'), 0),
    chunkDelayMs: intOr(get('--chunk-delay', '0'), 0),
    chunks: intOr(get('--chunks', '4'), 4),
  });
  // Always print the address: scripts starting with --port 0 read it from here.
  console.log(`mock-upstream listening on ${mock.url}`);
  const stop = () => mock.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
