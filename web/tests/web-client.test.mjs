// The web client served by the real server, in real headless Chromium processes.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  startServer, launchBrowser, webLogin, webOpenDirect, webOpenConversation, webSend,
  waitForBubble, waitOnline, unreadOf, until, screenshotPath, NO_HISTORY, repoRoot,
} from './harness.mjs';

/** The texts of the bubbles in the open conversation, top to bottom. */
function bubbleTexts(page) {
  return page.locator('#messages .msg .bubble').allTextContents();
}

describe('the web client', () => {
  let server;
  const browsers = [];
  const browser = async (options) => { const b = await launchBrowser(options); browsers.push(b); return b; };

  before(async () => { server = await startServer(); });
  after(async () => {
    const errors = browsers.flatMap((b) => b.errors);
    await Promise.all(browsers.map((b) => b.close()));
    if (server) await server.stop();
    assert.deepEqual(errors, [], 'no script errors in the pages');
  });

  it('is served at / and /my_app as one page without external resources', async () => {
    for (const route of ['/', '/my_app']) {
      const res = await fetch(`${server.base}${route}`);
      assert.equal(res.status, 200, route);
      assert.match(res.headers.get('content-type') || '', /text\/html/, route);
      const html = await res.text();
      assert.match(html, /<title>Chat<\/title>/, route);
      assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)=["']?(https?:)?\/\//i, `${route} loads nothing from elsewhere`);
      const source = readFileSync(path.join(repoRoot, 'web', 'index.html'), 'utf8');
      assert.ok(html === source, 'the server serves web/index.html as it is now: the page is embedded at compile time, so rebuild the server (cargo build -p server) after changing it');
    }
  });

  it('lets two users log in and write to each other directly, both ways', async () => {
    const { page: alice } = await browser();
    const { page: bob } = await browser();
    await webLogin(alice, server.base + '/', 'alice');
    await webLogin(bob, server.base + '/my_app', 'bob');

    // Each sees the other online.
    await alice.locator('#user-list .user', { hasText: 'bob' }).waitFor();
    await bob.locator('#user-list .user', { hasText: 'alice' }).waitFor();

    await webOpenDirect(alice, 'bob');
    await webSend(alice, '你好，bob 👋');

    // Bob was in the lobby: the conversation appears with one unread message.
    await until(async () => (await unreadOf(bob, '@ alice')) === 1, { what: "bob's unread count for alice" });
    await webOpenConversation(bob, '@ alice');
    await waitForBubble(bob, '你好，bob 👋', { mine: false, from: 'alice' });
    assert.equal(await unreadOf(bob, '@ alice'), 0, 'opening a conversation clears its unread count');

    await webSend(bob, 'hi alice — 收到 ✅');
    await waitForBubble(alice, 'hi alice — 收到 ✅', { mine: false, from: 'bob' });

    // Own bubbles are on the right, the other's on the left.
    const sides = await alice.evaluate(() => [...document.querySelectorAll('#messages .msg')].map((m) => {
      const list = document.getElementById('messages').getBoundingClientRect();
      const box = m.getBoundingClientRect();
      return { mine: m.classList.contains('mine'), leftGap: box.left - list.left, rightGap: list.right - box.right };
    }));
    assert.equal(sides.length, 2);
    assert.ok(sides[0].mine && sides[0].rightGap < sides[0].leftGap, 'own message on the right');
    assert.ok(!sides[1].mine && sides[1].leftGap < sides[1].rightGap, "other's message on the left");
  });

  it('delivers room messages, in the lobby and in a newly joined room', async () => {
    const { page: carol } = await browser();
    const { page: dave } = await browser();
    await webLogin(carol, server.base + '/', 'carol');
    await webLogin(dave, server.base + '/', 'dave');

    await webSend(carol, 'lobby hello from carol');
    await waitForBubble(dave, 'lobby hello from carol', { from: 'carol' });

    for (const page of [carol, dave]) {
      const field = page.getByLabel('Join or create a room');
      await field.fill('茶馆');
      await field.press('Enter');
      await page.locator('#conv-name', { hasText: '# 茶馆' }).waitFor();
    }
    await webSend(dave, '两位好 🍵');
    await waitForBubble(carol, '两位好 🍵', { from: 'dave' });
  });

  it('shows markup in a message as text and runs none of it', async () => {
    const { page: eve } = await browser();
    const { page: frank } = await browser();
    await webLogin(eve, server.base + '/', 'eve');
    await webLogin(frank, server.base + '/', 'frank');
    const payload = '<img src=x onerror="window.__pwned=1;document.title=\'pwned\'"><b>bold?</b>';
    await webSend(eve, payload);
    await waitForBubble(frank, payload, { from: 'eve' });
    for (const page of [eve, frank]) {
      const found = await page.evaluate(() => ({
        pwned: window.__pwned === 1 || document.title === 'pwned',
        imgs: document.querySelectorAll('#messages img, #messages b').length,
      }));
      assert.deepEqual(found, { pwned: false, imgs: 0 });
    }
  });

  it('sends with Enter and breaks lines with Shift+Enter', async () => {
    const { page: gina } = await browser();
    const { page: hugo } = await browser();
    await webLogin(gina, server.base + '/', 'gina');
    await webLogin(hugo, server.base + '/', 'hugo');
    const box = gina.getByLabel('Message # lobby');
    await box.focus();
    await gina.keyboard.type('first line');
    await gina.keyboard.press('Shift+Enter');
    await gina.keyboard.type('second line');
    assert.equal(await box.inputValue(), 'first line\nsecond line', 'Shift+Enter adds a line');
    await gina.keyboard.press('Enter');
    await waitForBubble(hugo, 'first line\nsecond line', { from: 'gina' });
    assert.equal(await box.inputValue(), '', 'the composer is emptied after sending');
  });

  it('tells a user when a nickname is taken or invalid', async () => {
    const { page } = await browser();
    await page.goto(server.base + '/');
    await page.getByLabel('Nickname').fill('alice'); // still online from the first test
    await page.getByRole('button', { name: 'Join chat' }).click();
    await page.locator('#login-error', { hasText: /alice/ }).waitFor();
    await page.getByLabel('Nickname').fill('two words');
    await page.getByRole('button', { name: 'Join chat' }).click();
    await page.locator('#login-error', { hasText: /no spaces/ }).waitFor();
    await page.getByLabel('Nickname').fill('ivy');
    await page.getByLabel('Nickname').press('Enter');
    await waitOnline(page);
  });

  it('says so when a direct message cannot be delivered, and offers to retry', async () => {
    const { page: rex } = await browser();
    await webLogin(rex, server.base + '/', 'rex');
    await webOpenDirect(rex, 'nobody-ever');
    const box = rex.getByLabel('Message @ nobody-ever');
    await box.fill('are you there?');
    await box.press('Enter');
    const failed = rex.locator('#messages .msg.failed', { hasText: 'are you there?' });
    await failed.locator('.state', { hasText: 'Not sent:' }).waitFor();
    await failed.getByRole('button', { name: 'Discard' }).click();
    await until(async () => (await failed.count()) === 0, { what: 'the message to be discarded' });
  });

  it('delivers everything sent faster than the server accepts, in order', async () => {
    const { page: sid } = await browser();
    const { page: tia } = await browser();
    await webLogin(sid, server.base + '/', 'sid');
    await webLogin(tia, server.base + '/', 'tia');
    await webOpenDirect(sid, 'tia');
    const count = 90;
    // As fast as the page can: well past the server's rate limit.
    await sid.evaluate((count) => {
      const box = document.getElementById('composer');
      for (let i = 1; i <= count; i += 1) {
        box.value = `burst ${i}`;
        document.getElementById('composer-form').requestSubmit();
      }
    }, count);
    await until(async () => (await sid.locator('#messages .msg.mine[data-id]').count()) === count,
      { ms: 30_000, what: 'every message to be acknowledged' });
    assert.equal(await sid.locator('#messages .msg.failed').count(), 0);
    await webOpenConversation(tia, '@ sid');
    const expected = Array.from({ length: count }, (_, i) => `burst ${i + 1}`);
    assert.deepEqual(await bubbleTexts(sid), expected, 'in the order written');
    await until(async () => (await bubbleTexts(tia)).length >= count, { ms: 30_000, what: 'every message at tia' });
    assert.deepEqual(await bubbleTexts(tia), expected, 'in order, none twice');
  });

  it('logs in again as the same user after a reload', async () => {
    const { page: kim } = await browser();
    const { page: lou } = await browser();
    await webLogin(kim, server.base + '/', 'kim');
    await webLogin(lou, server.base + '/', 'lou');
    await kim.reload();
    await waitOnline(kim);
    assert.equal(await kim.locator('#me').textContent(), 'kim');
    await webSend(kim, 'back after a reload');
    await waitForBubble(lou, 'back after a reload', { from: 'kim' });
  });

  it('leaves a room, which then drops out of the conversation list', async () => {
    const { page: max } = await browser();
    await webLogin(max, server.base + '/', 'max');
    const field = max.getByLabel('Join or create a room');
    await field.fill('quiet-room');
    await field.press('Enter');
    await max.locator('#conv-name', { hasText: '# quiet-room' }).waitFor();
    await max.getByRole('button', { name: 'Leave' }).click();
    await max.locator('#conv-name', { hasText: '# lobby' }).waitFor();
    await until(async () => (await max.locator('#conv-list .conv', { hasText: 'quiet-room' }).count()) === 0,
      { what: 'the room to leave the list' });
  });

  it('shows the history of the lobby and of a direct chat after a reload', { skip: NO_HISTORY }, async () => {
    const { page: nia } = await browser();
    const { page: omar } = await browser();
    await webLogin(nia, server.base + '/', 'nia');
    await webLogin(omar, server.base + '/', 'omar');
    await webSend(nia, 'lobby line before the reload');
    await waitForBubble(omar, 'lobby line before the reload', { from: 'nia' });
    await webOpenDirect(nia, 'omar');
    await webSend(nia, '私信 before the reload');
    await webOpenConversation(omar, '@ nia');
    await waitForBubble(omar, '私信 before the reload', { from: 'nia' });
    await webSend(omar, 'reply before the reload');

    await omar.reload();
    await waitOnline(omar);
    // The page comes back to the direct chat it showed, with its history, in order.
    await waitForBubble(omar, 'reply before the reload', { mine: true, acked: true });
    const dm = await bubbleTexts(omar);
    assert.deepEqual(dm.slice(-2), ['私信 before the reload', 'reply before the reload']);
    await webOpenConversation(omar, '# lobby');
    await waitForBubble(omar, 'lobby line before the reload', { from: 'nia' });
    const lobby = await bubbleTexts(omar);
    assert.equal(lobby.filter((t) => t === 'lobby line before the reload').length, 1, 'shown once');
  });

  it('keeps a direct message for someone logged out and delivers it at their next login', { skip: NO_HISTORY }, async () => {
    const { page: uma } = await browser();
    const { page: vic } = await browser();
    await webLogin(uma, server.base + '/', 'uma');
    await webLogin(vic, server.base + '/', 'vic');
    await uma.getByRole('button', { name: 'Log out' }).click();
    await uma.getByLabel('Nickname').waitFor();
    await until(async () => !(await vic.locator('#user-list .user', { hasText: 'uma' }).isVisible()), { what: 'uma to go offline' });

    await webOpenDirect(vic, 'uma');
    await webSend(vic, 'for when you are back 🌙');
    await vic.locator('#messages .msg.mine .state', { hasText: 'uma is offline' }).waitFor();

    await uma.getByLabel('Nickname').fill('uma');
    await uma.getByRole('button', { name: 'Join chat' }).click();
    await waitOnline(uma);
    await until(async () => (await unreadOf(uma, '@ vic')) === 1, { what: 'the message waiting for uma' });
    await webOpenConversation(uma, '@ vic');
    await waitForBubble(uma, 'for when you are back 🌙', { from: 'vic' });
  });

  it('loads older messages when scrolled to the top', { skip: NO_HISTORY }, async () => {
    const { page: pam } = await browser();
    await webLogin(pam, server.base + '/', 'pam');
    const join = pam.getByLabel('Join or create a room');
    await join.fill('archive');
    await join.press('Enter');
    await pam.locator('#conv-name', { hasText: '# archive' }).waitFor();
    const count = 80;
    for (let i = 1; i <= count; i += 1) await webSend(pam, `archived message ${i}`);

    const { page: quinn } = await browser({ viewport: { width: 900, height: 600 } });
    await webLogin(quinn, server.base + '/', 'quinn');
    const field = quinn.getByLabel('Join or create a room');
    await field.fill('archive');
    await field.press('Enter');
    await waitForBubble(quinn, `archived message ${count}`, { from: 'pam' });
    const firstPage = await bubbleTexts(quinn);
    assert.ok(firstPage.length < count, `the first page holds the newest only (${firstPage.length})`);
    assert.equal(firstPage.at(-1), `archived message ${count}`);

    await quinn.locator('#messages').evaluate((list) => { list.scrollTop = 0; });
    await waitForBubble(quinn, 'archived message 1', { from: 'pam' });
    const all = await bubbleTexts(quinn);
    assert.deepEqual(all, Array.from({ length: count }, (_, i) => `archived message ${i + 1}`), 'all, in order, once');
    assert.equal(await quinn.locator('#load-older').count(), 0, 'nothing older is offered');

    // A new message while reading old ones does not move the view; a button offers it.
    const scrollTop = await quinn.locator('#messages').evaluate((list) => list.scrollTop);
    await webSend(pam, 'a new one while quinn reads');
    await quinn.getByRole('button', { name: 'New messages ↓' }).waitFor();
    assert.equal(await quinn.locator('#messages').evaluate((list) => list.scrollTop), scrollTop, 'the view stays');
    await quinn.getByRole('button', { name: 'New messages ↓' }).click();
    await quinn.locator('#messages .bubble', { hasText: 'a new one while quinn reads' }).waitFor();
    assert.ok(await quinn.locator('#messages').evaluate((l) => l.scrollHeight - l.scrollTop - l.clientHeight < 2), 'scrolled to the end');
    assert.match(await quinn.locator('#announcer').textContent(), /pam: a new one while quinn reads/, 'told to screen readers');
  });
});

describe('the web client at desktop and phone width', () => {
  let server;
  const browsers = [];
  const browser = async (options) => { const b = await launchBrowser(options); browsers.push(b); return b; };

  before(async () => { server = await startServer(); });
  after(async () => {
    const errors = browsers.flatMap((b) => b.errors);
    await Promise.all(browsers.map((b) => b.close()));
    if (server) await server.stop();
    assert.deepEqual(errors, [], 'no script errors in the pages');
  });

  it('works at phone width with the keyboard alone, and is screenshotted', async () => {
    const { page: wei } = await browser({ viewport: { width: 1000, height: 640 } });
    const { page: zoe } = await browser({ viewport: { width: 390, height: 760 } });
    const { page: bob } = await browser();
    await webLogin(wei, server.base + '/', '张伟');
    await webLogin(zoe, server.base + '/', 'Zoë');
    await webLogin(bob, server.base + '/', 'bob');
    const join = wei.getByLabel('Join or create a room');
    await join.fill('rust');
    await join.press('Enter');
    await wei.locator('#conv-name', { hasText: '# rust' }).waitFor();
    await webOpenConversation(wei, '# lobby');

    await webSend(bob, 'Morning all ☀️');
    await waitForBubble(wei, 'Morning all ☀️', { from: 'bob' });
    await webSend(wei, '大家好！今晚一起吃火锅吗？🍲🌶️');
    await waitForBubble(zoe, '大家好！今晚一起吃火锅吗？🍲🌶️', { from: '张伟' });
    await webSend(zoe, 'Count me in 🙋‍♀️ 我七点到');
    await waitForBubble(wei, 'Count me in 🙋‍♀️ 我七点到', { from: 'Zoë' });
    await webSend(wei, 'A long line wraps inside its bubble rather than widening the page: 这是一条很长的消息，用来检查中文在气泡里是否能正确换行，而不会把页面撑宽。');

    // Zoë, at phone width, reaches the direct-message field with the keyboard only.
    const sidebar = zoe.locator('#sidebar');
    assert.equal(await sidebar.isVisible(), false, 'the sidebar is a closed drawer at phone width');
    await zoe.locator('#toggle-sidebar').focus();
    await zoe.keyboard.press('Enter');
    await until(() => sidebar.isVisible(), { what: 'the drawer to open' });
    await zoe.getByLabel('Message a user by name').focus();
    await zoe.keyboard.type('张伟');
    await zoe.keyboard.press('Enter');
    await zoe.locator('#conv-name', { hasText: '@ 张伟' }).waitFor();
    await until(async () => !(await sidebar.isVisible()), { what: 'the drawer to close' });
    await zoe.getByLabel('Message @ 张伟').focus();
    await zoe.keyboard.type('私聊：你好 😀');
    await zoe.keyboard.press('Enter');
    await waitForBubble(zoe, '私聊：你好 😀', { mine: true, acked: true });

    // Every form control has a name for assistive technology.
    const unnamed = await zoe.evaluate(() => [...document.querySelectorAll('input, textarea, button')]
      .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !c.textContent.trim())
      .map((c) => c.outerHTML));
    assert.deepEqual(unnamed, [], 'controls without a label');

    // Nothing is wider than the phone screen.
    const overflow = await zoe.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);

    await until(async () => (await unreadOf(wei, '@ Zoë')) === 1, { what: 'the unread badge' });
    assert.match(await wei.title(), /^\(1\) /, 'the unread count is in the title');
    await zoe.locator('#toggle-sidebar').click(); // a look at the drawer for the phone screenshot
    await until(() => sidebar.isVisible(), { what: 'the drawer to open' });
    await wei.screenshot({ path: screenshotPath('web-desktop.png') });
    await zoe.keyboard.press('Escape');
    await until(async () => !(await sidebar.isVisible()), { what: 'Escape to close the drawer' });
    await webOpenConversation(zoe, '# lobby');
    await until(async () => !(await sidebar.isVisible()), { what: 'the drawer to close' });
    await waitForBubble(zoe, 'Count me in 🙋‍♀️ 我七点到', { mine: true });
    await zoe.screenshot({ path: screenshotPath('web-phone.png') });
  });

});

describe('the web client across a server restart', () => {
  let server;
  const browsers = [];
  after(async () => {
    const errors = browsers.flatMap((b) => b.errors);
    await Promise.all(browsers.map((b) => b.close()));
    if (server) await server.stop();
    assert.deepEqual(errors, [], 'no script errors in the pages');
  });

  it('reconnects on its own, sends what was written meanwhile, and delivers the next message', async () => {
    server = await startServer();
    const { port, dataDir } = server;
    const a = await launchBrowser(); browsers.push(a);
    const b = await launchBrowser(); browsers.push(b);
    await webLogin(a.page, server.base + '/', 'ana');
    await webLogin(b.page, server.base + '/', 'ben');
    for (const { page } of [a, b]) {
      const join = page.getByLabel('Join or create a room');
      await join.fill('rust');
      await join.press('Enter');
    }
    for (const { page } of [a, b]) await page.locator('#conv-sub', { hasText: '2 here' }).waitFor();
    await webSend(a.page, 'before the restart');
    await waitForBubble(b.page, 'before the restart', { from: 'ana' });

    await server.stop();
    server = null;
    for (const { page } of [a, b]) await page.locator('#conn-status[data-conn="reconnecting"]').waitFor();

    // Written while the server is down: kept, shown as waiting, sent after the reconnect.
    const box = a.page.getByLabel('Message # rust');
    await box.fill('written while the server was down');
    await box.press('Enter');
    await a.page.locator('#messages .msg.pending', { hasText: 'Waiting for the connection' }).waitFor();

    server = await startServer({ port, dataDir });
    for (const { page } of [a, b]) await page.locator('#conn-status[data-conn="online"]').waitFor({ timeout: 30_000 });
    await waitForBubble(a.page, 'written while the server was down', { mine: true, acked: true });

    // Both are back in the room they were in, earlier messages are still on screen, and new
    // ones flow both ways, in the room and directly.
    for (const { page } of [a, b]) await page.locator('#conv-sub', { hasText: '2 here' }).waitFor();
    await waitForBubble(b.page, 'before the restart', { from: 'ana' });
    await webSend(b.page, 'still in # rust');
    await waitForBubble(a.page, 'still in # rust', { from: 'ben' });
    await until(() => b.page.locator('#user-list .user', { hasText: 'ana' }).isVisible(), { what: 'ana back online for ben' });
    await webOpenDirect(a.page, 'ben');
    await webSend(a.page, 'after the restart 🎉');
    await webOpenConversation(b.page, '@ ana');
    await waitForBubble(b.page, 'after the restart 🎉', { from: 'ana' });
    await webSend(b.page, 'got it');
    await waitForBubble(a.page, 'got it', { from: 'ben' });
    assert.deepEqual([...a.errors, ...b.errors], [], 'no script errors');
  });
});

describe('the web client on a connection that dies silently', () => {
  let server;
  const browsers = [];
  after(async () => {
    await Promise.all(browsers.map((b) => b.close()));
    if (server) await server.stop();
  });

  it('notices the silence, connects again and gets what it missed', { skip: NO_HISTORY }, async () => {
    server = await startServer();
    const a = await launchBrowser(); browsers.push(a);
    const b = await launchBrowser(); browsers.push(b);
    // Between wanda's page and the server: while `silent`, nothing from the server gets through,
    // as when a network goes away without closing anything.
    let silent = false;
    await a.page.routeWebSocket(/\/ws/, (ws) => {
      const upstream = ws.connectToServer();
      ws.onMessage((message) => { if (!silent) upstream.send(message); });
      upstream.onMessage((message) => { if (!silent) ws.send(message); });
      ws.onClose((code, reason) => upstream.close({ code, reason }));
      upstream.onClose((code, reason) => ws.close({ code, reason }));
    });
    await webLogin(a.page, server.base + '/?idle_ms=1000', 'wanda');
    await webLogin(b.page, server.base + '/', 'xavi');
    // A room with nothing in it yet: what comes while silent is all there will be.
    for (const page of [a.page, b.page]) {
      const join = page.getByLabel('Join or create a room');
      await join.fill('quiet');
      await join.press('Enter');
    }
    for (const page of [a.page, b.page]) await page.locator('#conv-sub', { hasText: '2 here' }).waitFor();
    await webSend(b.page, 'heard before the silence');
    await waitForBubble(a.page, 'heard before the silence', { from: 'xavi' });
    const nothingYet = b.page.getByLabel('Join or create a room');
    await nothingYet.fill('empty-so-far');
    await nothingYet.press('Enter');
    const c = a.page.getByLabel('Join or create a room');
    await c.fill('empty-so-far');
    await c.press('Enter');
    await a.page.locator('#messages .empty').waitFor();
    await b.page.locator('#conv-sub', { hasText: '2 here' }).waitFor();

    silent = true;
    await webSend(b.page, 'said into the silence, in a room that had nothing');
    await webOpenConversation(b.page, '# quiet');
    await webSend(b.page, 'said into the silence');
    await a.page.locator('#conn-status[data-conn="reconnecting"]').waitFor();
    silent = false;
    await waitOnline(a.page);
    await waitForBubble(a.page, 'said into the silence, in a room that had nothing', { from: 'xavi' });
    await until(async () => (await unreadOf(a.page, '# quiet')) === 1, { what: 'the missed message in # quiet' });
    await webOpenConversation(a.page, '# quiet');
    await waitForBubble(a.page, 'said into the silence', { from: 'xavi' });
    assert.deepEqual([...a.errors, ...b.errors], [], 'no script errors');
  });
});

describe('the web client resuming after time away', () => {
  let server;
  const browsers = [];
  after(async () => {
    const errors = browsers.flatMap((b) => b.errors);
    await Promise.all(browsers.map((b) => b.close()));
    if (server) await server.stop();
    assert.deepEqual(errors, [], 'no script errors in the pages');
  });

  it('gets what was said while it could not connect, once, with unread counts', { skip: NO_HISTORY }, async () => {
    server = await startServer();
    const { port, dataDir } = server;
    const a = await launchBrowser(); browsers.push(a);
    const b = await launchBrowser(); browsers.push(b);
    // Rita's network: her WebSocket connections go through while `away` is false.
    let away = false;
    await a.page.routeWebSocket(/\/ws$/, (ws) => {
      if (away) ws.close({ code: 1011, reason: 'no network' });
      else ws.connectToServer();
    });
    await webLogin(a.page, server.base + '/', 'rita');
    await webLogin(b.page, server.base + '/', 'sam');
    await webSend(b.page, 'seen before');
    await waitForBubble(a.page, 'seen before', { from: 'sam' });

    // The server restarts while rita's browser has no network: sam is back first and talks.
    away = true;
    await server.stop();
    await a.page.locator('#conn-status[data-conn="reconnecting"]').waitFor();
    await a.context.setOffline(true);
    server = await startServer({ port, dataDir });
    await waitOnline(b.page);
    await webSend(b.page, 'said while rita was away 1');
    await webSend(b.page, 'said while rita was away 2');
    await webOpenDirect(b.page, 'rita');
    await webSend(b.page, 'a direct message while you were away');
    assert.equal(await a.page.locator('#conn-status').getAttribute('data-conn'), 'reconnecting');

    away = false;
    await a.context.setOffline(false); // the browser's `online` event: reconnect now
    await waitOnline(a.page);
    await waitForBubble(a.page, 'said while rita was away 2', { from: 'sam' });
    const lobby = await bubbleTexts(a.page);
    assert.deepEqual(lobby.slice(-3), ['seen before', 'said while rita was away 1', 'said while rita was away 2']);
    assert.equal(lobby.filter((t) => t === 'seen before').length, 1, 'nothing twice');
    await until(async () => (await unreadOf(a.page, '@ sam')) === 1, { what: 'the unread direct message' });
    await webOpenConversation(a.page, '@ sam');
    await waitForBubble(a.page, 'a direct message while you were away', { from: 'sam' });
    assert.deepEqual([...a.errors, ...b.errors], [], 'no script errors');
  });
});
