import { describe, expect, it } from "vitest";
import { ClockEstimator, Corrector, DriftStats, SeekLead, measure, roomPosition, type Playback } from "./sync";

describe("measure", () => {
  it("finds the offset of a symmetric exchange exactly", () => {
    // Server 500 ms ahead; 20 ms each way; the server holds it 1 ms.
    const m = measure({ clientSend: 1000, serverReceive: 1520, serverSend: 1521, clientReceive: 1041 });
    expect(m.offset).toBe(500);
    expect(m.rtt).toBe(40);
  });

  it("errs by at most half the round trip when the paths differ", () => {
    // True offset -200; 5 ms there, 35 ms back.
    const m = measure({ clientSend: 0, serverReceive: -195, serverSend: -195, clientReceive: 40 });
    expect(Math.abs(m.offset - -200)).toBeLessThanOrEqual(m.rtt / 2);
  });
});

describe("ClockEstimator", () => {
  it("trusts the sample with the smallest round trip", () => {
    const c = new ClockEstimator(4);
    expect(c.offset).toBe(0);
    c.add({ clientSend: 0, serverReceive: 150, serverSend: 150, clientReceive: 200 }); // rtt 200, offset 50
    c.add({ clientSend: 1000, serverReceive: 1102, serverSend: 1102, clientReceive: 1004 }); // rtt 4, offset 100
    c.add({ clientSend: 2000, serverReceive: 2300, serverSend: 2300, clientReceive: 2400 }); // rtt 400
    expect(c.offset).toBe(100);
    expect(c.rtt).toBe(4);
  });

  it("forgets samples beyond the window", () => {
    const c = new ClockEstimator(2);
    c.add({ clientSend: 0, serverReceive: 11, serverSend: 11, clientReceive: 2 }); // rtt 2, offset 10
    c.add({ clientSend: 0, serverReceive: 25, serverSend: 25, clientReceive: 10 }); // rtt 10, offset 20
    c.add({ clientSend: 0, serverReceive: 35, serverSend: 35, clientReceive: 10 }); // rtt 10, offset 30
    expect(c.offset).toBe(20);
  });
});

const playing: Playback = { playing: true, position: 10, rate: 1, updatedAt: 100_000, version: 3 };

describe("roomPosition", () => {
  it("extrapolates a playing room from updated_at at its rate", () => {
    expect(roomPosition(playing, 102_500)).toBeCloseTo(12.5);
    expect(roomPosition({ ...playing, rate: 2 }, 101_000)).toBeCloseTo(12);
  });

  it("holds a paused room still", () => {
    expect(roomPosition({ ...playing, playing: false }, 200_000)).toBe(10);
  });
});

describe("Corrector", () => {
  it("leaves small drift alone", () => {
    expect(new Corrector().next(0.02, playing)).toEqual({ seek: false, rate: 1, mode: "in sync" });
  });

  it("nudges the rate against moderate drift, in proportion and bounded", () => {
    const c = new Corrector();
    const behind = c.next(-0.1, playing);
    expect(behind.mode).toBe("nudge");
    expect(behind.rate).toBeCloseTo(1.2);
    expect(new Corrector().next(0.3, playing).rate).toBeCloseTo(0.75); // capped at -25 %
    expect(new Corrector().next(-0.1, { ...playing, rate: 2 }).rate).toBeCloseTo(2.4);
  });

  it("keeps nudging until the drift is well inside the band (hysteresis)", () => {
    const c = new Corrector();
    expect(c.next(0.03, playing).mode).toBe("nudge");
    expect(c.next(0.015, playing).mode).toBe("nudge");
    expect(c.next(0.005, playing).mode).toBe("in sync");
    expect(c.next(0.015, playing).mode).toBe("in sync");
  });

  it("seeks on large drift and on any drift while paused", () => {
    expect(new Corrector().next(0.5, playing)).toEqual({ seek: true, rate: 1, mode: "seek" });
    expect(new Corrector().next(-3, playing).seek).toBe(true);
    const paused = { ...playing, playing: false };
    expect(new Corrector().next(0.05, paused).seek).toBe(true);
    expect(new Corrector().next(0.001, paused).seek).toBe(false);
  });
});

describe("Corrector with seekOnChange (the SyncTV baseline)", () => {
  it("seeks once after each new state, then only past the threshold", () => {
    const c = new Corrector({ nudgeAbove: Infinity, settleBelow: 0.008, seekThreshold: 10, horizon: 1, maxNudge: 0, seekOnChange: true });
    expect(c.next(0.001, playing).seek).toBe(false);
    c.reset();
    expect(c.next(0.001, playing).seek).toBe(true);
    expect(c.next(5, playing)).toEqual({ seek: false, rate: 1, mode: "in sync" });
    expect(c.next(11, playing).seek).toBe(true);
  });
});

describe("SeekLead", () => {
  it("moves toward observed seek times and stays within [0, 1] s", () => {
    const l = new SeekLead();
    for (let i = 0; i < 30; i++) l.observe(0.2);
    expect(l.seconds).toBeCloseTo(0.2, 3);
    for (let i = 0; i < 30; i++) l.observe(5);
    expect(l.seconds).toBeLessThanOrEqual(1);
  });
});

describe("DriftStats", () => {
  it("reports mean and max |drift| in ms over its window", () => {
    const d = new DriftStats(3);
    for (const x of [0.5, -0.01, 0.02, -0.03]) d.add(x);
    expect(d.max).toBeCloseTo(30);
    expect(d.mean).toBeCloseTo(20);
    d.reset();
    expect(d.max).toBe(0);
  });
});
