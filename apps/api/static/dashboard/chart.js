// A small candlestick chart in SVG: bodies and wicks, volume underneath, price and time axes, alert markers and a
// crosshair readout. Hand-written; a few hundred bars need no library.

const NS = "http://www.w3.org/2000/svg";
const PAD = { left: 8, right: 64, top: 12, bottom: 24 };
const VOLUME_SHARE = 0.18;

function svg(tag, attrs = {}) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function niceStep(range, count) {
  const raw = range / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit >= 5 ? 10 : unit >= 2 ? 5 : unit >= 1 ? 2 : 1) * power;
}

function timeLabel(ms, stepMs) {
  const iso = new Date(ms).toISOString();
  return stepMs >= 86400000 ? iso.slice(5, 10) : stepMs >= 3600000 ? iso.slice(5, 10) + " " + iso.slice(11, 13) + "h" : iso.slice(11, 16);
}

// candles: [{time (ISO open), open, high, low, close, quote_volume}], oldest first; markers: [{time (ms), category,
// label}]; stepMs: the interval. Returns the <svg>, or null without candles.
export function drawChart(container, { candles, markers = [], stepMs, format, onHover }) {
  if (!candles.length) return null;
  const width = Math.max(container.clientWidth, 320);
  const height = Math.max(container.clientHeight, 240);
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const priceH = plotH * (1 - VOLUME_SHARE);
  const times = candles.map((c) => Date.parse(c.time));
  let low = Infinity;
  let high = -Infinity;
  let maxVolume = 0;
  for (const c of candles) {
    low = Math.min(low, c.low);
    high = Math.max(high, c.high);
    maxVolume = Math.max(maxVolume, c.quote_volume);
  }
  if (high === low) { high += high * 0.001 || 1; low -= low * 0.001 || 1; }
  const margin = (high - low) * 0.06;
  high += margin;
  low -= margin;
  const slot = plotW / candles.length;
  const bodyW = Math.max(1, Math.min(14, slot * 0.7));
  const x = (i) => PAD.left + slot * (i + 0.5);
  const y = (price) => PAD.top + ((high - price) / (high - low)) * priceH;
  const volumeTop = PAD.top + priceH + 6;
  const volumeH = plotH - priceH - 6;

  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Candles" });
  const grid = root.appendChild(svg("g", { class: "grid" }));
  const axis = root.appendChild(svg("g", { class: "axis" }));
  const step = niceStep(high - low, 6);
  for (let price = Math.ceil(low / step) * step; price <= high; price += step) {
    grid.appendChild(svg("line", { x1: PAD.left, x2: PAD.left + plotW, y1: y(price), y2: y(price) }));
    const label = axis.appendChild(svg("text", { x: width - PAD.right + 6, y: y(price) + 4 }));
    label.textContent = format(price);
  }
  const every = Math.max(1, Math.ceil(candles.length / Math.max(2, Math.floor(plotW / 90))));
  for (let i = Math.floor(every / 2); i < candles.length; i += every) {
    const label = axis.appendChild(svg("text", { x: x(i), y: height - 6, "text-anchor": "middle" }));
    label.textContent = timeLabel(times[i], stepMs);
  }

  const volumes = root.appendChild(svg("g"));
  const wicks = root.appendChild(svg("g"));
  const bodies = root.appendChild(svg("g", { class: "bars" }));
  candles.forEach((c, i) => {
    const direction = c.close >= c.open ? "up" : "down";
    const cx = x(i);
    wicks.appendChild(svg("line", { class: `wick ${direction}`, x1: cx, x2: cx, y1: y(c.high), y2: y(c.low) }));
    const top = y(Math.max(c.open, c.close));
    const bodyH = Math.max(1, Math.abs(y(c.open) - y(c.close)));
    bodies.appendChild(
      svg("rect", { class: `bar ${direction}`, x: cx - bodyW / 2, y: top, width: bodyW, height: bodyH, "data-time": c.time }),
    );
    if (maxVolume > 0) {
      const h = (c.quote_volume / maxVolume) * volumeH;
      volumes.appendChild(svg("rect", { class: "vol", x: cx - bodyW / 2, y: volumeTop + volumeH - h, width: bodyW, height: h }));
    }
  });

  // An alert fired at the close of minute t belongs to the bar holding minute t. A bar's alerts of one kind share a
  // marker (above the bar for bearish ones, below for the others) whose tooltip lists them all.
  const first = times[0];
  const groups = new Map();
  for (const marker of markers) {
    const i = Math.floor((marker.time - 1 - first) / stepMs);
    if (i < 0 || i >= candles.length) continue;
    const id = `${i}:${marker.category}`;
    if (!groups.has(id)) groups.set(id, { i, category: marker.category, labels: [] });
    groups.get(id).labels.push(marker.label);
  }
  const layer = root.appendChild(svg("g", { class: "markers" }));
  const below = new Map(); // bar -> markers already stacked under it
  for (const { i, category, labels } of groups.values()) {
    const c = candles[i];
    let d;
    if (category === "bear") {
      d = `M${x(i)},${y(c.high) - 4} l-5,-8 h10 z`;
    } else {
      const stacked = below.get(i) || 0;
      below.set(i, stacked + 1);
      d = `M${x(i)},${y(c.low) + 4 + stacked * 10} l-5,8 h10 z`;
    }
    const path = layer.appendChild(svg("path", { class: `marker ${category}`, d, "data-time": c.time }));
    const title = path.appendChild(svg("title"));
    title.textContent = labels.join("\n");
  }

  const cross = root.appendChild(svg("line", { class: "cross", y1: PAD.top, y2: PAD.top + plotH, visibility: "hidden" }));
  root.addEventListener("mousemove", (event) => {
    const box = root.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * width;
    const i = Math.min(candles.length - 1, Math.max(0, Math.floor((px - PAD.left) / slot)));
    cross.setAttribute("x1", x(i));
    cross.setAttribute("x2", x(i));
    cross.setAttribute("visibility", "visible");
    onHover?.(candles[i]);
  });
  root.addEventListener("mouseleave", () => {
    cross.setAttribute("visibility", "hidden");
    onHover?.(null);
  });
  container.replaceChildren(root);
  return root;
}
