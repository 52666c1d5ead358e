// Live streams in the watch page (docs/live.md): when a LiveEvent STARTED
// arrives over the room's stream, a "Watch live" button appears; it swaps
// the playlist <video> for a second one that plays the stream's HTTP-FLV
// with mpegts.js (the token rides in the query: a media fetch cannot set
// headers). STOPPED, or the button again, swaps back.
import mpegts from "mpegts.js";
import { LiveEvent_Type, type LiveEvent } from "./gen/synctv/client/v1/client_pb";

let player: mpegts.Player | undefined;
let playPath = "";

const el = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function stop(): void {
  player?.destroy();
  player = undefined;
  el<HTMLVideoElement>("live-video").hidden = true;
  el<HTMLVideoElement>("video").hidden = false;
  el("live-toggle").textContent = "Watch live";
}

function start(token: string): void {
  if (!playPath || !mpegts.isSupported()) return;
  const v = el<HTMLVideoElement>("live-video");
  el<HTMLVideoElement>("video").pause();
  el<HTMLVideoElement>("video").hidden = true;
  v.hidden = false;
  player = mpegts.createPlayer({ type: "flv", isLive: true, url: `${playPath}?token=${encodeURIComponent(token)}` },
    { enableStashBuffer: false, liveBufferLatencyChasing: true });
  player.attachMediaElement(v);
  player.load();
  void v.play()?.catch(() => undefined);
  el("live-toggle").textContent = "Back to the playlist";
}

/** Wires the toggle; token gives the current access token. */
export function initLive(token: () => string): void {
  el("live-toggle").addEventListener("click", () => (player ? stop() : start(token())));
}

/** Applies a LiveEvent from the room's stream. */
export function onLiveEvent(ev: LiveEvent): void {
  const btn = el("live-toggle");
  if (ev.type === LiveEvent_Type.STARTED) {
    playPath = ev.playPath;
    btn.hidden = false;
  } else {
    playPath = "";
    btn.hidden = true;
    stop();
  }
}

/** Leaves live playback (the user left the room). */
export function leaveLive(): void {
  playPath = "";
  el("live-toggle").hidden = true;
  stop();
}
