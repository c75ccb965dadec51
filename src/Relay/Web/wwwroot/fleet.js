// The fleet pages: draws /fleet and /fleet/devices/ID from the relay's /api. No framework, no CDN.
'use strict';
(function () {
  const page = document.body.dataset.page;
  const device = document.body.dataset.device;

  async function api(method, path, body) {
    const init = { method, headers: {}, credentials: 'same-origin' };
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
      cell(tr, d.revoked ? 'revoked' : d.online ? 'online' : 'offline', 'state ' + (d.online ? 'online' : 'offline'));
      cell(tr, when(d.lastSeen)); cell(tr, d.agent);
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
        ['cameras', summary(d.cameras)], ['sensors', summary(d.sensors)],
        ['desired revision', d.desiredRevision], ['reported', d.reportedRevision ? d.reportedRevision + ' ' + d.reportedOutcome : null],
        ['last error', d.lastError],
      ];
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
    drawFleet();
    setInterval(drawFleet, 5000);
  } else {
    document.getElementById('save').addEventListener('click', save);
    document.getElementById('rotate').addEventListener('click', () => tokenAction('rotate-token'));
    document.getElementById('revoke').addEventListener('click', () => tokenAction('revoke'));
    loadConfig();
    drawDevice();
    setInterval(drawDevice, 5000);
  }
})();
