// The screener table (every symbol, live from GET /api/screener) and the live alert feed beside it.
import {
  $, AlertSocket, alertItem, el, fillRuleSelect, fmtPct, fmtPrice, fmtNum, fmtVol, getJSON, poll, rulesByType,
  setClock, sign, watchHealth,
} from "./common.js";

const TIMEFRAMES = ["5m", "15m", "1h", "4h", "8h", "1d"];
const query = new URLSearchParams(location.search);
// Live, snapshots come once a minute; a fast replay writes them every second: poll often, pay only on change (ETag).
const POLL_MS = Math.max(250, Number(query.get("poll")) || 2000);
const TIMINGS_KEPT = 600;

// ---------------------------------------------------------------------------------------------------------
// Screener
// ---------------------------------------------------------------------------------------------------------
const body = $("#screener-body");
const head = $("#screener-head");
const state = {
  index: null, // API column name -> position in a row
  rows: new Map(), // symbol -> {data: the API's row}
  order: [], // the rows passing the filters, sorted
  sortKey: query.get("sort") || "volume_1d",
  sortDir: query.get("dir") === "asc" ? 1 : -1,
  text: "",
  minVolume: 0,
  rsi: "",
  indicatorTf: $("#indicator-tf").value,
  etag: null,
};
// Per-update cost (Performance API measures, newest last), read by the benchmark and handy in the console.
window.screenerTimings = [];
window.screenerFrameTimings = [];
window.screenerScriptTimings = []; // the script's share of each update (parse and DOM writes)
// Frames that kept the page busy over 50 ms (Long Animation Frames API, where the browser has it).
window.screenerLongFrames = 0;
if (PerformanceObserver.supportedEntryTypes?.includes("long-animation-frame")) {
  new PerformanceObserver((entries) => {
    window.screenerLongFrames += entries.getEntries().length;
  }).observe({ type: "long-animation-frame" });
}

// The visible columns: what each shows and where its value comes from.
function columns() {
  const list = [
    { key: "symbol", label: "Symbol", source: "symbol", kind: "text" },
    { key: "price", label: "Price", source: "price", kind: "price" },
  ];
  for (const tf of TIMEFRAMES) {
    list.push({ key: `change_${tf}`, tf, label: "chg", source: `change_${tf}`, kind: "pct", band: true });
    list.push({ key: `volume_${tf}`, tf, label: "vol", source: `volume_${tf}`, kind: "vol" });
  }
  list.push({ key: "vcp", label: "VCP", tf: state.indicatorTf, source: `vcp_${state.indicatorTf}`, kind: "vcp", band: true });
  list.push({ key: "rsi", label: "RSI", tf: state.indicatorTf, source: `rsi_${state.indicatorTf}`, kind: "rsi" });
  return list;
}
let COLUMNS = columns();

function buildHead() {
  head.replaceChildren(
    ...COLUMNS.map((column) => {
      const cell = el("span", { role: "columnheader", "data-key": column.key, class: column.band ? "band-start" : "" });
      if (column.tf) cell.append(el("span", { class: "tf", text: column.tf }));
      cell.append(column.label);
      if (column.key === state.sortKey) cell.setAttribute("aria-sort", state.sortDir > 0 ? "ascending" : "descending");
      return cell;
    }),
  );
}

function cellText(kind, value) {
  switch (kind) {
    case "text": return value ?? "";
    case "price": return fmtPrice(value);
    case "pct": return fmtPct(value);
    case "vol": return fmtVol(value);
    case "vcp": return fmtNum(value, 3);
    case "rsi": return fmtNum(value, 1);
    default: return String(value);
  }
}

function cellClass(column, value) {
  const base = column.band ? "band-start " : "";
  if (value === null || value === undefined) return base;
  if (column.kind === "pct" || column.kind === "vcp") return base + sign(value);
  if (column.kind === "vol") return base + "vol";
  if (column.kind === "rsi") return base + (value < 30 ? "rsi-low" : value > 70 ? "rsi-high" : "");
  return base;
}

// Only the rows on screen (and a margin) exist in the DOM: a pool of row nodes bound to whichever symbols sit
// there, so an update costs the rows one can see, not all five hundred.
const ROW_HEIGHT = 28;
const OVERSCAN = 8;
const windowBox = body.appendChild(el("div", { class: "grid-window" }));
const pool = []; // {node, cells, shown, symbol}

function newRow() {
  const node = el("div", { class: "grid-row", role: "row" });
  const cells = COLUMNS.map(() => node.appendChild(el("span", { role: "cell" })));
  return { node, cells, shown: new Array(COLUMNS.length).fill(undefined), symbol: null };
}

// Writes only the cells whose value changed: most of the cost of an update is the DOM it touches.
function bind(row, entry) {
  const { cells, shown } = row;
  const data = entry.data;
  if (row.symbol !== data[0]) {
    row.symbol = data[0];
    row.node.dataset.symbol = data[0];
  }
  for (let i = 0; i < COLUMNS.length; i++) {
    const column = COLUMNS[i];
    const value = data[state.index[column.source]];
    if (value === shown[i]) continue;
    shown[i] = value;
    const cell = cells[i];
    cell.textContent = cellText(column.kind, value);
    const wanted = cellClass(column, value);
    if (cell.className !== wanted) cell.className = wanted;
  }
}

function render() {
  const total = state.order.length;
  const top = body.getBoundingClientRect().top;
  const first = Math.max(0, Math.floor(-top / ROW_HEIGHT) - OVERSCAN);
  const count = Math.max(0, Math.min(total - first, Math.ceil(innerHeight / ROW_HEIGHT) + 2 * OVERSCAN));
  body.style.height = `${total * ROW_HEIGHT}px`;
  windowBox.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
  while (pool.length < count) pool.push(newRow());
  while (windowBox.children.length > count) windowBox.lastChild.remove();
  for (let k = 0; k < count; k++) {
    bind(pool[k], state.order[first + k]);
    if (windowBox.children[k] !== pool[k].node) windowBox.append(pool[k].node);
  }
  $("#screener-count").textContent = `${total} of ${state.rows.size}`;
  $("#screener-empty").hidden = state.rows.size > 0;
}

let renderPending = false;
function renderSoon() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    render();
  });
}

function passes(entry) {
  const data = entry.data;
  if (state.text && !data[0].includes(state.text)) return false;
  if (state.minVolume > 0 && !(data[state.index.volume_1d] >= state.minVolume)) return false;
  if (state.rsi) {
    const rsi = data[state.index[`rsi_${state.indicatorTf}`]];
    if (rsi === null || rsi === undefined) return false;
    if (state.rsi === "lt30" && !(rsi < 30)) return false;
    if (state.rsi === "gt70" && !(rsi > 70)) return false;
  }
  return true;
}

function reorder() {
  const position = state.index[COLUMNS.find((c) => c.key === state.sortKey)?.source ?? "symbol"];
  const dir = state.sortDir;
  const list = [];
  for (const entry of state.rows.values()) if (passes(entry)) list.push(entry);
  list.sort((a, b) => {
    const x = a.data[position];
    const y = b.data[position];
    if (x === y) return a.data[0] < b.data[0] ? -1 : 1;
    if (x === null || x === undefined) return 1; // unknown values last, whichever the direction
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * dir;
  });
  state.order = list;
  render();
}

function apply(update) {
  state.index = Object.fromEntries(update.columns.map((name, i) => [name, i]));
  const rows = new Map();
  for (const row of update.rows) rows.set(row[0], { data: row });
  state.rows = rows;
  reorder();
  setClock(update.timestamp);
}

function keep(list, value) {
  list.push(value);
  if (list.length > TIMINGS_KEPT) list.shift();
}

async function refresh() {
  const answer = await getJSON("/api/screener", { etag: state.etag });
  if (answer.notModified) return;
  const text = await answer.response.text();
  // Measured from the moment the body is here. "screener-update": parsing, the DOM writes, and the style and layout
  // they cause (forced here rather than at the next frame, so the figure is this update's alone).
  // "screener-frame": until the next frame is on screen, so it adds paint and the wait for the display's refresh.
  performance.mark("screener-update-start");
  apply(JSON.parse(text));
  state.etag = answer.etag;
  keep(window.screenerScriptTimings, performance.measure("screener-script", "screener-update-start").duration);
  performance.clearMeasures("screener-script");
  void body.offsetHeight;
  keep(window.screenerTimings, performance.measure("screener-update", "screener-update-start").duration);
  performance.clearMeasures("screener-update");
  requestAnimationFrame(() =>
    setTimeout(() => {
      keep(window.screenerFrameTimings, performance.measure("screener-frame", "screener-update-start").duration);
      performance.clearMarks("screener-update-start");
      performance.clearMeasures("screener-frame");
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    }, 0),
  );
}

head.addEventListener("click", (event) => {
  const cell = event.target.closest("[data-key]");
  if (!cell) return;
  const key = cell.dataset.key;
  state.sortDir = key === state.sortKey ? -state.sortDir : key === "symbol" ? 1 : -1;
  state.sortKey = key;
  buildHead();
  if (state.index) reorder();
});
body.addEventListener("click", (event) => {
  const row = event.target.closest("[data-symbol]");
  if (row) location.href = `/symbol/${row.dataset.symbol}`;
});
$("#filter-text").addEventListener("input", (event) => {
  state.text = event.target.value.trim().toUpperCase();
  if (state.index) reorder();
});
$("#filter-volume").addEventListener("change", (event) => {
  state.minVolume = Number(event.target.value);
  if (state.index) reorder();
});
$("#filter-rsi").addEventListener("change", (event) => {
  state.rsi = event.target.value;
  if (state.index) reorder();
});
$("#indicator-tf").addEventListener("change", (event) => {
  state.indicatorTf = event.target.value;
  COLUMNS = columns();
  buildHead();
  for (const row of pool) row.shown.fill(undefined, COLUMNS.length - 2);
  if (state.index) reorder();
});

addEventListener("scroll", renderSoon, { passive: true });
addEventListener("resize", renderSoon);
buildHead();
poll(refresh, POLL_MS);
watchHealth();

// ---------------------------------------------------------------------------------------------------------
// Live alert feed
// ---------------------------------------------------------------------------------------------------------
const FEED_KEPT = 300;
const feed = $("#feed");
const alerts = []; // newest first
const alertIds = new Set();
const prefs = JSON.parse(localStorage.getItem("screener.feed") || "{}");
const feedRule = $("#feed-rule");
const feedSymbol = $("#feed-symbol");
const sound = $("#feed-sound");
const notify = $("#feed-notify");
let rules = new Map();

function savePrefs() {
  localStorage.setItem(
    "screener.feed",
    JSON.stringify({ rule: feedRule.value, symbol: feedSymbol.value, sound: sound.checked, notify: notify.checked }),
  );
}

function shown(alert) {
  if (feedRule.value && alert.alert_type !== feedRule.value) return false;
  const symbol = feedSymbol.value.trim().toUpperCase();
  return !symbol || alert.symbol.includes(symbol);
}

function renderFeed() {
  feed.replaceChildren(...alerts.filter(shown).map((alert) => alertItem(alert, rules)));
  $("#feed-empty").hidden = feed.children.length > 0;
}

let audio = null;
function beep(category) {
  audio ??= new AudioContext();
  const oscillator = audio.createOscillator();
  const gain = audio.createGain();
  oscillator.frequency.value = category === "bear" ? 520 : 880;
  gain.gain.setValueAtTime(0.12, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
  oscillator.connect(gain).connect(audio.destination);
  oscillator.start();
  oscillator.stop(audio.currentTime + 0.25);
}

function announce(alert) {
  const rule = rules.get(alert.alert_type);
  if (sound.checked) beep(rule?.category);
  if (notify.checked && "Notification" in window && Notification.permission === "granted") {
    new Notification(`${alert.symbol} · ${rule ? rule.name : alert.alert_type}`, {
      body: `${fmtPrice(alert.price)}  ${fmtPct(alert.change_pct)}`,
      tag: alert.id,
    });
  }
}

function receive(alert, { live }) {
  if (alertIds.has(alert.id)) return;
  alertIds.add(alert.id);
  alerts.unshift(alert);
  if (alerts.length > FEED_KEPT) alertIds.delete(alerts.pop().id);
  if (!shown(alert)) return;
  feed.prepend(alertItem(alert, rules, { fresh: live }));
  while (feed.children.length > FEED_KEPT) feed.lastChild.remove();
  $("#feed-empty").hidden = true;
  if (live) announce(alert);
}

async function startFeed() {
  rules = await rulesByType();
  await fillRuleSelect(feedRule);
  feedRule.value = prefs.rule || "";
  feedSymbol.value = prefs.symbol || "";
  sound.checked = Boolean(prefs.sound);
  notify.checked = Boolean(prefs.notify) && "Notification" in window && Notification.permission === "granted";
  const badge = $("#socket-state");
  new AlertSocket({
    onAlert: (alert) => receive(alert, { live: true }),
    onState: (name) => {
      badge.textContent = name;
      badge.className = `badge ${name}`;
    },
  });
  // Recent history under the live ones; the socket may already have delivered some of them (dropped by id).
  const { response } = await getJSON("/api/alerts?limit=100");
  const recent = (await response.json()).alerts;
  for (const alert of recent) {
    if (alertIds.has(alert.id)) continue;
    alertIds.add(alert.id);
    alerts.push(alert);
  }
  alerts.sort((a, b) => (a.triggered_at < b.triggered_at ? 1 : a.triggered_at > b.triggered_at ? -1 : 0));
  renderFeed();
}

feedRule.addEventListener("change", () => { savePrefs(); renderFeed(); });
feedSymbol.addEventListener("input", () => { savePrefs(); renderFeed(); });
sound.addEventListener("change", () => {
  if (sound.checked) beep("bull"); // also unlocks audio, which browsers allow only after a user gesture
  savePrefs();
});
notify.addEventListener("change", async () => {
  if (notify.checked && "Notification" in window && Notification.permission !== "granted") {
    notify.checked = (await Notification.requestPermission()) === "granted";
  }
  savePrefs();
});

startFeed();
