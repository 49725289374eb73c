// Test harness: the real chat-server binary on a free loopback port, real headless Chromium
// processes (one per user, each with a fresh profile), and the seed pages as users open them.
//
// Every wait polls for a visible effect with a deadline; nothing sleeps a fixed time.

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const seedPagesDir = path.resolve(repoRoot, '..', 'shared', 'seed', 'pages');
export const screenshotDir = path.resolve(repoRoot, 'web', 'screenshots');
const serverBin = process.env.CHAT_SERVER_BIN || path.join(repoRoot, 'target', 'debug', 'chat-server');
const chromiumBin = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/** How long one visible effect may take before the test fails. */
export const WAIT_MS = 15_000;

const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/**
 * Whether this server build keeps message history (it has a store: `--data-dir`). Tests of
 * history are skipped, with that reason, on a build without one.
 */
export const serverKeepsHistory = (() => {
  try {
    return execFileSync(serverBin, ['--help'], { encoding: 'utf8', timeout: 10_000 }).includes('--data-dir');
  } catch {
    return false;
  }
})();
export const NO_HISTORY = serverKeepsHistory ? false : 'this chat-server build keeps no message history';

/** A port that was free a moment ago: bind port 0 on loopback and give it back. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Polls `check` until it returns a truthy value or `ms` pass; the value is returned. */
export async function until(check, { ms = WAIT_MS, every = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + ms;
  let lastError = null;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) { lastError = err; }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${lastError ? `: ${lastError.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, every));
  }
}

// Servers still running when the process exits are killed by PID, so none outlives a failed
// run; their data directories are removed.
const running = new Set();
const dataDirs = new Set();
process.on('exit', () => {
  for (const child of running) { try { child.kill('SIGKILL'); } catch { /* gone */ } }
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * Starts `chat-server --host 127.0.0.1 --port <port>` with its message store in `dataDir` (a new
 * temporary directory unless given: pass the previous one to restart on the same store), and
 * waits until `GET /` answers. Returns `{ port, base, hostPort, dataDir, pid, logs(), stop() }`.
 */
export async function startServer({ port, dataDir } = {}) {
  port = port ?? await freePort();
  if (!dataDir) {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'chat-web-test-data-'));
    dataDirs.add(dataDir);
  }
  const child = spawn(serverBin, ['--port', String(port), '--host', '127.0.0.1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // The data directory goes by environment so that a build without a store runs too.
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', CHAT_DATA_DIR: dataDir },
  });
  running.add(child);
  let output = '';
  const keep = (chunk) => { output = (output + chunk).slice(-20_000); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  const exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = { code, signal };
    running.delete(child);
    resolve(exited);
  }));
  child.on('error', (err) => { keep(`spawn error: ${err.message}\n`); });

  const base = `http://127.0.0.1:${port}`;
  try {
    await until(async () => {
      if (exited) throw new Error(`chat-server exited early (${JSON.stringify(exited)})`);
      const res = await fetch(`${base}/`, { signal: AbortSignal.timeout(1000) });
      return res.ok;
    }, { ms: 20_000, every: 100, what: `chat-server on port ${port}` });
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${err.message}\n--- server output ---\n${output}`);
  }

  return {
    port,
    dataDir,
    base,
    hostPort: `127.0.0.1:${port}`,
    pid: child.pid,
    logs: () => output,
    /** Stops this server by its PID: SIGTERM, then SIGKILL after a grace period. */
    async stop() {
      if (exited) return exited;
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => { if (!exited) process.kill(child.pid, 'SIGKILL'); }, 5000);
      const result = await exitPromise;
      clearTimeout(timer);
      return result;
    },
  };
}

/**
 * One user's browser: its own Chromium process with a fresh profile directory.
 * Returns `{ page, context, close() }`.
 */
export async function launchBrowser({ viewport = { width: 1100, height: 720 }, locale = 'en-US' } = {}) {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'chat-web-test-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumBin,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport,
      locale,
      timeout: 30_000,
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  context.setDefaultTimeout(WAIT_MS);
  const page = context.pages()[0] || await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  return {
    page,
    context,
    errors,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Serves the seed pages from a small HTTP server on its own loopback port, as users open them,
 * with only their hard-coded WebSocket address replaced by `hostPort`.
 * Returns `{ singleUrl, groupUrl, close() }`.
 */
export async function serveSeedPages(hostPort) {
  const single = rewriteSeedPage('myapp.html', '127.0.0.1:9527', hostPort);
  const group = rewriteSeedPage('my_app.html', '192.168.14.200:9527', hostPort);
  const server = http.createServer((req, res) => {
    const body = req.url === '/myapp.html' ? single : req.url === '/my_app.html' ? group : null;
    if (body === null) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    singleUrl: `http://127.0.0.1:${port}/myapp.html`,
    groupUrl: `http://127.0.0.1:${port}/my_app.html`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

function rewriteSeedPage(file, address, hostPort) {
  const original = readFileSync(path.join(seedPagesDir, file), 'utf8');
  const count = original.split(address).length - 1;
  if (count !== 1) throw new Error(`${file}: expected the address ${address} once, found it ${count} times`);
  const page = original.replace(address, hostPort);
  if (/192\.168\.|:9527\b/.test(page)) throw new Error(`${file}: an original address is left after rewriting`);
  return page;
}

export function screenshotPath(name) {
  mkdirSync(screenshotDir, { recursive: true });
  return path.join(screenshotDir, name);
}

// ---- The web client, driven as a user would -------------------------------------------------

/** Opens the web client at `url` and logs in as `nick`; resolves once it shows "Online". */
export async function webLogin(page, url, nick) {
  await page.goto(url);
  await page.getByLabel('Nickname').fill(nick);
  await page.getByRole('button', { name: 'Join chat' }).click();
  await waitOnline(page);
}

export async function waitOnline(page) {
  await page.locator('#conn-status[data-conn="online"]').waitFor();
}

/** Opens (or creates) the direct conversation with `nick` through the "message a user" field. */
export async function webOpenDirect(page, nick) {
  await openSidebarIfNarrow(page);
  const field = page.getByLabel('Message a user by name');
  await field.fill(nick);
  await field.press('Enter');
  await page.locator('#conv-name', { hasText: `@ ${nick}` }).waitFor();
}

/** Clicks a conversation in the list, e.g. `# lobby` or `@ bob`. */
export async function webOpenConversation(page, label) {
  await openSidebarIfNarrow(page);
  await page.locator('#conv-list .conv .name', { hasText: label }).first().click();
  await page.locator('#conv-name', { hasText: label }).waitFor();
}

async function openSidebarIfNarrow(page) {
  const toggle = page.locator('#toggle-sidebar');
  if (await toggle.isVisible() && (await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click();
}

/** Types `text` into the composer and presses Enter; resolves when the server acknowledged it. */
export async function webSend(page, text) {
  const box = page.getByLabel(/^Message [#@] /);
  await box.fill(text);
  await box.press('Enter');
  await waitForBubble(page, text, { mine: true, acked: true });
}

/** Waits until the open conversation shows a bubble whose text is exactly `text`. */
export async function waitForBubble(page, text, { mine = null, acked = false, from = null } = {}) {
  await page.waitForFunction(({ text, mine, acked, from }) => {
    return [...document.querySelectorAll('#messages .msg')].some((m) => {
      const bubble = m.querySelector('.bubble');
      if (!bubble || bubble.textContent !== text) return false;
      if (mine !== null && m.classList.contains('mine') !== mine) return false;
      if (acked && !m.dataset.id) return false;
      if (from !== null && !m.querySelector('.from').textContent.startsWith(from)) return false;
      return true;
    });
  }, { text, mine, acked, from }, { timeout: WAIT_MS });
}

/** The unread badge of a conversation in the list, as a number (0 when none). */
export async function unreadOf(page, label) {
  const item = page.locator('#conv-list .conv', { has: page.locator('.name', { hasText: label }) });
  const badge = item.locator('.badge');
  if (await badge.count() === 0) return 0;
  return Number(await badge.textContent());
}
