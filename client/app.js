// dyadic browser page: one websocket (/ws) for control + one RTCPeerConnection for media.
// The protocol is specified in engine/serve/protocol.py; this file only speaks it.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const nowMs = () => performance.timeOrigin + performance.now(); // wall-clock ms, sub-ms precision
  const clipsOf = (welcome) => (welcome && Array.isArray(welcome.clips) ? welcome.clips : []);
  const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  const MAX_SHOWN_ERRORS = 5;
  const CLIP_PAGE = 100; // clips per page: the server searches and pages the list (engine/serve/clips.py)
  const clipView = { clips: [], total: 0, seq: 0 }; // the clips shown, of `total` matching the filters

  // ---- shared state, exposed for scripts (tests, profiling) --------------------------------------
  let resolveReady;
  const D = (window.dyadic = {
    pc: null, ws: null, state: null, telemetry: null, welcome: null, errors: [],
    render: 'server', scene: null, // who draws: the server (video) or this page (scene3d.js, ?render=client)
    ready: new Promise((resolve) => { resolveReady = resolve; }),
    send, stats: collectStats, frames: () => D.latency.frames, // presented frames: {rtp, presented, received, ...}
    clips: () => ({ ...clipView }), // the clip list as shown: {clips, total}
    latency: new window.DyadicLatency.LatencyMeter(), // client/latency.js
  });
  // ?frameid=1: the server draws each frame's index into the picture and the page reads it back
  const frameIds = new URLSearchParams(location.search).get('frameid') === '1';
  D.latency.useFrameIds(frameIds);

  const clock = { rtt: null, offset: null };          // from the last pong
  const FPS_WINDOW_MS = 2000;
  const fpsMeter = { samples: [], fps: null };
  let presentedFrames = 0;
  let rvfcSupported = false;
  let audioTx = null;                                  // the sendrecv audio transceiver
  let micTrack = null;
  let sourceChosen = false;                            // user (or auto-start) picked a source
  let refused = false;
  let lastClient = null;                               // last collectStats() result, for the panel
  let activeClip = null;
  // ?render=client: draw the avatars here from the server's poses (scene3d.js) instead of its video
  let wantClient = new URLSearchParams(location.search).get('render') === 'client';
  let sceneModule = null;
  const mod32 = (x) => ((x % 4294967296) + 4294967296) % 4294967296;

  // ---- websocket ----------------------------------------------------------------------------------
  function openSocket() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws`);
    D.ws = ws;
    ws.onopen = updateConnPill;
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return; // the server sends no binary messages
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return note(`bad message from server: ${e}`); }
      const handler = handlers[msg.type];
      if (handler) handler(msg);
    };
    ws.onclose = (ev) => {
      updateConnPill();
      const why = ev.reason ? `: ${ev.reason}` : '';
      const text = `Disconnected from the server (code ${ev.code}${why}). Reload to start a new session.`;
      showBanner(refused ? `${$('banner-text').textContent}. ${text}` : text);
      $('video-overlay').textContent = 'Disconnected';
    };
    // onerror carries no detail in browsers; the close event that follows is what we report.
  }

  const wsOpen = () => !!D.ws && D.ws.readyState === WebSocket.OPEN;
  function send(obj) {
    if (wsOpen()) D.ws.send(JSON.stringify(obj));
    return wsOpen();
  }

  // A user action: tell the user when it could not go out instead of dropping it silently.
  function act(obj) {
    if (!send(obj)) note(`not connected: '${obj.type}' was not sent`);
  }

  const handlers = {
    welcome: onWelcome,
    answer: (msg) => {
      if (!D.pc) return;
      D.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp })
        .catch((e) => note(`could not apply the server's answer: ${e.message || e}`));
      D.render = msg.render === 'client' ? 'client' : 'server';
      renderDrawSwitch();
      if (D.render === 'client') startScene(msg.scene);
      else if (wantClient) note(`Drawn by the server: ${msg.render_note || 'the server chose its video'}`);
    },
    state: (msg) => { D.state = msg; renderState(); },
    telemetry: (msg) => { D.telemetry = { ...msg, receivedAt: Date.now() }; },
    pong: onPong,
    trace: (msg) => { if (Array.isArray(msg.frames)) D.latency.addTraces(msg.frames); },
    clips: onClips,
    error: (msg) => showError(msg.message, msg.request),
    refused: (msg) => { refused = true; showBanner(msg.message); disableControls(); },
  };

  function onWelcome(msg) {
    D.welcome = msg;
    const serverMic = msg.server_microphone || {};
    $('src-local-mic').hidden = serverMic.available === false; // not offered when the server has none
    $('session').textContent = `session ${msg.session}`;
    if (Array.isArray(msg.size) && msg.size.length === 2) sizeVideo(msg.size[0], msg.size[1]);
    fillClipFilters(msg.clip_facets || {});
    Object.assign(clipView, { clips: clipsOf(msg), total: num(msg.clips_total) ?? clipsOf(msg).length });
    renderClips();
    send({ type: 'trace', on: true, frame_id: frameIds }); // for the latency panel (latency.js)
    send({ type: 'ping', t: nowMs() });
    if (!D.pc) startPeer(msg).catch((e) => note(`WebRTC setup failed: ${e.message || e}`));
  }

  // The server clock is monotonic (arbitrary origin): the offset maps client wall time to it.
  function onPong(msg) {
    const back = nowMs();
    if (num(msg.t) !== null && num(msg.server) !== null) D.latency.addPong(msg.t, msg.server, back);
    clock.rtt = back - msg.t;
    clock.offset = num(msg.server) === null ? null : msg.server - (msg.t + clock.rtt / 2);
  }

  // ---- WebRTC -------------------------------------------------------------------------------------
  function iceServers(welcome) {
    // An explicit ?stun=URL on the page wins; else what the server suggests; else host-only ICE.
    const stun = new URLSearchParams(location.search).getAll('stun').filter(Boolean);
    if (stun.length) return stun.map((urls) => ({ urls }));
    return Array.isArray(welcome.ice_servers) ? welcome.ice_servers : [];
  }

  async function startPeer(welcome) {
    const pc = new RTCPeerConnection({
      iceServers: iceServers(welcome),
      iceTransportPolicy: welcome.ice_transport_policy === 'relay' ? 'relay' : 'all', // serve --ice-relay
    });
    D.pc = pc;
    const videoTx = pc.addTransceiver('video', { direction: 'recvonly' });
    audioTx = pc.addTransceiver('audio', { direction: 'sendrecv' }); // mic track is added later
    lowLatency(videoTx.receiver);
    lowLatency(audioTx.receiver);
    pc.ontrack = onTrack;
    pc.onconnectionstatechange = onConnectionState;
    pc.oniceconnectionstatechange = updateConnPill;
    $('video-overlay').textContent = 'Negotiating…';
    if (wantClient) await openPoseChannel(pc);

    await pc.setLocalDescription(await pc.createOffer());
    // No trickle ICE in the protocol: the offer must carry every candidate.
    await iceGathered(pc, 2000);
    act({ type: 'offer', sdp: pc.localDescription.sdp, render: wantClient ? 'client' : 'server' });
  }

  // ---- browser mode (?render=client) ----------------------------------------------------------------
  // The offer keeps its video transceiver: a server that will not let this page draw answers with video.
  async function openPoseChannel(pc) {
    try {
      sceneModule = await import('/scene3d.js');
      const problem = sceneModule.webglProblem();
      if (problem) throw new Error(problem);
    } catch (e) {
      wantClient = false;
      return note(`Drawn by the server: this page cannot draw the avatars (${e.message || e})`);
    }
    const channel = pc.createDataChannel('poses', { ordered: false, maxRetransmits: 0 });
    channel.binaryType = 'arraybuffer';
    channel.onmessage = (ev) => { if (D.scene) D.scene.push(ev.data); };
  }

  async function startScene(layout) {
    const canvas = $('canvas3d');
    $('video').hidden = true;
    canvas.hidden = false;
    D.scene = new sceneModule.DyadScene(canvas, layout, audioClock);
    try {
      await D.scene.load('/avatar.glb');
      $('video-overlay').hidden = true;
    } catch (e) {
      showBanner(`Could not draw the avatars here (${e.message || e}). Reload without ?render=client for the server's video.`);
    }
  }

  // The speaker audio's sample being heard now, counted as the poses count it: the audio receiver's
  // last played RTP timestamp, less the sender's RTP origin (telemetry), plus the time since it played.
  // null for a live source: its audio comes back as silence (the user hears themselves already), so
  // the page draws each pose as soon as it has it, as the video mode shows frames on arrival.
  const liveSource = () => {
    const kind = D.state && D.state.source ? D.state.source.kind : null;
    return kind === 'browser-mic' || kind === 'local-mic';
  };

  function audioClock() {
    if (liveSource()) return null;
    const origin = D.telemetry ? num(D.telemetry.audio_rtp_origin) : null;
    if (origin === null || !audioTx) return null;
    const src = audioTx.receiver.getSynchronizationSources()[0];
    if (!src || num(src.rtpTimestamp) === null || num(src.timestamp) === null) return null;
    // Chromium gives the play time as wall-clock ms; the spec's newer wording, performance time
    const now = src.timestamp > 1e12 ? nowMs() : performance.now();
    return mod32(src.rtpTimestamp - origin + Math.round(Math.max(0, now - src.timestamp) * 48));
  }

  // Browser mode's own numbers, over the last 10 s of drawn frames: glass to glass (the end of a
  // pose's audio, on the server's clock, to the animation frame that drew it) and the A/V offset
  // (the pose drawn against the sound heard).
  function drawnLatency() {
    const scene = D.scene;
    const offset = D.latency.clockOffset(); // the pong with the shortest round trip (latency.js)
    if (!scene || !scene.drawn.length || offset === null) return null;
    const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[s.length >> 1] : null; };
    const g2g = scene.drawn.map((d) => performance.timeOrigin + d.at + offset - d.captured * 1000);
    const av = scene.drawn.map((d) => d.avMs).filter((x) => x !== null);
    return { glassToGlass: median(g2g), avOffsetMs: median(av), frames: g2g.length };
  }

  function renderDrawSwitch() {
    $('draw-server').classList.toggle('active', D.render === 'server');
    $('draw-client').classList.toggle('active', D.render === 'client');
  }

  // Switching who draws needs a new offer: reload with or without ?render=client.
  function switchDraw(mode) {
    const url = new URL(location.href);
    if (mode === 'client') url.searchParams.set('render', 'client'); else url.searchParams.delete('render');
    if (url.href !== location.href) location.href = url.href;
  }

  function iceGathered(pc, timeoutMs) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { pc.removeEventListener('icegatheringstatechange', check); resolve(); };
      const check = () => { if (pc.iceGatheringState === 'complete') done(); };
      pc.addEventListener('icegatheringstatechange', check);
      setTimeout(done, timeoutMs); // some networks never finish gathering; send what we have
    });
  }

  // Ask the browser to hold as little media as it can: this is a real-time avatar.
  function lowLatency(receiver) {
    try { receiver.jitterBufferTarget = 0; } catch (e) { /* unsupported */ }
    try { if ('playoutDelayHint' in receiver) receiver.playoutDelayHint = 0; } catch (e) { /* old Chrome */ }
  }

  function onTrack(ev) {
    lowLatency(ev.receiver);
    const stream = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
    if (ev.track.kind === 'video') {
      $('video').srcObject = stream;
      $('video-overlay').textContent = 'Waiting for video…';
    } else if (ev.track.kind === 'audio') {
      const audio = $('audio');
      audio.srcObject = stream;
      // Autoplay with sound may be blocked until the user interacts with the page.
      audio.play().catch(() => { $('unmute').hidden = false; });
    }
  }

  function onConnectionState() {
    const state = D.pc.connectionState;
    updateConnPill();
    if (state === 'connected') {
      resolveReady(D.pc);
      autoStart();
    } else if (state === 'failed') {
      showBanner('WebRTC connection failed (no ICE path to the server). ' +
        'If the server is on another network, try adding ?stun=stun:HOST:PORT to the page URL.');
    }
  }

  // A page load alone should show a playing avatar: start the first playable clip.
  function autoStart() {
    const st = D.state;
    if (sourceChosen || (st && st.playing && st.source && st.source.kind)) return;
    const clip = clipsOf(D.welcome).find((c) => c.playable !== false);
    if (!clip) return note('No playable clip on this server: pick a microphone source.');
    chooseSource('clip', clip.id);
  }

  // ---- sources ------------------------------------------------------------------------------------
  // A recorded clip or the server's microphone: the browser microphone, if on, is released.
  function chooseSource(kind, clip) {
    sourceChosen = true;
    stopMic();
    act(kind === 'clip' ? { type: 'source', kind, clip } : { type: 'source', kind });
  }

  async function chooseBrowserMic() {
    sourceChosen = true;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return note('Browser microphone needs a secure page (https or localhost).');
    }
    if (!audioTx) return note('Not connected yet: the microphone needs the WebRTC connection.');
    try {
      if (!micTrack || micTrack.readyState === 'ended') {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
        micTrack = stream.getAudioTracks()[0];
      }
      await audioTx.sender.replaceTrack(micTrack);
    } catch (e) {
      stopMic();
      return note(`Microphone unavailable: ${e.message || e.name || e}`);
    }
    act({ type: 'source', kind: 'browser-mic' });
  }

  function stopMic() {
    if (audioTx) audioTx.sender.replaceTrack(null).catch(() => {});
    if (micTrack) micTrack.stop();
    micTrack = null;
  }

  // ---- client-side measurements -------------------------------------------------------------------
  function watchFrames() {
    const video = $('video');
    rvfcSupported = 'requestVideoFrameCallback' in HTMLVideoElement.prototype;
    if (!rvfcSupported) return;
    const onFrame = (_now, md) => {
      presentedFrames += 1;
      D.latency.addFrame(md, video);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  // Decoded fps over the last ~2 s of framesDecoded samples (stats() may be called at any rate). A
  // shorter window reads one frame's jitter as a drop (12 frames in 430 ms is "28 FPS") and makes the
  // panel flicker on a steady 30 FPS stream.
  function updateFps(decoded) {
    const t = performance.now();
    if (decoded === null) return;
    const samples = fpsMeter.samples;
    if (samples.length && decoded < samples[samples.length - 1].decoded) samples.length = 0; // a new track
    samples.push({ t, decoded });
    while (samples.length > 2 && t - samples[1].t >= FPS_WINDOW_MS) samples.shift();
    const first = samples[0];
    fpsMeter.fps = t - first.t >= 400 ? ((decoded - first.decoded) * 1000) / (t - first.t) : null;
  }

  async function collectStats() {
    const pc = D.pc;
    const out = {
      connectionState: pc ? pc.connectionState : null,
      codec: null, framesReceived: null, framesDecoded: null, framesDropped: null, fps: null,
      presentedFrames: rvfcSupported ? presentedFrames : null,
      jitterBufferMs: null, decodeMs: null, freezeCount: null,
      audioPacketsReceived: null, audioTotalSamplesReceived: null, avOffsetMs: null,
      // how the link is doing: losses, repairs asked for (NACK, PLI), bytes, audio concealed for loss
      videoPacketsLost: null, nackCount: null, pliCount: null, videoBytesReceived: null,
      audioConcealedSamples: null,
      rtt: clock.rtt, clockOffsetMs: clock.offset, server: D.telemetry,
    };
    let video = null, audio = null, report = null;
    if (pc) {
      report = await pc.getStats();
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        const kind = s.kind || s.mediaType;
        if (kind === 'video' && !video) video = s;
        if (kind === 'audio' && !audio) audio = s;
      });
    }
    if (video) {
      const codec = video.codecId && report.get(video.codecId);
      out.codec = codec ? codec.mimeType.replace(/^video\//, '') : null;
      out.framesReceived = num(video.framesReceived);
      out.framesDecoded = num(video.framesDecoded);
      out.framesDropped = num(video.framesDropped);
      out.freezeCount = num(video.freezeCount);
      out.videoPacketsLost = num(video.packetsLost);
      out.nackCount = num(video.nackCount);
      out.pliCount = num(video.pliCount);
      out.videoBytesReceived = num(video.bytesReceived);
      if (video.jitterBufferEmittedCount > 0) {
        out.jitterBufferMs = (video.jitterBufferDelay / video.jitterBufferEmittedCount) * 1000;
      }
      if (video.framesDecoded > 0 && num(video.totalDecodeTime) !== null) {
        out.decodeMs = (video.totalDecodeTime / video.framesDecoded) * 1000;
      }
    }
    updateFps(out.framesDecoded);
    out.fps = fpsMeter.fps;
    if (audio) {
      out.audioPacketsReceived = num(audio.packetsReceived);
      out.audioTotalSamplesReceived = num(audio.totalSamplesReceived);
      out.audioConcealedSamples = num(audio.concealedSamples);
    }
    // Both are NTP ms of the media being played out now; > 0 means video is ahead of audio.
    const vPlay = video ? num(video.estimatedPlayoutTimestamp) : null;
    const aPlay = audio ? num(audio.estimatedPlayoutTimestamp) : null;
    if (vPlay !== null && aPlay !== null) out.avOffsetMs = vPlay - aPlay;
    out.render = D.render;
    if (D.scene) {
      const drawn = drawnLatency();
      Object.assign(out, {
        drawnFps: D.scene.drawnFps(), animationFps: D.scene.animationFps(), posesReceived: D.scene.received,
        badPoses: D.scene.bad, latePoses: D.scene.late, glassToGlassMs: drawn ? drawn.glassToGlass : null,
        // the pose on screen against the sound the audio receiver plays (Chromium gives no
        // estimatedPlayoutTimestamp for audio alone): 0 while every pose comes in time
        avOffsetMs: drawn ? drawn.avOffsetMs : null,
      });
    }
    D.latency.addAvOffset(nowMs(), out.avOffsetMs);
    lastClient = out;
    return out;
  }

  // ---- rendering ----------------------------------------------------------------------------------
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
  const fmt = (x, digits = 1) => (num(x) === null ? '–' : Number.isInteger(x) ? String(x) : x.toFixed(digits));
  // [label, value, tooltip?, class?] -> table rows; the tooltip says what the number is and its unit
  const rows = (pairs) => pairs.map(([k, v, tip, cls]) => {
    const title = tip ? ` title="${esc(tip)}"` : '';
    return `<tr><th${title}>${esc(k)}</th><td${cls ? ` class="${cls}"` : ''}>${esc(v)}</td></tr>`;
  }).join('');

  function fmtTime(s) {
    if (num(s) === null) return '–';
    const tenths = Math.round(s * 10); // round once so 59.97 s shows as 1:00.0, not 0:60.0
    return `${Math.floor(tenths / 600)}:${((tenths % 600) / 10).toFixed(1).padStart(4, '0')}`;
  }

  function sizeVideo(w, h) {
    Object.assign($('video'), { width: w, height: h });
    const box = $('video-box').style;
    box.aspectRatio = `${w} / ${h}`;
    box.maxWidth = `calc((100vh - 90px) * ${w / h})`; // fit the viewport height without distortion
  }

  // ---- the clip list: searched and paged by the server ---------------------------------------------
  const DATASET_NAMES = { seamless: 'Seamless', react: 'REACT' };

  function fillClipFilters(facets) {
    const fill = (id, values, label) => {
      const select = $(id);
      for (const v of Array.isArray(values) ? values : []) {
        select.appendChild(Object.assign(document.createElement('option'), { value: String(v), textContent: label(v) }));
      }
      select.hidden = !Array.isArray(values) || values.length < 2; // nothing to choose between
    };
    fill('clip-dataset', facets.datasets, (v) => DATASET_NAMES[v] || v);
    fill('clip-vendor', facets.vendors, (v) => `vendor ${v}`);
    fill('clip-fps', facets.fps, (v) => `${v} fps`);
    fill('clip-family', facets.features, (v) => `with ${v}`);
  }

  // The filters as a `clips` request (engine/serve/protocol.py); empty fields mean any.
  function clipQuery(offset) {
    const text = (id) => $(id).value.trim() || null;
    const number = (id) => ($(id).value.trim() === '' ? null : Math.max(0, Number($(id).value)));
    const problems = $('clip-problems').value;
    return {
      type: 'clips', query: text('clip-filter'), dataset: text('clip-dataset'), vendor: text('clip-vendor'),
      fps: number('clip-fps'), family: text('clip-family'), min_seconds: number('clip-min'),
      max_seconds: number('clip-max'), problems: problems === '' ? null : problems === 'true',
      offset, limit: CLIP_PAGE, seq: ++clipView.seq,
    };
  }

  let clipTimer = null;
  function searchClips(offset = 0) {
    clearTimeout(clipTimer);
    clipTimer = setTimeout(() => { if (!send(clipQuery(offset))) note('not connected: the clip list was not searched'); },
      offset ? 0 : 150); // typing: wait for a pause
  }

  function onClips(msg) {
    if (msg.seq !== clipView.seq || !Array.isArray(msg.clips)) return; // an answer to an older search
    clipView.clips = msg.offset ? clipView.clips.concat(msg.clips) : msg.clips;
    clipView.total = num(msg.total) ?? clipView.clips.length;
    renderClips();
  }

  function renderClips() {
    const list = $('clip-list');
    list.textContent = '';
    for (const clip of clipView.clips) {
      const btn = Object.assign(document.createElement('button'), { type: 'button', className: 'clip' });
      btn.dataset.clip = clip.id;
      btn.innerHTML = `<span class="clip-id">${esc(clip.id)}</span>` +
        `<span class="muted">${esc(clip.dataset || '')}</span>` +
        `<span class="mono muted">${esc(fmtTime(clip.duration))}</span>`;
      if (clip.playable === false) {
        btn.disabled = true;
        btn.title = 'Not playable on this server: its recording or data for the loaded model is missing.';
      } else {
        const problems = clip.problems ? `; ${clip.problems} problem(s) found in its files` : '';
        btn.title = `Play ${clip.id}${clip.fps ? ` (${clip.fps} fps)` : ''}${problems}`;
        btn.onclick = () => chooseSource('clip', clip.id);
      }
      if (clip.id === activeClip) btn.classList.add('active');
      list.appendChild(document.createElement('li')).appendChild(btn);
    }
    const left = clipView.total - clipView.clips.length;
    if (!clipView.clips.length) list.innerHTML = '<li class="muted">no clip matches</li>';
    else if (left > 0) {
      const more = Object.assign(document.createElement('button'), {
        type: 'button', className: 'clip more', textContent: `Show ${Math.min(left, CLIP_PAGE)} more (${left} left)`,
      });
      more.onclick = () => searchClips(clipView.clips.length);
      list.appendChild(document.createElement('li')).appendChild(more);
    }
    $('clip-count').textContent = `${clipView.total} clip${clipView.total === 1 ? '' : 's'}` +
      (clipView.clips.length < clipView.total ? `, ${clipView.clips.length} shown` : '');
  }

  const DATASETS = { seamless: 'Seamless Interaction', react: 'REACT 2025' };

  // The source in words, for people: never raw JSON.
  function describeSource(src) {
    if (!src || !src.kind) return 'nothing yet';
    if (src.kind === 'clip') {
      const set = DATASETS[src.dataset] || src.dataset;
      return `a recording: ${src.clip || src.id || '?'}${set ? ` (${set})` : ''}`;
    }
    if (src.kind === 'browser-mic') return 'you, through this browser\'s microphone';
    if (src.kind === 'local-mic') return 'the server\'s microphone';
    if (src.kind === 'idle') return 'nothing: the avatars idle';
    return 'another source';
  }

  // Who is who on the video: the speaker on the left, the listener on the right.
  function renderLabels() {
    const st = D.state;
    if (!st || !st.source) return;
    const kind = st.source.kind;
    const speaker = { clip: 'Speaker · recorded', 'browser-mic': 'Speaker · you', 'local-mic': 'Speaker · server microphone' };
    const listener = st.listener === 'model' ? 'Listener · the model, live' : 'Listener · recorded';
    Object.assign($('label-speaker'), { textContent: speaker[kind] || 'Speaker', hidden: false });
    Object.assign($('label-listener'), { textContent: listener, hidden: false });
  }

  function renderState() {
    const st = D.state;
    const src = st.source || {};
    const recorded = !src.kind || src.kind === 'clip'; // play/pause/seek/loop apply to clips only
    $('st-source').textContent = describeSource(st.source);
    $('st-playing').textContent = st.playing ? 'playing' : 'paused';
    $('st-seed').textContent = st.seed === undefined || st.seed === null ? '–' : String(st.seed);
    $('play').textContent = st.playing ? 'Pause' : 'Play';
    for (const id of ['play', 'seek', 'loop']) $(id).disabled = !recorded;
    $('loop').checked = !!st.loop;
    const seek = $('seek');
    seek.max = String(num(st.duration) || 0);
    if (!seek.dataset.dragging) seek.value = String(num(st.position) || 0);
    $('pos').textContent = `${fmtTime(st.position)} / ${fmtTime(st.duration)}`;
    // Highlight the active source without rebuilding the clip list on every state message.
    const clip = src.kind === 'clip' ? src.clip || src.id : null;
    if (clip !== activeClip) {
      activeClip = clip;
      document.querySelectorAll('#clip-list .clip').forEach((b) => b.classList.toggle('active', b.dataset.clip === clip));
    }
    $('src-browser-mic').classList.toggle('active', src.kind === 'browser-mic');
    $('src-local-mic').classList.toggle('active', src.kind === 'local-mic');
    renderLabels();
  }

  // What a visitor wants to know, each against its budget; the rest is behind "details".
  function renderCompact(latency) {
    const c = lastClient || {};
    const grade = (x, ok, warn) => (num(x) === null ? '' : x <= ok ? 'ok' : x <= warn ? 'warn' : 'bad');
    const drawn = D.render === 'client';
    const g2g = drawn ? num(c.glassToGlassMs) : latency ? latency.glassToGlass.median : null;
    const av = num(c.avOffsetMs);
    const fps = drawn ? num(c.drawnFps) : num(c.fps);
    $('live-compact').innerHTML = rows([
      ['frame rate', fps === null ? '–' : `${fps.toFixed(0)} FPS`,
        drawn ? 'the server\'s poses this page draws per second, in step with the sound (budget: 30)'
          : 'video frames this page decodes per second (budget: 30)', fps === null ? '' : grade(30 - fps, 1, 5)],
      ['glass to glass', num(g2g) === null ? '–' : `${g2g.toFixed(0)} ms`,
        'from the end of the speaker\'s audio to its frame on this screen, median of the last 10 s (budget: 60 ms)',
        grade(g2g, 60, 90)],
      ['A/V offset', av === null ? '–' : `${av > 0 ? '+' : ''}${av.toFixed(0)} ms`,
        `the ${drawn ? 'picture' : 'video'} ahead (+) or behind (−) the sound it belongs to (budget: ±40 ms)`,
        av === null ? '' : grade(Math.abs(av), 40, 80)],
    ]);
  }

  const STAGE_TIPS = {
    source: 'reading the next frame of the source (audio and movement)',
    features: 'audio features of the frame (log-mel)',
    model: 'the reaction model\'s step',
    posing: 'turning dataset channels into poses',
    queue: 'waiting for the render worker',
    skin: 'skinning both bodies',
    render: 'drawing the frame (OpenGL, offscreen)',
    'hand-over': 'from the render worker to the encoder',
    encode: 'H.264/VP8 encoding',
    'send pacing': 'held until the frame\'s send time, in step with its audio',
    'posing+hand-over': 'browser mode: from the model\'s output to the pose handed to the data channel',
  };

  function renderLive() {
    const t = D.telemetry;
    const lat = (t && t.latency_ms) || {};
    const serverFresh = t && Date.now() - t.receivedAt < 3000; // else: say so, never show old numbers
    $('live-server').innerHTML = !t ? rows([['telemetry', 'none yet']]) : !serverFresh
      ? rows([['telemetry', `none for ${((Date.now() - t.receivedAt) / 1000).toFixed(0)} s`]]) : rows([
        ...(D.render === 'client' ? [ // browser mode: poses out, no video
          ['poses sent', fmt(t.poses_sent), 'poses sent on the data channel since the session started'],
          ['poses dropped', fmt(t.poses_dropped), 'poses the data channel could not take in time (the link was slower)'],
          ['frames', fmt(t.frames), 'frames the model stepped since the session started'],
        ] : [
          ['frames sent', num(t.fps) ? `${fmt(t.fps)} FPS` : '–', 'frames the server sent per second'],
          ['frames', fmt(t.frames), 'frames made since the session started'],
          ['dropped', fmt(t.dropped), 'frames the server skipped because it was late'],
          ['repeated', fmt(t.repeated), 'frames sent twice because the next was not ready'],
          ['server part', num(lat.median) === null ? '–' : `${fmt(lat.median)} / ${fmt(lat.p95)} ms`,
            'end of the speaker\'s audio -> frame encoded, median / p95 (the server\'s share of glass to glass)'],
        ]),
        ['audio underruns', fmt(t.audio_underruns), 'audio frames that arrived too late and were filled with silence'],
        ['movement', t.movement || '–', 'where the speaker\'s movement comes from'],
        ...networkRows(t.network),
      ]);
    const stages = Object.entries((serverFresh && t.stages_ms) || {});
    $('live-stages').innerHTML = stages.length
      ? `<tr><th>stage</th><th>ms</th></tr>${rows(stages.map(([k, v]) => [k, fmt(v, 2), STAGE_TIPS[k]]))}` : '';
    const c = lastClient || {};
    const ms = (x) => (num(x) === null ? '–' : `${x.toFixed(1)} ms`);
    const link = [
      ['websocket', wsStateName()], ['connection', c.connectionState || '–'],
      ['ice', D.pc ? D.pc.iceConnectionState : '–'],
    ];
    const wsRtt = ['ws rtt', ms(clock.rtt), 'round trip of the websocket to the server'];
    if (D.render === 'client') { // browser mode: poses in, pictures drawn here
      $('live-client').innerHTML = rows([
        ...link, ['drawn by', 'this browser', 'three.js, from the poses the server sends'],
        ['poses received', fmt(c.posesReceived)], ['poses drawn', num(c.drawnFps) === null ? '–' : `${fmt(c.drawnFps)} /s`,
          'the server\'s poses that showed in a picture, per second, last 2 s'],
        ['pictures', num(c.animationFps) === null ? '–' : `${fmt(c.animationFps)} /s`, 'animation frames drawn per second'],
        ['late', fmt(c.latePoses), 'pictures drawn before the pose for the sound heard had come (the newest was held)'],
        ['bad poses', fmt(c.badPoses)], ['glass to glass', ms(c.glassToGlassMs),
          'end of the speaker\'s audio -> the picture that drew its pose, median of the last 10 s'],
        ['A/V offset', ms(c.avOffsetMs), 'the pose on screen against the sound the browser\'s audio receiver plays now, median of the last 10 s (+: picture ahead)'],
        ['audio packets', fmt(c.audioPacketsReceived)], wsRtt,
      ]);
      renderLatency();
      return;
    }
    $('live-client').innerHTML = rows([
      ...link, ['codec', c.codec || '–'],
      ['frames recv', fmt(c.framesReceived)], ['frames decoded', fmt(c.framesDecoded)],
      ['frames dropped', fmt(c.framesDropped)], ['decode fps', fmt(c.fps)],
      ['presented', rvfcSupported ? fmt(presentedFrames) : 'n/a (no rVFC)'],
      ['jitter buffer', ms(c.jitterBufferMs)], ['decode', ms(c.decodeMs)],
      ['freezes', fmt(c.freezeCount)], ['video packets lost', fmt(c.videoPacketsLost)],
      ['audio packets', fmt(c.audioPacketsReceived)],
      ['audio samples', fmt(c.audioTotalSamplesReceived)], ['A/V offset', ms(c.avOffsetMs)], wsRtt,
    ]);
    renderLatency();
  }

  // The video link as the server sees it: what it sends, the browser's estimate, the repairs asked for.
  function networkRows(n) {
    if (!n) return [];
    const kbps = (x) => (num(x) === null ? '–' : `${Math.round(x)} kbit/s`);
    return [
      ['video sent', kbps(n.sent_kbps)], ['bitrate target', kbps(n.target_kbps)],
      ['browser estimate', kbps(n.estimate_kbps)], ['loss reported', num(n.lost_pct) === null ? '–' : `${n.lost_pct} %`],
      ['round trip', num(n.rtt_ms) === null ? '–' : `${n.rtt_ms} ms`], ['packets asked again (NACK)', fmt(n.nacked)],
      ['keyframes asked (PLI)', fmt(n.keyframe_requests)],
    ];
  }

  function renderLatency() {
    if (D.render === 'client') { // no video frames to join: the drawn poses' own numbers
      renderCompact(null);
      const d = drawnLatency();
      $('live-latency').innerHTML = rows([
        ['glass to glass', d && num(d.glassToGlass) !== null ? `${fmt(d.glassToGlass)} ms` : '–',
          'end of the speaker\'s audio -> the picture that drew its pose, median of the last 10 s'],
        ['pictures joined', d ? fmt(d.frames) : '–'],
      ]);
      return;
    }
    const s = D.latency.summary();
    renderCompact(s);
    if (!s) {
      $('live-latency').innerHTML = rows([['frames joined', 'none yet']]);
      return;
    }
    const pair = (st) => `${fmt(st.median)} / ${fmt(st.p95)}`;
    const av = s.avOffset;
    $('live-latency').innerHTML = `<tr><th>ms</th><th>median / p95</th></tr>${rows([
      ...s.stages.map(([name, st]) => [name, pair(st)]),
      ['glass to glass', pair(s.glassToGlass)],
      ...(s.decode ? [['(decode)', pair(s.decode)]] : []),
      ['A/V offset', av ? `${fmt(av.last)} (${fmt(av.min)}…${fmt(av.max)})` : '–'],
      ['frames joined', fmt(s.frames)],
      ...(s.frameIds ? [['frame ids wrong', `${s.frameIds.mismatched} of ${s.frameIds.checked}`]] : []),
    ])}`;
  }

  // "live" means a frame is on screen, not merely a connection
  const firstFrameShown = () => (D.scene ? D.scene.lastDrawn !== null
    : rvfcSupported ? presentedFrames > 0 : !$('video').paused && $('video').readyState >= 2);
  const wsStateName = () => (D.ws ? ['connecting', 'open', 'closing', 'closed'][D.ws.readyState] : '–');

  function updateConnPill() {
    const ws = wsStateName();
    const pcState = D.pc ? D.pc.connectionState : 'new';
    let cls = 'pill-wait';
    let text = `ws ${ws} · rtc ${pcState}`;
    if (ws === 'closed' || pcState === 'failed') cls = 'pill-bad';
    else if (ws === 'open' && pcState === 'connected' && firstFrameShown()) { cls = 'pill-ok'; text = 'live'; }
    else if (ws === 'open' && pcState === 'connected') text = 'waiting for the first frame';
    Object.assign($('conn'), { className: `pill ${cls}`, textContent: text });
  }

  // ---- messages -----------------------------------------------------------------------------------
  function showError(message, request) {
    D.errors.push({ message: String(message), request: request === undefined ? null : request, time: Date.now() });
    renderErrors();
  }

  function note(message) { showError(message, 'client'); } // a problem found by the page itself

  function renderErrors() {
    const box = $('messages');
    box.textContent = '';
    const start = Math.max(0, D.errors.length - MAX_SHOWN_ERRORS);
    D.errors.slice(start).forEach((err, i) => {
      if (err.dismissed) return;
      const div = document.createElement('div');
      div.className = 'message';
      const origin = err.request ? `[${err.request}] ` : '';
      div.innerHTML = `<span>${esc(origin + err.message)}</span><button type="button" title="dismiss">×</button>`;
      div.querySelector('button').onclick = () => { D.errors[start + i].dismissed = true; renderErrors(); };
      box.appendChild(div);
    });
  }

  function showBanner(text) {
    $('banner-text').textContent = text;
    $('banner').hidden = false;
  }

  // Nothing to steer once the server has turned the page away.
  function disableControls() {
    document.querySelectorAll('.side button, .side input').forEach((el) => { el.disabled = true; });
    $('video-overlay').textContent = 'No session: the server is full';
    $('video-overlay').hidden = false;
  }

  // ---- wiring -------------------------------------------------------------------------------------
  function bindControls() {
    $('clip-filter').addEventListener('input', () => searchClips());
    for (const id of ['clip-dataset', 'clip-vendor', 'clip-fps', 'clip-family', 'clip-problems', 'clip-min', 'clip-max']) {
      $(id).addEventListener(id.startsWith('clip-m') ? 'input' : 'change', () => searchClips());
    }
    $('src-browser-mic').onclick = chooseBrowserMic;
    $('src-local-mic').onclick = () => chooseSource('local-mic');
    $('play').onclick = () => act({ type: D.state && D.state.playing ? 'pause' : 'play' });
    $('resample').onclick = () => act({ type: 'resample' });
    $('loop').onchange = (ev) => act({ type: 'loop', on: ev.target.checked });
    const seek = $('seek');
    // While dragging, state messages must not yank the thumb back; the seek goes out on release.
    seek.addEventListener('input', () => {
      seek.dataset.dragging = '1';
      $('pos').textContent = `${fmtTime(Number(seek.value))} / ${fmtTime(D.state && D.state.duration)}`;
    });
    seek.addEventListener('change', () => {
      delete seek.dataset.dragging;
      act({ type: 'seek', seconds: Number(seek.value) });
    });
    $('unmute').onclick = () => { $('audio').play().then(() => { $('unmute').hidden = true; }).catch(() => {}); };
    $('banner-reload').onclick = () => location.reload();
    $('draw-server').onclick = () => switchDraw('server');
    $('draw-client').onclick = () => switchDraw('client');
    $('video').addEventListener('playing', () => { $('video-overlay').hidden = true; });
  }

  function startTimers() {
    setInterval(() => { collectStats().then(renderLive, renderLive); updateConnPill(); }, 500);
    setInterval(() => { send({ type: 'ping', t: nowMs() }); }, 2000);
  }

  bindControls();
  watchFrames();
  renderLive();
  openSocket();
  startTimers();
})();
