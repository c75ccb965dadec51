// Pinhole live player: WebRTC (WHEP) first when the relay offers it, else fMP4 over WebSocket into
// Media Source Extensions. Plain modern JavaScript, no build step.
//
// WebRTC: one RTCPeerConnection, recvonly, offer POSTed to data-whep; the relay is an ICE-lite peer.
// When it is not connected within 3 s (UDP and ICE-TCP blocked, no TURN) or fails later, the
// player falls back to MSE. window.pinhole.transport says which one plays.
//
// Protocol (server -> browser): a text {"type":"init","mime":...} followed by a binary init segment
// starts (or restarts) playback; binary messages after it are moof+mdat fragments, one per frame;
// {"type":"offline"} when the device leaves; {"type":"unsupported","rtsp":...} when the codec cannot play.
//
// Live edge: the stream starts on the relay's cached GOP, so the first frame can show at once. After
// that the player keeps (buffered end - currentTime) small: it seeks when far behind and plays slightly
// faster when a little behind, and trims what it has already played.
'use strict';

(() => {
  const FAR_BEHIND_S = 1.0;     // seek to the live edge beyond this
  const SEEK_TARGET_S = 0.2;    // how far behind the edge a seek lands
  const CHASE_FAST_S = 0.5;     // play at 1.1x beyond this
  const CHASE_SLOW_S = 0.3;     // play at 1.05x beyond this, 1.0x below
  const KEEP_BEHIND_S = 10;     // buffer kept behind currentTime
  const TRIM_AFTER_S = 30;      // trim once this much is behind currentTime
  const MAX_QUEUED = 400;       // segments waiting for the SourceBuffer before giving up and reconnecting

  const root = document.getElementById('player');
  const video = document.getElementById('video');
  const stateEl = document.getElementById('state');
  const latencyEl = document.getElementById('latency');
  const unmute = document.getElementById('unmute');
  const messageEl = document.getElementById('message');
  if (!root || !video) return;

  const wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + root.dataset.ws;
  // The same messages over one long HTTP response, where a proxy strips WebSocket Upgrade (docs/browser.md).
  const streamUrl = root.dataset.ws.replace(/\/ws$/, '/stream');

  // What tests and the benchmark read (window.pinhole): state, first-frame time, latency samples.
  const stats = {
    state: 'connecting', firstFrameAt: null, inits: 0, seeks: 0, segments: 0, reconnects: 0,
    transport: null, feed: null, pc: null, fallbackReason: null, webrtcLatency: null,
    latency: () => stats.transport === 'webrtc' ? stats.webrtcLatency : liveLag(),
  };
  window.pinhole = stats;

  let ws = null;           // the open feed: a WebSocket, or { close } of an HTTP stream
  let useHttp = false;     // the WebSocket could not open and the HTTP stream could: keep to it on this page
  let mediaSource = null;
  let sourceBuffer = null;
  let queue = [];
  let generation = 0;
  let backoffMs = 500;
  let failedOpens = 0;
  let stopped = false;
  let offline = false;
  let lastFrames = 0;
  let lastTime = 0;
  let hasVideo = true;

  function setState(state, text) {
    stats.state = state;
    stateEl.dataset.state = state;
    stateEl.className = 'state ' + state;
    stateEl.textContent = text || state;
  }

  function showMessage(text) {
    messageEl.textContent = text;
    messageEl.hidden = !text;
  }

  function connect() {
    if (stopped) return;
    setState(stats.reconnects > 0 ? 'reconnecting' : 'connecting');
    if (useHttp) { connectHttp(); return; }
    let opened = false;
    const socket = new WebSocket(wsUrl);
    socket.binaryType = 'arraybuffer';
    ws = socket;
    socket.onopen = () => { opened = true; failedOpens = 0; backoffMs = 500; stats.feed = 'websocket'; };
    socket.onmessage = (e) => {
      if (socket !== ws) return;
      if (typeof e.data === 'string') control(JSON.parse(e.data));
      else segment(e.data);
    };
    socket.onclose = () => {
      if (socket !== ws) return;
      ws = null;
      if (stopped) return;
      // A WebSocket that never opened may be a proxy stripping Upgrade: try the HTTP stream at once.
      if (!opened) { connectHttp(); return; }
      reconnectLater();
    };
  }

  // The player's messages as records of a chunked GET: kind (0 JSON, 1 fMP4), 4-byte big-endian length, payload.
  function connectHttp() {
    const controller = new AbortController();
    const handle = { close: () => controller.abort() };
    ws = handle;
    let opened = false;
    (async () => {
      const r = await fetch(streamUrl, { cache: 'no-store', credentials: 'same-origin', signal: controller.signal });
      if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
      if (handle !== ws) return;
      opened = true; useHttp = true; failedOpens = 0; backoffMs = 500; stats.feed = 'http';
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buf = new Uint8Array(0);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (handle !== ws) return;
        const joined = new Uint8Array(buf.length + value.length);
        joined.set(buf); joined.set(value, buf.length);
        buf = joined;
        let off = 0;
        while (buf.length - off >= 5) {
          const len = new DataView(buf.buffer, buf.byteOffset + off + 1, 4).getUint32(0);
          if (buf.length - off - 5 < len) break;
          const payload = buf.slice(off + 5, off + 5 + len);
          const kind = buf[off];
          off += 5 + len;
          if (kind === 0) control(JSON.parse(decoder.decode(payload)));
          else segment(payload.buffer);
          if (handle !== ws) return;
        }
        buf = buf.slice(off);
      }
      throw new Error('stream ended');
    })().catch(() => {
      if (handle !== ws) return;
      ws = null;
      if (stopped) return;
      if (!opened) { useHttp = false; if (++failedOpens >= 3) checkStillLoggedIn(); }
      reconnectLater();
    });
  }

  function reconnectLater() {
    stats.reconnects++;
    setState('reconnecting');
    const delay = backoffMs * (0.75 + Math.random() * 0.5);
    backoffMs = Math.min(backoffMs * 2, 10000);
    setTimeout(connect, delay);
  }

  // A refused WebSocket says nothing about why; if the session ended, the page itself redirects to /login.
  async function checkStillLoggedIn() {
    try {
      const r = await fetch(location.href, { redirect: 'manual', cache: 'no-store' });
      if (r.type === 'opaqueredirect' || r.status === 401) location.reload();
    } catch { /* the relay is down: keep retrying */ }
  }

  function control(msg) {
    switch (msg.type) {
      case 'init':
        offline = false;
        showMessage('');
        startMedia(msg);
        break;
      case 'offline':
        offline = true;
        setState('offline', 'offline — waiting for the camera');
        break;
      case 'unsupported':
        stopped = true;
        setState('unsupported', 'cannot play here');
        showMessage(`This camera sends ${msg.codec}, which browsers cannot play reliably. Watch it with VLC or ffplay at ${msg.rtsp}`);
        if (ws) ws.close();
        break;
    }
  }

  function startMedia(msg) {
    if (!window.MediaSource || !MediaSource.isTypeSupported(msg.mime)) {
      stopped = true;
      setState('unsupported', 'cannot play here');
      showMessage(`This browser cannot play ${msg.mime}. Watch it with VLC or ffplay at ${root.dataset.rtsp}`);
      if (ws) ws.close();
      return;
    }
    stats.inits++;
    const mine = ++generation;
    // A new init segment means a new decode (new tracks, or a device that came back with a new clock):
    // start from a fresh MediaSource rather than splice two timelines into one SourceBuffer.
    sourceBuffer = null;
    queue = [];
    mediaSource = new MediaSource();
    const url = URL.createObjectURL(mediaSource);
    mediaSource.addEventListener('sourceopen', () => {
      URL.revokeObjectURL(url);
      if (mine !== generation) return;
      try {
        sourceBuffer = mediaSource.addSourceBuffer(msg.mime);
      } catch (e) {
        showMessage('Cannot play this stream: ' + e.message);
        return;
      }
      sourceBuffer.mode = 'segments';
      sourceBuffer.addEventListener('updateend', () => { chase(); pump(); });
      sourceBuffer.addEventListener('error', () => restart('the decoder reported an error'));
      pump();
    }, { once: true });
    video.src = url;
    unmute.hidden = !msg.audio;
    hasVideo = msg.video;
    lastFrames = 0;
    lastTime = 0;
    if (!stats.state.startsWith('live')) setState('connecting', 'starting');
    const p = video.play();
    if (p) p.catch(() => { /* autoplay waits for data; retried in tick */ });
  }

  function segment(data) {
    stats.segments++;
    queue.push(data);
    if (queue.length > MAX_QUEUED) { restart('the player fell behind'); return; }
    pump();
  }

  function pump() {
    if (!sourceBuffer || sourceBuffer.updating || queue.length === 0) return;
    if (mediaSource.readyState !== 'open') return;
    const next = queue.shift();
    try {
      sourceBuffer.appendBuffer(next);
    } catch (e) {
      if (e.name === 'QuotaExceededError') {
        queue.unshift(next);
        trim(true);
      } else {
        restart('append failed: ' + e.message);
      }
    }
  }

  function restart(why) {
    console.warn('pinhole player restarting:', why);
    sourceBuffer = null;
    queue = [];
    if (ws) { const s = ws; ws = null; s.close(); }
    reconnectLater();
  }

  function trim(force) {
    if (!sourceBuffer || sourceBuffer.updating || video.buffered.length === 0) return;
    const start = video.buffered.start(0);
    const behind = video.currentTime - start;
    if (behind > TRIM_AFTER_S || (force && behind > 2)) {
      sourceBuffer.remove(start, video.currentTime - (force ? 1 : KEEP_BEHIND_S));
    }
  }

  function liveLag() {
    const b = video.buffered;
    if (!b || b.length === 0) return null;
    return b.end(b.length - 1) - video.currentTime;
  }

  // Before the newest buffered range (at the start, or stuck before a gap the relay left when it
  // skipped this viewer to a keyframe) or far behind: jump to just behind the live edge. Runs after
  // every append too, so a burst of frames (the network or the source caught up) is skipped at once.
  function chase() {
    if (!sourceBuffer || video.buffered.length === 0 || video.seeking) return 0;
    const b = video.buffered;
    const last = b.length - 1;
    const end = b.end(last);
    const lag = end - video.currentTime;
    if (lag > FAR_BEHIND_S || video.currentTime < b.start(last)) {
      const target = Math.max(b.start(last), end - SEEK_TARGET_S);
      if (Math.abs(video.currentTime - target) > 0.05) {
        video.currentTime = target;
        stats.seeks++;
        return end - target;
      }
    }
    return lag;
  }

  function tick() {
    if (stats.transport === 'webrtc') { webrtcTick(); return; }
    if (!sourceBuffer || video.buffered.length === 0) return;
    const lag = chase();
    const rate = lag > CHASE_FAST_S ? 1.1 : lag > CHASE_SLOW_S ? 1.05 : 1.0;
    if (video.playbackRate !== rate) video.playbackRate = rate;
    if (video.paused) { const p = video.play(); if (p) p.catch(() => {}); }
    trim(false);

    // Live means pictures are being decoded (or, for an audio-only camera, the clock moves).
    const frames = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality().totalVideoFrames : 0;
    const advancing = frames > lastFrames || (!hasVideo && video.currentTime > lastTime);
    if (!offline && !video.paused && advancing) setState('live', 'live');
    lastFrames = frames;
    lastTime = video.currentTime;
    latencyEl.textContent = stats.state === 'live' ? `MSE · ${lag.toFixed(2)} s behind` : '';
  }

  // ---- WebRTC (WHEP) ----
  const CONNECT_DEADLINE_MS = 3000;   // not connected by then: MSE
  const FIRST_FRAME_DEADLINE_MS = 6000;
  let pc = null;
  let resource = null;

  function startMse(reason) {
    if (stats.transport === 'mse') return;
    stats.fallbackReason = reason || null;
    if (reason) console.warn('pinhole player: WebRTC not used:', reason);
    stopWebRtc();
    stats.transport = 'mse';
    video.srcObject = null;
    connect();
  }

  function stopWebRtc() {
    if (pc) { try { pc.close(); } catch { /* closed */ } pc = null; stats.pc = null; }
    if (resource) {
      fetch(resource, { method: 'DELETE', credentials: 'same-origin', keepalive: true }).catch(() => {});
      resource = null;
    }
  }

  async function startWebRtc() {
    const whep = root.dataset.whep;
    if (!whep || !window.RTCPeerConnection) { startMse(whep ? 'this browser has no WebRTC' : null); return; }
    stats.transport = 'webrtc-connecting';
    setState('connecting', 'connecting (WebRTC)');
    const params = new URLSearchParams(location.search);
    let iceServers = [];
    try { iceServers = JSON.parse(root.dataset.ice || '[]'); } catch { iceServers = []; }
    const config = { iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' };
    // ?ice=relay forces TURN (tests, and networks where only the TURN server is reachable).
    if (params.get('ice') === 'relay') config.iceTransportPolicy = 'relay';
    const started = performance.now();
    const deadline = setTimeout(() => {
      if (stats.transport === 'webrtc-connecting' && (!pc || pc.connectionState !== 'connected')) startMse('not connected within 3 s');
    }, CONNECT_DEADLINE_MS);
    setTimeout(() => {
      if (stats.transport === 'webrtc-connecting') startMse('no picture within 6 s');
    }, FIRST_FRAME_DEADLINE_MS);
    try {
      pc = new RTCPeerConnection(config);
      stats.pc = pc;
      pc.addTransceiver('video', { direction: 'recvonly' });
      if (root.dataset.audio === 'g711') pc.addTransceiver('audio', { direction: 'recvonly' });
      const media = new MediaStream();
      pc.ontrack = (e) => {
        media.addTrack(e.track);
        if (video.srcObject !== media) video.srcObject = media;
        const p = video.play(); if (p) p.catch(() => {});
      };
      pc.onconnectionstatechange = () => {
        if (!pc) return;
        stats.connectionState = pc.connectionState;
        if (pc.connectionState === 'failed' || (pc.connectionState === 'closed' && stats.transport === 'webrtc')) startMse('WebRTC ' + pc.connectionState);
      };
      await pc.setLocalDescription(await pc.createOffer());
      const r = await fetch(whep, { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
      if (r.status !== 201) {
        clearTimeout(deadline);
        const why = (await r.text()).trim();
        if (r.status === 401) checkStillLoggedIn();
        startMse(`relay answered ${r.status}: ${why}`);
        return;
      }
      resource = r.headers.get('Location');
      await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
      const mark = () => {
        if (stats.transport !== 'webrtc-connecting') return;
        clearTimeout(deadline);
        stats.transport = 'webrtc';
        if (stats.firstFrameAt === null) stats.firstFrameAt = performance.now();
        stats.webrtcFirstFrameMs = performance.now() - started;
        setState('live', 'live');
      };
      if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(mark);
      else video.addEventListener('loadeddata', mark, { once: true });
    } catch (e) {
      clearTimeout(deadline);
      startMse('WebRTC setup failed: ' + e.message);
    }
  }

  // Latency under WebRTC: what the jitter buffer holds plus half the round trip.
  let lastJitter = null;
  async function webrtcTick() {
    if (!pc) return;
    const frames = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality().totalVideoFrames : 0;
    if (frames > lastFrames) setState('live', 'live');
    lastFrames = frames;
    if (video.paused) { const p = video.play(); if (p) p.catch(() => {}); }
    try {
      const report = await pc.getStats();
      let jitter = null, rtt = 0, path = '', selected = null;
      const pairs = {}, locals = {};
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') jitter = { delay: s.jitterBufferDelay || 0, count: s.jitterBufferEmittedCount || 0 };
        if (s.type === 'transport') selected = s.selectedCandidatePairId;
        if (s.type === 'candidate-pair') pairs[s.id] = s;
        if (s.type === 'local-candidate') locals[s.id] = s;
      });
      const pair = selected && pairs[selected];
      if (pair) {
        rtt = pair.currentRoundTripTime || 0;
        const local = locals[pair.localCandidateId];
        if (local && local.candidateType === 'relay') path = ' via TURN';
        else if (local && local.protocol === 'tcp') path = ' over TCP';
      }
      stats.webrtcPath = path.trim() || 'UDP';
      if (jitter && lastJitter && jitter.count > lastJitter.count) {
        stats.webrtcLatency = (jitter.delay - lastJitter.delay) / (jitter.count - lastJitter.count) + rtt / 2;
      }
      if (jitter) lastJitter = jitter;
      latencyEl.textContent = stats.state === 'live' && stats.webrtcLatency !== null ? `WebRTC${path} · ${stats.webrtcLatency.toFixed(3)} s behind` : `WebRTC${path}`;
    } catch { /* closed */ }
  }
  window.addEventListener('pagehide', stopWebRtc);

  function watchFirstFrame() {
    const mark = () => { if (stats.firstFrameAt === null) stats.firstFrameAt = performance.now(); };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(mark);
    else video.addEventListener('loadeddata', mark, { once: true });
  }

  unmute.addEventListener('click', () => {
    video.muted = !video.muted;
    unmute.textContent = video.muted ? 'Unmute' : 'Mute';
  });
  // A decode error closes the MediaSource; start over from the next keyframe with a fresh one.
  video.addEventListener('error', () => { if (sourceBuffer && video.error) restart('media error ' + video.error.code + ': ' + video.error.message); });
  video.addEventListener('waiting', () => { if (!offline && sourceBuffer) setState('buffering', 'buffering'); });

  watchFirstFrame();
  setInterval(tick, 200);
  if (root.dataset.audio === 'aac' && root.dataset.whep) showMessage('This camera\'s audio is AAC, which WebRTC cannot carry: WebRTC plays its video only.');
  startWebRtc();
})();
