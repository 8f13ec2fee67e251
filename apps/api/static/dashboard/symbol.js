// One symbol: candles at any interval with its alerts marked, its metrics per timeframe, its recent alerts (live).
import {
  $, AlertSocket, alertItem, el, fmtNum, fmtPct, fmtPrice, fmtTime, fmtVol, getJSON, poll, rulesByType, setClock,
  sign, watchHealth,
} from "./common.js";
import { drawChart } from "./chart.js";

const SYMBOL = document.body.dataset.symbol;
const STEP_MS = { "1m": 6e4, "5m": 3e5, "15m": 9e5, "1h": 36e5, "4h": 144e5, "8h": 288e5, "1d": 864e5 };
const TIMEFRAMES = ["5m", "15m", "1h", "4h", "8h", "1d"];
const BARS = 160;
const chart = $("#chart");
const list = $("#sym-alerts");
let interval = new URLSearchParams(location.search).get("interval") || "15m";
let candles = [];
let alerts = [];
let rules = new Map();

function markers() {
  return alerts.map((alert) => {
    const rule = rules.get(alert.alert_type);
    return {
      time: Date.parse(alert.triggered_at),
      category: rule ? rule.category : "neutral",
      label: `${rule ? rule.name : alert.alert_type} · ${fmtTime(alert.triggered_at)} · ${fmtPrice(alert.price)}`,
    };
  });
}

function draw() {
  chart.dataset.interval = interval;
  if (!candles.length) {
    chart.replaceChildren(el("p", { class: "empty", text: "No candles stored for this symbol yet." }));
    return;
  }
  drawChart(chart, {
    candles,
    markers: markers(),
    stepMs: STEP_MS[interval],
    format: fmtPrice,
    onHover: (c) => {
      $("#chart-readout").textContent = c
        ? `${fmtTime(c.time)}  O ${fmtPrice(c.open)}  H ${fmtPrice(c.high)}  L ${fmtPrice(c.low)}  C ${fmtPrice(c.close)}  vol ${fmtVol(c.quote_volume)}`
        : "";
    },
  });
  chart.dataset.bars = String(candles.length);
}

async function loadCandles() {
  const wanted = interval;
  const { response } = await getJSON(`/api/candles/${SYMBOL}?interval=${wanted}&limit=${BARS}`);
  if (response.status === 404) {
    chart.replaceChildren(el("p", { class: "empty", text: `${SYMBOL} is not a symbol this screener knows.` }));
    return;
  }
  const body = await response.json();
  if (wanted !== interval) return; // the user picked another interval meanwhile
  candles = body.candles;
  draw();
}

async function loadMetrics() {
  const { response } = await getJSON(`/api/metrics/${SYMBOL}`);
  if (!response.ok) return;
  const body = await response.json();
  const frames = body.timeframes || {};
  $("#metrics-time").textContent = body.timestamp ? fmtTime(body.timestamp) + " UTC" : "";
  setClock(body.timestamp);
  const rows = TIMEFRAMES.filter((tf) => frames[tf]).map((tf) => {
    const m = frames[tf];
    const td = (text, cls = "num") => el("td", { class: cls, text });
    return el(
      "tr",
      { "data-tf": tf },
      el("td", { text: tf }),
      td(fmtPrice(m.close)),
      td(fmtPct(m.change_pct), `num ${sign(m.change_pct)}`),
      td(fmtVol(m.volume)),
      td(fmtNum(m.vcp, 3), `num ${sign(m.vcp)}`),
      td(fmtNum(m.rsi_14, 1), `num ${m.rsi_14 < 30 ? "rsi-low" : m.rsi_14 > 70 ? "rsi-high" : ""}`),
      td(fmtNum(m.macd, 4)),
      td(fmtNum(m.macd_signal, 4)),
      td(fmtPrice(m.bb_upper)),
      td(fmtPrice(m.bb_middle)),
      td(fmtPrice(m.bb_lower)),
      td(fmtPrice(m.fib_pivot)),
    );
  });
  $("#metrics tbody").replaceChildren(...rows);
  const day = frames["1d"] || frames["5m"];
  if (day) {
    $("#sym-price").textContent = fmtPrice(day.close);
    const change = $("#sym-change");
    change.textContent = `${fmtPct(frames["1d"]?.change_pct)} 1d`;
    change.className = `mono small ${sign(frames["1d"]?.change_pct)}`;
  }
}

async function loadAlerts() {
  const { response } = await getJSON(`/api/alerts?symbol=${SYMBOL}&limit=200`);
  alerts = (await response.json()).alerts;
  list.replaceChildren(...alerts.slice(0, 50).map((alert) => alertItem(alert, rules)));
  $("#sym-alerts-empty").hidden = alerts.length > 0;
  if (candles.length) draw();
}

for (const button of document.querySelectorAll("[data-interval]")) {
  button.setAttribute("aria-pressed", String(button.dataset.interval === interval));
  button.addEventListener("click", () => {
    interval = button.dataset.interval;
    for (const other of document.querySelectorAll("[data-interval]")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    const url = new URL(location.href);
    url.searchParams.set("interval", interval);
    history.replaceState(null, "", url);
    loadCandles();
  });
}
window.addEventListener("resize", () => { if (candles.length) draw(); });

async function start() {
  rules = await rulesByType();
  await loadAlerts();
  poll(loadCandles, 15000);
  poll(loadMetrics, 15000);
  new AlertSocket({
    symbols: [SYMBOL],
    onAlert: (alert) => {
      if (alert.symbol !== SYMBOL || alerts.some((known) => known.id === alert.id)) return;
      alerts.unshift(alert);
      list.prepend(alertItem(alert, rules, { fresh: true }));
      $("#sym-alerts-empty").hidden = true;
      loadCandles();
    },
  });
  watchHealth();
}

start();
