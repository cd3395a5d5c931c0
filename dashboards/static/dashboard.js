// Live GMV dashboard: polls /gmv/dashboard/data/ every 2 s and redraws. No network beyond this server.
"use strict";
const MODELS = [
  ["last_touch", "末次触点 Last touch"], ["first_touch", "首次触点 First touch"], ["linear", "线性 Linear"],
  ["position_based", "位置 Position-based"], ["time_decay", "时间衰减 Time decay"],
];
const STAGES = { short_video: "短视频 Short video", live: "直播 Live", clip: "切片 Clip", shelf: "货架 Shelf" };
const COLORS = { short_video: "#3491fa", live: "#fe2c55", clip: "#ff9a2e", shelf: "#14c9c9" };
const REFRESH_MS = 2000;
let model = new URLSearchParams(location.search).get("model") || "last_touch";
const charts = {};
let inFlight = false;

const yuan = (fen) => "¥" + (fen / 100).toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const num = (n) => Number(n).toLocaleString("zh-CN");
const pct = (x) => (x * 100).toFixed(2) + "%";

function buildModelSwitcher() {
  const nav = document.getElementById("models");
  for (const [key, label] of MODELS) {
    const b = document.createElement("button");
    b.textContent = label; b.dataset.model = key;
    b.onclick = () => { model = key; history.replaceState(null, "", "?model=" + key); markModel(); refresh(); };
    nav.appendChild(b);
  }
  markModel();
}
function markModel() {
  for (const b of document.querySelectorAll("#models button")) b.classList.toggle("active", b.dataset.model === model);
}

function chart(id, config) {
  if (!charts[id]) {
    charts[id] = new Chart(document.getElementById(id), config);
  } else {
    charts[id].data = config.data;
    charts[id].update("none");
  }
}

function renderKpis(k) {
  const cards = [
    ["net_fen", "净GMV Net GMV", yuan(k.net_fen)], ["gmv_fen", "GMV Gross", yuan(k.gmv_fen)],
    ["refund_fen", "退款 Refunds", yuan(k.refund_fen)], ["orders", "订单 Orders", num(k.orders)],
    ["buyers", "买家 Buyers", num(k.buyers)], ["aov_fen", "客单价 AOV", yuan(k.aov_fen)],
    ["gpm_yuan", "GPM (元/千次)", "¥" + k.gpm_yuan.toFixed(2)], ["conversion_rate", "转化率 Conversion", pct(k.conversion_rate)],
  ];
  const box = document.getElementById("kpis");
  box.innerHTML = "";
  for (const [key, label, text] of cards) {
    const d = document.createElement("div");
    d.className = "kpi"; d.dataset.key = key; d.dataset.value = String(k[key]);
    d.innerHTML = `<div class="label">${label}</div><div class="value">${text}</div>`;
    box.appendChild(d);
  }
  box.dataset.rows = String(cards.length);
}

function renderTable(id, rows, columns) {
  const t = document.getElementById(id);
  const head = "<tr>" + columns.map((c) => `<th>${c[1]}</th>`).join("") + "</tr>";
  const figure = (r) => (r.net_fen !== undefined ? ` data-net-fen="${r.net_fen}"` : "") +
    (r.score !== undefined ? ` data-score="${r.score}"` : "");
  const body = rows.map((r) => `<tr data-id="${escapeHtml(String(r.id))}"${figure(r)}>` +
    columns.map((c) => `<td>${c[2](r)}</td>`).join("") + "</tr>").join("");
  t.innerHTML = head + body;
  t.closest(".panel").dataset.rows = String(rows.length);
  // The page reports whether the table fits its panel (no horizontal scrolling), for its own check.
  t.dataset.fits = t.scrollWidth <= t.parentElement.clientWidth ? "1" : "0";
}
function idCell(id, under) {
  const sub = under ? `<small>${escapeHtml(under)}</small>` : "";
  return `<span class="id" title="${escapeHtml(id)}">${escapeHtml(id)}</span>${sub}`;
}
function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch]));
}

const RANK_COLUMNS = [
  ["net_fen", "净GMV Net", (r) => yuan(r.net_fen)], ["orders", "订单 Orders", (r) => num(r.orders)],
  ["aov_fen", "客单价 AOV", (r) => yuan(r.aov_fen)], ["gpm_yuan", "GPM", (r) => r.gpm_yuan.toFixed(2)],
  ["conversion_rate", "转化率 Conv.", (r) => pct(r.conversion_rate)],
];

function render(d, stats) {
  renderKpis(d.kpis);
  // Every minute of the window up to the attribution watermark (an empty minute is a zero):
  // paid GMV stacked by stage above the axis, refunds below it, net as a line.
  const labels = d.per_minute.map((m) => m.label);
  const paid = d.stages.map((s) => ({ type: "bar", label: "支付 Paid · " + STAGES[s], stack: "gmv", order: 2,
                                       data: d.per_minute.map((m) => m["gmv_" + s] / 100), backgroundColor: COLORS[s] }));
  chart("chart-minute", {
    type: "bar",
    data: { labels, datasets: [
      { type: "line", label: "净GMV Net", data: d.per_minute.map((m) => m.net_fen / 100), borderColor: "#1d2129",
        borderWidth: 1.5, pointRadius: 0, order: 0 },
      ...paid,
      { type: "bar", label: "退款 Refunds", stack: "gmv", order: 1, data: d.per_minute.map((m) => -m.refund_fen / 100),
        backgroundColor: "#86909c" },
    ] },
    options: { animation: false, maintainAspectRatio: false,
               scales: { x: { stacked: true, ticks: { maxTicksLimit: 18 } }, y: { stacked: true, title: { display: true, text: "元 yuan" } } } },
  });
  const minutePanel = document.getElementById("panel-minute");
  minutePanel.dataset.rows = String(labels.length);
  minutePanel.dataset.first = labels.length ? labels[0] : "";
  minutePanel.dataset.last = labels.length ? labels[labels.length - 1] : "";
  chart("chart-orders", {
    type: "line",
    data: { labels, datasets: [
      { label: "订单 Paid orders", data: d.per_minute.map((m) => m.orders), borderColor: "#3491fa", pointRadius: 0 },
      { label: "退款笔数 Refunds", data: d.per_minute.map((m) => m.refunds), borderColor: "#fe2c55", pointRadius: 0 },
    ] },
    options: { animation: false, maintainAspectRatio: false, scales: { x: { ticks: { maxTicksLimit: 8 } } } },
  });
  document.getElementById("panel-orders").dataset.rows = String(labels.length);
  const f = d.funnel;
  chart("chart-funnel", {
    type: "bar",
    data: { labels: ["浏览 Views", "有效浏览 Engaged", "进直播间 Live enters", "订单 Orders"],
            datasets: [{ label: "count", data: [f.views, f.engaged_views, f.live_enters, f.orders],
                         backgroundColor: ["#3491fa", "#722ed1", "#fe2c55", "#00b42a"] }] },
    options: { indexAxis: "y", animation: false, maintainAspectRatio: false, plugins: { legend: { display: false } },
               scales: { x: { type: "logarithmic" } } },
  });
  const funnelPanel = document.getElementById("panel-funnel");
  funnelPanel.dataset.rows = String([f.views, f.engaged_views, f.live_enters, f.orders].filter((x) => x > 0).length);
  for (const [k, v] of Object.entries(f)) funnelPanel.dataset[k.replace(/_(.)/g, (_, c) => c.toUpperCase())] = String(v);
  chart("chart-paths", {
    type: "bar",
    data: { labels: d.path_mix.map((p) => p.path), datasets: [{ label: "净GMV Net (元)", data: d.path_mix.map((p) => p.net_fen / 100), backgroundColor: "#722ed1" }] },
    options: { indexAxis: "y", animation: false, maintainAspectRatio: false, plugins: { legend: { display: false } },
               scales: { y: { ticks: { autoSkip: false } } } },
  });
  document.getElementById("panel-paths").dataset.rows = String(d.path_mix.length);
  renderTable("table-lives", d.top_lives, [["id", "直播间 · 主播 Live · anchor", (r) => idCell(r.id, r.account)], ...RANK_COLUMNS]);
  renderTable("table-accounts", d.top_accounts, [["id", "账号 Account", (r) => idCell(r.id)], ...RANK_COLUMNS.slice(0, 1),
    ["self_net_fen", "自播 Self", (r) => yuan(r.self_net_fen)], ...RANK_COLUMNS.slice(1)]);
  renderTable("table-skus", d.top_skus, [["id", "商品 SKU", (r) => idCell(r.id, r.shop)], ...RANK_COLUMNS]);
  renderTable("table-alerts", d.alerts, [
    ["state", "状态 State", (r) => (r.state === "firing" ? "🔴 告警中 firing" : "已恢复 resolved")],
    ["rule", "规则 Rule", (r) => `${escapeHtml(r.rule)} <small>${escapeHtml(r.severity)}</small>`],
    ["subject", "对象 Subject", (r) => `${escapeHtml(r.subject_kind)} ${escapeHtml(r.subject_id)}`],
    ["window", "窗口 Window", (r) => `${escapeHtml(r.window_from)}–${escapeHtml(r.window_to)}`],
    ["message", "说明 Message", (r) => escapeHtml(r.message)],
  ]);
  const change = (r) => (r.change === null || r.change === undefined ? "—" : (r.change >= 0 ? "+" : "") + r.change.toFixed(2));
  renderTable("table-shop-scores", d.shop_scores, [
    ["id", "店铺 Shop", (r) => escapeHtml(r.id)], ["score", "分 Score", (r) => r.score.toFixed(2)],
    ["change", "±", change], ["reviews", "评价 Reviews", (r) => num(r.reviews)],
    ["qrr", "品退率 QRR", (r) => pct(r.qrr)], ["fast", "3秒回复 ≤3 s", (r) => (r.fast === null ? "—" : pct(r.fast))],
  ]);
  document.getElementById("scores-day").textContent = d.shop_scores.length ? d.shop_scores[0].day : "—";
  const KINDS = { sku: "商品 SKU", account: "账号 account", shop: "店铺 shop" };
  renderTable("table-score-movers", d.score_movers, [
    ["kind", "类型 Kind", (r) => KINDS[r.kind] || escapeHtml(r.kind)], ["id", "对象 Subject", (r) => escapeHtml(r.id)],
    ["score", "分 Score", (r) => r.score.toFixed(2)], ["change", "±", change],
  ]);
  const st = document.getElementById("status");
  const c = stats && stats.counters ? stats.counters : {};
  st.dataset.model = d.model;
  st.dataset.updated = new Date().toISOString();
  st.textContent = `已归因至 attributed to ${d.per_minute.length ? labels[labels.length - 1] : "—"} (Asia/Shanghai) · ` +
    `已接收 received ${num(c.received || 0)} · 延迟 lag ${num(stats ? stats.lag : 0)} · 死信 dead letters ${num(d.dead_letters)} · ` +
    `更新 updated ${new Date().toLocaleTimeString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false })}`;
  document.body.dataset.loaded = "1";
}

// The access token arrives in the link's fragment (#token=...), which the browser never sends to
// a server; it is kept for this tab only and taken out of the address bar.
const TOKEN = (() => {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    sessionStorage.setItem("gmv-token", fromLink);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return fromLink || sessionStorage.getItem("gmv-token") || "";
})();

async function refresh() {
  if (inFlight) return;
  inFlight = true;
  try {
    const auth = { headers: { Authorization: "Bearer " + TOKEN } };
    const [d, s] = await Promise.all([
      fetch("/gmv/dashboard/data/?model=" + encodeURIComponent(model), auth).then((r) => r.json()),
      fetch("/gmv/stats/").then((r) => r.json()).catch(() => null),
    ]);
    if (d.error) throw new Error(d.error);
    render(d, s);
  } catch (e) {
    document.getElementById("status").textContent = "数据获取失败 fetch failed: " + e.message;
  } finally {
    inFlight = false;
  }
}

buildModelSwitcher();
refresh();
setInterval(refresh, REFRESH_MS);
