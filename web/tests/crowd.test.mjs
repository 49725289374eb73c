// The web client when many are online: the server lists the first names and counts the rest,
// and the page shows the count, "and N more" with a way to see them, and keeps both current
// from the server's gathered presence changes.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, webLogin, until } from './harness.mjs';

/**
 * Logs in native users `first`…`first + count - 1` (named u000, u001, …) from `page`, each
 * on a WebSocket of its own, and waits for every `welcome`; then, with `online` users online
 * in all, for a `presence_changes` frame counting them all. The server sends every change
 * pending at once, so none of theirs is still pending when the next user logs in. The sockets
 * stay open.
 */
async function crowd(page, base, first, count, online) {
  const url = `${base.replace(/^http/, 'ws')}/ws`;
  await page.evaluate(async ({ url, first, count, online }) => {
    window.crowd = window.crowd || [];
    // The highest `total` of the presence changes received since this call began.
    window.crowdTotal = 0;
    const logins = [];
    for (let i = first; i < first + count; i++) {
      const ws = new WebSocket(url, 'chat.v1');
      window.crowd.push(ws);
      logins.push(new Promise((resolve, reject) => {
        ws.onopen = () => ws.send(JSON.stringify({ type: 'login', nick: `u${String(i).padStart(3, '0')}` }));
        ws.onmessage = (e) => {
          const f = JSON.parse(e.data);
          if (f.type === 'welcome') resolve();
          if (f.type === 'presence_changes') window.crowdTotal = Math.max(window.crowdTotal, f.total);
        };
        ws.onerror = () => reject(new Error(`user ${i} could not connect`));
      }));
    }
    await Promise.all(logins);
    const deadline = Date.now() + 15000;
    while (window.crowdTotal < online) {
      if (Date.now() > deadline) throw new Error(`no presence change counted ${online} online`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }, { url, first, count, online });
}

describe('the web client with many online', () => {
  let server;
  const browsers = [];

  before(async () => { server = await startServer(); });
  after(async () => {
    const errors = browsers.flatMap((b) => b.errors);
    await Promise.all(browsers.map((b) => b.close()));
    if (server) await server.stop();
    assert.deepEqual(errors, [], 'no script errors in the pages');
  });

  it('shows the count, "and N more", keeps both current, and shows the rest on request', async () => {
    const others = await launchBrowser();
    const zoe = await launchBrowser();
    browsers.push(others, zoe);
    await others.page.goto(server.base);
    await crowd(others.page, server.base, 0, 120, 120);

    await webLogin(zoe.page, server.base, 'zoe');
    const heading = zoe.page.locator('#online-heading');
    const more = zoe.page.locator('#user-list .more-users');
    await until(async () => (await heading.textContent()) === 'Online (121)', { what: 'the count of everyone online' });
    // The first 50 names, and zoe herself (told in the changes since).
    await until(async () => (await more.textContent()).startsWith('and 70 more'), { what: '"and 70 more"' });
    assert.equal(await zoe.page.locator('#user-list .user').count(), 51);
    await until(async () => (await zoe.page.locator('#conv-sub').textContent()) === '121 here', { what: 'the lobby count' });

    // One more comes: counted in the list and in the lobby, from the gathered changes.
    await crowd(others.page, server.base, 120, 1, 122);
    await until(async () => (await heading.textContent()) === 'Online (122)', { what: 'the new count' });
    await until(async () => (await zoe.page.locator('#conv-sub').textContent()) === '122 here', { what: 'the new lobby count' });

    // The rest, a page at a time: here one page brings everyone.
    await more.getByRole('button', { name: 'Show more' }).click();
    await until(async () => (await more.count()) === 0, { what: 'every name listed' });
    const names = await zoe.page.locator('#user-list .user .name').allTextContents();
    assert.equal(names.length, 122);
    assert.ok(names.includes('u119') && names.includes('u120') && names.includes('zoe (you)'), names.join(' '));
  });
});
