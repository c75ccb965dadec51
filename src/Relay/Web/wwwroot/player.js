// Pinhole live player: fMP4 over WebSocket into Media Source Extensions. Plain modern JavaScript, no build step.
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

  // What tests and the benchmark read (window.pinhole): state, first-frame time, latency samples.
  const stats = {
    state: 'connecting', firstFrameAt: null, inits: 0, seeks: 0, segments: 0, reconnects: 0,
    latency: () => liveLag(),
  };
  window.pinhole = stats;

  let ws = null;
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
    let opened = false;
    const socket = new WebSocket(wsUrl);
    socket.binaryType = 'arraybuffer';
    ws = socket;
    socket.onopen = () => { opened = true; failedOpens = 0; backoffMs = 500; };
    socket.onmessage = (e) => {
      if (socket !== ws) return;
      if (typeof e.data === 'string') control(JSON.parse(e.data));
      else segment(e.data);
    };
    socket.onclose = () => {
      if (socket !== ws) return;
      ws = null;
      if (stopped) return;
      if (!opened && ++failedOpens >= 3) checkStillLoggedIn();
      reconnectLater();
    };
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
    latencyEl.textContent = stats.state === 'live' ? `${lag.toFixed(2)} s behind` : '';
  }

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
  connect();
})();
