// The fleet pages: draws /fleet and /fleet/devices/ID from the relay's /api. No framework, no CDN.
'use strict';
(function () {
  const page = document.body.dataset.page;
  const device = document.body.dataset.device;

  async function api(method, path, body) {
    const init = { method, headers: {}, credentials: 'same-origin' };
    // Changes carry the page's antiforgery token: the session cookie alone is refused (docs/security.md).
    if (method !== 'GET') init.headers['X-CSRF-Token'] = document.querySelector('meta[name="csrf-token"]').content;
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const r = await fetch('/api' + path, init);
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
    return { status: r.status, ok: r.ok, text, json, headers: r.headers };
  }

  function cell(tr, value, cls) {
    const td = document.createElement('td');
    td.textContent = value === null || value === undefined || value === '' ? '—' : String(value);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function when(iso) { return iso ? new Date(iso).toLocaleString() : '—'; }

  function summary(items) {
    if (!items || items.length === 0) return '—';
    return items.map(i => i.name + (i.healthy === false ? ' (' + (i.state || 'down') + ')' : '')).join(', ');
  }

  async function drawAudit(target) {
    const r = await api('GET', '/audit?limit=100' + (target ? '&target=' + encodeURIComponent(target) : ''));
    const body = document.querySelector('#audit tbody');
    body.textContent = '';
    for (const a of r.json || []) {
      const tr = document.createElement('tr');
      cell(tr, when(a.at)); cell(tr, a.actor); cell(tr, a.from); cell(tr, a.action); cell(tr, a.target); cell(tr, a.detail);
      body.appendChild(tr);
    }
  }

  // One device's update state as a person reads it: "downloading 40 %", "rolled back: why".
  function updateText(u) {
    if (!u || !u.state) return null;
    switch (u.state) {
      case 'downloading': return 'downloading ' + (u.percent || 0) + ' %';
      case 'rolled-back': return 'rolled back' + (u.detail ? ': ' + u.detail : '');
      case 'refused': return 'refused' + (u.detail ? ': ' + u.detail : '');
      case 'no-bundle': return u.detail || 'no bundle for this architecture';
      default: return u.state;
    }
  }

  // The device list's update column: the version it runs, then what it does about the last offer.
  function updateColumn(d) {
    const u = d.update;
    const running = d.version || (u && u.running) || '?';
    if (!u || !u.state) return running;
    if (u.state === 'committed' && u.version === running) return running + ' (committed)';
    return running + ' → ' + u.version + ' ' + updateText(u);
  }

  // The uplink rate the device measured (bytes per second in the API), as kbit/s or Mbit/s.
  function linkRate(d) {
    const r = d.linkBytesPerSecond;
    if (r === null || r === undefined) return null;
    if (r === 0) return 'measuring';
    const kbit = r * 8 / 1000;
    return kbit >= 1000 ? (kbit / 1000).toFixed(1) + ' Mbit/s' : Math.round(kbit) + ' kbit/s';
  }

  function bytes(n) {
    if (n === null || n === undefined) return null;
    return n >= 1048576 ? (n / 1048576).toFixed(1) + ' MiB' : n >= 1024 ? (n / 1024).toFixed(1) + ' KiB' : n + ' B';
  }

  async function drawReleases() {
    const r = await api('GET', '/releases');
    if (!r.ok) return;
    const body = document.querySelector('#releases tbody');
    body.textContent = '';
    const select = document.querySelector('#start-rollout select[name=version]');
    const chosen = select.value;
    select.textContent = '';
    // Newest first in both: the list is sorted oldest version first. One row per bundle (version and
    // architecture), one option per version (a rollout offers each device the bundle of its architecture).
    const options = new Map();
    for (const rel of (r.json || []).slice().reverse()) {
      const tr = document.createElement('tr');
      tr.dataset.version = rel.version;
      tr.dataset.architecture = rel.architecture;
      cell(tr, rel.version); cell(tr, rel.architecture); cell(tr, when(rel.created)); cell(tr, bytes(rel.size), 'num');
      cell(tr, rel.files, 'num'); cell(tr, rel.sha256 ? rel.sha256.slice(0, 16) + '…' : null);
      body.appendChild(tr);
      if (!options.has(rel.version)) options.set(rel.version, []);
      options.get(rel.version).push(rel.architecture);
    }
    for (const [version, archs] of options) {
      const option = document.createElement('option');
      option.value = version;
      option.textContent = version + ' (' + archs.slice().sort().join(', ') + ')';
      select.appendChild(option);
    }
    if (chosen && [...select.options].some(o => o.value === chosen)) select.value = chosen;
  }

  async function drawRollouts() {
    const r = await api('GET', '/rollouts');
    if (!r.ok) return;
    const panel = document.getElementById('rollouts');
    panel.textContent = '';
    const list = (r.json || []).slice(0, 5);
    if (list.length === 0) {
      const p = document.createElement('p'); p.className = 'muted'; p.textContent = 'none yet'; panel.appendChild(p);
      return;
    }
    for (const ro of list) {
      const div = document.createElement('div');
      div.className = 'rollout';
      div.dataset.rollout = ro.id;
      const h = document.createElement('h4');
      h.textContent = 'Rollout ' + ro.id + ': ' + ro.version + ' to ' + (ro.devices === 'all' ? 'all devices' : ro.devices.join(', ')) +
        ' (' + ro.percent + ' %, halts above ' + ro.maxFailurePercent + ' % failures' + (ro.force ? ', forced' : '') + ') by ' + ro.author + ', ' + when(ro.created);
      div.appendChild(h);
      const state = document.createElement('p');
      state.className = 'rollout-state' + (ro.state === 'halted' ? ' error' : '');
      state.textContent = ro.state + (ro.detail ? ': ' + ro.detail : '');
      div.appendChild(state);
      const table = document.createElement('table');
      table.innerHTML = '<thead><tr><th>device</th><th>running</th><th>state</th><th>since</th></tr></thead><tbody></tbody>';
      for (const d of ro.staged || []) {
        const tr = document.createElement('tr');
        tr.dataset.device = d.device;
        cell(tr, d.device); cell(tr, d.running);
        cell(tr, updateText(d), 'update ' + (d.state || ''));
        cell(tr, when(d.updated));
        table.tBodies[0].appendChild(tr);
      }
      div.appendChild(table);
      panel.appendChild(div);
    }
  }

  async function startRollout(form) {
    const out = document.getElementById('rollout-result');
    out.className = '';
    out.textContent = 'starting…';
    const f = form.elements;
    const body = {
      version: f.version.value,
      percent: Number(f.percent.value),
      maxFailurePercent: Number(f.maxFailurePercent.value),
      force: f.force.checked,
    };
    if (f.all.checked) body.all = true;
    else body.devices = f.devices.value.split(',').map(x => x.trim()).filter(x => x.length > 0);
    const r = await api('POST', '/rollouts', body);
    if (r.ok && r.json) {
      out.textContent = 'rollout ' + r.json.id + ' started: ' + r.json.version + ' to ' + (r.json.devices === 'all' ? 'all devices' : r.json.devices.join(', '));
    } else {
      out.className = 'error';
      out.textContent = 'not started: ' + ((r.json && r.json.error) || ('HTTP ' + r.status));
    }
    await drawRollouts();
    await drawFleet();
  }

  async function drawFleet() {
    const r = await api('GET', '/devices');
    const body = document.querySelector('#devices tbody');
    body.textContent = '';
    for (const d of r.json || []) {
      const tr = document.createElement('tr');
      tr.dataset.device = d.id;
      const name = cell(tr, '');
      const a = document.createElement('a');
      a.href = '/fleet/devices/' + encodeURIComponent(d.id);
      a.textContent = d.id;
      name.textContent = '';
      name.appendChild(a);
      const state = cell(tr, d.revoked ? 'revoked' : d.online ? 'online' : 'offline', 'state ' + (d.online ? 'online' : 'offline'));
      if (d.online && d.relay) state.title = 'uplink on ' + d.relay; // several relays (docs/scale-out.md)
      cell(tr, when(d.lastSeen)); cell(tr, d.agent);
      cell(tr, linkRate(d), 'link num');
      cell(tr, updateColumn(d), 'update');
      cell(tr, summary(d.cameras));
      const sensors = cell(tr, '');
      const chart = document.createElement('a');
      chart.href = '/devices/' + encodeURIComponent(d.id) + '/sensors';
      chart.className = 'sensors-link';
      chart.textContent = summary(d.sensors) || 'history';
      sensors.textContent = '';
      sensors.appendChild(chart);
      cell(tr, d.desiredRevision); cell(tr, d.reportedRevision ? d.reportedRevision + ' ' + d.reportedOutcome : null);
      cell(tr, d.lastError);
      body.appendChild(tr);
    }
    await drawAudit(null);
  }

  async function drawDevice() {
    const r = await api('GET', '/devices/' + encodeURIComponent(device));
    const dl = document.getElementById('state');
    dl.textContent = '';
    if (r.json) {
      const d = r.json;
      const rows = [
        ['state', d.revoked ? 'revoked' : d.online ? 'online' : 'offline'], ['last seen', when(d.lastSeen)],
        ['address', d.remoteAddress], ['agent', d.agent], ['uptime', d.uptimeSeconds ? Math.round(d.uptimeSeconds) + ' s' : null],
        ['uplink rate', linkRate(d)],
        ['cameras', summary(d.cameras)], ['sensors', summary(d.sensors)],
        ['version and update', updateColumn(d)],
        ['desired revision', d.desiredRevision], ['reported', d.reportedRevision ? d.reportedRevision + ' ' + d.reportedOutcome : null],
        ['last error', d.lastError],
      ];
      // Several relays (docs/scale-out.md): which one holds the uplink.
      if ('relay' in d) rows.splice(1, 0, ['relay', d.online ? d.relay : null]);
      for (const [k, v] of rows) {
        const dt = document.createElement('dt'); dt.textContent = k;
        const dd = document.createElement('dd'); dd.textContent = v === null || v === undefined || v === '' ? '—' : String(v);
        dl.appendChild(dt); dl.appendChild(dd);
      }
    }
    const h = await api('GET', '/devices/' + encodeURIComponent(device) + '/config/history');
    const body = document.querySelector('#history tbody');
    body.textContent = '';
    for (const rev of h.json || []) {
      const tr = document.createElement('tr');
      cell(tr, rev.revision); cell(tr, rev.author); cell(tr, when(rev.created)); cell(tr, rev.outcome || 'pending'); cell(tr, rev.detail);
      body.appendChild(tr);
    }
    await drawAudit(device);
  }

  async function loadConfig() {
    const r = await api('GET', '/devices/' + encodeURIComponent(device) + '/config');
    const area = document.getElementById('config');
    area.value = r.ok ? JSON.stringify(JSON.parse(r.text), null, 2) : '{\n  "cameras": [],\n  "sensors": []\n}';
  }

  async function save() {
    const out = document.getElementById('save-result');
    const list = document.getElementById('problems');
    list.textContent = '';
    out.textContent = 'saving…';
    const r = await api('PUT', '/devices/' + encodeURIComponent(device) + '/config', document.getElementById('config').value);
    if (r.ok) {
      out.textContent = 'stored as revision ' + r.json.revision;
    } else if (r.status === 400) {
      out.textContent = 'not saved:';
      for (const line of r.text.split('\n').filter(l => l.length > 0)) {
        const li = document.createElement('li'); li.textContent = line; list.appendChild(li);
      }
    } else {
      out.textContent = 'not saved: ' + ((r.json && r.json.error) || r.status);
    }
    await drawDevice();
  }

  async function tokenAction(action) {
    const out = document.getElementById('token-result');
    const r = await api('POST', '/devices/' + encodeURIComponent(device) + '/' + action, {});
    out.textContent = r.ok ? (r.json && r.json.token ? 'new token (shown once): ' + r.json.token : 'done') : ((r.json && r.json.error) || r.status);
    await drawDevice();
  }

  if (page === 'fleet') {
    document.getElementById('add-device').addEventListener('submit', async e => {
      e.preventDefault();
      const id = e.target.elements.id.value;
      const r = await api('POST', '/devices', { id });
      document.getElementById('add-result').textContent = r.ok ? 'token for ' + id + ' (shown once): ' + r.json.token : ((r.json && r.json.error) || r.status);
      await drawFleet();
    });
    document.getElementById('start-rollout').addEventListener('submit', async e => {
      e.preventDefault();
      await startRollout(e.target);
    });
    drawFleet();
    drawReleases();
    drawRollouts();
    setInterval(drawFleet, 5000);
    setInterval(drawReleases, 10000);
    // A download moves in seconds: the rollout panel is redrawn more often than the rest.
    setInterval(drawRollouts, 2000);
  } else {
    document.getElementById('save').addEventListener('click', save);
    document.getElementById('rotate').addEventListener('click', () => tokenAction('rotate-token'));
    document.getElementById('revoke').addEventListener('click', () => tokenAction('revoke'));
    loadConfig();
    drawDevice();
    setInterval(drawDevice, 5000);
  }
})();
