// A remote control for headless Chromium, used by the Rust crate airlock-browser (tests, benchmarks).
// It reads one JSON request per line on stdin and answers one JSON line on stdout:
//   {"id":1,"op":"open","page":"a","url":"http://..."}       -> {"id":1,"ok":true}
//   {"id":2,"op":"eval","page":"a","expr":"1+1"}              -> {"id":2,"ok":true,"value":2}
//   {"id":3,"op":"screenshot","page":"a","path":"/tmp/x.png"} -> {"id":3,"ok":true}
//   {"id":4,"op":"close","page":"a"}                          -> {"id":4,"ok":true}
// `expr` is a JavaScript expression evaluated in the page; a Promise is awaited.
// Playwright locators (auto-waiting, accessible names):
//   {"op":"act","page":"a","target":T,"action":A,"value":V,"timeout_ms":N}
//     T = {"role":"button","name":"Approve"} | {"label":"Reason"} | {"text":"…"} | {"css":"…"} | {"testid":"…"},
//         each optionally with "within": T (the parent), "has_text": "…", "nth": i, "exact": false
//     A = click | fill (V) | press (V, a key) | wait (V: visible|hidden|attached|detached) | count | text |
//         texts (every match's inner text) | aria (the ARIA snapshot, YAML) | attr (V, the name) | check | uncheck | eval (V, a function
//         expression called with the element) | download (click, wait for the download, save it to V;
//         answers {name, bytes})
//   {"op":"keyboard","page":"a","press":"Control+Alt+Enter"} / {"op":"keyboard","page":"a","type":"text"}
//     real key events to whatever has the focus; "type" presses Shift around capitals and shifted
//     symbols, as a person on a US keyboard does
//   {"op":"mouse","page":"a","action":"click"|"move"|"down"|"up","x":X,"y":Y}
// An "open" with "ws_gate":"substring" routes the page's WebSockets whose URL contains it through
// a gate: {"op":"ws_gate","page":"a","hold":true} holds server-to-page messages back (in order),
// "hold":false delivers them (answering how many) and lets the rest through again.
// Console messages and page errors go to stderr, prefixed with the page name.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--allow-loopback-in-peer-connection', // otherwise Chromium gathers no 127.0.0.1 candidate
  '--disable-features=WebRtcHideLocalIpsWithMdns', // raw addresses instead of <uuid>.local candidates
  '--autoplay-policy=no-user-gesture-required'];

const udd = mkdtempSync(join(tmpdir(), 'airlock-chromium-'));
const ctx = await chromium.launchPersistentContext(udd, {
  executablePath: process.env.AIRLOCK_CHROMIUM || '/usr/bin/chromium',
  headless: true, args: FLAGS, viewport: { width: 1600, height: 1000 },
});
const pages = new Map();
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
out({ id: 0, ok: true, value: 'ready' });

const gates = new Map();

function pageOf(req) {
  const page = pages.get(req.page);
  if (!page) throw new Error(`no page ${req.page}`);
  return page;
}

// Routes the page's WebSockets whose URL contains `pattern` through a gate that can hold back
// what the server sends (the page-to-server direction and closes are forwarded as they are).
async function gateWebSockets(name, page, pattern) {
  const gate = { hold: false, queue: [] };
  gates.set(name, gate);
  await page.routeWebSocket((url) => url.href.includes(pattern), (ws) => {
    const server = ws.connectToServer();
    server.onMessage((msg) => {
      if (gate.hold) gate.queue.push([ws, msg]);
      else ws.send(msg);
    });
  });
}

// US layout: the key a shifted character is on.
const SHIFTED = {
  '~': 'Backquote', '!': 'Digit1', '@': 'Digit2', '#': 'Digit3', $: 'Digit4', '%': 'Digit5', '^': 'Digit6',
  '&': 'Digit7', '*': 'Digit8', '(': 'Digit9', ')': 'Digit0', _: 'Minus', '+': 'Equal', '{': 'BracketLeft',
  '}': 'BracketRight', '|': 'Backslash', ':': 'Semicolon', '"': 'Quote', '<': 'Comma', '>': 'Period', '?': 'Slash',
};

// Types text the way a person on a US keyboard does: Shift goes down and up around capitals and
// shifted symbols (page.keyboard.type sends '>' without Shift, which a console that forwards
// physical keys, as a VNC client does, turns into '.').
async function typeLikeAKeyboard(page, text, delay) {
  for (const ch of text) {
    if (ch === '\n') await page.keyboard.press('Enter');
    else if (ch === '\t') await page.keyboard.press('Tab');
    else if (ch === ' ') await page.keyboard.press('Space');
    else if (SHIFTED[ch]) await page.keyboard.press(`Shift+${SHIFTED[ch]}`);
    else if (/^[A-Z]$/.test(ch)) await page.keyboard.press(`Shift+Key${ch}`);
    else if (/^[a-z]$/.test(ch)) await page.keyboard.press(`Key${ch.toUpperCase()}`);
    else if (/^[0-9]$/.test(ch)) await page.keyboard.press(`Digit${ch}`);
    else await page.keyboard.type(ch);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
  }
}

// A Playwright locator for a target description (see the header).
function locate(page, t) {
  if (!t || typeof t !== 'object') throw new Error('a target is an object');
  const base = t.within ? locate(page, t.within) : page;
  const exact = t.exact ?? true;
  let loc;
  if (t.role) loc = base.getByRole(t.role, t.name === undefined ? {} : { name: t.name, exact });
  else if (t.label !== undefined) loc = base.getByLabel(t.label, { exact });
  else if (t.text !== undefined) loc = base.getByText(t.text, { exact: t.exact ?? false });
  else if (t.css) loc = base.locator(t.css);
  else if (t.testid) loc = base.getByTestId(t.testid);
  else throw new Error(`target ${JSON.stringify(t)} has no role, label, text, css or testid`);
  if (t.has_text !== undefined) loc = loc.filter({ hasText: t.has_text });
  if (t.nth !== undefined) loc = loc.nth(t.nth);
  return loc;
}

async function act(page, req) {
  const loc = locate(page, req.target);
  const timeout = req.timeout_ms ?? 10000;
  switch (req.action) {
    case 'click': await loc.click({ timeout }); return null;
    case 'fill': await loc.fill(String(req.value ?? ''), { timeout }); return null;
    case 'press': await loc.press(String(req.value), { timeout }); return null;
    case 'check': await loc.check({ timeout }); return null;
    case 'uncheck': await loc.uncheck({ timeout }); return null;
    case 'wait': await loc.waitFor({ state: req.value ?? 'visible', timeout }); return null;
    case 'count': return await loc.count();
    case 'text': return await loc.innerText({ timeout });
    case 'texts': return await loc.allInnerTexts();
    case 'aria': return await loc.ariaSnapshot({ timeout });
    case 'attr': return await loc.getAttribute(String(req.value), { timeout });
    case 'eval': {
      // Playwright sends the function's source to the page: make it a function here first.
      const fn = new Function(`return (${req.value});`)();
      return (await loc.evaluate(fn, undefined, { timeout })) ?? null;
    }
    case 'download': {
      const [download] = await Promise.all([page.waitForEvent('download', { timeout }), loc.click({ timeout })]);
      const failure = await download.failure();
      if (failure) throw new Error(`the download failed: ${failure}`);
      await download.saveAs(req.value);
      return { name: download.suggestedFilename(), bytes: statSync(req.value).size };
    }
    default: throw new Error(`unknown action ${req.action}`);
  }
}

async function handle(req) {
  switch (req.op) {
    case 'open': {
      const page = await ctx.newPage();
      page.on('console', (m) => process.stderr.write(`[${req.page}] ${m.type()}: ${m.text()}\n`));
      page.on('pageerror', (e) => process.stderr.write(`[${req.page}] pageerror: ${e}\n`));
      if (req.ws_gate) await gateWebSockets(req.page, page, req.ws_gate);
      await page.goto(req.url);
      pages.set(req.page, page);
      return null;
    }
    case 'act':
      return act(pageOf(req), req);
    case 'keyboard': {
      const page = pageOf(req);
      if (typeof req.press === 'string') await page.keyboard.press(req.press);
      else if (typeof req.type === 'string') await typeLikeAKeyboard(page, req.type, req.delay_ms ?? 20);
      else throw new Error('keyboard needs "press" or "type"');
      return null;
    }
    case 'mouse': {
      const m = pageOf(req).mouse;
      switch (req.action) {
        case 'click': await m.click(req.x, req.y); break;
        case 'move': await m.move(req.x, req.y); break;
        case 'down': await m.down(); break;
        case 'up': await m.up(); break;
        default: throw new Error(`unknown mouse action ${req.action}`);
      }
      return null;
    }
    case 'ws_gate': {
      const gate = gates.get(req.page);
      if (!gate) throw new Error(`page ${req.page} was not opened with a ws_gate`);
      gate.hold = !!req.hold;
      if (gate.hold) return gate.queue.length;
      const held = gate.queue.splice(0);
      for (const [route, msg] of held) {
        try { route.send(msg); } catch (e) { process.stderr.write(`[${req.page}] ws_gate: ${e}\n`); }
      }
      return held.length;
    }
    case 'eval': {
      const page = pageOf(req);
      const v = await page.evaluate(req.expr);
      return v === undefined ? null : v;
    }
    case 'screenshot': {
      const page = pageOf(req);
      await page.screenshot({ path: req.path, fullPage: !!req.full_page });
      return null;
    }
    case 'close': {
      const page = pages.get(req.page);
      if (page) { await page.close(); pages.delete(req.page); }
      return null;
    }
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let req;
  try { req = JSON.parse(line); } catch (e) { out({ id: null, ok: false, error: `bad request: ${e}` }); continue; }
  try { out({ id: req.id, ok: true, value: await handle(req) }); }
  catch (e) { out({ id: req.id, ok: false, error: String(e && e.message || e) }); }
}
await ctx.close();
rmSync(udd, { recursive: true, force: true });
