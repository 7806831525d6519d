// A remote control for headless Chromium, used by the Rust crate airlock-browser (tests, benchmarks).
// It reads one JSON request per line on stdin and answers one JSON line on stdout:
//   {"id":1,"op":"open","page":"a","url":"http://..."}       -> {"id":1,"ok":true}
//   {"id":2,"op":"eval","page":"a","expr":"1+1"}              -> {"id":2,"ok":true,"value":2}
//   {"id":3,"op":"screenshot","page":"a","path":"/tmp/x.png"} -> {"id":3,"ok":true}
//   {"id":4,"op":"close","page":"a"}                          -> {"id":4,"ok":true}
// `expr` is a JavaScript expression evaluated in the page; a Promise is awaited.
// Console messages and page errors go to stderr, prefixed with the page name.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
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

async function handle(req) {
  switch (req.op) {
    case 'open': {
      const page = await ctx.newPage();
      page.on('console', (m) => process.stderr.write(`[${req.page}] ${m.type()}: ${m.text()}\n`));
      page.on('pageerror', (e) => process.stderr.write(`[${req.page}] pageerror: ${e}\n`));
      await page.goto(req.url);
      pages.set(req.page, page);
      return null;
    }
    case 'eval': {
      const page = pages.get(req.page);
      if (!page) throw new Error(`no page ${req.page}`);
      const v = await page.evaluate(req.expr);
      return v === undefined ? null : v;
    }
    case 'screenshot': {
      const page = pages.get(req.page);
      if (!page) throw new Error(`no page ${req.page}`);
      await page.screenshot({ path: req.path });
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
