// The watch page: register or log in, create or join a room, and watch its
// current movie in step with the other members (sync.ts), with chat,
// danmaku and the member list over the room's stream (stream.ts).
import "./style.css";
import { Api, errorText } from "./api";
import { RoomStream } from "./stream";
import { ClockEstimator, Corrector, DriftStats, SeekLead, defaultCorrector, roomPosition, type Playback } from "./sync";
import {
  MemberRole,
  MemberUpdate_Kind,
  Permission,
  type Member,
  type Movie,
  type RoomState,
  type ServerMessage,
  type User,
} from "./gen/synctv/client/v1/client_pb";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const video = $<HTMLVideoElement>("video");
const stats = $("stats");
const api = new Api(location.origin);
const clock = new ClockEstimator(16);
const drift = new DriftStats();
const lead = new SeekLead();
const startLead = new SeekLead();
// ?drift=synctv follows SyncTV instead: seek on every new state, no rate
// nudges, and seek only past 10 s of drift. The browser test measures it as
// the baseline.
const corrector = new Corrector(
  new URLSearchParams(location.search).get("drift") === "synctv"
    ? { ...defaultCorrector, nudgeAbove: Infinity, seekThreshold: 10, seekOnChange: true }
    : defaultCorrector,
);

/** The page's clock: wall time with sub-millisecond resolution. */
const now = () => performance.timeOrigin + performance.now();

function say(text: string, error = false): void {
  const s = $("status");
  s.textContent = text;
  s.className = error ? "error" : "";
}

function show(view: "auth" | "lobby" | "room"): void {
  for (const v of ["auth", "lobby", "room"]) $(v + "-view").hidden = v !== view;
  const u = api.session?.user;
  $("who").textContent = u ? `signed in as ${u.username}` : "";
  $("logout").hidden = !api.session;
}

// ---------------------------------------------------------------- clock

/** One NTP-style exchange with GET /time. */
async function sampleClock(): Promise<void> {
  const t0 = now();
  const r = await fetch(`/time?client_time=${Math.round(t0)}`, { cache: "no-store" });
  if (!r.ok) throw new Error(`/time answered ${r.status}`);
  const j = (await r.json()) as { serverReceiveTime: number; serverSendTime: number };
  clock.add({ clientSend: t0, serverReceive: j.serverReceiveTime, serverSend: j.serverSendTime, clientReceive: now() });
}

async function clockBurst(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await sampleClock().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------- room

interface RoomView {
  id: string;
  stream: RoomStream;
  me: Member | undefined;
  state: (Playback & { movieId: string; url: string }) | undefined;
  members: Map<string, Member>;
  movies: Movie[];
}

let room: RoomView | undefined;
let seekStarted = 0;
let playStarted = 0;
let mode = "–";

function can(p: Permission): boolean {
  const m = room?.me;
  if (!m) return false;
  return m.role === MemberRole.CREATOR || (m.permissions & BigInt(p)) !== 0n;
}

function applyPermissions(): void {
  const playback = can(Permission.CONTROL_PLAYBACK);
  for (const id of ["play", "pause", "back", "fwd", "seek"]) ($(id) as HTMLButtonElement).disabled = !playback;
  $("movie-form").querySelector("button")!.disabled = !can(Permission.ADD_MOVIE);
  $("chat-form").querySelector("button")!.disabled = !can(Permission.CHAT) && !can(Permission.DANMAKU);
}

/** Takes a state newer than the one held (responses and the stream race). */
function applyState(s: RoomState | undefined): void {
  if (!room || !s) return;
  if (room.state && BigInt(room.state.version) > s.version) return;
  const url = s.movie?.url ?? "";
  const changed = room.state?.movieId !== s.movieId;
  room.state = {
    playing: s.playing,
    position: s.position,
    rate: s.rate > 0 ? s.rate : 1,
    updatedAt: Number(s.updatedAt),
    version: Number(s.version),
    movieId: s.movieId,
    url,
  };
  corrector.reset();
  if (changed) {
    drift.reset();
    playStarted = 0;
    if (url) video.src = url;
    else video.removeAttribute("src");
    renderPlaylist();
  }
  // The room's state as the page holds it, for tests and curious readers.
  stats.dataset.version = String(s.version);
  stats.dataset.playing = String(s.playing);
  stats.dataset.position = String(s.position);
  stats.dataset.rate = String(room.state.rate);
  stats.dataset.updatedAt = String(s.updatedAt);
  tick();
}

/** Follows the room: called every 100 ms and on every state change. */
function tick(): void {
  const s = room?.state;
  if (!s || !s.url || video.readyState < HTMLMediaElement.HAVE_METADATA || video.seeking) return;
  const serverNow = now() + clock.offset;
  let target = roomPosition(s, serverNow);
  const end = Number.isFinite(video.duration) ? video.duration : Infinity;
  target = Math.max(0, Math.min(target, end));
  if (s.playing && video.paused && target < end) {
    // Starting takes a moment (learned like a seek's): start that far ahead.
    playStarted = now();
    video.currentTime = Math.min(end, target + startLead.seconds * s.rate);
    video.play().catch(() => {
      // Autoplay with sound needs a gesture: play muted, offer unmute.
      video.muted = true;
      $("unmute").hidden = false;
      video.play().catch(() => undefined);
    });
  } else if (!s.playing && !video.paused) {
    video.pause();
  }
  if (!s.playing) playStarted = 0;
  const d = video.currentTime - target;
  if (playStarted) {
    // Not moving yet: a nudge now would only slow the start.
    renderStats(d);
    return;
  }
  const c = corrector.next(d, s);
  mode = c.mode;
  if (c.seek && target < end) {
    seekStarted = now();
    video.playbackRate = c.rate;
    video.currentTime = Math.min(end, target + (s.playing ? lead.seconds * s.rate : 0));
  } else {
    video.playbackRate = c.rate;
    drift.add(d);
  }
  renderStats(d);
}

/** Milliseconds for the stats line (no "-0"). */
const ms = (x: number, digits = 0) => (Math.abs(x) < 0.5 * 10 ** -digits ? 0 : x).toFixed(digits);

function renderStats(d: number): void {
  const o = clock.offset;
  stats.dataset.offset = o.toFixed(2);
  stats.dataset.rtt = clock.rtt.toFixed(2);
  stats.dataset.drift = (d * 1000).toFixed(1);
  stats.dataset.mode = mode;
  stats.textContent =
    `clock offset ${ms(o, 1)} ms · rtt ${ms(clock.rtt, 1)} ms · ` +
    `drift ${ms(d * 1000)} ms (mean ${ms(drift.mean)}, max ${ms(drift.max)}) · ` +
    `${mode} · rate ${video.playbackRate.toFixed(3)}`;
  const seek = $<HTMLInputElement>("seek");
  if (Number.isFinite(video.duration)) seek.max = String(video.duration);
  if (document.activeElement !== seek) seek.value = String(video.currentTime);
  $("clock").textContent = `${fmt(video.currentTime)} / ${fmt(video.duration)}`;
}

function fmt(t: number): string {
  if (!Number.isFinite(t)) return "0:00";
  const s = Math.floor(t);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

video.addEventListener("playing", () => {
  if (playStarted) startLead.observe((now() - playStarted) / 1000);
  playStarted = 0;
});
video.addEventListener("seeked", () => {
  if (seekStarted && room?.state?.playing) lead.observe((now() - seekStarted) / 1000);
  seekStarted = 0;
});
video.addEventListener("loadedmetadata", () => tick());
setInterval(tick, 100);

function userName(u: User | undefined): string {
  return u ? (u.guest ? `${u.username} (guest)` : u.username) : "?";
}

function renderMembers(): void {
  const ul = $("members");
  ul.replaceChildren();
  if (!room) return;
  const list = [...room.members.values()].sort((a, b) => (a.user?.username ?? "").localeCompare(b.user?.username ?? ""));
  for (const m of list) {
    const li = document.createElement("li");
    li.className = m.online ? "online" : "offline";
    const role = m.role === MemberRole.CREATOR ? " · creator" : m.role === MemberRole.ADMIN ? " · admin" : "";
    li.textContent = userName(m.user) + role;
    ul.append(li);
  }
}

function renderPlaylist(): void {
  const ol = $("playlist");
  ol.replaceChildren();
  if (!room) return;
  for (const mv of room.movies) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = mv.title || mv.url;
    b.className = mv.id === room.state?.movieId ? "current" : "";
    b.disabled = !can(Permission.SET_CURRENT_MOVIE);
    b.onclick = () => act(() => api.client.setCurrentMovie({ roomId: room!.id, movieId: mv.id, version: version() }));
    li.append(b);
    ol.append(li);
  }
}

function addChat(u: User | undefined, text: string, kind: "chat" | "danmaku" | "note"): void {
  const ul = $("chat");
  const li = document.createElement("li");
  li.className = kind;
  if (kind === "note") {
    li.textContent = text;
  } else {
    const b = document.createElement("b");
    b.textContent = userName(u) + ": ";
    li.append(b, text);
  }
  ul.append(li);
  while (ul.children.length > 200) ul.firstElementChild!.remove();
  ul.scrollTop = ul.scrollHeight;
}

/** Flies a danmaku across the video; at most 40 at once. */
function flyDanmaku(text: string, color: string): void {
  const layer = $("danmaku");
  if (layer.childElementCount >= 40) layer.firstElementChild!.remove();
  const span = document.createElement("span");
  span.textContent = text;
  span.style.color = /^#[0-9a-f]{3,8}$/i.test(color) ? color : "#fff";
  span.style.top = `${5 + Math.floor(Math.random() * 8) * 10}%`;
  span.addEventListener("animationend", () => span.remove());
  layer.append(span);
}

function onMessage(m: ServerMessage): void {
  if (!room) return;
  const p = m.payload;
  switch (p.case) {
    case "roomState":
      applyState(p.value.state);
      break;
    case "ready":
      room.me = p.value.member;
      if (room.me?.user) room.members.set(room.me.user.id, room.me);
      renderMembers();
      if (p.value.truncated) addChat(undefined, "(older messages are no longer kept)", "note");
      applyPermissions();
      renderPlaylist();
      break;
    case "chat":
      addChat(p.value.user, p.value.content, "chat");
      break;
    case "danmaku":
      addChat(p.value.user, p.value.content, "danmaku");
      flyDanmaku(p.value.content, p.value.color);
      break;
    case "member": {
      const mem = p.value.member;
      const id = mem?.user?.id;
      if (!mem || !id) break;
      const K = MemberUpdate_Kind;
      if (p.value.kind === K.LEFT || p.value.kind === K.BANNED || p.value.kind === K.PENDING) room.members.delete(id);
      else room.members.set(id, mem);
      if (id === api.session?.user?.id && p.value.kind === K.PERMISSIONS_CHANGED) {
        room.me = mem;
        applyPermissions();
      }
      renderMembers();
      break;
    }
    case "playlist":
      room.movies = p.value.movies;
      renderPlaylist();
      break;
    case "room":
      if (p.value.deleted) say("The room was deleted.", true);
      else if (p.value.room) $("room-name").textContent = p.value.room.name;
      break;
    case "error":
      if (p.value.code.startsWith("TOKEN_") || p.value.code === "UNAUTHENTICATED") void api.refresh();
      else say(`${p.value.message} (${p.value.code})`, true);
      break;
  }
}

function version(): bigint {
  return BigInt(room?.state?.version ?? 0);
}

/** Runs a playback or playlist rpc; applies the state it answers with. */
async function act(f: () => Promise<{ state?: RoomState } | object>): Promise<void> {
  try {
    const r = await f();
    if ("state" in r) applyState(r.state);
    say("");
  } catch (e) {
    say(errorText(e), true);
  }
}

async function enterRoom(id: string, password = ""): Promise<void> {
  leaveView();
  try {
    const j = await api.client.joinRoom({ roomId: id, password });
    if (j.member?.status === 2 /* PENDING */) {
      say("Your request to join waits for approval.");
      show("lobby");
      return;
    }
    const [movies, members] = await Promise.all([
      api.client.getMovieList({ roomId: id, pageSize: 100 }),
      api.client.listMembers({ roomId: id, pageSize: 100 }),
    ]);
    const wsURL = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/api/room/ws`;
    room = {
      id,
      me: j.member,
      state: undefined,
      members: new Map(members.members.map((m) => [m.user?.id ?? "", m])),
      movies: movies.movies,
      stream: new RoomStream(wsURL, id, () => api.session?.accessToken ?? "", {
        message: onMessage,
        status: (open, reason) => {
          stats.dataset.stream = open ? "open" : "closed";
          if (!open) say(`stream ${reason ?? "closed"}`, true);
          else say("");
        },
      }),
    };
    $("room-name").textContent = j.room?.name ?? id;
    $("room-id").textContent = id;
    $("chat").replaceChildren();
    applyState(j.state);
    applyPermissions();
    renderMembers();
    renderPlaylist();
    show("room");
    if (location.hash !== `#/room/${id}`) history.replaceState(null, "", `#/room/${id}`);
  } catch (e) {
    // A password, or approval, is needed: offer the join form, filled in.
    say(errorText(e), true);
    $<HTMLFormElement>("join-form").querySelector<HTMLInputElement>("input[name=room]")!.value = id;
    show("lobby");
  }
}

function leaveView(): void {
  room?.stream.close();
  room = undefined;
  video.pause();
  video.removeAttribute("src");
  video.load();
}

// ---------------------------------------------------------------- controls

$("play").onclick = () => act(() => api.client.play({ roomId: room!.id, version: version() }));
$("pause").onclick = () => act(() => api.client.pause({ roomId: room!.id, version: version() }));
const seekTo = (pos: number) =>
  act(() => api.client.seek({ roomId: room!.id, version: version(), position: Math.max(0, pos) }));
$("back").onclick = () => seekTo(video.currentTime - 10);
$("fwd").onclick = () => seekTo(video.currentTime + 10);
$<HTMLInputElement>("seek").onchange = (e) => seekTo(Number((e.target as HTMLInputElement).value));
$("unmute").onclick = () => {
  video.muted = false;
  $("unmute").hidden = true;
};
$("leave").onclick = async () => {
  const id = room?.id;
  leaveView();
  if (id) await api.client.leaveRoom({ roomId: id }).catch((e) => say(errorText(e), true));
  location.hash = "#/";
};
$("logout").onclick = async () => {
  leaveView();
  await api.logout();
  location.hash = "#/";
  route();
};

$<HTMLFormElement>("chat-form").onsubmit = (e) => {
  e.preventDefault();
  const f = e.target as HTMLFormElement;
  const text = (f.elements.namedItem("text") as HTMLInputElement).value.trim();
  const asDanmaku = (f.elements.namedItem("danmaku") as HTMLInputElement).checked;
  if (!text || !room) return;
  const ok = asDanmaku
    ? room.stream.send({ case: "danmaku", value: { content: text, color: "#ffffff", position: video.currentTime } })
    : room.stream.send({ case: "chat", value: { content: text } });
  if (ok) f.reset();
  else say("not connected; try again in a moment", true);
};

$<HTMLFormElement>("movie-form").onsubmit = (e) => {
  e.preventDefault();
  const f = e.target as HTMLFormElement;
  const url = (f.elements.namedItem("url") as HTMLInputElement).value.trim();
  const title = (f.elements.namedItem("title") as HTMLInputElement).value.trim();
  void act(async () => {
    await api.client.addMovie({ roomId: room!.id, url, title });
    f.reset();
    return {};
  });
};

$<HTMLFormElement>("auth-form").onsubmit = async (e) => {
  e.preventDefault();
  const f = e.target as HTMLFormElement;
  const user = (f.elements.namedItem("username") as HTMLInputElement).value.trim();
  const pw = (f.elements.namedItem("password") as HTMLInputElement).value;
  const which = ((e as SubmitEvent).submitter as HTMLButtonElement | null)?.value ?? "login";
  try {
    if (which === "register") await api.register(user, pw);
    else await api.login(user, pw);
    say("");
    f.reset();
    route();
  } catch (err) {
    say(errorText(err), true);
  }
};

$<HTMLFormElement>("guest-form").onsubmit = async (e) => {
  e.preventDefault();
  const f = e.target as HTMLFormElement;
  const name = (f.elements.namedItem("name") as HTMLInputElement).value.trim();
  const password = (f.elements.namedItem("password") as HTMLInputElement).value;
  const id = roomInHash();
  if (!id) return;
  try {
    await api.guestJoin(id, name, password);
    say("");
    route();
  } catch (err) {
    say(errorText(err), true);
  }
};

$<HTMLFormElement>("create-form").onsubmit = async (e) => {
  e.preventDefault();
  const f = e.target as HTMLFormElement;
  const name = (f.elements.namedItem("name") as HTMLInputElement).value.trim();
  const password = (f.elements.namedItem("password") as HTMLInputElement).value;
  try {
    const r = await api.client.createRoom({ name, password });
    location.hash = `#/room/${r.room!.id}`;
  } catch (err) {
    say(errorText(err), true);
  }
};

$<HTMLFormElement>("join-form").onsubmit = (e) => {
  e.preventDefault();
  const f = e.target as HTMLFormElement;
  const id = (f.elements.namedItem("room") as HTMLInputElement).value.trim();
  const password = (f.elements.namedItem("password") as HTMLInputElement).value;
  void enterRoom(id, password);
};

let searchTimer: ReturnType<typeof setTimeout> | undefined;
$("room-search").oninput = () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => void listRooms(), 250);
};

async function listRooms(): Promise<void> {
  const search = $<HTMLInputElement>("room-search").value.trim();
  const ul = $("room-list");
  try {
    const r = await api.client.listRooms({ pageSize: 50, search });
    ul.replaceChildren();
    for (const rm of r.rooms) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = `#/room/${rm.id}`;
      a.textContent = rm.name;
      li.append(a, ` · ${rm.onlineCount}/${rm.memberCount} online${rm.hasPassword ? " · password" : ""}`);
      ul.append(li);
    }
    if (!r.rooms.length) ul.textContent = "No public rooms yet: create one.";
  } catch (err) {
    say(errorText(err), true);
  }
}

// ---------------------------------------------------------------- routing

function roomInHash(): string | undefined {
  return /^#\/room\/([A-Za-z0-9_-]{1,64})$/.exec(location.hash)?.[1];
}

function route(): void {
  const id = roomInHash();
  if (!api.session) {
    leaveView();
    $("guest-form").hidden = !id;
    show("auth");
    return;
  }
  if (id) {
    if (room?.id !== id) void enterRoom(id);
    return;
  }
  leaveView();
  show("lobby");
  void listRooms();
}

window.addEventListener("hashchange", route);
route();
// Estimate the clock offset now and keep it fresh: the min-RTT sample of
// the last 16 (about 30 s). A sample taken while the page or the machine
// is busy has a large rtt and loses to a quiet one.
void clockBurst(8);
setInterval(() => void sampleClock().catch(() => undefined), 2000);
// Keep the stream alive (the server closes idle ones).
setInterval(() => room?.stream.send({ case: "ping", value: { clientTime: BigInt(Math.round(now())) } }), 30_000);
