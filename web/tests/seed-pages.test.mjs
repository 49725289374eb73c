// The original seed pages, unchanged but for their hard-coded WebSocket address, served from
// their own loopback HTTP server (so their Origin differs from the chat server's), against the
// real server in real headless Chromium processes.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, serveSeedPages, webLogin, webOpenDirect, webOpenConversation,
  webSend, waitForBubble, until, WAIT_MS,
} from './harness.mjs';

/** The lines of the seed pages' `#chat_list`, as shown. */
function chatLines(page) {
  return page.locator('#chat_list p').allInnerTexts();
}

async function waitForLine(page, line) {
  await until(async () => (await chatLines(page)).includes(line), {
    what: `the line ${JSON.stringify(line)}`,
  }).catch(async (err) => {
    throw new Error(`${err.message}; the page shows ${JSON.stringify(await chatLines(page))}`);
  });
}

/** Opens the single-chat page and logs in; its welcome alert() tells that the socket is open. */
async function seedSingleLogin(page, url, nick) {
  page.on('dialog', (dialog) => dialog.accept().catch(() => {}));
  await page.goto(url);
  await page.fill('#nkname', nick);
  const welcome = page.waitForEvent('dialog', { timeout: WAIT_MS });
  await page.getByRole('button', { name: '登录聊天室' }).click();
  const dialog = await welcome;
  assert.equal(dialog.message(), `欢迎${nick}登录对骂平台!!`);
}

async function seedSingleSend(page, to, text) {
  await page.fill('#to_user', to);
  await page.fill('#message', text);
  await page.getByRole('button', { name: '发送' }).click();
  await waitForLine(page, `${text}<-我`);
}

/** Opens the group page; it connects on load, and has nothing visible to say so. */
async function seedGroupOpen(page, url) {
  await page.goto(url);
  await page.waitForFunction(() => typeof ws === 'object' && ws !== null && ws.readyState === WebSocket.OPEN);
}

async function seedGroupSend(page, text) {
  await page.fill('#message', text);
  await page.getByRole('button', { name: '发送' }).click();
}

describe('the seed pages', () => {
  let server;
  let pages;
  const browsers = [];
  const browser = async () => { const b = await launchBrowser(); browsers.push(b); return b.page; };

  before(async () => {
    server = await startServer();
    pages = await serveSeedPages(server.hostPort);
  });
  after(async () => {
    await Promise.all(browsers.map((b) => b.close()));
    if (pages) await pages.close();
    if (server) await server.stop();
  });

  it('single chat: two seed pages write to each other', async () => {
    const amy = await browser();
    const ben = await browser();
    await seedSingleLogin(amy, pages.singleUrl, 'amy');
    await seedSingleLogin(ben, pages.singleUrl, 'ben');
    await seedSingleSend(amy, 'ben', 'hello ben');
    await waitForLine(ben, 'amy-->hello ben');
    await seedSingleSend(ben, 'amy', '你好 amy 😀');
    await waitForLine(amy, 'ben-->你好 amy 😀');
  });

  it('single chat: a message to someone offline brings a notice from system', async () => {
    const cleo = await browser();
    await seedSingleLogin(cleo, pages.singleUrl, 'cleo');
    await seedSingleSend(cleo, 'nobody-here', 'anyone?');
    await until(async () => (await chatLines(cleo)).some((l) => l.startsWith('system-->') && l.includes('nobody-here')),
      { what: 'a notice from system' });
  });

  it('single chat: a seed page and the web client write to each other', async () => {
    const dora = await browser();
    const wen = await browser();
    await seedSingleLogin(dora, pages.singleUrl, 'dora');
    await webLogin(wen, server.base + '/', 'wen');

    await webOpenDirect(wen, 'dora');
    await webSend(wen, '你好 dora, from the web client');
    await waitForLine(dora, 'wen-->你好 dora, from the web client');

    await seedSingleSend(dora, 'wen', 'hi wen 👋 <b>not bold</b>');
    await waitForBubble(wen, 'hi wen 👋 <b>not bold</b>', { from: 'dora' });
    await webOpenConversation(wen, '@ dora');
  });

  it('group chat: three pages see each other, and a native user shows as "name: text"', async () => {
    const g1 = await browser();
    const g2 = await browser();
    const g3 = await browser();
    const native = await browser();
    await webLogin(native, server.base + '/', 'lin');
    for (const page of [g1, g2, g3]) await seedGroupOpen(page, pages.groupUrl);

    await seedGroupSend(g1, '大家好, from the first group page 🎈');
    for (const page of [g2, g3]) await waitForLine(page, '大家好, from the first group page 🎈');
    // The native user sees it in the lobby, from a guest name.
    await waitForBubble(native, '大家好, from the first group page 🎈', { from: 'guest-' });

    await webSend(native, 'hello pages 你好');
    for (const page of [g1, g2, g3]) await waitForLine(page, 'lin: hello pages 你好');

    // The sender's page does not get its own message back.
    assert.equal((await chatLines(g1)).filter((l) => l.includes('from the first group page')).length, 0);
  });
});
