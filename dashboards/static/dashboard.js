// Live GMV dashboard: polls /gmv/dashboard/data/ every 2 s and redraws. No network beyond this server.
"use strict";
const MODELS = [
  ["last_touch", "末次触点 Last touch"], ["first_touch", "首次触点 First touch"], ["linear", "线性 Linear"],
  ["position_based", "位置 Position-based"], ["time_decay", "时间衰减 Time decay"],
  ["markov", "数据驱动 Markov (data-driven)"],
];
const STAGES = { short_video: "短视频 Short video", live: "直播 Live", clip: "切片 Clip", shelf: "货架 Shelf" };
const COLORS = { short_video: "#3491fa", live: "#fe2c55", clip: "#ff9a2e", shelf: "#14c9c9" };
const REFRESH_MS = 2000;
let model = new URLSearchParams(location.search).get("model") || "last_touch";
const charts = {};
let inFlight = false;

// Every figure in zh-CN locale formatting: thousands separators, money and GPM to 2 decimals.
const dec2 = (x) => Number(x).toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const yuan = (fen) => "¥" + dec2(fen / 100);
const num = (n) => Number(n).toLocaleString("zh-CN");
const NO_DATA = "暂无数据 no data";
// The funnel's log axis: ticks at powers of ten only, short enough never to overlap.
const pow10Label = (v) => (v >= 1e9 ? v / 1e9 + "B" : v >= 1e6 ? v / 1e6 + "M" : v >= 1e3 ? v / 1e3 + "k" : String(v));
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
    charts[id].options = config.options;
    charts[id].data = config.data;
    charts[id].update("none");
  }
  return charts[id];
}

function renderKpis(k) {
  const cards = [
    ["net_fen", "净GMV Net GMV", yuan(k.net_fen)], ["gmv_fen", "GMV Gross", yuan(k.gmv_fen)],
    ["refund_fen", "退款 Refunds", yuan(k.refund_fen)], ["orders", "订单 Orders", num(k.orders)],
    ["buyers", "买家 Buyers", num(k.buyers)], ["aov_fen", "客单价 AOV", yuan(k.aov_fen)],
    ["gpm_yuan", "GPM (元/千次)", "¥" + dec2(k.gpm_yuan)], ["conversion_rate", "转化率 Conversion", pct(k.conversion_rate)],
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

// A table: one row per item (data-id, and its figures as data-*), one cell per column (data-col);
// no rows: one "no data" row (data-empty="1") saying so, optionally why (``empty``).
function renderTable(id, rows, columns, { empty = "", attrs = () => ({}) } = {}) {
  const t = document.getElementById(id);
  const head = "<tr>" + columns.map((c) => `<th data-col="${c[0]}">${c[1]}</th>`).join("") + "</tr>";
  const figure = (r) => (r.net_fen !== undefined ? ` data-net-fen="${r.net_fen}"` : "") +
    (r.score !== undefined ? ` data-score="${r.score}"` : "") +
    Object.entries(attrs(r)).map(([k, v]) => ` data-${k}="${escapeHtml(String(v))}"`).join("");
  const body = rows.length ? rows.map((r) => `<tr data-id="${escapeHtml(String(r.id))}"${figure(r)}>` +
    columns.map((c) => `<td data-col="${c[0]}">${c[2](r)}</td>`).join("") + "</tr>").join("")
    : `<tr class="empty" data-empty="1"><td colspan="${columns.length}">${NO_DATA}` +
      (empty ? ` <small>${empty}</small>` : "") + "</td></tr>";
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
  ["aov_fen", "客单价 AOV", (r) => yuan(r.aov_fen)], ["gpm_yuan", "GPM", (r) => dec2(r.gpm_yuan)],
  ["conversion_rate", "转化率 Conv.", (r) => pct(r.conversion_rate)],
];

function band(fen) {
  return fen === null || fen === undefined ? null : fen / 100;
}

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
      // Behind them, the paid GMV the same minutes of the 7 days before make normal (the alert rules'
      // seasonal baseline); a gap where fewer than 5 days had any.
      { type: "line", label: "预期下沿 Expected paid, low", stack: "band-low", order: 3, pointRadius: 0, borderWidth: 1,
        borderDash: [4, 3], borderColor: "#86909c", data: d.per_minute.map((m) => band(m.band_low_fen)) },
      { type: "line", label: "预期上沿 Expected paid, high (7 days)", stack: "band-high", order: 3, pointRadius: 0,
        borderWidth: 1, borderDash: [4, 3], borderColor: "#86909c", backgroundColor: "rgba(134,144,156,0.15)",
        fill: "-1", data: d.per_minute.map((m) => band(m.band_high_fen)) },
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
  minutePanel.dataset.band = String(d.per_minute.filter((m) => band(m.band_high_fen) !== null).length);
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
  const steps = [f.views, f.engaged_views, f.live_enters, f.orders];
  // Counts span orders of magnitude: a log axis from 1 to the next power of ten, ticked at powers of
  // ten only (1, 10, 100, 1k, ...), titled as such; each bar's exact count is in its label.
  const top = Math.max(10, 10 ** Math.ceil(Math.log10(Math.max(1, ...steps))));
  const fc = chart("chart-funnel", {
    type: "bar",
    data: { labels: [["浏览 Views", num(f.views)], ["有效浏览 Engaged", num(f.engaged_views)],
                     ["进直播间 Live enters", num(f.live_enters)], ["订单 Orders", num(f.orders)]],
            datasets: [{ label: "count", data: steps,
                         backgroundColor: ["#3491fa", "#722ed1", "#fe2c55", "#00b42a"] }] },
    options: { indexAxis: "y", animation: false, maintainAspectRatio: false, plugins: { legend: { display: false } },
               scales: { x: { type: "logarithmic", min: 1, max: top,
                              title: { display: true, text: "对数刻度 log scale (1, 10, 100, …)" },
                              afterBuildTicks: (axis) => {
                                axis.ticks = [];
                                for (let v = 1; v <= axis.max; v *= 10) axis.ticks.push({ value: v });
                              },
                              ticks: { autoSkip: false, maxRotation: 0, callback: (v) => pow10Label(v) } } } },
  });
  const funnelPanel = document.getElementById("panel-funnel");
  funnelPanel.dataset.scale = fc.options.scales.x.type;
  funnelPanel.dataset.axisTitle = fc.options.scales.x.title.text;
  funnelPanel.dataset.ticks = fc.scales.x.ticks.map((t) => t.label).join(",");
  funnelPanel.dataset.rows = String([f.views, f.engaged_views, f.live_enters, f.orders].filter((x) => x > 0).length);
  for (const [k, v] of Object.entries(f)) funnelPanel.dataset[k.replace(/_(.)/g, (_, c) => c.toUpperCase())] = String(v);
  chart("chart-paths", {
    type: "bar",
    data: { labels: d.path_mix.map((p) => p.path), datasets: [{ label: "净GMV Net (元)", data: d.path_mix.map((p) => p.net_fen / 100), backgroundColor: "#722ed1" }] },
    options: { indexAxis: "y", animation: false, maintainAspectRatio: false, plugins: { legend: { display: false } },
               scales: { y: { ticks: { autoSkip: false } } } },
  });
  document.getElementById("panel-paths").dataset.rows = String(d.path_mix.length);
  const noSales = "尚无成交 no paid order yet";
  renderTable("table-lives", d.top_lives, [["id", "直播间 · 主播 Live · anchor", (r) => idCell(r.id, r.account)], ...RANK_COLUMNS],
              { empty: noSales });
  renderTable("table-accounts", d.top_accounts, [["id", "账号 Account", (r) => idCell(r.id)], ...RANK_COLUMNS.slice(0, 1),
    ["self_net_fen", "自播 Self", (r) => yuan(r.self_net_fen)], ...RANK_COLUMNS.slice(1)], { empty: noSales });
  renderTable("table-skus", d.top_skus, [["id", "商品 SKU", (r) => idCell(r.id, r.shop)], ...RANK_COLUMNS], { empty: noSales });
  // Alerts: the window on its own clock (business rules: event time; pipeline rules: wall clock),
  // written in Python (gmv.dashboards.queries.alert_display); fired and resolved are wall-clock times.
  renderTable("table-alerts", d.alerts, [
    ["state", "状态 State", (r) => (r.state === "firing" ? '<span class="dot"></span>告警中 firing' : "已恢复 resolved")],
    ["rule", "规则 Rule", (r) => `${escapeHtml(r.rule)} <small>${escapeHtml(r.severity)}</small>`],
    ["subject", "对象 Subject", (r) => `${escapeHtml(r.subject_kind)} ${escapeHtml(r.subject_id)}`],
    ["window", "窗口 Window", (r) => `${escapeHtml(r.window)}` +
      `<span class="clock clock-${escapeHtml(r.clock)}" data-clock="${escapeHtml(r.clock)}">${escapeHtml(r.clock_label)}</span>`],
    ["fired", "触发 Fired <small>系统时间 wall clock</small>", (r) => escapeHtml(r.fired)],
    ["resolved", "恢复 Resolved <small>系统时间 wall clock</small>", (r) => escapeHtml(r.resolved)],
    ["message", "说明 Message", (r) => escapeHtml(r.message)],
  ], { empty: "无告警 no open alert, none fired in the last 24 h",
       attrs: (r) => ({ state: r.state, clock: r.clock, "window-kind": r.window_kind }) });
  const change = (r) => (r.change === null || r.change === undefined ? "—" : (r.change >= 0 ? "+" : "") + r.change.toFixed(2));
  renderTable("table-shop-scores", d.shop_scores, [
    ["id", "店铺 Shop", (r) => escapeHtml(r.id)], ["score", "分 Score", (r) => r.score.toFixed(2)],
    ["change", "±", change], ["reviews", "评价 Reviews", (r) => num(r.reviews)],
    ["qrr", "品退率 QRR", (r) => pct(r.qrr)], ["fast", "3秒回复 ≤3 s", (r) => (r.fast === null ? "—" : pct(r.fast))],
  ], { empty: "尚无完整的一天 no complete day scored yet" });
  document.getElementById("scores-day").textContent = d.shop_scores.length ? d.shop_scores[0].day : "—";
  const KINDS = { sku: "商品 SKU", account: "账号 account", shop: "店铺 shop" };
  renderTable("table-score-movers", d.score_movers, [
    ["kind", "类型 Kind", (r) => KINDS[r.kind] || escapeHtml(r.kind)], ["id", "对象 Subject", (r) => escapeHtml(r.id)],
    ["score", "分 Score", (r) => r.score.toFixed(2)], ["change", "±", change],
  ], { empty: "与前一日相比无变动 no score changed since the day before (or no day before yet)" });
  renderStageWorth(d.stage_worth);
  renderStatus(d, stats, labels);
  document.body.dataset.loaded = "1";
}

// What each stage is worth: the markov model of the latest day, the platform then the largest shops;
// per stage its removal effect (a bar) and the GMV at stake (removal effect x the subject's paid GMV
// over the model's 28 days). Each cell carries data-stage, data-re and data-at-stake-fen.
function renderStageWorth(w) {
  document.getElementById("worth-day").textContent = w && w.day ? w.day : "—";
  const cell = (r, s) => {
    const v = r.stages[s] || { re: 0, at_stake_fen: 0 };
    return `<div class="worth" data-stage="${s}" data-re="${v.re}" data-at-stake-fen="${v.at_stake_fen}">` +
      `<span class="bar" style="width:${Math.round(v.re * 100)}%;background:${COLORS[s]}"></span>` +
      `<b>${(v.re * 100).toFixed(1)}%</b><small>${yuan(v.at_stake_fen)}</small></div>`;
  };
  renderTable("table-stage-worth", w ? w.subjects : [], [
    ["id", "对象 Subject", (r) => idCell(r.id || "平台 platform", `${num(r.journeys)} journeys · P ${pct(r.p)}`)],
    ["gmv_fen", "28天GMV 28-day GMV", (r) => yuan(r.gmv_fen)],
    ...Object.keys(STAGES).map((s) => [s, STAGES[s], (r) => cell(r, s)]),
  ], { empty: "尚无旅程 no journey stored yet (the model appears once touches and orders are stored)",
       attrs: (r) => ({ journeys: r.journeys, p: r.p }) });
}

// The status line never mixes scopes: what this serving process counted since it started (from
// /gmv/stats/), and what ClickHouse holds all time, each labelled (data-scope="process" | "all-time").
function renderStatus(d, stats, labels) {
  const st = document.getElementById("status");
  const c = stats && stats.counters ? stats.counters : null;
  st.dataset.model = d.model;
  st.dataset.updated = new Date().toISOString();
  const span = (scope, fields, text) => `<span data-scope="${scope}"` +
    Object.entries(fields).map(([k, v]) => ` data-${k}="${v}"`).join("") + `>${text}</span>`;
  const process = c
    ? span("process", { received: c.received, "dead-letters": c.dead_lettered, lag: stats.lag },
           `本进程 this process: 已接收 received ${num(c.received)}, 死信 dead letters ${num(c.dead_lettered)}, ` +
           `延迟 lag ${stats.lag < 0 ? "—" : num(stats.lag) + " 条 msgs"}`)
    : span("process", {}, "本进程 this process: — (/gmv/stats/ unavailable)");
  // markov credits are restated by the slow refresh (every 5 s): say how far they got
  const restated = d.model === "markov" ? " (markov: 已重算至 restated to)" : "";
  st.innerHTML = `<span data-scope="watermark">已归因至 attributed to${restated} ${labels.length ? labels[labels.length - 1] : "—"} ` +
    `(Asia/Shanghai)</span> · ${process} · ` +
    span("all-time", { "dead-letters": d.dead_letters }, `累计 all time: 死信 dead letters ${num(d.dead_letters)}`) +
    ` · 更新 updated ${new Date().toLocaleTimeString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false })}`;
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
