// Drives the real Airlock desktop app (Tauri on WebKitGTK) through tauri-driver + WebKitWebDriver,
// for the Rust test tests/tests/desktop_app.rs. Needs an X display ($DISPLAY, e.g. Xvfb).
//
// env: APP (airlock-app binary), APP_ARGS (JSON array), TAURI_DRIVER, WD_PORT, WD_NATIVE_PORT,
//      ARTIFACTS (directory for screenshots), TIMEOUT_MS (per wait; default 240000)
// The scenario: the window opens on the grid; the demo sandbox's card appears; the demo agent's
// first ask (df, outside the exec allowlist) shows in the inbox; the operator approves it with the
// keyboard; it leaves the inbox; the session's live view draws video frames (WebCodecs).
// Prints one JSON line {ok, steps: [...], approved: {sandbox, id}, frames, canvas, mode} on stdout;
// exits 1 on failure.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { remote } from 'webdriverio';

const APP = process.env.APP;
const APP_ARGS = JSON.parse(process.env.APP_ARGS || '[]');
const DRIVER = process.env.TAURI_DRIVER || 'tauri-driver';
const PORT = Number(process.env.WD_PORT || 47444);
const NATIVE_PORT = Number(process.env.WD_NATIVE_PORT || 47445);
const ARTIFACTS = process.env.ARTIFACTS || '.';
const TIMEOUT = Number(process.env.TIMEOUT_MS || 240000);
mkdirSync(ARTIFACTS, { recursive: true });

const steps = [];
const log = (msg) => { steps.push(msg); process.stderr.write(`[tauri-app] ${msg}\n`); };

const waitPort = async (port, ms = 30000) => {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const ok = await new Promise((res) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); res(true); });
      s.on('error', () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} did not open within ${ms} ms`);
};

async function waitFor(what, fn, ms = TIMEOUT) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < ms) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
}

let driver;
let browser;
let result = { ok: false, steps };
try {
  if (!APP) throw new Error('APP is not set');
  driver = spawn(DRIVER, ['--port', String(PORT), '--native-port', String(NATIVE_PORT)], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  await waitPort(PORT);
  browser = await remote({
    hostname: '127.0.0.1', port: PORT, logLevel: 'warn', connectionRetryCount: 3,
    capabilities: {
      browserName: 'wry',
      'tauri:options': { application: APP, args: APP_ARGS },
      // WebKitWebDriver speaks classic WebDriver only; WebdriverIO 9 would ask for BiDi.
      'wdio:enforceWebDriverClassic': true,
    },
  });
  log('window opened');
  await waitFor('the console to load', async () => (await browser.$('nav').isExisting()));
  await browser.saveScreenshot(path.join(ARTIFACTS, 'app-start.png'));

  // The grid: the demo sandbox's card (the app creates it at start).
  const card = await waitFor('a sandbox card in the grid', async () => {
    const cards = await browser.$$('article[aria-label^="Sandbox "]');
    return cards.length > 0 ? cards[0] : null;
  });
  const cardLabel = await card.getAttribute('aria-label');
  const sandbox = cardLabel.replace(/^Sandbox /, '');
  log(`grid shows ${cardLabel}`);
  await waitFor('the card thumbnail', async () => browser.execute((id) => {
    const img = document.querySelector(`img[alt="Thumbnail of ${id}"]`);
    return !!img && img.complete && img.naturalWidth > 0;
  }, sandbox));
  await browser.saveScreenshot(path.join(ARTIFACTS, 'app-grid.png'));
  log('thumbnail drawn');

  // The inbox: the demo agent's first ask.
  await (await browser.$('aria/Inbox')).click();
  const item = await waitFor('an approval in the inbox', async () => {
    const items = await browser.$$(`li[aria-label^="Approval "][aria-label$=" in ${sandbox}"]`);
    return items.length > 0 ? items[0] : null;
  });
  const itemLabel = await item.getAttribute('aria-label');
  const approvalId = Number(itemLabel.match(/^Approval (\d+) in /)[1]);
  log(`inbox shows ${itemLabel}`);
  await browser.saveScreenshot(path.join(ARTIFACTS, 'app-inbox.png'));
  await item.click();
  await browser.keys('a');
  await waitFor(`approval ${approvalId} to leave the inbox`, async () => !(await browser.$(`li[aria-label="${itemLabel}"]`).isExisting()), 30000);
  log(`approved ${approvalId} with the keyboard`);

  // The session: video frames drawn on the live canvas.
  await browser.url(await browser.execute(() => location.href.split('#')[0]) + `#/session/${sandbox}`);
  const frames0 = await waitFor('the live view to draw frames', async () => {
    const n = await browser.execute((id) => {
      const el = document.querySelector(`[aria-label="Live screen of ${id}"]`);
      return el ? Number(el.getAttribute('data-frames') || 0) : 0;
    }, sandbox);
    return n > 0 ? n : null;
  });
  // The screen changes again when the demo agent goes on: it types next, or waits for an
  // operator's answer to its next ask, which this session's approval card gives.
  let approvedHere = null;
  const frames = await waitFor('more frames', async () => {
    const n = await browser.execute((id) => {
      const el = document.querySelector(`[aria-label="Live screen of ${id}"]`);
      return el ? Number(el.getAttribute('data-frames') || 0) : 0;
    }, sandbox);
    if (n > frames0) return n;
    const cards = await browser.$$('section[aria-label^="Approval "]');
    if (cards.length > 0 && approvedHere === null) {
      approvedHere = await cards[0].getAttribute('aria-label');
      await (await cards[0].$('button=Approve')).click();
      log(`approved ${approvedHere} from the session`);
    }
    return null;
  }, 120000);
  const canvas = await browser.execute((id) => {
    const el = document.querySelector(`canvas[aria-label="Live screen of ${id}"]`);
    return el ? { width: el.width, height: el.height } : null;
  }, sandbox);
  // What the live view says it shows (mode · codec · fps · bitrate).
  const mode = await browser.execute(() => document.querySelector('.live-mode')?.textContent ?? null);
  log(`live view drew ${frames} frames (${JSON.stringify(canvas)}), ${mode}`);
  // Once the screen rests, exact patches cover it on the refinement layer (opaque pixels there).
  const exactPixels = () => browser.execute(() => {
    const c = document.querySelector('canvas.refine');
    const d = c?.getContext('2d')?.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    if (d) for (let i = 3; i < d.length; i += 4) if (d[i] === 255) n++;
    return n;
  });
  const refined = await waitFor('exact pixels on the refinement layer', async () => {
    const n = await exactPixels();
    return n > 1280 * 800 / 2 ? n : null;
  }, 60000);
  log(`the refinement layer holds ${refined} exact pixels`);
  await browser.saveScreenshot(path.join(ARTIFACTS, 'app-session.png'));
  const oneToOne = await browser.$('button=1:1');
  if (await oneToOne.isExisting()) {
    await oneToOne.click();
    await browser.saveScreenshot(path.join(ARTIFACTS, 'app-session-1to1.png'));
  }
  result = { ok: true, steps, sandbox, approved: approvalId, approvedHere, frames, canvas, mode, refined };
} catch (e) {
  result.error = String(e && e.stack || e);
  try { await browser?.saveScreenshot(path.join(ARTIFACTS, 'app-failure.png')); } catch { /* window gone */ }
} finally {
  try { await browser?.deleteSession(); } catch { /* already gone */ }
  driver?.kill();
}
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(result.ok ? 0 : 1);
