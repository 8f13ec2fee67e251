// Shared by every page: fetching the API politely, number formats, the alert socket, the feed list, the header.

export const $ = (selector, root = document) => root.querySelector(selector);

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name in node && typeof value !== "string") node[name] = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

export class RateLimited extends Error {
  constructor(seconds) {
    super(`rate limited for ${seconds}s`);
    this.seconds = seconds;
  }
}

// GET a JSON endpoint. With `etag`, a 304 answer resolves to {notModified: true}. A 429 throws RateLimited with
// the server's Retry-After, so pollers wait exactly as long as asked.
export async function getJSON(url, { etag } = {}) {
  const headers = { Accept: "application/json" };
  if (etag) headers["If-None-Match"] = etag;
  const response = await fetch(url, { headers, cache: "no-store", credentials: "same-origin" });
  if (response.status === 304) return { notModified: true };
  if (response.status === 429) throw new RateLimited(Number(response.headers.get("Retry-After")) || 10);
  if (!response.ok && response.status !== 404 && response.status !== 503) {
    let detail = "";
    try { detail = JSON.stringify(await response.json()); } catch { /* not JSON */ }
    throw new Error(`${response.status} ${detail}`);
  }
  return { response, etag: response.headers.get("ETag") };
}

// Calls `task` now and then every `ms` while the tab is visible; a RateLimited pause replaces one interval.
export function poll(task, ms) {
  let timer = null;
  const run = async () => {
    timer = null;
    let wait = ms;
    if (!document.hidden) {
      try { await task(); } catch (error) {
        if (error instanceof RateLimited) wait = error.seconds * 1000;
        else console.warn(error);
      }
    }
    timer = setTimeout(run, wait);
  };
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer !== null) { clearTimeout(timer); run(); }
  });
  run();
}

// --- numbers ---------------------------------------------------------------------------------------------
const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
export function fmtPrice(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  const digits = a >= 1000 ? 2 : a >= 1 ? 4 : a >= 0.01 ? 5 : 8;
  return v.toFixed(digits).replace(/(\.\d*?[1-9])0+$|\.0+$/, "$1");
}
export function fmtPct(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return (v > 0 ? "+" : "") + v.toFixed(2) + "%";
}
export function fmtVol(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return compact.format(v);
}
export function fmtNum(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return v.toFixed(digits);
}
export function sign(v) {
  return v > 0 ? "up" : v < 0 ? "down" : "";
}
// "2026-11-23T10:28:00Z" -> "11-23 10:28" (UTC: the exchange's time, the same on every screen).
export function fmtTime(iso, { seconds = false, date = true } = {}) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const s = d.toISOString();
  return (date ? s.slice(5, 10) + " " : "") + s.slice(11, seconds ? 19 : 16);
}
export function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${seconds.toFixed(1)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// --- rules -----------------------------------------------------------------------------------------------
let rulesPromise = null;
// rule_type -> rule, fetched once per page.
export function rulesByType() {
  rulesPromise ??= getJSON("/api/rules")
    .then(({ response }) => response.json())
    .then((body) => new Map(body.rules.map((rule) => [rule.rule_type, rule])))
    .catch(() => new Map());
  return rulesPromise;
}
export async function fillRuleSelect(select) {
  const rules = await rulesByType();
  for (const rule of rules.values()) select.append(el("option", { value: rule.rule_type, text: rule.name }));
}

// --- the alert socket ----------------------------------------------------------------------------------------
// One /ws/alerts connection that reconnects with backoff, answers the server's pings, and hands alerts to onAlert.
export class AlertSocket {
  constructor({ onAlert, onState, symbols = null }) {
    this.onAlert = onAlert;
    this.onState = onState || (() => {});
    this.symbols = symbols;
    this.retry = 500;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/alerts`);
    this.ws = ws;
    this.onState("connecting");
    ws.onopen = () => {
      this.retry = 500;
      if (this.symbols) ws.send(JSON.stringify({ type: "subscribe", channels: ["alerts"], symbols: this.symbols }));
      this.onState("live");
    };
    ws.onmessage = (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame.type === "alert" && frame.data) this.onAlert(frame.data);
      else if (frame.type === "ping") ws.send('{"type":"pong"}');
    };
    ws.onclose = () => {
      this.onState("closed");
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 15000);
    };
  }
}

// --- the alert list, shared by the live feed and the symbol page ---------------------------------------------
export function alertItem(alert, rules, { fresh = false } = {}) {
  const rule = rules.get(alert.alert_type);
  const category = rule ? rule.category : alert.alert_type.includes("bear") ? "bear" : "bull";
  const metadata = alert.metadata || {};
  const details = [`${fmtPrice(alert.price)}`];
  if (alert.change_pct !== null && alert.change_pct !== undefined) details.push(fmtPct(alert.change_pct));
  if (alert.volume) details.push(`vol ${fmtVol(alert.volume)}`);
  if (metadata.vcp !== undefined && metadata.vcp !== null) details.push(`vcp ${fmtNum(metadata.vcp, 3)}`);
  return el(
    "li",
    {
      class: `${category}${fresh ? " fresh" : ""}`,
      "data-id": alert.id,
      "data-symbol": alert.symbol,
      "data-type": alert.alert_type,
    },
    el("a", { class: "sym", href: `/symbol/${alert.symbol}`, text: alert.symbol }),
    el("span", { class: "rule", text: rule ? rule.name : alert.alert_type }),
    el("time", { datetime: alert.triggered_at, text: fmtTime(alert.triggered_at) }),
    el("span", { class: "meta", text: `${alert.timeframe} · ${details.join(" · ")}` }),
  );
}

// --- header: health dot and the newest data time --------------------------------------------------------
export function setClock(iso) {
  const clock = $("#clock");
  if (clock && iso) clock.textContent = fmtTime(iso, { date: true }) + " UTC";
}

export function watchHealth(onReport) {
  const dot = $("#health-dot");
  poll(async () => {
    const { response } = await getJSON("/api/health");
    const report = await response.json();
    if (dot) {
      dot.className = `dot ${report.status || ""}`;
      dot.title = `Pipeline ${report.status}`;
    }
    if (onReport) onReport(report);
  }, 10000);
}
