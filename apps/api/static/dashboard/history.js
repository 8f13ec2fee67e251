// Alert history: filters and pages over GET /api/alerts, kept in the address so a view can be shared or reloaded.
import { $, el, fillRuleSelect, fmtPct, fmtPrice, fmtTime, fmtVol, getJSON, rulesByType, sign, watchHealth } from "./common.js";

const form = $("#hist-form");
const FIELDS = ["symbol", "type", "since", "until", "limit"];
let rules = new Map();
let total = 0;

// The form's datetime-local values are UTC wall times; the API wants ISO-8601.
const toIso = (local) => (local ? `${local.length === 16 ? local + ":00" : local}Z` : "");
const fromIso = (iso) => (iso ? iso.replace(/Z$|\+00:00$/, "").slice(0, 16) : "");

function current() {
  const params = new URLSearchParams(location.search);
  return {
    symbol: (params.get("symbol") || "").toUpperCase(),
    type: params.get("type") || "",
    since: params.get("since") || "",
    until: params.get("until") || "",
    limit: Number(params.get("limit")) || 50,
    offset: Number(params.get("offset")) || 0,
  };
}

function fillForm(query) {
  form.symbol.value = query.symbol;
  form.type.value = query.type;
  form.since.value = fromIso(query.since);
  form.until.value = fromIso(query.until);
  form.limit.value = String(query.limit);
}

function go(query, { push = true } = {}) {
  const params = new URLSearchParams();
  for (const name of [...FIELDS, "offset"]) if (query[name]) params.set(name, query[name]);
  const url = `${location.pathname}${params.size ? "?" + params : ""}`;
  if (push) history.pushState(null, "", url);
  load();
}

async function load() {
  const query = current();
  fillForm(query);
  const params = new URLSearchParams();
  for (const name of [...FIELDS, "offset"]) if (query[name]) params.set(name, query[name]);
  const error = $("#hist-error");
  let body;
  try {
    const { response } = await getJSON(`/api/alerts?${params}`);
    body = await response.json();
    error.hidden = true;
  } catch (failure) {
    error.textContent = `Could not load alerts: ${failure.message}`;
    error.hidden = false;
    return;
  }
  total = body.total;
  const rows = body.alerts.map((alert) => {
    const rule = rules.get(alert.alert_type);
    return el(
      "tr",
      { "data-id": alert.id },
      el("td", { class: "mono", text: fmtTime(alert.triggered_at) }),
      el("td", {}, el("a", { href: `/symbol/${alert.symbol}`, text: alert.symbol })),
      el("td", { class: rule?.category === "bear" ? "down" : rule?.category === "bull" ? "up" : "", text: rule ? rule.name : alert.alert_type }),
      el("td", { class: "muted", text: alert.timeframe }),
      el("td", { class: "num", text: fmtPrice(alert.price) }),
      el("td", { class: `num ${sign(alert.change_pct)}`, text: fmtPct(alert.change_pct) }),
      el("td", { class: "num", text: fmtVol(alert.volume) }),
    );
  });
  $("#hist tbody").replaceChildren(...rows);
  $("#hist-empty").hidden = rows.length > 0;
  $("#hist-total").textContent = `${total.toLocaleString("en")} alerts`;
  const first = rows.length ? query.offset + 1 : 0;
  $("#hist-range").textContent = `${first}–${query.offset + rows.length} of ${total}`;
  $("#hist-prev").disabled = query.offset <= 0;
  $("#hist-next").disabled = query.offset + rows.length >= total;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  go({
    symbol: form.symbol.value.trim().toUpperCase(),
    type: form.type.value,
    since: toIso(form.since.value),
    until: toIso(form.until.value),
    limit: Number(form.limit.value),
    offset: 0,
  });
});
form.addEventListener("reset", (event) => {
  event.preventDefault();
  go({ limit: Number(form.limit.value), offset: 0 });
});
$("#hist-prev").addEventListener("click", () => {
  const query = current();
  go({ ...query, offset: Math.max(0, query.offset - query.limit) });
});
$("#hist-next").addEventListener("click", () => {
  const query = current();
  go({ ...query, offset: query.offset + query.limit });
});
window.addEventListener("popstate", load);

// Symbols to pick from: the filter matches a symbol exactly.
async function fillSymbols() {
  const { response } = await getJSON("/api/symbols");
  const { symbols } = await response.json();
  $("#symbol-list").replaceChildren(...symbols.map((s) => el("option", { value: s.symbol })));
}

(async () => {
  fillSymbols().catch((error) => console.warn(error));
  rules = await rulesByType();
  await fillRuleSelect(form.type);
  await load();
  watchHealth();
})();
