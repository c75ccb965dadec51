// The sensor dashboard: one uPlot chart per sensor, min/max band around the average, gaps where no
// readings were stored, steps for 0/1 sensors (GPIO). Recent ranges refresh every few seconds.
(function () {
  'use strict';
  const device = document.body.dataset.device;
  const charts = document.getElementById('charts');
  const api = '/api/devices/' + encodeURIComponent(device) + '/sensors';
  let range = { seconds: 3600 };   // or { from: Date, to: Date }
  let timer = null;
  const plots = new Map();         // sensor -> { section, plot }

  function iso(ms) { return new Date(ms).toISOString(); }

  async function getJson(url) {
    const r = await fetch(url, { credentials: 'same-origin' });
    if (!r.ok) throw new Error(url + ': ' + r.status);
    return r.json();
  }

  function window_() {
    if (range.seconds) { const to = Date.now() + 1000; return { from: to - range.seconds * 1000 - 1000, to }; }
    return { from: range.from.getTime(), to: range.to.getTime() };
  }

  // Turns the API's points into uPlot columns, inserting a null where the distance between two
  // points is well over the usual one, so an outage shows as a gap rather than a straight line.
  function columns(history) {
    const pts = history.points;
    const xs = [], avg = [], lo = [], hi = [];
    const step = history.bucketMs > 0 ? history.bucketMs : medianStep(pts);
    let prev = null;
    for (const p of pts) {
      const t = Date.parse(p.ts);
      if (prev !== null && step > 0 && t - prev > 3 * step) { xs.push((prev + step) / 1000); avg.push(null); lo.push(null); hi.push(null); }
      xs.push(t / 1000);
      const a = p.avg !== undefined ? p.avg : p.value;
      avg.push(a);
      lo.push(p.min !== undefined ? p.min : a);
      hi.push(p.max !== undefined ? p.max : a);
      prev = t;
    }
    return [xs, avg, lo, hi];
  }

  function medianStep(pts) {
    if (pts.length < 3) return 0;
    const d = [];
    for (let i = 1; i < pts.length; i++) d.push(Date.parse(pts[i].ts) - Date.parse(pts[i - 1].ts));
    d.sort((a, b) => a - b);
    return d[Math.floor(d.length / 2)];
  }

  function isBinary(data) { return data[1].every(v => v === null || v === 0 || v === 1); }

  function section(sensor) {
    let entry = plots.get(sensor.name);
    if (entry) return entry;
    const s = document.createElement('section');
    s.className = 'sensor';
    s.dataset.sensor = sensor.name;
    const h = document.createElement('h2');
    const name = document.createElement('span'); name.textContent = sensor.name;
    const value = document.createElement('span'); value.className = 'value';
    const alert = document.createElement('span'); alert.className = 'alert'; alert.hidden = true;
    h.append(name, value, alert);
    const plot = document.createElement('div'); plot.className = 'plot';
    s.append(h, plot);
    charts.append(s);
    entry = { section: s, value, alert, plotEl: plot, plot: null, binary: null };
    plots.set(sensor.name, entry);
    return entry;
  }

  function draw(entry, sensor, data) {
    const binary = isBinary(data) && data[0].length > 0;
    if (entry.plot && entry.binary === binary) { entry.plot.setData(data); return; }
    if (entry.plot) entry.plot.destroy();
    entry.binary = binary;
    const width = Math.max(320, charts.clientWidth || 800);
    const paths = binary ? uPlot.paths.stepped({ align: 1 }) : undefined;
    entry.plot = new uPlot({
      width, height: 220,
      scales: { x: { time: true } },
      series: [
        {},
        { label: sensor.unit ? 'avg (' + sensor.unit + ')' : 'avg', stroke: '#2a7ae2', width: 1.5, paths, spanGaps: false },
        { label: 'min', stroke: '#2a7ae255', width: 0, paths, spanGaps: false },
        { label: 'max', stroke: '#2a7ae255', width: 0, paths, spanGaps: false },
      ],
      bands: [{ series: [3, 2], fill: '#2a7ae222' }],
      axes: [{}, { label: sensor.unit || '' }],
    }, data, entry.plotEl);
  }

  async function refresh() {
    let list;
    try { list = await getJson(api); } catch (e) { return; }
    const status = document.getElementById('status');
    status.textContent = list.status || 'unknown';
    status.className = 'state ' + (list.status || '');
    const alerts = document.getElementById('alerts');
    alerts.replaceChildren(...list.alerts.map(a => {
      const li = document.createElement('li');
      li.dataset.sensor = a.sensor;
      li.textContent = a.sensor + ': ' + a.value + ' (' + a.rule + ')';
      return li;
    }));
    document.getElementById('empty').hidden = list.sensors.length > 0;
    const w = window_();
    const points = Math.min(2000, Math.max(100, Math.floor((charts.clientWidth || 800))));
    for (const sensor of list.sensors) {
      const entry = section(sensor);
      entry.value.textContent = sensor.value + (sensor.unit ? ' ' + sensor.unit : '');
      entry.alert.hidden = !sensor.alert;
      entry.alert.textContent = sensor.alert ? 'alert: ' + sensor.alert.rule : '';
      entry.section.dataset.alert = sensor.alert ? 'raised' : '';
      let history;
      try {
        history = await getJson(api + '/' + encodeURIComponent(sensor.name) + '/history?from=' + iso(w.from) + '&to=' + iso(w.to) + '&points=' + points);
      } catch (e) { continue; }
      const data = columns(history);
      entry.section.dataset.points = String(history.points.length);
      entry.section.dataset.readings = String(history.points.reduce((n, p) => n + (p.count || 1), 0));
      entry.section.dataset.tier = history.tier;
      draw(entry, sensor, data);
    }
    const first = list.sensors[0];
    if (first) document.getElementById('csv').href = api + '/' + encodeURIComponent(first.name) + '/history?format=csv&from=' + iso(w.from) + '&to=' + iso(w.to) + '&points=2000';
  }

  function schedule() {
    if (timer) clearInterval(timer);
    const every = range.seconds && range.seconds <= 86400 ? 2000 : 60000;
    timer = setInterval(refresh, every);
    refresh();
  }

  function pad(n) { return String(n).padStart(2, '0'); }
  function local(d) { return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' + pad(d.getHours()) + ':' + pad(d.getMinutes()); }

  for (const b of document.querySelectorAll('#ranges button[data-range]')) {
    b.addEventListener('click', () => {
      range = { seconds: Number(b.dataset.range) };
      for (const o of document.querySelectorAll('#ranges button')) o.classList.toggle('active', o === b);
      schedule();
    });
  }
  document.getElementById('apply').addEventListener('click', () => {
    const from = new Date(document.getElementById('from').value), to = new Date(document.getElementById('to').value);
    if (isNaN(from) || isNaN(to) || to <= from) return;
    range = { from, to };
    for (const o of document.querySelectorAll('#ranges button')) o.classList.remove('active');
    schedule();
  });
  const now = new Date();
  document.getElementById('to').value = local(now);
  document.getElementById('from').value = local(new Date(now.getTime() - 86400000));
  document.querySelector('#ranges button[data-range="3600"]').classList.add('active');
  schedule();
})();
