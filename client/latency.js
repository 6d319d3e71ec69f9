// dyadic latency meter: where each millisecond of a presented frame went, live in the page.
//
// The server streams the trace of every frame it sends (engine/protocol.py "trace": monotonic
// seconds per stage, and the frame's pts); this page records, for every frame it presents,
// requestVideoFrameCallback's rtpTimestamp, receiveTime, processingDuration and presentationTime.
// Two mappings join them (engine/profiling does the same for `dyadic profile`):
// - the RTP clock: the sender adds one random 32-bit origin to every pts, found as the
//   (rtpTimestamp - pts) difference that pairs the most frames and arrives soonest after sending
//   (rtpOrigin: engine/profiling/rtp.py step for step, checked by tests/test_client_agrees.py);
// - the clock offset to the server's monotonic clock, from ping/pong over the websocket (the pong
//   with the smallest round trip wins: its error is at most half that round trip).
// With frame ids on, each presented frame's index is also read from its pixels (readFrameId:
// engine/pipeline/frame_id.py's reader, checked by the same test) to cross-check the RTP mapping.
// The marks and interval names are engine/contracts.py's vocabulary (the same test again).
'use strict';

(function () {
  const RTP_WRAP = 2 ** 32;
  const LIVE_FRAMES = 300;        // presented frames in the live window (10 s at 30 FPS)
  const KEEP_TRACES = 900;        // server traces kept for joining (traces arrive ~1.5 s late)
  const EXPORT_LIMIT = 54000;     // frames kept for a profiling script between two take() (30 min)
  const PONGS = 30;
  // engine/contracts.py SERVER_MARKS, then this page's marks; interval names as its SERVER_INTERVALS
  // and CLIENT_INTERVALS (named by the mark they end at)
  const SERVER_MARKS = ['captured', 'model_end', 'worker_start', 'skinned', 'rendered', 'encode_start',
    'encode_end', 'sent'];
  const CLIENT_MARKS = ['received', 'presented'];
  const INTERVALS = {
    model_end: 'features+model', worker_start: 'queue', skinned: 'skin', rendered: 'render',
    encode_start: 'hand-over', encode_end: 'encode', sent: 'send pacing', received: 'network',
    presented: 'jitter buffer+decode',
  };
  // engine/pipeline/frame_id.py's layout
  const ID = { cell: 16, bits: 16, white: 235, black: 16 };
  ID.cells = ID.bits + 2;
  const ORIGIN_WINDOW = 60;   // client frames the RTP origin is searched with
  const ORIGIN_VOTES = 5;     // frames that must pair up before the page trusts an origin

  const median = (v) => quantile(v, 0.5);
  function quantile(values, q) {
    if (!values.length) return null;
    const s = [...values].sort((a, b) => a - b);
    const i = (s.length - 1) * q;
    const lo = Math.floor(i);
    return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
  }
  const mod = (x) => ((x % RTP_WRAP) + RTP_WRAP) % RTP_WRAP;

  // The sender's RTP origin from client frames [{arrival (server-clock s), rtp}] and server traces
  // [{pts, times: {sent}}], or null: the (rtp - pts) difference that pairs the most frames; of
  // equals (pts are regular content times, one tie per frame period), the first whose frames
  // arrive soonest after they were sent, never before.
  function rtpOrigin(frames, traces, minVotes) {
    if (!frames.length || !traces.length) return null;
    const votes = new Map();
    for (const f of frames) {
      for (const t of traces) {
        const d = mod(f.rtp - t.pts);
        votes.set(d, (votes.get(d) || 0) + 1);
      }
    }
    const best = Math.max(...votes.values());
    if (best < minVotes) return null;
    const sent = new Map();
    for (const t of traces) if (t.times && t.times.sent !== undefined) sent.set(t.pts, t.times.sent);
    let chosen = null, soonest = Infinity;
    for (const [origin, n] of votes) {
      if (n !== best) continue;
      const delays = [];
      for (const f of frames) {
        const pts = mod(f.rtp - origin);
        if (sent.has(pts)) delays.push(f.arrival - sent.get(pts));
      }
      if (!delays.length || Math.min(...delays) < 0) continue;
      const typical = median(delays);
      if (typical < soonest) [chosen, soonest] = [origin, typical];
    }
    return chosen;
  }

  // The index drawn into a frame (frame_id.stamp), from the RGBA pixels `px` of its bottom-left
  // strip (width `w`, one cell high), or null when the guard cells are not there.
  function readFrameId(px, w) {
    const q = ID.cell / 4;
    const bits = [];
    for (let c = 0; c < ID.cells; c += 1) {
      let sum = 0, n = 0;
      for (let y = q; y < ID.cell - q; y += 1) {
        for (let x = c * ID.cell + q; x < (c + 1) * ID.cell - q; x += 1) {
          const i = (y * w + x) * 4;
          sum += px[i] + px[i + 1] + px[i + 2];
          n += 3;
        }
      }
      bits.push(sum / n > (ID.white + ID.black) / 2);
    }
    if (!bits[0] || bits[1]) return null;
    return bits.slice(2).reduce((acc, on, b) => acc + (on ? 2 ** b : 0), 0);
  }

  class LatencyMeter {
    constructor() {
      this.traces = new Map();   // pts -> server trace
      this.frames = [];          // the live window of presented frames
      this.pongs = [];           // {rtt, offset} (ms), newest last
      this.av = [];              // {t, ms}: A/V offset samples, live window
      this.origin = null;
      this.exporting = null;     // {frames, traces, pongs, av} while a script records
      this.canvas = null;        // frame-id reader, when on
    }

    // -- inputs ------------------------------------------------------------------------------------
    addTraces(list) {
      for (const tr of list) {
        if (this.exporting) this.exporting.traces.push(tr);
        if (typeof tr.pts !== 'number') continue; // browser mode's poses: no video, joined by index
        this.traces.set(tr.pts, tr);
      }
      while (this.traces.size > KEEP_TRACES) this.traces.delete(this.traces.keys().next().value);
    }

    // md: requestVideoFrameCallback metadata; times are made absolute on the page clock (ms)
    addFrame(md, video) {
      const f = {
        rtp: md.rtpTimestamp,
        presented: performance.timeOrigin + md.presentationTime,
        received: md.receiveTime ? performance.timeOrigin + md.receiveTime : null,
        decodeMs: typeof md.processingDuration === 'number' ? md.processingDuration * 1000 : null,
        frameId: this.canvas ? this.readFrameId(video) : null,
      };
      this.frames.push(f);
      if (this.frames.length > LIVE_FRAMES) this.frames.shift();
      if (this.exporting && this.exporting.frames.length < EXPORT_LIMIT) this.exporting.frames.push(f);
    }

    addPong(sentMs, serverMs, backMs) {
      const rtt = backMs - sentMs;
      const p = { t: backMs, rtt, offset: serverMs - (sentMs + rtt / 2) };
      this.pongs.push(p);
      if (this.pongs.length > PONGS) this.pongs.shift();
      if (this.exporting) this.exporting.pongs.push(p);
    }

    addAvOffset(t, ms) {
      if (typeof ms !== 'number') return;
      this.av.push({ t, ms });
      if (this.av.length > 60) this.av.shift();
      if (this.exporting) this.exporting.av.push({ t, ms });
    }

    // -- frame ids -----------------------------------------------------------------------------------
    useFrameIds(on) {
      this.canvas = on ? Object.assign(document.createElement('canvas'), { width: ID.cells * ID.cell, height: ID.cell }) : null;
      this.ctx = on ? this.canvas.getContext('2d', { willReadFrequently: true }) : null;
    }

    readFrameId(video) {
      const w = ID.cells * ID.cell;
      const h = video.videoHeight;
      if (!h || video.videoWidth < w) return null;
      this.ctx.drawImage(video, 0, h - ID.cell, w, ID.cell, 0, 0, w, ID.cell);
      return readFrameId(this.ctx.getImageData(0, 0, w, ID.cell).data, w);
    }

    // -- mapping -------------------------------------------------------------------------------------
    clockOffset() {
      if (!this.pongs.length) return null;
      return this.pongs.reduce((a, b) => (b.rtt < a.rtt ? b : a)).offset;
    }

    // The RTP origin of the newest frames, once enough of them pair up; then kept.
    findOrigin(offsetMs) {
      if (this.origin !== null || this.frames.length < ORIGIN_VOTES || !this.traces.size) return this.origin;
      const frames = this.frames.slice(-ORIGIN_WINDOW).map((f) => ({
        rtp: f.rtp, arrival: ((f.received !== null ? f.received : f.presented) + offsetMs) / 1000,
      }));
      this.origin = rtpOrigin(frames, [...this.traces.values()], ORIGIN_VOTES);
      return this.origin;
    }

    // One presented frame joined to its server trace: marks in server seconds, or null.
    join(f, offsetMs) {
      const tr = this.traces.get(mod(f.rtp - this.origin));
      if (!tr || !tr.times || tr.times.sent === undefined) return null;
      const times = { ...tr.times };
      if (f.received !== null) times.received = (f.received + offsetMs) / 1000;
      times.presented = (f.presented + offsetMs) / 1000;
      return { index: tr.index, times, decodeMs: f.decodeMs, frameId: f.frameId };
    }

    // -- output --------------------------------------------------------------------------------------
    // Medians and p95 of each interval and of glass-to-glass over the live window.
    summary() {
      const offset = this.clockOffset();
      if (offset === null || this.findOrigin(offset) === null) return null;
      const per = {}, e2e = [], decode = [];
      let idMismatch = 0, idChecked = 0;
      for (const f of this.frames) {
        const j = this.join(f, offset);
        if (!j) continue;
        const marks = [...SERVER_MARKS, ...CLIENT_MARKS].filter((m) => j.times[m] !== undefined);
        for (let i = 1; i < marks.length; i += 1) {
          (per[INTERVALS[marks[i]]] ||= []).push((j.times[marks[i]] - j.times[marks[i - 1]]) * 1000);
        }
        e2e.push((j.times.presented - j.times.captured) * 1000);
        if (j.decodeMs !== null) decode.push(j.decodeMs);
        if (j.frameId !== null) {
          idChecked += 1;
          if (j.frameId !== j.index % 2 ** ID.bits) idMismatch += 1;
        }
      }
      if (!e2e.length) return null;
      const stat = (v) => ({ median: median(v), p95: quantile(v, 0.95) });
      const stages = Object.values(INTERVALS).filter((n) => per[n]).map((n) => [n, stat(per[n])]);
      const av = this.av.map((a) => a.ms);
      return {
        frames: e2e.length, stages, glassToGlass: stat(e2e), decode: decode.length ? stat(decode) : null,
        avOffset: av.length ? { last: av[av.length - 1], min: Math.min(...av), max: Math.max(...av) } : null,
        frameIds: idChecked ? { checked: idChecked, mismatched: idMismatch } : null,
      };
    }

    // For scripts (`dyadic profile`): keep every input from now on; take() hands them over.
    record() {
      // the pongs and traces already here belong to the recording too (traces come ~1.5 s late)
      this.exporting = { frames: [], traces: [...this.traces.values()], pongs: [...this.pongs], av: [] };
    }

    take() {
      const out = this.exporting;
      if (out) this.exporting = { frames: [], traces: [], pongs: [], av: [] };
      return out;
    }
  }

  window.DyadicLatency = {
    LatencyMeter, rtpOrigin, readFrameId, SERVER_MARKS, CLIENT_MARKS, INTERVALS, ID,
  };
})();
