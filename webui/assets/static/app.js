'use strict';
// The control page: a client of the device's JSON API (docs/CONTROL-PAGE.md). Every action
// is one API call; status is polled once a second, charts come over the /api/live websocket.

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const opts = {method, headers: {'X-CSRF-Token': csrf}};
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({}));
  if (r.status === 401) {
    location.reload(); // the session ended: back to the login form
  }
  if (!r.ok) {
    throw new Error(data.error || (r.status + ' ' + r.statusText));
  }
  return data;
}

function showError(e) {
  $('action-error').textContent = e ? e.message : '';
}

// Status

let status = null;

function renderStatus(st) {
  status = st;
  $('state').textContent = st.state;
  $('state').dataset.state = st.state;
  $('room').textContent = st.provisioned ? (st.room || '?') + ' as ' + (st.identity || '?') + ' on ' + st.url : 'not provisioned';
  $('problem').textContent = st.last_error ? st.last_error + ' (attempt ' + st.attempt + ')' : 'none';
  $('device').textContent = (st.name ? st.name + ', ' : '') + st.device_id + ' on ' + st.hal +
    (st.fleet_key ? ', fleet key ' + st.fleet_key : '');
  $('encoder').textContent = st.encoder || 'no camera';
  $('xruns').textContent = 'mic ' + (st.mic_xruns || 0) + ', speaker ' + (st.speaker_xruns || 0) + ' xruns';
  $('led').dataset.on = String(!!st.led);
  $('mic').setAttribute('aria-pressed', String(!!st.mic_muted));
  $('camera').setAttribute('aria-pressed', String(!!st.camera_off));
  $('speaker').setAttribute('aria-pressed', String(!!st.speaker_muted));
  if (document.activeElement !== $('volume')) {
    $('volume').value = st.volume;
    $('volume-value').textContent = st.volume;
  }
  const people = st.participants || [];
  const ul = $('participants');
  if (ul.dataset.list !== people.join('\n')) {
    ul.replaceChildren(...people.map((p) => {
      const li = document.createElement('li');
      li.textContent = p;
      return li;
    }));
    ul.dataset.list = people.join('\n');
  }
  $('participants-empty').hidden = people.length > 0;
  if (st.video) renderVideo(st.video);
}

async function refreshStatus() {
  try {
    renderStatus(await api('GET', '/api/status'));
  } catch (e) { /* shown by the next successful poll; the page keeps polling */ }
}

for (const [id, field] of [['mic', 'mic_muted'], ['camera', 'camera_off'], ['speaker', 'speaker_muted']]) {
  $(id).addEventListener('click', async () => {
    try {
      renderStatus(await api('POST', '/api/mute', {target: id, muted: !(status && status[field])}));
      showError(null);
    } catch (e) { showError(e); }
  });
}

$('volume').addEventListener('input', () => { $('volume-value').textContent = $('volume').value; });
$('volume').addEventListener('change', async () => {
  try {
    renderStatus(await api('POST', '/api/volume', {volume: Number($('volume').value)}));
    showError(null);
  } catch (e) { showError(e); }
});

$('logout').addEventListener('click', async () => {
  try { await api('POST', '/api/logout'); } finally { location.reload(); }
});

// Microphone: its processing settings (/api/audio) and a level meter (/api/meter).

const audioFields = {
  echo_cancellation: 'checked', noise_suppression: 'value', auto_gain: 'checked',
  input_gain_db: 'value', input_sensitivity: 'value', dtx: 'checked',
};

function describeAudio(field, v) {
  if (field === 'input_gain_db') return (v > 0 ? '+' : '') + v + ' dB';
  if (field === 'input_sensitivity') return v >= 127 ? 'sends everything' : 'silent below −' + v + ' dBov';
  return '';
}

let audio = null;

function renderAudio(a) {
  audio = a;
  for (const [field, prop] of Object.entries(audioFields)) {
    const el = $('audio-' + field);
    if (document.activeElement !== el) el[prop] = a[field];
    const out = $('audio-' + field + '-value');
    if (out) out.textContent = describeAudio(field, a[field]);
  }
  // The gate's mark on the meter: the level below which the box sends silence.
  $('meter-gate').style.left = meterPercent(a.input_sensitivity) + '%';
  $('meter-gate').hidden = a.input_sensitivity >= 127;
}

for (const [field, prop] of Object.entries(audioFields)) {
  const el = $('audio-' + field);
  el.addEventListener('input', () => {
    const out = $('audio-' + field + '-value');
    if (out) out.textContent = describeAudio(field, Number(el.value));
  });
  el.addEventListener('change', async () => {
    let v = el[prop];
    if (prop === 'value' && el.type === 'range') v = Number(v);
    try {
      renderAudio(await api('POST', '/api/audio', {[field]: v}));
      $('audio-error').textContent = '';
    } catch (e) {
      $('audio-error').textContent = e.message;
      if (audio) renderAudio(audio); // back to what the device runs with
    }
  });
}

// Camera: its capture (/api/video) and its layers, as the status reports them.

// ensureOption makes sure select sel offers value (a setting made elsewhere, such as
// 1280x800 from the CLI), so it shows what the device runs with.
function ensureOption(sel, value, label) {
  if (![...sel.options].some((o) => o.value === value)) sel.add(new Option(label, value));
}

function renderVideo(v) {
  // The camera's own modes, when it lists them, are the sizes offered.
  const modes = (v.modes || []).map((m) => m.width + 'x' + m.height);
  const sel = $('video-size');
  if (modes.length && sel.dataset.modes !== modes.join(',')) {
    sel.replaceChildren(...(v.modes.map((m) => new Option(m.width + '×' + m.height + ' (up to ' + m.fps + ' fps)', m.width + 'x' + m.height))));
    sel.dataset.modes = modes.join(',');
  }
  const size = v.settings.width + 'x' + v.settings.height;
  ensureOption($('video-size'), size, v.settings.width + '×' + v.settings.height);
  ensureOption($('video-fps'), String(v.settings.fps), v.settings.fps + ' fps');
  if (document.activeElement !== $('video-size')) $('video-size').value = size;
  if (document.activeElement !== $('video-fps')) $('video-fps').value = String(v.settings.fps);
  $('video-mode').textContent = v.width + '×' + v.height + ' at ' + v.fps + ' fps' + (v.degraded ? ', ' + v.degraded : '');
  const text = (v.layers || []).map((l) => l.rid + ' ' + l.width + '×' + l.height + ' ' +
    (l.sent ? (l.bitrate / 1000).toFixed(0) + ' kbit/s' : 'off'));
  const ul = $('video-layers');
  if (ul.dataset.list !== text.join('\n')) {
    ul.replaceChildren(...text.map((t) => {
      const li = document.createElement('li');
      li.textContent = t;
      return li;
    }));
    ul.dataset.list = text.join('\n');
  }
}

for (const id of ['video-size', 'video-fps']) {
  $(id).addEventListener('change', async () => {
    const [w, h] = $('video-size').value.split('x').map(Number);
    try {
      renderVideo(await api('POST', '/api/video', {width: w, height: h, fps: Number($('video-fps').value)}));
      $('video-error').textContent = '';
    } catch (e) {
      $('video-error').textContent = e.message;
      if (status && status.video) renderVideo(status.video); // back to what the device runs with
    }
  });
}

// meterPercent places a level (-dBov, 0 loudest, 127 silence) on a meter showing the 60 dB
// that speech uses.
const meterPercent = (dBov) => Math.max(0, 100 - dBov / 60 * 100);

function onMeter(m) {
  $('meter-bar').style.width = meterPercent(m.level) + '%';
  $('meter-value').textContent = m.level >= 127 ? 'silence' : '−' + m.level + ' dBov';
  $('speaking').dataset.on = String(m.speaking);
  $('speaking').textContent = m.speaking ? 'speaking' : 'quiet';
}

function connectMeter() {
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/meter');
  ws.addEventListener('message', (ev) => onMeter(JSON.parse(ev.data)));
  ws.addEventListener('close', () => setTimeout(connectMeter, 2000));
}

// Devices

function renderDevices(list) {
  for (const [kind, items] of [['camera', list.cameras], ['microphone', list.microphones], ['speaker', list.speakers]]) {
    const sel = $(kind + '-select');
    sel.replaceChildren(...(items || []).map((d) => {
      const o = document.createElement('option');
      o.value = d.id;
      o.textContent = d.name;
      o.selected = d.selected;
      return o;
    }));
    sel.disabled = !items || items.length === 0;
  }
}

for (const sel of document.querySelectorAll('select[data-kind]')) {
  sel.addEventListener('change', async () => {
    try {
      renderDevices(await api('POST', '/api/devices', {kind: sel.dataset.kind, id: sel.value}));
      showError(null);
    } catch (e) { showError(e); }
  });
}

// Provisioning

$('provision-submit').addEventListener('click', async () => {
  const token = $('provision-token').value.trim();
  const url = $('provision-url').value.trim();
  const result = $('provision-result');
  const body = url ? {url, token} : {provisioning_token: token};
  $('provision-submit').disabled = true;
  try {
    const st = await api('POST', '/api/provision', body);
    renderStatus(st);
    result.dataset.ok = 'true';
    result.textContent = 'Provisioned: room ' + (st.room || '?') + ' on ' + st.url + '.';
    $('provision-token').value = '';
  } catch (e) {
    result.dataset.ok = 'false';
    result.textContent = e.message;
  } finally {
    $('provision-submit').disabled = false;
  }
});

// Preview: WebRTC straight from the device, offer from here, one API call for the answer.

let previewRetry = null;

function schedulePreview(delay) {
  clearTimeout(previewRetry);
  previewRetry = setTimeout(startPreview, delay);
}

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, 2000); // the device learns our address from its checks anyway
  });
}

async function startPreview() {
  const state = $('preview-state');
  const pc = new RTCPeerConnection({iceServers: []});
  pc.addTransceiver('video', {direction: 'recvonly'});
  pc.addTransceiver('audio', {direction: 'recvonly'});
  const stream = new MediaStream();
  pc.addEventListener('track', (ev) => {
    stream.addTrack(ev.track);
    $('preview').srcObject = stream;
  });
  pc.addEventListener('connectionstatechange', () => {
    state.textContent = pc.connectionState;
    if (['failed', 'disconnected', 'closed'].includes(pc.connectionState)) {
      pc.close();
      schedulePreview(3000);
    }
  });
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const answer = await api('POST', '/api/preview', {type: 'offer', sdp: pc.localDescription.sdp});
    await pc.setRemoteDescription(answer);
  } catch (e) {
    state.textContent = 'preview unavailable: ' + e.message;
    pc.close();
    schedulePreview(5000);
  }
}

$('preview-listen').addEventListener('click', () => {
  const v = $('preview');
  v.muted = !v.muted;
  $('preview-listen').setAttribute('aria-pressed', String(!v.muted));
  $('preview-listen').textContent = v.muted ? 'Listen' : 'Stop listening';
});

// Charts: lines over the last two minutes of live samples, one or several per canvas.

const chartPoints = 120;

class Chart {
  // floating: the axis follows the values (temperature) instead of starting at zero.
  constructor(canvas, format, floating) {
    Object.assign(this, {canvas, format, floating, lines: []});
  }
  // add adds a line drawn in color, named key; label is the element showing its value.
  add(key, color, label) {
    this.lines.push({key, color, label, values: [], off: []});
  }
  // push adds a point to each line, in the order they were added, and redraws. A point is
  // {v} (null: no value), with off to draw it dashed (a layer not sent) and text to show
  // instead of the formatted value.
  push(points) {
    this.lines.forEach((line, i) => {
      const p = points[i] || {v: null};
      line.values.push(p.v);
      line.off.push(!!p.off);
      if (line.values.length > chartPoints) {
        line.values.shift();
        line.off.shift();
      }
      line.label.textContent = p.text || (p.v === null ? 'no sensor' : this.format(p.v));
    });
    this.draw();
  }
  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const vals = this.lines.flatMap((l) => l.values).filter((v) => v !== null);
    let lo = 0, hi = Math.max(...vals, 1e-9) * 1.2;
    if (this.floating && vals.length) {
      lo = Math.floor(Math.min(...vals) - 2);
      hi = Math.ceil(Math.max(...vals) + 2);
    }
    g.strokeStyle = '#e2e5ea';
    g.lineWidth = 1;
    for (const f of [0.25, 0.5, 0.75]) {
      g.beginPath();
      g.moveTo(0, Math.round(h * f) + 0.5);
      g.lineTo(w, Math.round(h * f) + 0.5);
      g.stroke();
    }
    g.fillStyle = '#6b7385';
    g.font = '10px system-ui, sans-serif';
    g.fillText(this.format(hi), 4, 11);
    const step = w / (chartPoints - 1);
    for (const line of this.lines) {
      g.strokeStyle = line.color;
      g.lineWidth = 2;
      const x0 = w - (line.values.length - 1) * step;
      // One path per run of points drawn alike: solid, or dashed where the line is off.
      let prev = null;
      line.values.forEach((v, i) => {
        if (v === null) {
          if (prev) g.stroke();
          prev = null;
          return;
        }
        const x = x0 + i * step;
        const y = h - 2 - (Math.min(Math.max(v, lo), hi) - lo) / (hi - lo) * (h - 14);
        if (prev && prev.off === line.off[i]) {
          g.lineTo(x, y);
        } else {
          if (prev) g.stroke();
          g.setLineDash(line.off[i] ? [4, 4] : []);
          g.beginPath();
          g.moveTo(prev ? prev.x : x, prev ? prev.y : y);
          if (prev) g.lineTo(x, y);
        }
        prev = {x, y, off: line.off[i]};
      });
      if (prev) g.stroke();
      g.setLineDash([]);
    }
  }
}

const kbps = (v) => (v >= 1e6 ? (v / 1e6).toFixed(2) + ' Mbit/s' : (v / 1e3).toFixed(0) + ' kbit/s');

// single is a chart of one line, its value in the caption's element label.
function single(canvas, label, format, color, floating) {
  const c = new Chart($(canvas), format, floating);
  c.add(label, color, $(label));
  return c;
}

const charts = {
  bitrate: single('chart-bitrate', 'v-bitrate', kbps, '#2f6fed'),
  loss: single('chart-loss', 'v-loss', (v) => (v * 100).toFixed(1) + ' %', '#d64545'),
  rtt: single('chart-rtt', 'v-rtt', (v) => (v * 1000).toFixed(0) + ' ms', '#8a4fd8'),
  cpu: single('chart-cpu', 'v-cpu', (v) => v.toFixed(0) + ' %', '#1f9d55'),
  temp: single('chart-temp', 'v-temp', (v) => v.toFixed(1) + ' °C', '#d08a00', true),
  // The bandwidth estimate and each camera layer's encoder target; lines are added as the
  // samples name the layers.
  bandwidth: new Chart($('chart-bandwidth'), kbps),
};

const layerColors = {f: '#2f6fed', h: '#8a4fd8', q: '#1f9d55'};

// addBandwidthLine adds a line and its legend entry (li[data-series=key]) to the bandwidth
// chart.
function addBandwidthLine(key, name, color) {
  const li = document.createElement('li');
  li.dataset.series = key;
  const swatch = document.createElement('i');
  swatch.style.background = color;
  const value = document.createElement('span');
  li.append(swatch, name + ' ', value);
  $('bandwidth-legend').append(li);
  charts.bandwidth.add(key, color, value);
}

addBandwidthLine('estimate', 'estimate', '#1d2330');

function pushBandwidth(s) {
  const layers = s.layers || [];
  for (const l of layers) {
    if (!charts.bandwidth.lines.some((line) => line.key === l.rid)) {
      addBandwidthLine(l.rid, 'layer ' + l.rid, layerColors[l.rid] || '#d08a00');
    }
  }
  charts.bandwidth.push(charts.bandwidth.lines.map((line) => {
    if (line.key === 'estimate') return {v: s.estimate_bps};
    const l = layers.find((x) => x.rid === line.key);
    line.label.parentElement.dataset.sent = String(!!(l && l.sent));
    if (!l) return {v: null, text: 'none'}; // the camera has fewer layers now
    return {v: l.target_bps, off: !l.sent,
      text: kbps(l.target_bps) + (l.sent ? ', sending ' + kbps(l.sent_bps) : ', off')};
  }));
}

function onLive(s) {
  charts.bitrate.push([{v: s.video_bps}]);
  charts.loss.push([{v: s.packet_loss}]);
  charts.rtt.push([{v: s.rtt_seconds}]);
  charts.cpu.push([{v: s.cpu_percent}]);
  charts.temp.push([{v: s.temperature_c}]);
  pushBandwidth(s);
  $('network').textContent = s.state === 'in-room'
    ? 'sending ' + kbps(s.video_bps + s.audio_bps) + ', round trip ' + (s.rtt_seconds * 1000).toFixed(0) + ' ms, loss ' + (s.packet_loss * 100).toFixed(1) + ' %'
    : 'not in a room';
}

function connectLive() {
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/live');
  ws.addEventListener('message', (ev) => onLive(JSON.parse(ev.data)));
  ws.addEventListener('close', () => setTimeout(connectLive, 2000));
}

// Log tail

async function refreshLog() {
  try {
    const {lines} = await api('GET', '/api/logs');
    const pre = $('log');
    const text = lines.join('\n');
    if (pre.textContent !== text) {
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = text;
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }
  } catch (e) { /* next poll */ }
}

refreshStatus();
api('GET', '/api/devices').then(renderDevices).catch(showError);
api('GET', '/api/audio').then((a) => { renderAudio(a); connectMeter(); }).catch(() => { $('audio-card').hidden = true; });
api('GET', '/api/video').then(renderVideo).catch(() => { $('video-card').hidden = true; });
setInterval(refreshStatus, 1000);
refreshLog();
setInterval(refreshLog, 2000);
connectLive();
startPreview();
