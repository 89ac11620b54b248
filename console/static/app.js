// thumbd console: a single page, plain JavaScript, no dependencies.
// Views: #/ (tasks), #/tasks/<token> (one task), #/new (start a task).
'use strict';

const POLL_MS = 1000;
const KEY_STORE = 'thumbd.console.key';
const FILTER_STORE = 'thumbd.console.filter';
// Any key of 12 characters or more is accepted when thumbd has no API keys.
const ANON_KEY = 'thumbd-console';

const state = { config: null, key: localStorage.getItem(KEY_STORE) || '', view: null };

// ---- DOM helpers: text always goes in as text, never as HTML. ----

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'style') Object.assign(e.style, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

const $ = (sel, root) => (root || document).querySelector(sel);
const main = () => $('#main');

function fmtSecs(s) {
  if (s === null || s === undefined) return '–';
  return Number(s).toFixed(3) + ' s';
}

function fmtBytes(n) {
  if (!n) return '–';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}

function age(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.floor(s) + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' d ago';
}

function badge(status) {
  return el('span', { class: 'badge s-' + status, 'data-status': status, text: status });
}

function bar(status, pct) {
  return el('span', { class: 'bar s-' + status, title: pct + '%' }, el('i', { style: { width: Math.min(100, pct) + '%' } }));
}

function short(token) { return token.slice(0, 8) + '…'; }

function isDone(status) { return status === 'completed' || status === 'error'; }

// ---- the console's JSON endpoints ----

class KeyNeeded extends Error {}

async function api(path) {
  const headers = {};
  if (state.key) headers['X-API-Key'] = state.key;
  const r = await fetch('api/' + path, { headers, cache: 'no-store' });
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (r.status === 401) {
    askKey((body && body.error) || 'An API key is needed.');
    throw new KeyNeeded((body && body.error) || 'API key needed');
  }
  if (!r.ok) throw new Error((body && body.error) || r.status + ' ' + r.statusText);
  return body;
}

// ---- API key ----

function askKey(message) {
  const d = $('#key-dialog');
  $('#key-message').textContent = message;
  if (!d.open) d.showModal();
}

function showKey() {
  const info = $('#key-info');
  if (!state.config || !state.config.key_required) { info.hidden = true; return; }
  info.hidden = false;
  info.replaceChildren(state.key ? 'API key ' + state.key.slice(0, 4) + '…' : 'no API key',
    el('button', { type: 'button', onclick: () => askKey('Give the API key whose tasks to show.'), text: 'change' }));
}

$('#key-form').addEventListener('submit', () => {
  state.key = $('#key-input').value.trim();
  localStorage.setItem(KEY_STORE, state.key);
  $('#key-input').value = '';
  showKey();
  route();
});

// ---- router ----

function route() {
  if (state.view) state.view.stop();
  const h = location.hash || '#/';
  document.querySelectorAll('header.top nav a').forEach(a => a.classList.remove('active'));
  let m;
  if ((m = h.match(/^#\/tasks\/([0-9a-f]{32})$/))) {
    state.view = taskView(m[1]);
  } else if (h === '#/new') {
    $('#nav-new').classList.add('active');
    state.view = newView();
  } else {
    $('#nav-tasks').classList.add('active');
    state.view = listView();
  }
}

// poller calls f now and every POLL_MS until stopped or f returns false.
function poller(f) {
  let stopped = false, timer = null;
  const tick = async () => {
    let again = true;
    try {
      again = (await f()) !== false;
    } catch (e) {
      if (!(e instanceof KeyNeeded)) console.warn(e);
      again = !(e instanceof KeyNeeded);
    }
    if (!stopped && again) timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return { stop() { stopped = true; clearTimeout(timer); } };
}

// ---- the task list ----

const FILTERS = [['all', 'All'], ['active', 'Running (queued … saving)'], ['created', 'Created, not started'],
  ['queued', 'Queued'], ['completed', 'Completed'], ['error', 'Error']];

function listView() {
  const filter = localStorage.getItem(FILTER_STORE) || 'all';
  const select = el('select', { id: 'status-filter', onchange: () => { localStorage.setItem(FILTER_STORE, select.value); p.stop(); p = poller(load); } },
    FILTERS.map(([v, t]) => el('option', { value: v, selected: v === filter, text: t })));
  const info = el('span', { class: 'muted', id: 'list-info' });
  const tbody = el('tbody');
  main().replaceChildren(
    el('div', { class: 'toolbar' }, el('h1', { text: 'Tasks' }), el('label', {}, 'Status ', select), el('span', { class: 'grow' }), info,
      el('a', { href: '#/new' }, el('button', { class: 'primary', type: 'button', text: 'New task' }))),
    el('table', { class: 'tasks', id: 'tasks' },
      el('thead', {}, el('tr', {}, ['Status', 'Progress', 'Task', 'Source', 'Outputs', 'Files', 'Created'].map(t => el('th', { text: t })))),
      tbody));
  const load = async () => {
    const q = select.value === 'all' ? '' : '&status=' + encodeURIComponent(select.value);
    const r = await api('tasks?limit=200' + q);
    tbody.replaceChildren(...r.tasks.map(t => el('tr', { 'data-token': t.token, 'data-status': t.status },
      el('td', {}, badge(t.status)),
      el('td', { class: 'mono' }, bar(t.status, t.percent), Math.round(t.percent) + '%'),
      el('td', { class: 'mono' }, el('a', { href: '#/tasks/' + t.token, text: short(t.token), title: t.token })),
      el('td', { class: 'src', title: t.source || '' }, t.source || el('span', { class: 'muted', text: 'not started' }),
        t.error ? el('div', { class: 'muted', text: t.error.slice(0, 140) }) : null),
      el('td', {}, (t.outputs || []).join(', ')),
      el('td', {}, t.images + t.videos),
      el('td', { title: t.created }, age(t.created)))));
    if (!r.tasks.length) {
      tbody.append(el('tr', {}, el('td', { colspan: 7, class: 'empty' },
        'No tasks yet. ', el('a', { href: '#/new', text: 'Start one' }), ' or send one through the API.')));
    }
    info.textContent = r.tasks.length + ' task' + (r.tasks.length === 1 ? '' : 's') + ' · updated ' + new Date().toLocaleTimeString();
  };
  let p = poller(load);
  return { stop: () => p.stop() };
}

// ---- one task ----

function taskView(token) {
  vttChoice = 0;
  const root = el('div', { id: 'task', 'data-token': token });
  main().replaceChildren(root);
  // Each section has a slot, in this order, and is rebuilt only when its
  // key changes.
  const order = ['t-head', 't-problems', 't-scrub', 't-images', 't-videos', 't-manifests', 't-callbacks', 't-json'];
  const slots = Object.fromEntries(order.map(id => [id, el('div', { class: 'slot' })]));
  root.append(...order.map(id => slots[id]));
  const keys = {};
  const section = (id, key, build) => {
    if (keys[id] === key) return;
    keys[id] = key;
    const e = build();
    if (e) e.id = id;
    slots[id].replaceChildren(...(e ? [e] : []));
  };
  let endedPolls = 0;
  const p = poller(async () => {
    let d;
    try {
      d = await api('tasks/' + token);
    } catch (e) {
      if (e instanceof KeyNeeded) throw e;
      root.replaceChildren(el('section', { class: 'panel' }, el('div', { class: 'error-box', text: e.message }), el('a', { href: '#/', text: '← all tasks' })));
      return false;
    }
    const st = d.status_json || {};
    const media = JSON.stringify([st.images, st.videos, st.duration]);
    section('t-head', JSON.stringify([d.status, d.percent, d.source, st.duration, st.source_size, d.ended]), () => headPanel(d));
    section('t-problems', JSON.stringify([st.error_description, st.warnings, d.error]), () => problemsPanel(d));
    section('t-scrub', media + d.source, () => scrubPanel(d, vttChoice));
    section('t-images', media, () => imagesPanel(d));
    section('t-videos', JSON.stringify(st.videos), () => videosPanel(d));
    section('t-manifests', media, () => manifestsPanel(d));
    section('t-callbacks', JSON.stringify(d.callbacks), () => callbacksPanel(d));
    section('t-json', JSON.stringify([d.query, d.status_json]), () => jsonPanel(d));
    root.dataset.status = d.status;
    // Once the task has ended, its callbacks may still be under way:
    // keep looking for a minute.
    if (isDone(d.status)) {
      endedPolls++;
      const pending = d.callbacks.some(c => !c.done);
      if (!pending && endedPolls > 3) return false;
      if (endedPolls > 60) return false;
    }
    return true;
  });
  return { stop: () => { p.stop(); root.querySelectorAll('video').forEach(v => v.pause()); } };
}

function headPanel(d) {
  const st = d.status_json || {};
  return el('section', { class: 'panel' },
    el('div', { class: 'toolbar' },
      el('h1', { class: 'mono', text: 'Task ' + d.token }), badge(d.status),
      el('span', { class: 'mono', id: 'task-percent' }, bar(d.status, d.percent), Math.round(d.percent) + '%'),
      el('span', { class: 'grow' }), el('a', { href: '#/', text: '← all tasks' })),
    el('dl', { class: 'facts' },
      el('dt', { text: 'Source' }), el('dd', { class: 'mono', text: d.source || 'not started yet' }),
      el('dt', { text: 'Outputs' }), el('dd', { text: (d.outputs || []).join(', ') || '–' }),
      el('dt', { text: 'Created' }), el('dd', { text: new Date(d.created).toLocaleString() + ' (' + age(d.created) + ')' }),
      d.ended ? el('dt', { text: 'Ended' }) : null,
      d.ended ? el('dd', { text: new Date(d.ended).toLocaleString() + ' (' + ((Date.parse(d.ended) - Date.parse(d.created)) / 1000).toFixed(1) + ' s after creation)' }) : null,
      el('dt', { text: 'Source duration' }), el('dd', { text: st.duration ? fmtSecs(st.duration) : '–' }),
      el('dt', { text: 'Source size' }), el('dd', { text: fmtBytes(st.source_size) })));
}

function problemsPanel(d) {
  const st = d.status_json || {};
  const warnings = st.warnings || [];
  if (d.status !== 'error' && !warnings.length) return null;
  return el('section', { class: 'panel' }, el('h2', { text: 'Errors and warnings' }),
    d.status === 'error' ? el('div', { class: 'error-box', id: 'task-error', text: st.error_description || d.error || 'the task failed' }) : null,
    warnings.map(w => el('div', { class: 'warn-box' }, el('b', { text: w.message }), w.tag ? ' (' + w.tag + ')' : '', el('div', { text: w.details }))));
}

// urlKey identifies an image file whatever fragment its URL has.
function urlKey(u) {
  try { const x = new URL(u, location.href); x.hash = ''; return x.href; } catch (e) { return u; }
}

function imagesPanel(d) {
  const images = (d.status_json && d.status_json.images) || [];
  if (!images.length) return null;
  const singles = images.filter(i => i.kind === 'image');
  const sprites = images.filter(i => i.kind === 'sprite');
  const vtts = images.filter(i => i.kind === 'vtt');
  const sec = el('section', { class: 'panel' }, el('h2', { text: 'Images' }));
  if (singles.length) {
    sec.append(el('div', { class: 'grid', id: 'image-grid' }, singles.map(im => el('div', { class: 'card image', 'data-url': im.url, 'data-tag': im.tag },
      el('a', { href: im.url, target: '_blank' }, el('img', { src: im.url, alt: im.tag, loading: 'lazy' })),
      el('div', { class: 'meta' },
        el('div', {}, el('b', { text: im.tag }), im.user_tag ? ' · ' + im.user_tag : ''),
        el('div', { text: (im.width || '?') + '×' + (im.height || '?') + ' ' + (im.storage && im.storage.format || '') }),
        el('div', {}, 'requested ', el('b', { text: fmtSecs(im.requested_time) }), ' · delivered ', el('b', { text: fmtSecs(im.time) })),
        el('div', { class: 'muted', text: (im.strategy || '–') + (im.keyframe ? ' · keyframe' : '') + (im.took !== undefined ? ' · ' + fmtSecs(im.took) : '') }))))));
  }
  for (const sp of sprites) {
    const holder = el('div', { class: 'sheet', 'data-url': sp.url }, el('img', { src: sp.url, alt: sp.tag }));
    sec.append(el('h3', {}, 'Sprite sheet ', el('span', { class: 'mono', text: sp.tag }), ' ',
      el('span', { class: 'muted', text: sp.width + '×' + sp.height + ', ' + (sp.frames || []).length + ' tiles' })), holder);
    outlineTiles(holder, sp, vtts);
  }
  if (vtts.length) {
    sec.append(el('h3', { text: 'WebVTT' }), el('ul', {}, vtts.map(v => el('li', {}, el('a', { href: v.url, target: '_blank', class: 'mono', text: v.url })))));
  }
  return sec;
}

// outlineTiles draws each tile of a sprite sheet over it, where the VTT
// says the tile is, with the delivered time of its frame.
async function outlineTiles(holder, sprite, vtts) {
  const out = String(sprite.tag).split('-')[1];
  const vtt = vtts.find(v => String(v.tag).split('-')[1] === out) || vtts[0];
  if (!vtt) return;
  let cues;
  try { cues = await loadVTT(vtt.url); } catch (e) { return; }
  const mine = cues.filter(c => urlKey(c.src) === urlKey(sprite.url) && c.xywh);
  mine.forEach((c, i) => {
    const [x, y, w, h] = c.xywh;
    const f = (sprite.frames || [])[i];
    holder.append(el('div', {
      class: 'tile', 'data-xywh': c.xywh.join(','), title: 'cue ' + fmtSecs(c.start) + ' – ' + fmtSecs(c.end) + (f ? ', frame at ' + fmtSecs(f.time) : ''),
      style: { left: 100 * x / sprite.width + '%', top: 100 * y / sprite.height + '%', width: 100 * w / sprite.width + '%', height: 100 * h / sprite.height + '%' },
    }, el('span', { text: f ? f.time.toFixed(2) : i })));
  });
}

function videosPanel(d) {
  const videos = (d.status_json && d.status_json.videos) || [];
  if (!videos.length) return null;
  return el('section', { class: 'panel' }, el('h2', { text: 'Videos' }),
    el('div', { class: 'grid' }, videos.map(v => {
      // A metadata output is ffprobe's JSON, listed under videos as Qencode does.
      const metadata = v.storage && v.storage.format === 'json';
      return el('div', { class: 'card video' + (metadata ? ' metadata' : '') },
        metadata ? el('div', { class: 'doc', text: 'ffprobe metadata (JSON)' })
          : el('video', { src: v.url, controls: true, preload: 'metadata', style: { width: '100%' } }),
        el('div', { class: 'meta' }, el('b', { text: v.tag }), v.user_tag ? ' · ' + v.user_tag : '',
          v.meta ? el('details', {}, el('summary', { text: 'meta' }), el('pre', { class: 'json', text: JSON.stringify(v.meta, null, 2) })) : null,
          el('a', { href: v.url, target: '_blank', text: 'open' })));
    })));
}

// manifests lists each output's manifest: the manifest_url thumbd links
// from the output's images.
function manifests(images) {
  const byOut = new Map();
  for (const im of images) {
    const out = String(im.tag).split('-')[1];
    if (im.manifest_url && !byOut.has(out)) byOut.set(out, im.manifest_url);
  }
  return [...byOut].map(([out, url]) => ({ out, url }));
}

function manifestsPanel(d) {
  const images = (d.status_json && d.status_json.images) || [];
  if (!images.length || !isDone(d.status)) return null;
  const sec = el('section', { class: 'panel' }, el('h2', { text: 'Manifests' }),
    el('p', { class: 'muted', text: 'thumbd\'s record of each output: the time asked for and the frame delivered, per image.' }));
  for (const m of manifests(images)) {
    const pre = el('pre', { class: 'json', text: 'loading…' });
    sec.append(el('details', {}, el('summary', {}, 'Output ' + m.out + ' ', el('a', { href: m.url, target: '_blank', class: 'mono', text: m.url })), pre));
    fetch(m.url).then(r => r.ok ? r.json() : Promise.reject(new Error(r.status + ' ' + r.statusText)))
      .then(j => { pre.textContent = JSON.stringify(j, null, 2); })
      .catch(e => { pre.textContent = 'not readable from this browser (' + e.message + ')'; });
  }
  return sec;
}

function callbacksPanel(d) {
  const cbs = d.callbacks || [];
  return el('section', { class: 'panel' }, el('h2', { text: 'Callbacks' }),
    cbs.length ? el('table', { id: 'callbacks' },
      el('thead', {}, el('tr', {}, ['Event', 'URL', 'Reply', 'Attempts', 'Result', 'Last attempt'].map(t => el('th', { text: t })))),
      el('tbody', {}, cbs.map(c => el('tr', {},
        el('td', { text: c.event }), el('td', { class: 'mono', text: c.url }),
        el('td', { text: c.code || '–' }), el('td', { text: c.attempts }),
        el('td', {}, c.delivered ? el('span', { class: 'badge s-completed', text: 'delivered' })
          : c.done ? el('span', { class: 'badge s-error', text: 'gave up' }) : el('span', { class: 'badge s-queued', text: 'retrying' }),
        c.error ? el('div', { class: 'muted', text: c.error }) : null),
        el('td', { text: c.at ? new Date(c.at).toLocaleTimeString() : '–' })))))
      : el('p', { class: 'muted', text: d.query && JSON.stringify(d.query).includes('callback_url') ? 'None sent yet.' : 'The query has no callback_url.' }));
}

function jsonPanel(d) {
  return el('section', { class: 'panel cols' },
    el('div', {}, el('h2', { text: 'Query as received' }), el('pre', { class: 'json', id: 'query-json', text: d.query ? JSON.stringify(d.query, null, 2) : 'not started yet' })),
    el('div', {}, el('h2', { text: 'Status (as /v1/status returns it)' }), el('pre', { class: 'json', id: 'status-json', text: JSON.stringify(d.status_json, null, 2) })));
}

// ---- WebVTT ----

// parseVTT reads the cues of a WebVTT file: start, end (seconds) and the
// first line of the payload.
function parseVTT(text) {
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  if (!/^WEBVTT(?:[ \t]|$)/.test(lines[0])) throw new Error('not a WebVTT file: it does not start with WEBVTT');
  const cues = [];
  const ts = s => {
    const m = s.trim().match(/^(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})$/);
    if (!m) throw new Error('bad timestamp ' + JSON.stringify(s));
    return (+(m[1] || 0)) * 3600 + (+m[2]) * 60 + (+m[3]) + (+m[4]) / 1000;
  };
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i];
    if (!l.includes('-->')) continue;
    const [a, rest] = l.split('-->');
    const b = rest.trim().split(/[ \t]+/)[0];
    const payload = [];
    for (i++; i < lines.length && lines[i] !== ''; i++) payload.push(lines[i]);
    cues.push({ start: ts(a), end: ts(b), text: payload.join('\n') });
  }
  return cues;
}

const vttCache = new Map();

// loadVTT fetches a VTT file and resolves each cue's payload to an image
// URL and, for a sprite tile, its #xywh rectangle.
function loadVTT(url) {
  if (!vttCache.has(url)) {
    vttCache.set(url, fetch(url).then(r => {
      if (!r.ok) throw new Error('VTT file: ' + r.status + ' ' + r.statusText);
      return r.text();
    }).then(text => parseVTT(text).map(c => {
      const target = c.text.split('\n')[0].trim();
      const u = new URL(target, new URL(url, location.href));
      let xywh = null;
      const m = u.hash.match(/^#xywh=(\d+),(\d+),(\d+),(\d+)$/);
      if (m) xywh = m.slice(1).map(Number);
      u.hash = '';
      return { start: c.start, end: c.end, text: c.text, src: u.href, xywh };
    })));
    vttCache.get(url).catch(() => vttCache.delete(url));
  }
  return vttCache.get(url);
}

// cueAt returns the cue that covers t: start <= t < end.
function cueAt(cues, t) {
  return cues.find(c => c.start <= t && t < c.end) || null;
}

// ---- the scrub preview ----

let vttChoice = 0; // which VTT of the task the preview follows

function scrubPanel(d, which) {
  const st = d.status_json || {};
  const vtts = (st.images || []).filter(i => i.kind === 'vtt');
  if (!vtts.length) return null;
  const vtt = vtts[which || 0] || vtts[0];
  const sec = el('section', { class: 'panel', 'data-vtt': vtt.url });
  const view = el('div', { class: 'view', id: 'scrub-view' });
  const info = el('div', { class: 'info', id: 'scrub-info' });
  const range = el('input', { type: 'range', id: 'scrub', min: 0, step: 0.001, value: 0, 'aria-label': 'scrub position' });
  const ticks = el('div', { class: 'ticks' });
  const scale = el('div', { class: 'scale' });
  const media = el('div', { class: 'media' });
  sec.append(el('h2', {}, 'Scrub preview ', el('span', { class: 'muted', text: '— the image the VTT maps each moment to' })),
    el('div', { class: 'scrub' },
      el('div', {}, view, info), media,
      el('div', { class: 'timeline' }, ticks, range, scale)));
  if (vtts.length > 1) {
    const pick = el('select', { id: 'scrub-vtt', onchange: () => {
      const again = scrubPanel(d, Number(pick.value));
      again.id = sec.id;
      sec.querySelectorAll('video').forEach(v => v.pause());
      vttChoice = Number(pick.value);
      sec.replaceWith(again);
    } }, vtts.map((v, i) => el('option', { value: i, selected: v === vtt, text: 'output ' + String(v.tag).split('-')[1] + ': ' + v.url.split('/').slice(-2).join('/') })));
    sec.querySelector('h2').append(' ', pick);
  }
  loadVTT(vtt.url).then(cues => {
    const duration = st.duration || (cues.length ? cues[cues.length - 1].end : 0);
    range.max = duration;
    ticks.replaceChildren(...cues.map(c => el('i', { style: { left: (100 * c.start / duration) + '%' }, title: fmtSecs(c.start) })));
    scale.replaceChildren(el('span', { text: '0 s' }), el('span', { text: fmtSecs(duration / 2) }), el('span', { text: fmtSecs(duration) }));
    const frames = frameIndex(st.images || [], cues);
    const show = t => showCue(view, info, cues, frames, t);
    range.addEventListener('input', () => {
      const t = Number(range.value);
      show(t);
      const v = media.querySelector('video');
      if (v && v.readyState > 0 && Math.abs(v.currentTime - t) > 0.05) v.currentTime = t;
    });
    show(0);
    sourceVideo(media, d, vtt.url, t => { range.value = t; show(t); });
  }).catch(e => { view.replaceChildren(el('div', { class: 'error-box', text: 'The VTT file could not be read: ' + e.message })); });
  return sec;
}

// frameIndex maps each cue's image (and tile) to the frame the status
// says it shows, so that a cue pointing at the wrong frame stands out.
function frameIndex(images, cues) {
  const byURL = new Map(images.map(im => [urlKey(im.url), im]));
  const seen = new Map();
  return cues.map(c => {
    const im = byURL.get(urlKey(c.src));
    if (!im) return null;
    if (im.kind === 'sprite') {
      const i = seen.get(im.url) || 0;
      seen.set(im.url, i + 1);
      return (im.frames || [])[i] || null;
    }
    return im.time !== undefined ? { time: im.time, requested_time: im.requested_time } : null;
  });
}

function showCue(view, info, cues, frames, t) {
  const i = cues.findIndex(c => c.start <= t && t < c.end);
  view.dataset.t = t;
  document.querySelectorAll('.sheet .tile.current').forEach(x => x.classList.remove('current'));
  if (i < 0) {
    view.dataset.src = '';
    view.dataset.xywh = '';
    view.replaceChildren(el('div', { class: 'none', text: 'No cue covers ' + fmtSecs(t) + ': a player shows no preview here.' }));
    info.textContent = '';
    info.classList.remove('mismatch');
    return;
  }
  const c = cues[i];
  view.dataset.src = c.src;
  view.dataset.xywh = c.xywh ? c.xywh.join(',') : '';
  view.dataset.cue = i;
  const maxW = 360;
  if (c.xywh) {
    const [x, y, w, h] = c.xywh;
    const k = Math.min(1, maxW / w) * (w < 200 ? 2 : 1);
    view.replaceChildren(el('div', { class: 'frame', style: { width: w * k + 'px', height: h * k + 'px' } },
      el('div', { class: 'inner', style: { width: w + 'px', height: h + 'px', transform: 'scale(' + k + ')' } },
        el('img', { src: c.src, alt: 'tile', style: { left: -x + 'px', top: -y + 'px' } }))));
    document.querySelectorAll('.sheet').forEach(s => {
      if (urlKey(s.dataset.url) !== c.src) return;
      const tile = s.querySelector('.tile[data-xywh="' + c.xywh.join(',') + '"]');
      if (tile) tile.classList.add('current');
    });
  } else {
    view.replaceChildren(el('div', { class: 'frame' },
      el('img', { src: c.src, alt: 'preview', style: { position: 'static', width: maxW + 'px' } })));
  }
  const f = frames[i];
  const name = c.src.split('/').pop() + (c.xywh ? '#xywh=' + c.xywh.join(',') : '');
  let text = 'at ' + fmtSecs(t) + ': cue ' + (i + 1) + ' of ' + cues.length + ', ' + fmtSecs(c.start) + ' – ' + fmtSecs(c.end) + ' → ' + name;
  const bad = f && !(f.time >= c.start - 0.0005 && f.time < c.end + 0.0005);
  if (f) text += '; its frame is at ' + fmtSecs(f.time) + (bad ? ', outside this cue' : '');
  info.textContent = text;
  info.classList.toggle('mismatch', !!bad);
}

// sourceVideo plays the task's source, when the browser can reach it,
// with the VTT as a metadata track; the preview follows playback.
function sourceVideo(media, d, vttURL, follow) {
  const src = d.source || '';
  if (!/^https?:\/\//i.test(src)) {
    media.replaceChildren(el('p', { class: 'muted', text: src.startsWith('tus:') ? 'The source is an uploaded file: move the slider to scrub.' : 'The source is not a URL this browser can play: move the slider to scrub.' }));
    return;
  }
  const v = el('video', { id: 'source-video', controls: true, preload: 'metadata', src, crossorigin: 'anonymous', muted: true },
    el('track', { kind: 'metadata', src: vttURL, default: true, label: 'thumbnails' }));
  v.addEventListener('timeupdate', () => { if (!v.paused || v.seeking) follow(v.currentTime); });
  v.addEventListener('seeked', () => follow(v.currentTime));
  v.addEventListener('error', () => {
    media.replaceChildren(el('p', { class: 'muted', text: 'This browser cannot play the source (' + src + '): move the slider to scrub.' }));
  });
  media.replaceChildren(v, el('p', { class: 'muted', text: 'Play or seek the source: the preview follows it.' }));
}

// ---- a new task ----

async function qencode(method, fields) {
  const body = new URLSearchParams(fields);
  const r = await fetch('../v1/' + method, { method: 'POST', body });
  const j = await r.json();
  if (j.error) throw new Error(method + ': ' + (j.message || 'error ' + j.error));
  return j;
}

// tusUpload sends a file over TUS 1.0.0 to uploadURL (create_task's
// upload_url plus the task token) and returns the file id. It creates the
// upload with POST, then sends it in chunks with PATCH and Upload-Offset.
async function tusUpload(uploadURL, file, progress) {
  uploadURL = new URL(uploadURL, location.href).href;
  const b64 = s => btoa(String.fromCharCode(...new TextEncoder().encode(s)));
  const created = await fetch(uploadURL, {
    method: 'POST',
    headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': String(file.size),
      'Upload-Metadata': 'filename ' + b64(file.name) + (file.type ? ',filetype ' + b64(file.type) : '') },
  });
  if (created.status !== 201) throw new Error('upload refused: ' + created.status + ' ' + (await created.text()).trim());
  const loc = new URL(created.headers.get('Location'), uploadURL);
  // The upload's URL ends in <task token>/<file id>; it is reached here,
  // on the page's own origin, whatever host thumbd's public URL names.
  const parts = loc.pathname.split('/');
  const fileID = parts.pop();
  const target = uploadURL + '/' + fileID;
  const chunk = 4 << 20;
  let offset = 0;
  while (offset < file.size) {
    const r = await fetch(target, {
      method: 'PATCH',
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' },
      body: file.slice(offset, offset + chunk),
    });
    if (r.status !== 204) throw new Error('upload failed at byte ' + offset + ': ' + r.status + ' ' + (await r.text()).trim());
    offset = Number(r.headers.get('Upload-Offset'));
    progress(offset / file.size);
  }
  return fileID;
}

let presets = null;

function newView() {
  const progress = el('span', { id: 'new-progress' });
  const urlInput = el('input', { type: 'url', id: 'source-url', placeholder: 'https://…/video.mp4' });
  const fileInput = el('input', { type: 'file', id: 'source-file', accept: 'video/*,audio/*' });
  const pickURL = el('input', { type: 'radio', name: 'src', value: 'url', id: 'pick-url', checked: true });
  const pickFile = el('input', { type: 'radio', name: 'src', value: 'file', id: 'pick-file' });
  fileInput.addEventListener('change', () => { if (fileInput.files.length) pickFile.checked = true; });
  urlInput.addEventListener('input', () => { pickURL.checked = true; });
  const editor = el('textarea', { id: 'query', spellcheck: 'false' });
  const presetSel = el('select', { id: 'preset' });
  const start = el('button', { type: 'submit', class: 'primary', id: 'start', text: 'Start task' });
  const form = el('form', { class: 'new', id: 'new-task' },
    el('div', { class: 'row' }, el('h2', { text: 'Source' }),
      el('label', { class: 'choice' }, pickURL, ' A URL thumbd reads'), el('label', { class: 'choice' }, pickFile, ' A file from this computer, uploaded over TUS'),
      el('div', {}, urlInput), el('div', { style: { marginTop: '8px' } }, fileInput)),
    el('div', { class: 'row' }, el('div', { class: 'toolbar' }, el('h2', { text: 'Query' }), el('span', { class: 'grow' }), el('label', {}, 'Start from ', presetSel)),
      el('p', { class: 'muted', text: 'The query start_encode2 receives; its source is replaced by the one above.' }), editor),
    el('div', { class: 'actions' }, start, progress));
  main().replaceChildren(el('section', { class: 'panel' }, el('h1', { text: 'New task' }), form));
  const base = (state.config && state.config.public_url) || location.origin;
  urlInput.value = base + '/static/test_mini.mp4';
  const fill = () => {
    const p = presets[Number(presetSel.value)];
    editor.value = JSON.stringify(p.query, null, 2);
  };
  const loaded = (presets ? Promise.resolve(presets) : fetch('queries.json').then(r => r.json())).then(list => {
    presets = list;
    presetSel.replaceChildren(...list.map((p, i) => el('option', { value: i, text: p.name })));
    presetSel.onchange = fill;
    fill();
  });
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    progress.className = '';
    start.disabled = true;
    try {
      await loaded;
      let q;
      try { q = JSON.parse(editor.value); } catch (e) { throw new Error('the query is not valid JSON: ' + e.message); }
      const inner = q && typeof q.query === 'object' ? q.query : q;
      if (!inner || typeof inner !== 'object') throw new Error('the query must be a JSON object');
      const useFile = pickFile.checked;
      if (useFile && !fileInput.files.length) throw new Error('choose a file to upload');
      if (!useFile && !urlInput.value.trim()) throw new Error('give the source URL');
      progress.textContent = 'getting an access token…';
      const key = state.key || ANON_KEY;
      const tok = await qencode('access_token', { api_key: key });
      const task = await qencode('create_task', { token: tok.token });
      if (useFile) {
        const file = fileInput.files[0];
        progress.textContent = 'uploading ' + file.name + '…';
        const id = await tusUpload('../v1/upload_file/' + task.task_token, file,
          f => { progress.textContent = 'uploading ' + file.name + ': ' + Math.round(100 * f) + '%'; });
        inner.source = 'tus:' + id;
      } else {
        inner.source = urlInput.value.trim();
      }
      progress.textContent = 'starting…';
      await qencode('start_encode2', { task_token: task.task_token, query: JSON.stringify(q) });
      location.hash = '#/tasks/' + task.task_token;
    } catch (e) {
      progress.className = 'bad';
      progress.textContent = e.message;
    } finally {
      start.disabled = false;
    }
  });
  return { stop() {} };
}

// ---- start ----

(async function init() {
  try {
    const r = await fetch('api/config', { cache: 'no-store' });
    state.config = await r.json();
  } catch (e) {
    main().replaceChildren(el('div', { class: 'error-box', text: 'thumbd did not answer: ' + e.message }));
    return;
  }
  showKey();
  window.addEventListener('hashchange', route);
  if (state.config.key_required && !state.key) askKey('This thumbd has API keys: give yours to see the tasks created with it.');
  route();
}());
