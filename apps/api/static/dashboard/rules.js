// Rules: conditions, parameters, on/off and how often each fired over the last 24 hours of the exchange's clock.
import { $, el, fmtTime, getJSON, poll, watchHealth } from "./common.js";

async function load() {
  const [rulesAnswer, countsAnswer] = await Promise.all([getJSON("/api/rules"), getJSON("/api/alerts/counts?hours=24")]);
  const { rules } = await rulesAnswer.response.json();
  const counts = await countsAnswer.response.json();
  $("#rules-total").textContent = `${rules.filter((r) => r.enabled).length} of ${rules.length} enabled · ${counts.total} alerts in 24 h`;
  $("#rules-window").textContent = `${fmtTime(counts.since)} – ${fmtTime(counts.until)} UTC`;
  const cards = rules.map((rule) => {
    const n = counts.counts[rule.rule_type] || 0;
    const parameters = Object.entries(rule.parameters || {}).map(([name, value]) => `${name} = ${value}`).join("   ");
    return el(
      "article",
      { class: `card ${rule.category}${rule.enabled ? "" : " disabled"}`, "data-rule": rule.rule_type },
      el(
        "header",
        {},
        el("h3", { text: rule.name }),
        el("a", {
          class: n ? "count" : "count zero",
          href: `/history?type=${rule.rule_type}&since=${encodeURIComponent(counts.since)}`,
          title: "Alerts in the last 24 hours",
          text: String(n),
        }),
      ),
      el(
        "p",
        {},
        el("span", { class: `badge ${rule.enabled ? "on" : "off"}`, text: rule.enabled ? "enabled" : "disabled" }),
        ` ${rule.rule_type} · ${rule.category} · cooldown ${rule.cooldown_minutes} min`,
      ),
      rule.description ? el("p", { text: rule.description }) : null,
      el("code", { text: (rule.conditions || []).join("\nand ") || "(no conditions)" }),
      parameters ? el("p", { class: "params", text: parameters }) : null,
    );
  });
  $("#rules").replaceChildren(...cards);
}

poll(load, 30000);
watchHealth();
