// tern dashboard: plain JavaScript, no framework, no build step.
//
// Everything a device sent (ids, errors, facts, event messages) reaches the
// page through textContent or an attribute value, never as markup: the page
// never parses them as HTML. Its views are chosen by the hash: #/ (the fleet),
// #/device/<id>, #/progress. Live updates come from api/stream (Server-Sent
// Events): a changed device's row is updated in place.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';

  // What tests and curious people can read.
  const dash = (window.ternDash = { ready: false, loads: 0, updates: 0, view: '' });

  const st = {
    rows: new Map(), // id → row (api/devices' Row), plus seenAt (client clock, ms)
    trs: new Map(), // id → its <tr>
    more: 0,
    counts: null, // the server's counts, used when the list is truncated
    sort: { key: 'id', dir: 1 },
    view: '',
    device: null, // the id the device page shows
    focusNext: false,
  };

  // el builds an element; strings among kids become text nodes.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else e.setAttribute(k, v);
    }
    e.append(...kids.filter((k) => k !== null && k !== undefined));
    return e;
  }
  function svg(tag, attrs, ...kids) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    e.append(...kids);
    return e;
  }
  // pick returns v if it is one of the allowed words, else def: classes
  // are built from these, never from raw device data.
  const pick = (v, allowed, def) => (allowed.includes(v) ? v : def);
  const STATUSES = ['converged', 'pending', 'failed', 'unreported', 'no-target'];
  const TASK_STATES = ['pending', 'running', 'done', 'failed'];
  const ROLLOUT_PHASES = ['succeeded', 'applying', 'deferred', 'waiting', 'halted', 'failed', 'aborted', 'replaced', 'unreported'];
  const JOB_PHASES = ['succeeded', 'running', 'queued', 'waiting', 'waiting_clock', 'waiting_dependency', 'failed', 'expired', 'canceled', 'interrupted', 'unknown'];

  const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);
  const deviceHash = (id) => '#/device/' + encodeURIComponent(id);

  async function getJSON(path) {
    const r = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || `${path}: HTTP ${r.status}`);
    return body;
  }

  function fmtAge(row) {
    if (row.age_s < 0 || row.seenAt === undefined) return 'never';
    const s = Math.max(0, Math.round((Date.now() - row.seenAt) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
    return `${Math.floor(s / 86400)}d ago`;
  }
  function fmtBytes(n) {
    if (!n) return '0 B';
    const u = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
  }
  function fmtTime(s) {
    const d = new Date(s);
    if (isNaN(d) || d.getFullYear() < 2000) return '';
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  const modulesText = (m, sp = ' ') => Object.entries(m || {}).sort().map(([k, v]) => k + sp + v).join(', ');
  const agentText = (a) => (a ? [a.version, a.arch].filter(Boolean).join(' ') : '');

  // keep stores a row as received, with when it was seen by our clock.
  function keep(row) {
    if (typeof row !== 'object' || row === null || typeof row.id !== 'string') return;
    row.seenAt = row.age_s >= 0 ? Date.now() - row.age_s * 1000 : undefined;
    st.rows.set(row.id, row);
  }

  // ---- the fleet ----

  const COLS = ['id', 'online', 'status', 'phase', 'version', 'modules', 'groups', 'agent', 'age', 'error'];
  const LABELS = { id: 'Device', online: 'Online', status: 'Status', phase: 'Phase', version: 'Target', modules: 'Modules', groups: 'Groups', agent: 'Agent', age: 'Last report', error: 'Last error' };
  const SEVERITY = { failed: 0, pending: 1, unreported: 2, 'no-target': 3, converged: 4 };
  const SORT_KEYS = {
    id: (r) => r.id,
    online: (r) => (r.online ? 0 : 1),
    status: (r) => SEVERITY[r.status] ?? 9,
    phase: (r) => r.phase || '',
    version: (r) => r.target_version || 0,
    modules: (r) => modulesText(r.modules),
    groups: (r) => (r.groups || []).join(','),
    agent: (r) => agentText(r.agent),
    age: (r) => (r.age_s < 0 ? Infinity : Date.now() - r.seenAt),
    error: (r) => r.error || '\uffff',
  };
  const collator = new Intl.Collator(undefined, { numeric: true });
  function compare(a, b) {
    const f = SORT_KEYS[st.sort.key] || SORT_KEYS.id;
    const x = f(a), y = f(b);
    const c = typeof x === 'number' && typeof y === 'number' ? (x === y ? 0 : x < y ? -1 : 1) : collator.compare(String(x), String(y));
    return st.sort.dir * c || collator.compare(a.id, b.id);
  }

  // The filter: words; key=value matches a field, a group or a fact, a
  // bare word a part of the device id.
  function parseFilter(text) {
    return text.trim().split(/\s+/).filter(Boolean).slice(0, 32).map((w) => {
      const i = w.indexOf('=');
      return i > 0 ? { key: w.slice(0, i).toLowerCase(), value: w.slice(i + 1) } : { word: w.toLowerCase() };
    });
  }
  function fieldOf(row, key) {
    const a = row.agent || {};
    switch (key) {
      case 'id': case 'device': return row.id;
      case 'status': return row.status;
      case 'phase': return row.phase || '';
      case 'online': return row.online ? 'true' : 'false';
      case 'version': case 'target': return String(row.target_version || 0);
    }
    if (row.facts && Object.hasOwn(row.facts, key)) return row.facts[key];
    switch (key) {
      case 'arch': return a.arch;
      case 'board': return a.board;
      case 'agent': return a.version;
      case 'kernel': return a.kernel;
      case 'store': return a.store;
    }
    return undefined;
  }
  function matches(row, terms, group) {
    const groups = row.groups || [];
    if (group && !groups.includes(group)) return false;
    for (const t of terms) {
      if (t.word !== undefined) {
        if (!row.id.toLowerCase().includes(t.word)) return false;
      } else if (t.key === 'group') {
        if (!groups.includes(t.value)) return false;
      } else if (t.key === 'module') {
        if (!row.modules || !Object.hasOwn(row.modules, t.value)) return false;
      } else if (fieldOf(row, t.key) !== t.value) {
        return false;
      }
    }
    return true;
  }

  function rowEl(r) {
    let tr = st.trs.get(r.id);
    if (!tr) {
      tr = el('tr', { 'data-device': r.id, 'data-testid': 'device-row' });
      for (const c of COLS) tr.append(el('td', { 'data-col': c, 'data-label': LABELS[c] }));
      tr.cells[0].append(el('a', { href: deviceHash(r.id), 'data-testid': 'device-link' }, r.id));
      st.trs.set(r.id, tr);
    }
    const set = (c, ...kids) => {
      const td = tr.cells[COLS.indexOf(c)];
      td.replaceChildren(...kids);
      td.classList.toggle('none', !td.textContent);
    };
    const status = pick(r.status, STATUSES, 'unreported');
    tr.dataset.status = status;
    tr.dataset.online = r.online ? 'true' : 'false';
    set('online', el('span', { class: 'badge ' + (r.online ? 's-online' : 's-offline') }, r.online ? 'online' : 'offline'));
    set('status', el('span', { class: 'badge s-' + status, 'data-testid': 'status' }, status));
    set('phase', r.phase || '');
    set('version', r.target_version ? String(r.target_version) : '');
    set('modules', modulesText(r.modules, '\u00a0')); // "relay 5" never breaks inside
    set('groups', (r.groups || []).join(', '));
    set('agent', agentText(r.agent).replace(' ', '\u00a0'));
    set('age', fmtAge(r));
    const err = r.error || '';
    set('error', clip(err, 200));
    tr.cells[COLS.indexOf('error')].title = err.length > 200 ? clip(err, 2000) : '';
    return tr;
  }

  function renderCounts() {
    let c = { devices: 0, online: 0, converged: 0, pending: 0, failed: 0 };
    if (st.more && st.counts) c = st.counts;
    else for (const r of st.rows.values()) {
      c.devices++;
      if (r.online) c.online++;
      if (r.status in c) c[r.status]++;
    }
    for (const k of ['devices', 'online', 'converged', 'pending', 'failed']) {
      const n = $('count-' + k);
      if (n.textContent !== String(c[k])) n.textContent = String(c[k]);
    }
  }

  function renderGroups() {
    const sel = $('group');
    const groups = new Set();
    for (const r of st.rows.values()) for (const g of r.groups || []) groups.add(g);
    const want = [...groups].sort(collator.compare).slice(0, 500);
    const have = [...sel.options].slice(1).map((o) => o.value);
    if (want.join('\n') === have.join('\n')) return;
    const cur = sel.value;
    sel.replaceChildren(el('option', { value: '' }, 'all groups'), ...want.map((g) => el('option', { value: g }, g)));
    sel.value = want.includes(cur) ? cur : '';
  }

  function renderFleet() {
    if (!dash.loads) return; // nothing to show yet
    renderCounts();
    renderGroups();
    for (const [id, tr] of st.trs) if (!st.rows.has(id)) { tr.remove(); st.trs.delete(id); }
    const terms = parseFilter($('filter').value);
    const group = $('group').value;
    const rows = [...st.rows.values()].filter((r) => matches(r, terms, group)).sort(compare);
    const want = rows.map(rowEl);
    const body = $('fleet-body');
    const keepSet = new Set(want);
    for (const tr of [...body.children]) if (!keepSet.has(tr)) tr.remove();
    // Move only the rows out of place, so a focused row stays focused.
    want.forEach((tr, i) => { if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null); });
    $('fleet-empty').hidden = want.length > 0;
    const total = st.rows.size + st.more;
    $('shown').textContent = want.length === total ? `${total} shown` : `${want.length} of ${total} shown`;
    for (const th of document.querySelectorAll('#fleet th')) {
      if (th.dataset.col === st.sort.key) th.setAttribute('aria-sort', st.sort.dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
  }

  let renderTimer = 0;
  function queueRender() {
    if (renderTimer) return;
    renderTimer = setTimeout(() => { renderTimer = 0; renderFleet(); }, 30);
  }

  // A load of the fleet races the live stream: a change may arrive while
  // the load is under way, and the load's answer may predate it. So the
  // changes that arrive during a load are laid over its answer, and only
  // the newest load's answer is used.
  let fleetGen = 0;
  const during = new Set(); // one map per load under way: id → row, or null when gone
  async function loadFleet() {
    const gen = ++fleetGen;
    const changes = new Map();
    during.add(changes);
    try {
      const d = await getJSON('api/devices');
      if (gen !== fleetGen) return;
      st.rows = new Map();
      for (const r of d.devices || []) keep(r);
      for (const [id, r] of changes) if (r) st.rows.set(id, r); else st.rows.delete(id);
      st.more = d.more || 0;
      st.counts = d.counts;
      dash.loads++;
      renderFleet();
    } catch (e) {
      setConn('offline', e.message);
    } finally {
      during.delete(changes);
    }
  }

  // ---- a device ----

  let deviceLoading = null, deviceDirty = false;
  async function loadDevice() {
    if (deviceLoading) { deviceDirty = true; return deviceLoading; }
    const id = st.device;
    deviceLoading = (async () => {
      try {
        const d = await getJSON('api/devices/' + encodeURIComponent(id) + '?events=50');
        if (st.device === id && st.view === 'device') renderDevice(d);
      } catch (e) {
        if (st.device === id) renderDeviceError(id, e.message);
      }
    })();
    await deviceLoading;
    deviceLoading = null;
    if (deviceDirty && st.view === 'device') { deviceDirty = false; return loadDevice(); }
  }
  let deviceTimer = 0;
  function queueDevice() {
    if (deviceTimer) return;
    deviceTimer = setTimeout(() => { deviceTimer = 0; loadDevice(); }, 100);
  }

  function renderDeviceError(id, msg) {
    $('device-heading').textContent = id;
    $('device-error').textContent = msg;
    $('device-error').hidden = false;
    $('device-summary').replaceChildren();
    $('plan-wrap').replaceChildren();
    $('plan-caption').textContent = '';
    $('plan-list').replaceChildren();
    $('jobs').tBodies[0].replaceChildren();
    $('events').tBodies[0].replaceChildren();
    focusHeading();
  }

  function renderDevice(d) {
    const r = d.device;
    keep(r);
    queueRender();
    $('device-heading').textContent = r.id;
    $('device-error').hidden = true;
    const a = r.agent || {};
    const items = [
      ['Status', el('span', { class: 'badge s-' + pick(r.status, STATUSES, 'unreported'), 'data-testid': 'device-status' }, r.status)],
      ['Online', r.online ? 'online' : 'offline'],
      ['Phase', r.phase || ''],
      ['Target version', r.target_version ? String(r.target_version) : ''],
      ['Last report', `${fmtAge(r)}${r.reported ? ' (device clock ' + fmtTime(r.reported) + ')' : ''}`],
      ['Error', r.error ? el('span', { class: 'problem' }, r.error) : ''],
      ['Groups', (r.groups || []).join(', ')],
      ['Modules', modulesText(r.modules)],
      ['Agent', [a.version, a.arch, a.board].filter(Boolean).join(' · ')],
      ['Kernel', a.kernel || ''],
      ['Store', a.store ? `${a.store}, ${fmtBytes(a.disk_free)} free` : ''],
      ['Outbox', a.version ? String(a.outbox_depth || 0) : ''],
      ['Memory', a.rss ? fmtBytes(a.rss) : ''],
      ['Facts', Object.entries(r.facts || {}).sort().map(([k, v]) => `${k}=${v}`).join('  ')],
      ['Layers', (d.layers || []).join(', ')],
      ['Layer problems', (d.layer_problems || []).join('; ')],
      ['Unhandled', (d.unhandled || []).join(', ')],
      ['Unreached', (d.unreached || []).join(', ')],
      ['Missing modules', Object.entries(d.missing_modules || {}).map(([k, v]) => `${k}: ${v}`).join('; ')],
      ['Rollouts', Object.entries(r.rollouts || {}).sort().map(([k, v]) => `${k}: ${v.phase} (wave ${v.wave})`).join('; ')],
    ];
    const dl = $('device-summary');
    dl.replaceChildren();
    for (const [k, v] of items) {
      if (v === '' || v === null) continue;
      dl.append(el('dt', {}, k), el('dd', { 'data-field': k.toLowerCase() }, v));
    }
    drawPlan(d.plan);
    renderJobs(d.jobs || []);
    renderEvents(d.events || [], d.events_error);
    focusHeading();
  }

  function focusHeading() {
    if (!st.focusNext) return;
    st.focusNext = false;
    const h = document.querySelector(`#view-${st.view} h2`);
    if (h) { h.tabIndex = -1; h.focus(); }
  }

  function renderJobs(jobs) {
    const body = $('jobs').tBodies[0];
    body.replaceChildren(...jobs.map((j) => el('tr', { 'data-job': j.id },
      el('td', {}, j.id), el('td', {}, [j.module, j.command].filter(Boolean).join('.')),
      el('td', {}, j.phase || ''), el('td', {}, j.attempt ? String(j.attempt) : ''),
      el('td', { class: j.error ? 'problem' : '' }, clip(j.error || j.why || '', 300)))));
    if (!jobs.length) body.append(el('tr', {}, el('td', { colspan: '5', class: 'empty' }, 'No fleet jobs.')));
  }

  function renderEvents(evs, err) {
    $('events-error').hidden = !err;
    $('events-error').textContent = err || '';
    const body = $('events').tBodies[0];
    const rows = evs.slice().reverse().map((e) => el('tr', { 'data-kind': e.kind },
      el('td', {}, fmtTime(e.time)), el('td', {}, e.kind || ''),
      el('td', {}, e.job_id ? e.job_id : [[e.module, e.job].filter(Boolean).join('.'), e.path].filter(Boolean).join(' ')),
      el('td', { class: /failed|error|refused/.test(e.kind || '') ? 'problem' : '' }, clip(e.message || '', 500) + (e.truncated ? ' (truncated)' : ''))));
    body.replaceChildren(...rows);
    if (!rows.length) body.append(el('tr', {}, el('td', { colspan: '4', class: 'empty' }, 'No events stored.')));
  }

  // ---- the plan graph ----
  //
  // Columns are dependency depth: a task with no deps is in column 0, any
  // other one column right of its deepest dep (the longest path from a
  // root). Within a column, tasks are ordered by the mean row of their
  // deps (one barycentre pass, left to right), which keeps most arrows
  // short and uncrossed, then by id.

  const NW = 190, NH = 54, GX = 56, GY = 14, PAD = 12, MAX_TASKS = 256;

  function layoutPlan(tasks) {
    const byId = new Map();
    for (const t of tasks) if (Number.isInteger(t.id) && !byId.has(t.id)) byId.set(t.id, t);
    const depth = new Map(), visiting = new Set();
    const depthOf = (t) => {
      if (depth.has(t.id)) return depth.get(t.id);
      if (visiting.has(t.id)) return 0; // a cycle: plans have none, but this one came from outside
      visiting.add(t.id);
      let n = 0;
      for (const id of t.deps || []) {
        const u = byId.get(id);
        if (u && u !== t) n = Math.max(n, depthOf(u) + 1);
      }
      visiting.delete(t.id);
      depth.set(t.id, n);
      return n;
    };
    const cols = [];
    for (const t of byId.values()) (cols[depthOf(t)] ||= []).push(t);
    const row = new Map();
    for (const col of cols) {
      if (!col) continue;
      const bary = (t) => {
        const rs = (t.deps || []).filter((id) => row.has(id)).map((id) => row.get(id));
        return rs.length ? rs.reduce((a, b) => a + b, 0) / rs.length : -1;
      };
      const key = new Map(col.map((t) => [t.id, bary(t)]));
      col.sort((a, b) => key.get(a.id) - key.get(b.id) || a.id - b.id);
      col.forEach((t, i) => row.set(t.id, i));
    }
    return { byId, depth, row, cols: cols.map((c) => c || []) };
  }

  function drawPlan(plan) {
    const wrap = $('plan-wrap');
    const list = $('plan-list');
    const tasks = plan && Array.isArray(plan.tasks) ? plan.tasks.slice(0, MAX_TASKS) : [];
    if (!tasks.length) {
      wrap.replaceChildren();
      list.replaceChildren();
      $('plan-caption').textContent = plan ? 'The plan has no tasks: nothing to do.' : 'No plan reported.';
      return;
    }
    const { byId, depth, row, cols } = layoutPlan(tasks);
    const rows = Math.max(...cols.map((c) => c.length));
    const W = PAD * 2 + cols.length * NW + (cols.length - 1) * GX;
    const H = PAD * 2 + rows * NH + (rows - 1) * GY;
    const pos = (t) => {
      const c = depth.get(t.id);
      const off = ((rows - cols[c].length) * (NH + GY)) / 2;
      return { x: PAD + c * (NW + GX), y: PAD + off + row.get(t.id) * (NH + GY) };
    };
    const states = { pending: 0, running: 0, done: 0, failed: 0 };
    const g = svg('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-testid': 'plan-graph' });
    g.append(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '10', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' }, svg('path', { d: 'M0,0L10,5L0,10z' }))));
    const edges = svg('g', { class: 'edges' });
    const nodes = svg('g', { class: 'nodes' });
    let nEdges = 0;
    const items = [];
    for (const t of byId.values()) {
      const p = pos(t);
      const s = pick(t.state, TASK_STATES, 'pending');
      states[s]++;
      const name = `${t.module || '?'}.${t.job || '?'}`;
      const deps = (t.deps || []).filter((id) => byId.has(id) && depth.get(id) < depth.get(t.id));
      for (const id of deps) {
        const q = pos(byId.get(id));
        const x1 = q.x + NW, y1 = q.y + NH / 2, x2 = p.x, y2 = p.y + NH / 2;
        edges.append(svg('path', { class: 'edge', d: `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2 - 1},${y2}`, 'marker-end': 'url(#arrow)', 'data-from': String(id), 'data-to': String(t.id), 'data-testid': 'plan-edge' }));
        nEdges++;
      }
      const title = `task ${t.id}: ${name} ${t.path || ''} — ${s}${deps.length ? '; after ' + deps.join(', ') : ''}`;
      const text = (cls, y, s2) => { const e = svg('text', { x: p.x + 8, y: p.y + y }); if (cls) e.setAttribute('class', cls); e.textContent = s2; return e; };
      const title$ = svg('title');
      title$.textContent = title;
      nodes.append(svg('g', { class: 'node st-' + s, 'data-task': String(t.id), 'data-state': s, 'data-testid': 'plan-node' },
        title$, svg('rect', { x: p.x, y: p.y, width: NW, height: NH, rx: 6 }),
        text('', 17, clip(name, 25)), text('sub', 32, clip(t.path || '', 28)), text('sub', 47, s)));
      items.push(el('li', { 'data-task': String(t.id) }, title));
    }
    g.setAttribute('aria-label', `Plan for target version ${plan.target_version}: ${byId.size} tasks, ${nEdges} dependencies`);
    g.append(edges, nodes);
    wrap.replaceChildren(g);
    list.replaceChildren(...items);
    const parts = Object.entries(states).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`);
    $('plan-caption').textContent = `Target version ${plan.target_version}: ${byId.size} tasks (${parts.join(', ')})` +
      (plan.more ? `, and ${plan.more} more not reported` : '') + '.';
  }

  // ---- rollouts and jobs ----

  function bar(counts, order, label) {
    const total = Object.values(counts || {}).reduce((a, b) => a + b, 0);
    const b = el('div', { class: 'bar', role: 'img' });
    const words = [];
    for (const ph of [...order, ...Object.keys(counts || {}).filter((k) => !order.includes(k)).sort()]) {
      const n = (counts || {})[ph] || 0;
      if (!n) continue;
      const cls = 'p-' + pick(ph, order, 'unknown');
      const s = el('span', { class: cls, title: `${ph}: ${n}`, 'data-phase': ph });
      s.style.flexGrow = String(n); // CSSOM, which the CSP allows; no inline style attribute
      b.append(s);
      words.push(`${ph} ${n}`);
    }
    b.setAttribute('aria-label', `${label}: ${words.join(', ') || 'none'} of ${total}`);
    const legend = el('ul', { class: 'phases' }, ...words.map((w, i) => el('li', { class: b.children[i].className }, w)));
    return [b, legend];
  }

  let progressGen = 0;
  async function loadProgress() {
    const gen = ++progressGen;
    try {
      const [ro, jo] = await Promise.all([getJSON('api/rollouts'), getJSON('api/jobs')]);
      if (st.view !== 'progress' || gen !== progressGen) return;
      const rs = (ro.rollouts || []).map((r) => {
        const sec = el('section', { class: 'progress', 'data-rollout': r.id, 'data-testid': 'rollout' },
          el('h3', {}, r.id, ' ', el('span', { class: 'what' }, `${r.what || ''} · ${r.devices} devices`)));
        sec.append(...bar(r.totals, ROLLOUT_PHASES, `Rollout ${r.id}`));
        if ((r.waves || []).length > 1) r.waves.forEach((w, i) => {
          const [b] = bar(w, ROLLOUT_PHASES, `Wave ${i + 1}`);
          sec.append(el('div', { class: 'wave' }, `wave ${i + 1}`, b));
        });
        return sec;
      });
      $('rollouts').replaceChildren(...(rs.length ? rs : [el('p', { class: 'empty' }, 'No device reports a rollout.')]));
      const js = (jo.jobs || []).map((j) => {
        const sec = el('section', { class: 'progress', 'data-job': j.id, 'data-testid': 'job' },
          el('h3', {}, j.id, ' ', el('span', { class: 'what' }, `${[j.module, j.command].filter(Boolean).join('.')} · ${j.devices} devices`)));
        sec.append(...bar(j.phases, JOB_PHASES, `Job ${j.id}`));
        return sec;
      });
      $('jobs-progress').replaceChildren(...(js.length ? js : [el('p', { class: 'empty' }, 'No device reports a fleet job.')]));
      focusHeading();
    } catch (e) {
      $('rollouts').replaceChildren(el('p', { class: 'problem' }, e.message));
    }
  }
  let progressTimer = 0;
  function queueProgress() {
    if (progressTimer) return;
    progressTimer = setTimeout(() => { progressTimer = 0; loadProgress(); }, 1000);
  }

  // ---- routing ----

  function show(view) {
    st.view = dash.view = view;
    for (const v of ['fleet', 'device', 'progress']) $('view-' + v).hidden = v !== view;
    for (const v of ['fleet', 'progress']) {
      if (v === view) $('nav-' + v).setAttribute('aria-current', 'page');
      else $('nav-' + v).removeAttribute('aria-current');
    }
  }

  function route() {
    const h = location.hash || '#/';
    const m = /^#\/device\/([^/?#]+)$/.exec(h);
    if (m) {
      let id;
      try { id = decodeURIComponent(m[1]); } catch { id = m[1]; }
      show('device');
      document.title = `${id} · ${baseTitle}`;
      if (st.device !== id) {
        st.device = id;
        $('device-heading').textContent = id;
        for (const x of ['device-summary', 'plan-wrap', 'plan-list']) $(x).replaceChildren();
        $('plan-caption').textContent = '';
        $('jobs').tBodies[0].replaceChildren();
        $('events').tBodies[0].replaceChildren();
      }
      loadDevice();
    } else if (h === '#/progress') {
      show('progress');
      document.title = `Rollouts & jobs · ${baseTitle}`;
      loadProgress();
    } else {
      show('fleet');
      document.title = baseTitle;
      st.device = null;
      renderFleet();
      focusHeading();
    }
  }

  // ---- live ----

  function setConn(state, why) {
    const c = $('conn');
    c.dataset.state = state;
    c.textContent = { live: 'live', connecting: 'connecting…', offline: 'offline' }[state] || state;
    c.title = why || '';
  }

  function reloadAll() {
    loadFleet();
    if (st.view === 'device') loadDevice();
    if (st.view === 'progress') loadProgress();
  }

  let countsTimer = 0;
  function onChange(id) {
    dash.updates++;
    queueRender();
    if (st.view === 'device' && id === st.device) queueDevice();
    if (st.view === 'progress') queueProgress();
    if (st.more && !countsTimer) { // the counts of a truncated list come from the server
      countsTimer = setTimeout(() => { countsTimer = 0; loadFleet(); }, 5000);
    }
  }

  let es = null;
  function connect() {
    setConn('connecting');
    es = new EventSource('api/stream');
    es.addEventListener('ready', () => {
      setConn('live');
      reloadAll(); // what changed while not subscribed
      dash.ready = true;
    });
    es.addEventListener('device', (e) => {
      let r;
      try { r = JSON.parse(e.data); } catch { return; }
      keep(r);
      for (const m of during) m.set(r.id, r);
      onChange(r.id);
    });
    es.addEventListener('gone', (e) => {
      let r;
      try { r = JSON.parse(e.data); } catch { return; }
      st.rows.delete(r.id);
      for (const m of during) m.set(r.id, null);
      onChange(r.id);
    });
    es.addEventListener('reload', () => { dash.updates++; reloadAll(); });
    es.onerror = () => {
      dash.ready = false;
      if (es.readyState === EventSource.CLOSED) { // refused (too many clients) or gone: try again later
        setConn('offline', 'the live stream closed; retrying in 10s');
        setTimeout(connect, 10000);
      } else {
        setConn('connecting');
      }
    };
  }

  // ---- wiring ----

  const baseTitle = document.title;
  $('filter').addEventListener('input', queueRender);
  $('group').addEventListener('change', renderFleet);
  for (const b of document.querySelectorAll('#fleet th button')) {
    b.addEventListener('click', () => {
      const k = b.dataset.sort;
      st.sort = { key: k, dir: st.sort.key === k ? -st.sort.dir : 1 };
      renderFleet();
    });
  }
  window.addEventListener('hashchange', () => { st.focusNext = true; route(); });
  setInterval(() => {
    for (const [id, tr] of st.trs) {
      const r = st.rows.get(id);
      if (r) tr.cells[COLS.indexOf('age')].textContent = fmtAge(r);
    }
  }, 5000);
  route();
  loadFleet();
  connect();
})();
