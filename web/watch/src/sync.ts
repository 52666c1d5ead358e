// Clock offset estimation and drift correction: the sync algorithm of the
// watch page (docs/rooms.md, "Sync algorithm"). Pure functions and small
// classes without the DOM, so vitest covers them.

/** One NTP-style exchange; times are Unix milliseconds. */
export interface ClockSample {
  /** Client clock when the request left. */
  clientSend: number;
  /** Server clock when it read the request. */
  serverReceive: number;
  /** Server clock when it answered. */
  serverSend: number;
  /** Client clock when the answer arrived. */
  clientReceive: number;
}

/** offset is server minus client clock; rtt excludes the server's own time. */
export function measure(s: ClockSample): { offset: number; rtt: number } {
  const offset = (s.serverReceive - s.clientSend + (s.serverSend - s.clientReceive)) / 2;
  const rtt = s.clientReceive - s.clientSend - (s.serverSend - s.serverReceive);
  return { offset, rtt: Math.max(0, rtt) };
}

/**
 * ClockEstimator keeps the last samples and trusts the one with the
 * smallest round trip (NTP's clock filter): its error is bounded by rtt/2,
 * and a sample delayed by a busy network or event loop has a large rtt.
 */
export class ClockEstimator {
  private samples: { offset: number; rtt: number }[] = [];
  constructor(private readonly keep = 8) {}

  add(s: ClockSample): void {
    this.samples.push(measure(s));
    if (this.samples.length > this.keep) this.samples.shift();
  }

  get ready(): boolean {
    return this.samples.length > 0;
  }

  private best(): { offset: number; rtt: number } {
    let b = this.samples[0] ?? { offset: 0, rtt: Infinity };
    for (const s of this.samples) if (s.rtt < b.rtt) b = s;
    return b;
  }

  /** Server clock minus client clock, ms (0 before the first sample). */
  get offset(): number {
    return this.samples.length ? this.best().offset : 0;
  }

  /** Round trip of the sample the offset comes from, ms. */
  get rtt(): number {
    return this.best().rtt;
  }
}

/** The room's playback state as the page needs it. */
export interface Playback {
  playing: boolean;
  /** Seconds, true at updatedAt. */
  position: number;
  rate: number;
  /** Server clock, Unix ms. */
  updatedAt: number;
  version: number;
}

/** Where the room is at serverNow (Unix ms on the server's clock). */
export function roomPosition(p: Playback, serverNow: number): number {
  if (!p.playing) return p.position;
  return p.position + ((serverNow - p.updatedAt) / 1000) * p.rate;
}

/** What the player should do to follow the room. */
export interface Correction {
  /** Seek to the room's position (plus the seek lead while playing). */
  seek: boolean;
  /** playbackRate to use. */
  rate: number;
  /** "seek", "nudge" or "in sync", for the stats line. */
  mode: "seek" | "nudge" | "in sync";
}

export interface CorrectorOptions {
  /** A nudge starts when the drift exceeds this (s)... */
  nudgeAbove: number;
  /** ...and ends when it falls below this (s): hysteresis, so the rate
   * does not flap at the edge. */
  settleBelow: number;
  /** Drift above this is fixed by seeking (s); below, by the rate. */
  seekThreshold: number;
  /** The rate nudge removes the drift over about this long (s). */
  horizon: number;
  /** Largest relative rate change of a nudge (0.25 = ±25 %). */
  maxNudge: number;
  /** Seek once after every new room state, whatever the drift (SyncTV's
   * way; the baseline the browser test measures). */
  seekOnChange?: boolean;
}

export const defaultCorrector: CorrectorOptions = {
  nudgeAbove: 0.025,
  settleBelow: 0.008,
  seekThreshold: 0.4,
  horizon: 0.5,
  maxNudge: 0.25,
};

/**
 * Corrector decides how to remove drift = player position - room position
 * (seconds, positive when the player is ahead). Small drift changes the
 * playback rate in proportion (the picture never jumps) until it is below
 * settleBelow; large drift, or drift while paused, seeks.
 */
export class Corrector {
  private nudging = false;
  private pendingSeek = false;
  constructor(private readonly o: CorrectorOptions = defaultCorrector) {}

  next(drift: number, p: Playback): Correction {
    const o = this.o;
    const room = p.rate > 0 ? p.rate : 1;
    const abs = Math.abs(drift);
    if (this.pendingSeek) {
      this.pendingSeek = false;
      return { seek: true, rate: room, mode: "seek" };
    }
    if (!p.playing) {
      this.nudging = false;
      return abs > o.settleBelow ? { seek: true, rate: room, mode: "seek" } : { seek: false, rate: room, mode: "in sync" };
    }
    if (abs > o.seekThreshold) {
      this.nudging = false;
      return { seek: true, rate: room, mode: "seek" };
    }
    if (abs > o.nudgeAbove) this.nudging = true;
    else if (abs < o.settleBelow) this.nudging = false;
    if (!this.nudging) return { seek: false, rate: room, mode: "in sync" };
    const nudge = Math.max(-o.maxNudge, Math.min(o.maxNudge, -drift / o.horizon));
    return { seek: false, rate: room * (1 + nudge), mode: "nudge" };
  }

  /** A new room state: forgets a nudge in progress. */
  reset(): void {
    this.nudging = false;
    this.pendingSeek = !!this.o.seekOnChange;
  }
}

/** Running statistics of |drift| for the stats line (ms). */
export class DriftStats {
  private window: number[] = [];
  constructor(private readonly keep = 50) {}

  add(driftSeconds: number): void {
    this.window.push(Math.abs(driftSeconds) * 1000);
    if (this.window.length > this.keep) this.window.shift();
  }

  reset(): void {
    this.window = [];
  }

  /** Largest |drift| in the window, ms. */
  get max(): number {
    return this.window.length ? Math.max(...this.window) : 0;
  }

  /** Mean |drift| in the window, ms. */
  get mean(): number {
    return this.window.length ? this.window.reduce((a, b) => a + b, 0) / this.window.length : 0;
  }
}

/**
 * SeekLead learns how long a seek takes while playing (the player stands
 * still meanwhile), so a seek aims that far ahead of the room. An
 * exponentially weighted mean, clamped to [0, 1] s.
 */
export class SeekLead {
  private value = 0.05;
  private readonly alpha = 0.3;

  /** Seconds to aim ahead. */
  get seconds(): number {
    return this.value;
  }

  /** A seek took this long (s). */
  observe(took: number): void {
    const t = Math.max(0, Math.min(1, took));
    this.value = this.value * (1 - this.alpha) + t * this.alpha;
  }
}
