// Feed health: the pipeline's services from /api/health (details only where the server shares them), candles per
// symbol from /api/feed, and for staff the webhook destinations paused after failures.
import { $, el, fmtAge, fmtTime, getJSON, poll, setClock } from "./common.js";

const SERVICE_NAMES = {
  data_collector: "Collector",
  metrics_calculator: "Indicators",
  alert_engine: "Alert engine (tick)",
  database: "Database",
  redis: "Redis",
};
const staff = document.body.dataset.staff === "1";

function fact(list, name, value) {
  if (value === undefined || value === null || value === "") return;
  list.append(el("dt", { text: name }), el("dd", { text: String(value) }));
}

const isoMs = (ms) => (typeof ms === "number" ? new Date(ms).toISOString() : null);

function renderHealth(report) {
  const badge = $("#health-status");
  badge.textContent = report.status;
  badge.className = `badge ${report.status}`;
  $("#health-dot").className = `dot ${report.status}`;
  $("#health-time").textContent = report.timestamp ? `checked ${fmtTime(report.timestamp, { seconds: true })} UTC` : "";
  $("#services").replaceChildren(
    ...Object.entries(report.services || {}).map(([name, state]) =>
      el(
        "div",
        { class: `tile ${state}`, "data-service": name },
        el("div", { class: "name", text: SERVICE_NAMES[name] || name }),
        el("div", { class: "state", text: state }),
      ),
    ),
  );
  // Details may be withheld (anonymous callers can be shown status and counts only): show what is there.
  const details = report.details || {};
  const facts = $("#health-details");
  facts.replaceChildren();
  const collector = details.data_collector;
  if (collector) {
    const states = Object.entries(collector.states || {}).map(([slice, s]) => `${slice}: ${s}`).join(", ");
    fact(facts, "Collector", states || `${collector.running ?? 0} of ${collector.slices ?? 0} slices running`);
    fact(facts, "Symbols collected", collector.symbols);
    fact(facts, "Heartbeat age", collector.heartbeat_age_seconds != null ? fmtAge(collector.heartbeat_age_seconds) : null);
    fact(facts, "Exchange clock", collector.last_event_ms ? fmtTime(isoMs(collector.last_event_ms), { seconds: true }) + " UTC" : null);
    if (collector.last_event_ms) setClock(isoMs(collector.last_event_ms));
  }
  const tick = details.alert_engine;
  if (tick && tick.minute_ms) {
    fact(facts, "Last tick minute", fmtTime(isoMs(tick.minute_ms)) + " UTC");
    fact(facts, "Last tick finished", tick.age_seconds != null ? `${fmtAge(tick.age_seconds)} ago` : null);
    // The tick's lag behind the feed, both on the exchange's clock, so a replay at any speed reads the same.
    if (collector && collector.last_event_ms) {
      const lag = (collector.last_event_ms - (tick.minute_ms + 60000)) / 1000;
      fact(facts, "Tick lag behind the feed", `${fmtAge(Math.max(lag, 0))} of exchange time`);
    }
  }
  const indicators = details.metrics_calculator;
  if (indicators && indicators.minute_ms) {
    fact(facts, "Indicators minute", `${fmtTime(isoMs(indicators.minute_ms))} UTC (${fmtAge(indicators.age_seconds)} ago)`);
  }
  for (const [name, value] of Object.entries(report.counts || {})) fact(facts, name.replaceAll("_", " "), value);
  const paused = details.notifications?.paused_destinations;
  if (staff && Array.isArray(paused)) renderPaused(paused);
}

function renderPaused(paused) {
  if (!$("#paused")) return;
  $("#paused tbody").replaceChildren(
    ...paused.map((d) =>
      el(
        "tr",
        { "data-destination": d.id },
        el("td", {}, el("a", { href: `/admin/notifications/destination/${d.id}/change/`, text: d.name })),
        el("td", { text: d.kind }),
        el("td", { class: "muted", text: d.user_id || "site" }),
        el("td", { class: "mono", text: fmtTime(d.paused_at) }),
        el("td", { text: d.reason || "" }),
        el("td", { class: "num", text: String(d.pending ?? "") }),
      ),
    ),
  );
  $("#paused-empty").hidden = paused.length > 0;
}

async function loadHealth() {
  const { response } = await getJSON("/api/health");
  renderHealth(await response.json());
}

async function loadFeed() {
  const hours = $("#gaps-hours").value;
  const { response } = await getJSON(`/api/feed?hours=${hours}`);
  const body = await response.json();
  // Worst first: the symbols missing most minutes, then those furthest behind.
  const rows = [...body.symbols].sort(
    (a, b) => (b.missing ?? 1e9) - (a.missing ?? 1e9) || (b.behind ?? 0) - (a.behind ?? 0) || (a.symbol < b.symbol ? -1 : 1),
  );
  $("#gaps tbody").replaceChildren(
    ...rows.map((row) =>
      el(
        "tr",
        { "data-symbol": row.symbol },
        el("td", {}, el("a", { href: `/symbol/${row.symbol}`, text: row.symbol })),
        el("td", { class: "num", text: String(row.candles) }),
        el("td", { class: `num ${row.missing ? "down" : ""}`, text: row.missing == null ? "–" : String(row.missing) }),
        el("td", { class: `num ${row.behind ? "down" : ""}`, text: row.behind == null ? "–" : String(row.behind) }),
        el("td", { class: "mono", text: fmtTime(row.last) }),
      ),
    ),
  );
  $("#gaps-empty").hidden = rows.length > 0;
  $("#gaps-summary").textContent = `${rows.length} symbols · ${body.with_gaps} with missing minutes · newest ${fmtTime(body.newest)} UTC`;
  if (staff && Array.isArray(body.paused_destinations)) renderPaused(body.paused_destinations);
}

$("#gaps-hours").addEventListener("change", loadFeed);
poll(loadHealth, 5000);
poll(loadFeed, 30000);
