// driver.mjs drives Debian's chromium (playwright-core) for the Go tests in this directory.
//
// It launches one browser, then reads commands from stdin, one JSON object a line, and
// answers each on stdout with one JSON line: {"id", "op", "ok", "error"?, ...facts}. The Go
// test decides what to do and asserts the answers; this script only acts and observes.
// Every command has a timeout (cmd.timeout ms, default 15 s). The script closes the browser
// and exits when stdin closes, on SIGTERM, or after ROOMBOX_DRIVER_MAX_SECONDS in all.
//
// The first line it prints is {"event":"browser","pid":N}: chromium's pid, which is also its
// process group (playwright starts it detached), so the Go test can kill the whole browser.
//
// Commands (page names a browser tab; "open" creates it in a fresh context):
//   open {page, url}                 new context + page, navigate
//   goto {page, url}
//   fill {page, selector, value}
//   selectOption {page, selector, value}
//   click {page, selector}
//   wait {page, selector, state?}    visible (default), attached, hidden
//   waitAttr {page, selector, attr, value}
//   waitText {page, selector, pattern}  text matches the RegExp pattern
//   read {page, selector, attrs?}    -> text, attrs
//   video {page, selector, frames?, width?}  -> width, height, frames seen advancing
//                                    (width: once the picture decoded is that wide)
//   eval {page, expr, arg?}          -> value (expr is a function source: (arg) => ...)
//   diag {page}                      -> the page's console and its recent /api/ calls
//   screenshot {page, path}
//   close {page}
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const executablePath = process.env.ROOMBOX_CHROMIUM || '/usr/bin/chromium';
const maxSeconds = Number(process.env.ROOMBOX_DRIVER_MAX_SECONDS || 300);
const defaultTimeout = 15000;

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

let server;
let browser;
const pages = new Map(); // name -> {context, page, console: []}
let closing;

async function shutdown(code) {
  if (!closing) {
    closing = (async () => {
      try {
        if (browser) await browser.close();
      } catch {}
      try {
        if (server) await server.close();
      } catch {}
    })();
  }
  const hard = setTimeout(() => {
    try {
      if (server) server.kill();
    } catch {}
    process.exit(code || 1);
  }, 10000);
  await closing;
  clearTimeout(hard);
  process.exit(code);
}

setTimeout(() => {
  out({ event: 'deadline', error: `driver: ${maxSeconds}s passed; exiting` });
  shutdown(3);
}, maxSeconds * 1000).unref();
process.on('SIGTERM', () => shutdown(143));
process.on('SIGINT', () => shutdown(130));

try {
  server = await chromium.launchServer({
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: 30000,
  });
  out({ event: 'browser', pid: server.process().pid });
  browser = await chromium.connect(server.wsEndpoint(), { timeout: 30000 });
  out({ event: 'ready', version: browser.version() });
} catch (e) {
  out({ event: 'error', error: `launching ${executablePath}: ${e.message}` });
  await shutdown(2);
}

function pageOf(cmd) {
  const p = pages.get(cmd.page);
  if (!p) throw new Error(`no page named ${JSON.stringify(cmd.page)}`);
  return p.page;
}

const ops = {
  async open(cmd, timeout) {
    if (pages.has(cmd.page)) throw new Error(`page ${cmd.page} is already open`);
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const entry = { context, page, console: [] };
    page.on('console', (m) => {
      entry.console.push(`${m.type()}: ${m.text()}`);
      if (entry.console.length > 50) entry.console.shift();
    });
    page.on('pageerror', (e) => entry.console.push(`pageerror: ${e.message}`));
    // The page's API calls, for diagnosis: method, path, start time, body head, status.
    entry.network = [];
    page.on('request', (req) => {
      const u = new URL(req.url());
      if (!u.pathname.startsWith('/api/')) return;
      const body = (req.postData() || '').slice(0, 60);
      entry.network.push(`${new Date().toISOString()} ${req.method()} ${u.pathname} ${body}`);
      if (entry.network.length > 50) entry.network.shift();
    });
    page.on('response', (resp) => {
      const u = new URL(resp.url());
      if (!u.pathname.startsWith('/api/')) return;
      entry.network.push(`${new Date().toISOString()} ${resp.status()} ${resp.request().method()} ${u.pathname}`);
      if (entry.network.length > 50) entry.network.shift();
    });
    pages.set(cmd.page, entry);
    const resp = await page.goto(cmd.url, { timeout });
    return { status: resp ? resp.status() : 0, url: page.url() };
  },
  async goto(cmd, timeout) {
    const resp = await pageOf(cmd).goto(cmd.url, { timeout });
    return { status: resp ? resp.status() : 0, url: pageOf(cmd).url() };
  },
  async fill(cmd, timeout) {
    await pageOf(cmd).locator(cmd.selector).fill(cmd.value, { timeout });
    return {};
  },
  async selectOption(cmd, timeout) {
    await pageOf(cmd).locator(cmd.selector).selectOption(cmd.value, { timeout });
    return {};
  },
  async click(cmd, timeout) {
    await pageOf(cmd).locator(cmd.selector).click({ timeout });
    return {};
  },
  async wait(cmd, timeout) {
    await pageOf(cmd).locator(cmd.selector).waitFor({ state: cmd.state || 'visible', timeout });
    return {};
  },
  async waitAttr(cmd, timeout) {
    const loc = pageOf(cmd).locator(cmd.selector);
    await loc.waitFor({ state: 'attached', timeout });
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
      last = await loc.getAttribute(cmd.attr, { timeout });
      if (last === cmd.value) return { value: last };
      if (Date.now() > deadline) {
        throw new Error(`${cmd.selector}[${cmd.attr}] is ${JSON.stringify(last)}, want ${JSON.stringify(cmd.value)} after ${timeout} ms`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  },
  async waitText(cmd, timeout) {
    const loc = pageOf(cmd).locator(cmd.selector);
    await loc.waitFor({ state: 'attached', timeout });
    const re = new RegExp(cmd.pattern);
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
      last = (await loc.textContent({ timeout })) || '';
      if (re.test(last)) return { text: last.trim() };
      if (Date.now() > deadline) {
        throw new Error(`${cmd.selector} text is ${JSON.stringify(last.trim())}, want /${cmd.pattern}/ after ${timeout} ms`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  },
  async read(cmd, timeout) {
    const loc = pageOf(cmd).locator(cmd.selector);
    await loc.waitFor({ state: 'attached', timeout });
    const attrs = {};
    for (const a of cmd.attrs || []) attrs[a] = await loc.getAttribute(a, { timeout });
    return { text: ((await loc.textContent({ timeout })) || '').trim(), attrs };
  },
  // video waits until the element has decoded a picture (videoWidth > 0; `width` wide, if
  // given), then until the browser has presented `frames` more frames
  // (requestVideoFrameCallback, whose presentedFrames and mediaTime must both increase): the
  // stream is playing, not frozen.
  async video(cmd, timeout) {
    const page = pageOf(cmd);
    await page.locator(cmd.selector).waitFor({ state: 'attached', timeout });
    await page.waitForFunction(
      ({ sel, width }) => {
        const v = document.querySelector(sel);
        return v && v.videoWidth > 0 && v.videoHeight > 0 && (!width || v.videoWidth === width);
      },
      { sel: cmd.selector, width: cmd.width },
      { timeout, polling: 100 },
    );
    return await page.evaluate(
      ({ sel, want, timeout }) =>
        new Promise((resolve, reject) => {
          const v = document.querySelector(sel);
          const seen = [];
          const timer = setTimeout(
            () => reject(new Error(`${sel}: only ${seen.length} of ${want} frames advanced in ${timeout} ms (paused=${v.paused}, readyState=${v.readyState})`)),
            timeout,
          );
          const onFrame = (now, meta) => {
            const prev = seen[seen.length - 1];
            if (!prev || (meta.presentedFrames > prev.presentedFrames && meta.mediaTime > prev.mediaTime)) {
              seen.push({ presentedFrames: meta.presentedFrames, mediaTime: meta.mediaTime });
            }
            if (seen.length > want) {
              clearTimeout(timer);
              const q = v.getVideoPlaybackQuality();
              resolve({
                width: v.videoWidth,
                height: v.videoHeight,
                frames: seen.length - 1,
                firstMediaTime: seen[0].mediaTime,
                lastMediaTime: seen[seen.length - 1].mediaTime,
                totalVideoFrames: q.totalVideoFrames,
              });
              return;
            }
            v.requestVideoFrameCallback(onFrame);
          };
          v.requestVideoFrameCallback(onFrame);
        }),
      { sel: cmd.selector, want: cmd.frames || 10, timeout },
    );
  },
  async eval(cmd, timeout) {
    // expr is a function's source. Made a function here, playwright calls it in the page
    // with arg (a string alone would be evaluated as an expression, never called).
    const fn = new Function(`return (${cmd.expr});`)();
    if (typeof fn !== 'function') throw new Error(`eval: ${cmd.expr} is not a function`);
    const value = await Promise.race([
      pageOf(cmd).evaluate(fn, cmd.arg),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`eval: no answer in ${timeout} ms`)), timeout)),
    ]);
    return { value };
  },
  async diag(cmd) {
    const p = pages.get(cmd.page);
    if (!p) throw new Error(`no page named ${JSON.stringify(cmd.page)}`);
    return { console: p.console, network: p.network };
  },
  async screenshot(cmd, timeout) {
    await pageOf(cmd).screenshot({ path: cmd.path, fullPage: true, timeout });
    return { path: cmd.path };
  },
  async close(cmd) {
    const p = pages.get(cmd.page);
    if (p) {
      pages.delete(cmd.page);
      await p.context.close();
    }
    return {};
  },
};

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    out({ ok: false, error: `bad command line: ${e.message}` });
    continue;
  }
  const reply = { id: cmd.id, op: cmd.op };
  try {
    const fn = ops[cmd.op];
    if (!fn) throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
    Object.assign(reply, await fn(cmd, cmd.timeout || defaultTimeout), { ok: true });
  } catch (e) {
    reply.ok = false;
    reply.error = e.message.replace(/\x1b\[[0-9;]*m/g, "");
    const p = pages.get(cmd.page);
    if (p) reply.console = p.console.slice(-20);
  }
  out(reply);
}
await shutdown(0);
