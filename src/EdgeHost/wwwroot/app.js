// The edge page: a live status table (pushed over the WebSocket api/status/live, polling
// api/status when that cannot open) and a config editor that posts the editable sections to api/config.
// Every URL is relative to the page, so it works at the device's / and under the relay's
// /devices/ID/ui/ prefix alike. Field names are the JSON paths the server reports problems
// with (e.g. "cameras[1].source"), so each message lands next to its field.
'use strict';

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

// ---- status ------------------------------------------------------------------------------

async function refreshStatus() {
  try {
    const res = await fetch('api/status', { cache: 'no-store' });
    if (res.status === 401) { location.href = './'; return; }
    showStatus(await res.json());
  } catch (e) {
    $('#status-error').textContent = 'cannot reach the device: ' + e.message;
  }
}

function showStatus(s) {
  $('#device-id').textContent = s.deviceId;
  $('#summary').textContent = s.summary;
  const managed = $('#managed');
  if (s.managed) {
    managed.hidden = false;
    managed.textContent = `Managed remotely: revision ${s.managed.revision} ${s.managed.outcome}` +
      (s.managed.detail ? ` (${s.managed.detail})` : '') + '. Changes saved here are replaced by the relay\'s next configuration.';
  } else {
    managed.hidden = true;
  }
  const body = $('#pipelines tbody');
  body.replaceChildren(...s.pipelines.map(p => {
    const tr = el('tr', { 'data-pipeline': p.name, class: p.healthy ? 'healthy' : 'unhealthy' },
      el('td', { class: 'name', text: p.name }),
      el('td', { class: 'state state-' + p.state, text: p.state + (p.nextStartInSeconds != null ? ` (next start in ${p.nextStartInSeconds}s)` : '') }),
      el('td', { class: 'restarts', text: String(p.restarts) }),
      el('td', { class: 'heartbeat', text: p.heartbeatAgeSeconds == null ? '–' : p.heartbeatAgeSeconds + ' s ago' }),
      el('td', { class: 'status', text: p.status }),
      el('td', { class: 'error', text: p.lastError || '' }));
    tr.dataset.starts = String(p.starts);
    return tr;
  }));
  renderPanels(s.pipelines);
  $('#status-error').textContent = '';
}

// Live status over a WebSocket; while it is not open, poll once a second. It reconnects after a drop.
let poller = null;
function startPolling() { if (!poller) poller = setInterval(refreshStatus, 1000); }
function stopPolling() { if (poller) { clearInterval(poller); poller = null; } }
function connectLive() {
  let ws;
  try {
    ws = new WebSocket(new URL('api/status/live', location.href.replace(/^http/, 'ws')));
  } catch (e) {
    startPolling();
    return;
  }
  ws.onopen = () => { stopPolling(); document.body.dataset.live = 'open'; };
  ws.onmessage = ev => { document.body.dataset.liveMessages = String(Number(document.body.dataset.liveMessages || 0) + 1); showStatus(JSON.parse(ev.data)); };
  ws.onclose = () => {
    document.body.dataset.live = 'closed';
    startPolling();
    setTimeout(connectLive, 5000);
  };
}

// The uplink and MQTT pipelines put the relay/broker in use in their status line; sensor
// pipelines put their latest reading there.
function renderPanels(pipelines) {
  for (const [id, name] of [['#uplink-panel', 'uplink'], ['#mqtt-panel', 'mqtt']]) {
    const p = pipelines.find(x => x.name === name);
    $(id + ' .state').textContent = p ? p.state + (p.healthy ? '' : ' (unhealthy)') : 'not configured';
    $(id + ' .detail').textContent = p ? (p.lastError && !p.healthy ? p.lastError : p.status) : '';
  }
  const sensors = pipelines.filter(p => p.name.startsWith('sensor/'));
  $('#sensors-panel tbody').replaceChildren(...sensors.map(p => el('tr', { 'data-sensor': p.name.slice(7) },
    el('td', { text: p.name.slice(7) }), el('td', { class: 'value', text: p.healthy ? p.status : p.state }))));
}

// ---- config editor -----------------------------------------------------------------------

const SENSOR_FIELDS = {
  file: ['path', 'scale', 'offset', 'unit', 'interval'],
  gpio: ['chip', 'line', 'edge', 'debounce', 'unit'],
};
const NUMERIC = new Set(['scale', 'offset', 'line']);
const TRANSPORTS = ['auto', 'tcp', 'udp'];
let loaded = null;

function field(path, label, value, opts = {}) {
  const id = 'f-' + path.replace(/[^a-zA-Z0-9]/g, '-');
  let input;
  if (opts.options) {
    input = el('select', { id, name: path });
    for (const o of opts.options) input.append(el('option', { value: o, text: o }));
    input.value = value ?? opts.options[0];
  } else {
    input = el('input', { id, name: path, type: opts.type || 'text' });
    input.value = value ?? '';
    if (opts.placeholder) input.placeholder = opts.placeholder;
  }
  const wrap = el('div', { class: 'field' + (opts.wide ? ' wide' : '') },
    el('label', { for: id, text: label }), input, el('span', { class: 'err', 'data-for': path }));
  if (opts.key) wrap.dataset.key = opts.key;
  return wrap;
}

function removeButton(onClick) {
  const b = el('button', { type: 'button', class: 'remove', text: 'Remove' });
  b.addEventListener('click', onClick);
  return b;
}

function render(config) {
  const relays = $('#relays');
  relays.replaceChildren(...(config.relays || []).map((url, i) => el('div', { class: 'row relay' },
    field(`relays[${i}]`, 'URL', url, { wide: true, placeholder: 'wss://relay.example.com/uplink' }),
    removeButton(() => { config.relays.splice(i, 1); render(collect()); }))));
  relays.prepend(el('span', { class: 'err', 'data-for': 'relays' }));

  const cameras = $('#cameras');
  cameras.replaceChildren(...(config.cameras || []).map((c, i) => el('div', { class: 'row camera' },
    field(`cameras[${i}].name`, 'name', c.name),
    field(`cameras[${i}].source`, 'source (rtsp:// or exec:)', c.source, { wide: true }),
    // auto: TCP, then UDP when the camera refuses TCP; the status table says which one plays.
    field(`cameras[${i}].transport`, 'transport (rtsp://)', c.transport, { options: TRANSPORTS }),
    removeButton(() => { const cfg = collect(); cfg.cameras.splice(i, 1); render(cfg); }))));

  const sensors = $('#sensors');
  sensors.replaceChildren(...(config.sensors || []).map((s, i) => {
    const p = `sensors[${i}]`;
    const row = el('div', { class: 'row sensor' },
      field(`${p}.name`, 'name', s.name),
      field(`${p}.kind`, 'kind', s.kind, { options: ['file', 'gpio'] }),
      field(`${p}.path`, 'path', s.path, { wide: true, key: 'path' }),
      field(`${p}.scale`, 'scale', s.scale, { key: 'scale' }),
      field(`${p}.offset`, 'offset', s.offset, { key: 'offset' }),
      field(`${p}.interval`, 'interval', s.interval, { key: 'interval', placeholder: '5s' }),
      field(`${p}.chip`, 'chip', s.chip, { key: 'chip', placeholder: '/dev/gpiochip0' }),
      field(`${p}.line`, 'line', s.line, { key: 'line' }),
      field(`${p}.edge`, 'edge', s.edge, { key: 'edge', options: ['both', 'rising', 'falling'] }),
      field(`${p}.debounce`, 'debounce', s.debounce, { key: 'debounce', placeholder: '20ms' }),
      field(`${p}.unit`, 'unit', s.unit, { key: 'unit' }),
      removeButton(() => { const cfg = collect(); cfg.sensors.splice(i, 1); render(cfg); }));
    const kind = row.querySelector(`[name="${p}.kind"]`);
    const showKind = () => {
      const wanted = SENSOR_FIELDS[kind.value] || [];
      for (const f of row.querySelectorAll('.field[data-key]')) f.classList.toggle('hidden', !wanted.includes(f.dataset.key));
    };
    kind.addEventListener('change', showKind);
    showKind();
    return row;
  }));

  const m = config.mqtt;
  $('#mqtt-enabled').checked = !!m;
  $('#mqtt').replaceChildren(el('div', { class: 'row' },
    field('mqtt.url', 'broker URL', m?.url, { wide: true, placeholder: 'wss://broker.example.com:8884/mqtt' }),
    field('mqtt.username', 'username', m?.username),
    field('mqtt.password', 'password', '', { type: 'password', placeholder: m?.passwordSet ? '(unchanged)' : '' }),
    field('mqtt.topicPrefix', 'topic prefix', m?.topicPrefix, { placeholder: 'pinhole' })));
  $('#mqtt').classList.toggle('hidden', !m);
}

function value(name) {
  const input = document.getElementsByName(name)[0];
  return input ? input.value.trim() : '';
}

// Numbers go as numbers when they parse; otherwise as typed, so the server names the problem.
function typed(key, text) {
  if (NUMERIC.has(key) && text !== '' && !Number.isNaN(Number(text))) return Number(text);
  return text;
}

function collect() {
  const cfg = { relays: [], cameras: [], sensors: [], mqtt: null };
  document.querySelectorAll('#relays .relay').forEach((_, i) => cfg.relays.push(value(`relays[${i}]`)));
  document.querySelectorAll('#cameras .camera').forEach((_, i) => {
    const c = { name: value(`cameras[${i}].name`), source: value(`cameras[${i}].source`) };
    // auto is the default: leave the key out so edge.json stays as short as the user wrote it.
    const transport = value(`cameras[${i}].transport`);
    if (transport && transport !== 'auto') c.transport = transport;
    cfg.cameras.push(c);
  });
  document.querySelectorAll('#sensors .sensor').forEach((_, i) => {
    const p = `sensors[${i}]`;
    const s = { name: value(`${p}.name`), kind: value(`${p}.kind`) };
    for (const key of SENSOR_FIELDS[s.kind] || []) {
      const v = value(`${p}.${key}`);
      if (v !== '') s[key] = typed(key, v);
    }
    cfg.sensors.push(s);
  });
  if ($('#mqtt-enabled').checked) {
    const m = { url: value('mqtt.url') };
    for (const key of ['username', 'password', 'topicPrefix']) {
      const v = value('mqtt.' + key);
      if (v !== '') m[key] = v;
    }
    if (loaded?.mqtt?.passwordSet && !('password' in m)) m.passwordSet = true;
    cfg.mqtt = m;
  }
  return cfg;
}

function clearProblems() {
  document.querySelectorAll('.err').forEach(e => { e.textContent = ''; });
  document.querySelectorAll('.invalid').forEach(e => e.classList.remove('invalid'));
}

function showProblems(problems) {
  const general = [];
  for (const p of problems) {
    const slot = document.querySelector(`.err[data-for="${CSS.escape(p.path)}"]`);
    if (slot) {
      slot.textContent = p.message;
      document.getElementsByName(p.path)[0]?.classList.add('invalid');
    } else {
      general.push(p.path ? `${p.path}: ${p.message}` : p.message);
    }
  }
  const result = $('#save-result');
  result.className = 'message bad';
  result.replaceChildren(el('div', { text: `Not saved: ${problems.length} problem${problems.length === 1 ? '' : 's'}. The running configuration is unchanged.` }),
    ...general.map(g => el('div', { class: 'problem', text: g })));
}

async function loadConfig() {
  const res = await fetch('api/config', { cache: 'no-store' });
  if (res.status === 401) { location.href = './'; return; }
  loaded = await res.json();
  render(structuredClone(loaded));
}

async function save(ev) {
  ev.preventDefault();
  clearProblems();
  const result = $('#save-result');
  result.className = 'message';
  result.textContent = 'saving…';
  let res, body;
  try {
    res = await fetch('api/config', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(collect()),
    });
    body = await res.json();
  } catch (e) {
    result.className = 'message bad';
    result.textContent = 'Not saved: ' + e.message;
    return;
  }
  if (!body.saved) { showProblems(body.problems || [{ path: '', message: 'HTTP ' + res.status }]); return; }
  const parts = [];
  if (body.restarted.length) parts.push('restarted ' + body.restarted.join(', '));
  if (body.started.length) parts.push('started ' + body.started.join(', '));
  if (body.stopped.length) parts.push('stopped ' + body.stopped.join(', '));
  // Re-render from the server first, so the message appears only once the form shows what was saved.
  await loadConfig();
  result.className = 'message ok';
  result.textContent = 'Saved and applied' + (parts.length ? ': ' + parts.join('; ') : ' (nothing changed)') + '.';
  await refreshStatus();
}

$('#add-relay').addEventListener('click', () => { const c = collect(); c.relays.push(''); render(c); });
$('#add-camera').addEventListener('click', () => { const c = collect(); c.cameras.push({ name: '', source: '' }); render(c); });
$('#add-sensor').addEventListener('click', () => { const c = collect(); c.sensors.push({ name: '', kind: 'file', interval: '5s' }); render(c); });
$('#mqtt-enabled').addEventListener('change', e => $('#mqtt').classList.toggle('hidden', !e.target.checked));
$('#revert').addEventListener('click', () => { clearProblems(); $('#save-result').textContent = ''; render(structuredClone(loaded)); });
$('#config-form').addEventListener('submit', save);

loadConfig();
refreshStatus();
startPolling();
connectLive();
