// Registered nicknames, read markers, edit and delete, replies, typing, search and mentions in
// the web client, against the real server in real headless Chromium processes.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, webOpenDirect, webOpenConversation, webSend, waitForBubble,
  waitOnline, unreadOf, until, NO_HISTORY,
} from './harness.mjs';

/** Logs in as `nick`, with `password` when given; resolves once the page is online. */
async function loginWithPassword(page, url, nick, password) {
  await page.goto(url);
  await page.getByLabel('Nickname').fill(nick);
  if (password !== undefined) await page.getByLabel(/^Password/).fill(password);
  await page.getByRole('button', { name: 'Join chat' }).click();
  await waitOnline(page);
}

/** Tries to log in and returns the error the login form shows. */
async function loginError(page, url, nick, password) {
  await page.goto(url);
  await page.getByLabel('Nickname').fill(nick);
  await page.getByLabel(/^Password/).fill(password ?? '');
  await page.getByRole('button', { name: 'Join chat' }).click();
  const error = page.locator('#login-error');
  await until(async () => (await error.textContent()).trim() !== '', { what: 'a login error' });
  return error.textContent();
}

/** The bubble (list item) of the message whose text is `text`, in the open conversation. */
function messageItem(page, text) {
  return page.locator('#messages .msg', { has: page.locator('.bubble', { hasText: text }) }).last();
}

/**
 * Records the frames of type `type` the page sends from now on, on its WebSocket (also one
 * opened before). Returns a function that resolves to them.
 */
async function recordSent(page, type) {
  const mark = await page.evaluate(() => {
    if (!window.__sentFrames) {
      window.__sentFrames = [];
      const original = WebSocket.prototype.send;
      WebSocket.prototype.send = function send(data) {
        try { window.__sentFrames.push(JSON.parse(data)); } catch { /* not JSON */ }
        return original.call(this, data);
      };
    }
    return window.__sentFrames.length;
  });
  return () => page.evaluate(({ mark, type }) => window.__sentFrames.slice(mark).filter((f) => f.type === type), { mark, type });
}

describe('the web client with the newer server features', () => {
  let server;
  const browsers = [];
  const browser = async (options) => { const b = await launchBrowser(options); browsers.push(b); return b; };
  const PASSWORD = 'correct horse battery';
  /** Two sessions of the registered user alice, and bob, from the first test on. */
  let alice1; let alice2; let bob;

  before(async () => { server = await startServer(); });
  after(async () => {
    const errors = browsers.flatMap((b) => b.errors);
    await Promise.all(browsers.map((b) => b.close()));
    if (server) await server.stop();
    assert.deepEqual(errors, [], 'no script errors in the pages');
  });

  it('registers a nickname, after which logging in under it needs the password', async () => {
    ({ page: alice1 } = await browser());
    await loginWithPassword(alice1, server.base + '/', 'alice');
    await alice1.getByRole('button', { name: 'Register my nickname' }).click();
    const field = alice1.getByLabel(/^New password/);
    await field.fill('short');
    await alice1.getByRole('button', { name: 'Register', exact: true }).click();
    await alice1.locator('#notice-text', { hasText: /8 to 128/ }).waitFor();
    await field.fill(PASSWORD);
    await field.press('Enter');
    await alice1.locator('#register-status', { hasText: /alice is registered/ }).waitFor();

    ({ page: alice2 } = await browser());
    assert.match(await loginError(alice2, server.base + '/', 'alice', ''), /registered: enter its password/);
    assert.equal(await alice2.evaluate(() => document.activeElement.id), 'password', 'the password field has the focus');
    assert.match(await loginError(alice2, server.base + '/', 'alice', 'not the password'), /Wrong password for alice/);
    await loginWithPassword(alice2, server.base + '/', 'alice', PASSWORD);
    assert.equal(await alice2.locator('#me').textContent(), 'alice');
    assert.ok(await alice1.locator('#conn-status[data-conn="online"]').isVisible(), 'the first session stays');
  });

  it('counts unread messages, clears them when read, in every session of the user', async () => {
    ({ page: bob } = await browser());
    await loginWithPassword(bob, server.base + '/', 'bob');
    await webOpenDirect(bob, 'alice');
    const read = await recordSent(alice1, 'read');
    await webSend(bob, 'are you there?');
    await webSend(bob, 'lunch at noon?');

    // Both sessions of alice have the lobby open: the direct chat gets a badge in each.
    for (const page of [alice1, alice2]) {
      await until(async () => (await unreadOf(page, '@ bob')) === 2, { what: "alice's unread count for bob" });
      await until(async () => (await page.title()).startsWith('(2) '), { what: 'the unread count in the title' });
    }

    await webOpenConversation(alice1, '@ bob');
    await waitForBubble(alice1, 'lunch at noon?', { from: 'bob' });
    assert.equal(await unreadOf(alice1, '@ bob'), 0, 'opening a conversation clears its count');
    await until(async () => (await read()).some((f) => f.to === 'bob' && f.up_to > 0), { what: 'a read frame for bob' });
    // The server tells the other session, which was not looking.
    await until(async () => (await unreadOf(alice2, '@ bob')) === 0, { what: 'the count cleared in the other session' });
    await until(async () => !(await alice2.title()).startsWith('('), { what: 'the title without a count' });

    // A login later gets the server's count of what came since.
    await webOpenConversation(alice1, '# lobby');
    await webSend(bob, 'one more thing');
    for (const page of [alice1, alice2]) {
      await until(async () => (await unreadOf(page, '@ bob')) === 1, { what: 'a new message counted' });
    }
    const { page: alice3 } = await browser();
    await loginWithPassword(alice3, server.base + '/', 'alice', PASSWORD);
    await until(async () => (await unreadOf(alice3, '@ bob')) === 1, { what: "the server's count at login" });
  });

  it('edits and deletes own messages, and the other side sees both', async () => {
    await webOpenConversation(alice1, '@ bob');
    await webSend(alice1, 'see you at 12');
    await waitForBubble(bob, 'see you at 12', { from: 'alice' });

    // Others' messages can be answered, not changed.
    const theirs = messageItem(alice1, 'lunch at noon?');
    await theirs.hover();
    assert.equal(await theirs.getByRole('button', { name: /^Edit/ }).count(), 0, 'no edit on a message of someone else');

    const mine = messageItem(alice1, 'see you at 12');
    await mine.hover();
    await mine.getByRole('button', { name: /^Edit: see you at 12/ }).click();
    const box = alice1.getByLabel('Message @ bob');
    assert.equal(await box.inputValue(), 'see you at 12', 'the composer holds the text to edit');
    await alice1.locator('#context-bar', { hasText: 'Editing' }).waitFor();
    await box.fill('see you at 1');
    await box.press('Enter');

    for (const page of [bob, alice1]) {
      const item = messageItem(page, 'see you at 1');
      await item.locator('.edited', { hasText: '(edited)' }).waitFor();
      assert.equal(await item.locator('.bubble').textContent(), 'see you at 1');
    }
    assert.equal(await alice1.locator('#context-bar').isVisible(), false, 'the edit bar is gone');

    // Up in the empty composer edits the last own message; Esc gives up.
    await box.focus();
    await alice1.keyboard.press('ArrowUp');
    assert.equal(await box.inputValue(), 'see you at 1');
    await alice1.keyboard.press('Escape');
    assert.equal(await box.inputValue(), '', 'Esc empties the composer');
    assert.equal(await alice1.locator('#context-bar').isVisible(), false);

    // Delete asks first, by keyboard as well.
    const edited = messageItem(alice1, 'see you at 1');
    await edited.getByRole('button', { name: /^Delete: see you at 1/ }).focus();
    await alice1.keyboard.press('Enter');
    await edited.getByRole('button', { name: 'Keep' }).waitFor();
    assert.equal(await alice1.evaluate(() => document.activeElement.textContent), 'Delete', 'the confirmation has the focus');
    await alice1.keyboard.press('Enter');
    for (const page of [bob, alice1]) {
      await page.locator('#messages .msg.deleted .bubble', { hasText: 'message deleted' }).waitFor();
      assert.equal(await page.locator('#messages .bubble', { hasText: 'see you at 1' }).count(), 0);
    }
  });

  it('answers a message with a quote of it, and Esc cancels a reply', async () => {
    const item = messageItem(alice1, 'are you there?');
    await item.hover();
    await item.getByRole('button', { name: /^Reply to bob/ }).click();
    const bar = alice1.locator('#context-bar');
    await bar.locator('#context-text', { hasText: 'Replying to bob: are you there?' }).waitFor();
    await alice1.keyboard.press('Escape');
    assert.equal(await bar.isVisible(), false, 'Esc cancels the reply');

    await item.hover();
    await item.getByRole('button', { name: /^Reply to bob/ }).click();
    await bar.waitFor();
    const sent = await recordSent(alice1, 'send');
    await webSend(alice1, 'yes, here');
    assert.equal(await bar.isVisible(), false, 'the reply bar goes once sent');
    assert.ok((await sent()).some((f) => f.text === 'yes, here' && Number.isInteger(f.reply_to)), 'the send carries reply_to');
    for (const page of [bob, alice1]) {
      await waitForBubble(page, 'yes, here', { from: 'alice' });
      const quote = messageItem(page, 'yes, here').locator('.quote');
      await quote.waitFor();
      assert.match(await quote.textContent(), /bob: are you there\?/);
    }
  });

  it('shows who is typing, sending at most one notice per few seconds', async () => {
    const typingSent = await recordSent(bob, 'typing');
    const box = bob.getByLabel('Message @ alice');
    await box.focus();
    const started = Date.now();
    await bob.keyboard.type('typing slowly here', { delay: 40 });
    await alice1.locator('#typing', { hasText: 'bob is typing…' }).waitFor();
    const typing = await typingSent();
    // Typing 18 keys takes under a second, but a loaded machine can stretch it past the 3 s
    // after which one more notice is due: at most one notice per 3 s started.
    const elapsed = Date.now() - started;
    const allowed = 1 + Math.floor(elapsed / 3000);
    assert.ok(typing.length >= 1 && typing.length <= allowed,
      `${typing.length} typing notices in ${elapsed} ms (at most ${allowed})`);
    assert.deepEqual(typing[0], { type: 'typing', to: 'alice' });
    // It goes when the message comes.
    await box.press('Enter');
    await waitForBubble(alice1, 'typing slowly here', { from: 'bob' });
    await until(async () => (await alice1.locator('#typing').textContent()) === '', { what: 'the typing line cleared' });
  });

  it('highlights mentions of nicknames, as text', async () => {
    await webOpenConversation(alice1, '# lobby');
    await webOpenConversation(bob, '# lobby');
    await webSend(bob, 'hey @alice, ask @carol <b>now</b>');
    await waitForBubble(alice1, 'hey @alice, ask @carol <b>now</b>', { from: 'bob' });
    const item = messageItem(alice1, 'hey @alice');
    assert.deepEqual(await item.locator('.mention').allTextContents(), ['@alice', '@carol']);
    assert.deepEqual(await item.locator('.mention.me').allTextContents(), ['@alice'], 'the own nick stands out');
    assert.equal(await item.locator('.bubble b').count(), 0);
  });

  it('asks for notification permission only when the user turns them on', async () => {
    const { page, context } = await browser();
    await page.addInitScript(() => {
      window.__permissionAsked = 0;
      const ask = Notification.requestPermission.bind(Notification);
      Notification.requestPermission = (...args) => { window.__permissionAsked += 1; return ask(...args); };
    });
    await context.grantPermissions(['notifications'], { origin: server.base });
    await loginWithPassword(page, server.base + '/', 'nora');
    assert.equal(await page.evaluate(() => window.__permissionAsked), 0, 'no prompt on load');
    const button = page.getByRole('button', { name: 'Enable notifications' });
    await button.click();
    await page.getByRole('button', { name: 'Turn notifications off' }).waitFor();
    assert.equal(await page.locator('#notify-enable').getAttribute('aria-pressed'), 'true');
  });

  it('finds messages in English and Chinese and opens them in place', { skip: NO_HISTORY }, async () => {
    await webSend(bob, '明天我们去北京开会');
    // A room with more history than the first page, the result at its start.
    const join = bob.getByLabel('Join or create a room');
    await join.fill('reports');
    await join.press('Enter');
    await bob.locator('#conv-name', { hasText: '# reports' }).waitFor();
    await webSend(bob, 'the quarterly report is ready');
    for (let i = 1; i <= 60; i += 1) await webSend(bob, `filler ${i}`);

    const { page: carol } = await browser({ viewport: { width: 900, height: 600 } });
    await loginWithPassword(carol, server.base + '/', 'carol');
    const field = carol.getByLabel('Join or create a room');
    await field.fill('reports');
    await field.press('Enter');
    await waitForBubble(carol, 'filler 60', { from: 'bob' });
    assert.equal(await carol.locator('#messages .bubble', { hasText: 'quarterly' }).count(), 0, 'not on the first page');
    await webOpenConversation(carol, '# lobby');

    const search = carol.getByLabel('Search messages');
    await search.fill('quarterly');
    await search.press('Enter');
    const result = carol.locator('#search-results .result', { hasText: 'the quarterly report is ready' });
    await result.waitFor();
    assert.match(await result.locator('.where').textContent(), /# reports · bob/);
    await result.click();
    await carol.locator('#conv-name', { hasText: '# reports' }).waitFor();
    const target = messageItem(carol, 'the quarterly report is ready');
    await target.waitFor();
    await until(() => target.evaluate((item) => {
      const list = document.getElementById('messages').getBoundingClientRect();
      const box = item.getBoundingClientRect();
      return box.top >= list.top && box.bottom <= list.bottom;
    }), { what: 'the result scrolled into view' });
    // What lies between it and the newest was loaded too, once each.
    const texts = await carol.locator('#messages .msg .bubble').allTextContents();
    const fillers = texts.filter((t) => t.startsWith('filler '));
    assert.deepEqual(fillers, Array.from({ length: 60 }, (_, i) => `filler ${i + 1}`), 'no gap, no duplicate');

    await search.fill('北京开会');
    await search.press('Enter');
    const chinese = carol.locator('#search-results .result', { hasText: '明天我们去北京开会' });
    await chinese.waitFor();
    await chinese.click();
    await carol.locator('#conv-name', { hasText: '# lobby' }).waitFor();
    await messageItem(carol, '明天我们去北京开会').waitFor();

    await search.fill('no such words anywhere');
    await search.press('Enter');
    await carol.locator('#search-status', { hasText: 'Nothing found' }).waitFor();

    // More matches than one answer holds: the older ones come on asking, after the others.
    await search.fill('filler');
    await search.press('Enter');
    await carol.locator('#search-status', { hasText: '50 found for “filler” among the newest messages' }).waitFor();
    await carol.getByRole('button', { name: 'Search older messages' }).click();
    await carol.locator('#search-status', { hasText: /^60 found for “filler”$/ }).waitFor();
    const found = await carol.locator('#search-results .result .text').allTextContents();
    assert.deepEqual(found, Array.from({ length: 60 }, (_, i) => `filler ${60 - i}`), 'newest first, no gap, no duplicate');
    assert.ok(await carol.locator('#search-older').isHidden(), 'nothing older to search');
  });
});
