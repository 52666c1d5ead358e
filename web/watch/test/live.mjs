// The watch page plays a live stream (docs/live.md): starts a real
// `croupier dev` on free ports, registers a user in the demo room in
// Debian's chromium (playwright-core, never a downloaded browser), publishes
// a test pattern with ffmpeg to the ingest URL dev printed, switches the
// page to the live stream when its LiveEvent arrives and asserts that the
// live <video>'s time advances (mpegts.js over HTTP-FLV).
//
//   node test/live.mjs            (CROUPIER_BIN defaults to ../../bin/croupier)
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(process.env.CROUPIER_BIN ?? join(here, "../../../bin/croupier"));
const dataDir = mkdtempSync(join(tmpdir(), "croupier-live-"));
const procs = [];
let browser;
const watchdog = setTimeout(() => fail(new Error("the live browser test took longer than 180 s")), 180_000);

async function cleanup() {
  clearTimeout(watchdog);
  await browser?.close().catch(() => undefined);
  for (const p of procs.reverse()) {
    if (p.exitCode !== null) continue;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(t);
  }
  rmSync(dataDir, { recursive: true, force: true });
}

async function fail(err) {
  console.error("FAIL:", err?.stack ?? err);
  await cleanup();
  process.exit(1);
}

/** Polls f every 100 ms until it returns a truthy value or timeoutMs passes. */
async function waitFor(what, f, timeoutMs) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function startDev() {
  const dev = spawn(bin, ["dev", "--data-dir", dataDir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
    "--tunnel-http-addr", "", "--sdk-addr", "127.0.0.1:0", "--gse-addr", "", "--gateway-addr", "",
    "--rooms-addr", "127.0.0.1:0", "--rtmp-addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0", "--players", "1"],
  { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CROUPIER_ADMIN_PASSWORD: "live-test-admin-pw" } });
  procs.push(dev);
  let stdout = "";
  dev.stderr.resume();
  return new Promise((ok, reject) => {
    const t = setTimeout(() => reject(new Error(`croupier dev printed no ingest URL in 60 s:\n${stdout}`)), 60_000);
    dev.stdout.on("data", (b) => {
      stdout += b;
      const page = /watch page\s+(http:\/\/\S+)/.exec(stdout);
      const ingest = /live ingest\s+(rtmp:\/\/\S+)/.exec(stdout);
      if (page && ingest) {
        clearTimeout(t);
        ok({ page: page[1], ingest: ingest[1] });
      }
    });
    dev.once("exit", (code) => reject(new Error(`croupier dev exited (${code}):\n${stdout}`)));
  });
}

try {
  const { page: url, ingest } = await startDev();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
  });
  var page = await browser.newPage();
  var logs = [];
  page.on("console", (m) => logs.push(m.text()));
  page.on("pageerror", (e) => logs.push(String(e)));
  await page.goto(url);
  await page.fill("#auth-form input[name=username]", "viewer");
  await page.fill("#auth-form input[name=password]", "live-test-viewer-pw");
  await page.click("#auth-form button[value=register]");
  await waitFor("the room stream open", () => page.evaluate(() => document.getElementById("stats").dataset.stream === "open"), 20_000);

  const ff = spawn("ffmpeg", ["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
    "-f", "lavfi", "-i", "sine", "-t", "60", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
    "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", ingest], { stdio: ["ignore", "ignore", "inherit"] });
  procs.push(ff);

  await waitFor("the Watch live button (LiveEvent STARTED)", () => page.isVisible("#live-toggle"), 30_000);
  await page.click("#live-toggle");
  const t1 = await waitFor("the live video playing", () => page.evaluate(() => {
    const v = document.getElementById("live-video");
    return !v.hidden && v.currentTime > 0.5 ? v.currentTime : 0;
  }), 30_000);
  const t2 = await waitFor("the live video's time advancing", () => page.evaluate((t) => {
    const v = document.getElementById("live-video");
    return v.currentTime > t + 1 ? v.currentTime : 0;
  }, t1), 15_000);
  const hidden = await page.evaluate(() => document.getElementById("video").hidden);
  if (!hidden) throw new Error("the playlist video is still shown while live");
  console.log(`live: the live <video> played ${t1.toFixed(2)} s → ${t2.toFixed(2)} s`);
  await cleanup();
  process.exit(0);
} catch (err) {
  if (typeof logs !== "undefined") console.error(logs.slice(-20).join("\n"));
  await fail(err);
}
