/* mnesis inspector: the sessions page and the session page, no framework.
 * Every stored string is untrusted: it reaches the page only as text nodes
 * (h() below never sets innerHTML). Served, the data comes from the JSON API
 * with the run's token; exported, from the JSON embedded in the file. */
"use strict";

const EXPORT = window.MNESIS_EXPORT || null;
const TOKEN = document.body.dataset.token || "";
const SVGNS = "http://www.w3.org/2000/svg";
const COLORS = { system: "#94a3b8", summary: "#8b5cf6", messages: "#3b82f6", tools: "#f59e0b" };
const KINDS = [["system", "system prompt"], ["summary", "summaries"], ["messages", "messages"], ["tools", "tool outputs"]];

/* -- DOM helpers ----------------------------------------------------------- */

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, v);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v; // CSSOM: allowed by the page's CSP
    else if (k === "hidden") el.hidden = Boolean(v);
    else el.setAttribute(k, v === true ? "" : v);
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function fill(el, ...children) { el.replaceChildren(); append(el, children); return el; }

const fmt = (n) => Number(n || 0).toLocaleString("en-US");
const short = (id) => (id.length > 14 ? id.slice(0, 8) + "…" + id.slice(-4) : id);
const when = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
const whenMs = (ms) => new Date(ms).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
const money = (x) => (x ? "$" + x.toFixed(x < 1 ? 4 : 2) : "—");

function tip() {
  let el = document.querySelector(".tip");
  if (!el) { el = h("div", { class: "tip" }); el.hidden = true; document.body.append(el); }
  return el;
}

/* -- data: the API, or the exported file's embedded JSON ------------------- */

async function api(path, params) {
  if (EXPORT) return exportApi(path, params || {});
  const q = new URLSearchParams({ ...(params || {}), token: TOKEN });
  const res = await fetch(`/api${path}?${q}`);
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function exportApi(path, p) {
  const d = EXPORT, parts = path.split("/").filter(Boolean);
  if (parts[0] === "sessions") return [d.overview.session];
  if (parts[0] === "search") return [];
  const rest = parts.slice(2);
  if (!rest.length) return d.overview;
  switch (rest[0]) {
    case "chart": return d.chart;
    case "dag": return d.dag;
    case "context": return d.context;
    case "summary": return d.summaries[rest[1]];
    case "timeline": {
      const page = p.turn !== undefined ? Math.max(1, Math.ceil(Number(p.turn) / d.overview.page_turns)) : Number(p.page || 1);
      if (!d.pages[page - 1]) throw new Error(`page ${page} is out of range`);
      return d.pages[page - 1];
    }
    case "received": {
      const got = d.received[rest[1]];
      if (!got) throw new Error(`this export carries the rebuilt context of turns ${Object.keys(d.received)[0] || "—"}–${d.turns.length} only; serve the store (mnesis serve) to see any turn`);
      return got;
    }
    case "turn": {
      const n = Number(rest[1]), snap = d.turns[n - 1];
      if (!snap) throw new Error(`turn ${n} is out of range`);
      const after = d.chart.compactions.filter((m) => m.turn === n).flatMap((m) => m.nodes);
      return { turn: n, snapshot: snap, compaction: null, summaries_after: after, latest: n === d.turns.length, window: d.overview.window };
    }
    case "grep": {
      const needle = String(p.q || "").toLowerCase(), matches = [];
      for (const page of d.pages) for (const m of page.messages) {
        const text = m.parts.map((x) => [x.text, x.name, x.input, x.output, x.error, x.path].filter(Boolean).join(" ")).join("\n");
        const at = text.toLowerCase().indexOf(needle);
        if (needle && at >= 0) matches.push({ message_id: m.id, seq: m.seq, turn: m.turn, role: m.role, summary_id: m.covered_by,
          snippet: (at > 40 ? "…" : "") + text.slice(Math.max(0, at - 40), at + needle.length + 60) });
      }
      return { pattern: p.q, matches: matches.slice(0, 200), next_offset: null, complete: true };
    }
  }
  throw new Error("not in this export");
}

/* -- router ---------------------------------------------------------------- */

const app = document.getElementById("app");
const crumbs = document.getElementById("crumbs");
let current = null; // the session page on screen, kept while only the turn changes

function parseHash() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query || "") };
}

async function route() {
  const { parts, query } = parseHash();
  try {
    if (EXPORT && !parts.length) { location.hash = `#/s/${encodeURIComponent(EXPORT.overview.session.id)}`; return; }
    if (parts[0] === "s" && parts[1]) {
      const turn = parts[2] === "turn" ? Number(parts[3]) : null;
      if (current && current.id === parts[1]) await current.goTo(turn, query.get("m"));
      else { current = new SessionPage(parts[1]); await current.show(turn, query.get("m")); }
    } else { current = null; await sessionsPage(query.get("q")); }
  } catch (err) {
    fill(app, h("div", { class: "error" }, String(err.message || err)));
  }
}
window.addEventListener("hashchange", route);

/* -- sessions page --------------------------------------------------------- */

async function sessionsPage(q) {
  fill(crumbs, "sessions");
  document.title = "Sessions · mnesis";
  const sessions = await api("/sessions");
  const input = h("input", { type: "search", name: "q", placeholder: "Search every session's text…", value: q || "" });
  const results = h("div", { id: "search-results" });
  const form = h("form", { class: "search", onsubmit: (e) => { e.preventDefault(); location.hash = `#/?q=${encodeURIComponent(input.value)}`; } },
    input, h("button", { class: "primary", type: "submit" }, "Search"));
  const rows = sessions.map((x) => h("tr", { "data-session": x.id },
    h("td", {}, h("a", { href: `#/s/${encodeURIComponent(x.id)}`, class: "mono" }, x.id), x.parent_id ? h("div", { class: "small muted" }, "child of ", short(x.parent_id)) : null),
    h("td", {}, x.model), h("td", { class: "num" }, fmt(x.turns)), h("td", { class: "num" }, fmt(x.messages)),
    h("td", { class: "num" }, fmt(x.tokens)), h("td", { class: "num" }, money(x.cost)), h("td", { class: "num" }, fmt(x.summaries)),
    h("td", { class: "muted" }, when(x.updated_at))));
  fill(app,
    h("div", { class: "card" }, h("h2", {}, "Search", h("span", { class: "muted" }, "every session's whole stored history")), form, results),
    h("div", { class: "card" }, h("h2", {}, "Sessions", h("span", { class: "muted" }, `${sessions.length} stored`)),
      sessions.length ? h("table", { class: "list", id: "sessions" },
        h("thead", {}, h("tr", {}, h("th", {}, "session"), h("th", {}, "model"), h("th", { class: "num" }, "turns"), h("th", { class: "num" }, "messages"),
          h("th", { class: "num" }, "tokens"), h("th", { class: "num" }, "cost"), h("th", { class: "num" }, "summaries"), h("th", {}, "last activity"))),
        h("tbody", {}, rows)) : h("p", { class: "empty" }, "No sessions in this database yet.")));
  if (q) {
    fill(results, h("p", { class: "muted" }, "Searching…"));
    const found = await api("/search", { q });
    fill(results, found.length ? h("ul", { class: "hits" }, found.flatMap((f) => f.matches.map((m) => h("li", {},
      h("a", { href: `#/s/${encodeURIComponent(f.session.id)}/turn/${m.turn}?m=${encodeURIComponent(m.message_id)}` }, f.session.id, " · turn ", m.turn),
      h("span", { class: "where" }, " ", m.role, m.summary_id ? ` · in summary ${short(m.summary_id)}` : " · verbatim in context"),
      h("div", { class: "snippet" }, m.snippet))))) : h("p", { class: "empty" }, `No stored text matches “${q}”.`));
  }
}

/* -- session page ---------------------------------------------------------- */

class SessionPage {
  constructor(id) { this.id = id; this.base = `/s/${encodeURIComponent(id)}`; this.page = 0; }

  async show(turn, messageId) {
    // the timeline page is asked for at once too, so the page waits for one round trip
    const first = api(this.base + "/timeline", turn ? { turn } : { page: 1 }).catch(() => null);
    const [ov, chart, dag] = await Promise.all([api(this.base), api(this.base + "/chart"), api(this.base + "/dag")]);
    this.ov = ov; this.chartData = chart; this.dagData = dag; this.prefetched = first;
    const x = ov.session;
    document.title = `${x.id} · mnesis`;
    fill(crumbs, EXPORT ? "exported session" : h("a", { href: "#/" }, "sessions"), " / ", x.id);
    this.timelineEl = h("div", { id: "timeline" });
    this.pagerEl = h("div", { class: "pager" });
    this.turnEl = h("div", { id: "turn-panel" }, h("p", { class: "muted" }, "Pick a turn (on the chart or in the timeline) to see the context the model received on it."));
    this.nodeEl = h("div", { id: "node-detail" });
    const w = ov.window;
    fill(app,
      h("div", { class: "card" },
        h("h1", { class: "mono" }, x.id),
        h("div", { class: "muted" }, x.model, " · agent ", x.agent, " · created ", when(x.created_at), " · last activity ", when(x.updated_at)),
        h("div", { class: "stats" }, stat(fmt(x.turns), "turns"), stat(fmt(x.messages), "messages"), stat(fmt(x.summaries), "summaries"),
          stat(fmt(x.tokens), "tokens used"), stat(money(x.cost), "cost"), stat(fmt(w.usable), "usable window"),
          stat(fmt(w.soft), "soft threshold"), stat(fmt(w.context_limit), "model window"))),
      h("div", { class: "card chart", id: "chart-card" }, h("h2", {}, "Context per turn",
        h("span", { class: "muted" }, chart.bucket > 1 ? `each point is the fullest turn of ${chart.bucket}` : "tokens the context held after each turn")),
        drawChart(chart, (t) => this.selectTurn(t, true)), legend()),
      h("div", { class: "card dag", id: "dag-card" }, h("h2", {}, "Summary DAG",
        h("span", { class: "muted" }, `${dag.nodes.length} nodes · width is the span of messages each covers · outlined: in the context now`)),
        drawDag(dag, (id) => this.selectNode(id)), this.nodeEl),
      h("div", { class: "layout" },
        h("div", { class: "card" }, h("h2", {}, "Timeline", h("span", { class: "muted" }, `${fmt(ov.turns)} turns, ${ov.page_turns} a page`)), this.pagerEl, this.timelineEl),
        h("div", { class: "side" },
          h("div", { class: "card" }, h("h2", {}, "Grep", h("span", { class: "muted" }, "the whole stored history")), this.grepBox()),
          h("div", { class: "card" }, h("h2", {}, "What the model received"), this.turnEl))));
    await this.goTo(turn, messageId);
  }

  async goTo(turn, messageId) {
    const wanted = turn ? Math.max(1, Math.ceil(turn / this.ov.page_turns)) : (this.page || 1);
    if (wanted !== this.page) await this.loadPage(wanted);
    if (turn) this.selectTurn(turn, false);
    if (messageId) {
      const el = document.getElementById("m-" + messageId);
      if (el) {
        const card = el.closest(".summary-card");
        if (card) openCard(card);
        document.querySelectorAll(".msg.highlight").forEach((m) => m.classList.remove("highlight"));
        el.classList.add("highlight");
        el.scrollIntoView({ block: "center" });
      }
    } else if (turn) {
      const head = document.getElementById("turn-" + turn);
      if (head) { const card = head.closest(".summary-card"); if (card) openCard(card); head.scrollIntoView({ block: "start" }); }
    }
  }

  async loadPage(page) {
    const early = this.prefetched ? await this.prefetched : null;
    this.prefetched = null;
    const data = early && early.page === page ? early : await api(this.base + "/timeline", { page });
    this.page = data.page;
    const jump = h("input", { type: "number", min: 1, max: this.ov.turns || 1, placeholder: "turn" });
    fill(this.pagerEl,
      h("button", { disabled: page <= 1, onclick: () => this.loadPage(page - 1) }, "← earlier"),
      h("span", { class: "grow muted" }, `page ${data.page} of ${data.pages} · turns ${data.first_turn}–${data.last_turn}`),
      h("form", { onsubmit: (e) => { e.preventDefault(); if (jump.value) location.hash = `#${this.base}/turn/${jump.value}`; } }, jump, " ", h("button", { type: "submit" }, "Go")),
      h("button", { onclick: () => this.loadPage(1), disabled: page <= 1 }, "first"),
      h("button", { disabled: page >= data.pages, onclick: () => this.loadPage(page + 1) }, "later →"),
      h("button", { onclick: () => this.loadPage(data.pages), disabled: page >= data.pages }, "last"));
    fill(this.timelineEl, ...renderTimeline(data, (t) => this.selectTurn(t, false), (id) => this.selectNode(id)));
  }

  grepBox() {
    const input = h("input", { type: "search", placeholder: "word or phrase", id: "grep-input" });
    const regex = h("input", { type: "checkbox", id: "grep-regex" });
    const out = h("div", { id: "grep-results" });
    let offset = 0;
    const run = async (more) => {
      if (!input.value.trim()) return;
      if (!more) { offset = 0; fill(out); }
      const res = await api(this.base + "/grep", { q: input.value, offset, regex: regex.checked ? 1 : 0 }).catch((e) => ({ error: e.message }));
      if (res.error) { fill(out, h("div", { class: "error" }, res.error)); return; }
      out.querySelector(".more")?.remove();
      if (!more && !res.matches.length) out.append(h("p", { class: "empty" }, "No matches."));
      let list = out.querySelector("ul");
      if (!list) { list = h("ul", { class: "hits" }); out.append(list); }
      for (const m of res.matches) list.append(h("li", {},
        h("a", { href: `#${this.base}/turn/${m.turn}?m=${encodeURIComponent(m.message_id)}`, class: "grep-hit", "data-turn": m.turn, "data-message": m.message_id },
          "turn ", m.turn, " · #", m.seq, " ", m.role),
        h("span", { class: "where" }, m.summary_id ? ` in summary ${short(m.summary_id)}` : " verbatim in context"),
        h("div", { class: "snippet" }, m.snippet)));
      if (!res.complete) out.append(h("p", { class: "small muted" }, "The regex scan stopped at its time budget: results are partial."));
      if (res.next_offset !== null) { offset = res.next_offset; out.append(h("button", { class: "more", onclick: () => run(true) }, "more matches")); }
    };
    return h("div", {}, h("form", { class: "search", onsubmit: (e) => { e.preventDefault(); run(false); } }, input, h("button", { class: "primary", type: "submit" }, "Grep")),
      h("label", { class: "small muted" }, regex, " regular expression"), out);
  }

  async selectTurn(turn, scroll) {
    document.querySelectorAll(".turn-head.selected").forEach((e) => e.classList.remove("selected"));
    document.getElementById("turn-" + turn)?.classList.add("selected");
    if (scroll) { location.hash = `#${this.base}/turn/${turn}`; return; }
    if (!turn || turn > this.ov.snapshots) {
      fill(this.turnEl, h("p", { class: "muted" }, `Turn ${turn} has no stored snapshot.`));
      return;
    }
    const t = await api(`${this.base}/turn/${turn}`);
    const snap = t.snapshot, w = t.window, max = Math.max(w.usable, snap.total);
    const ctxButton = h("button", { onclick: () => this.showContext(ctxOut) }, "Show the context as the next call receives it");
    const ctxOut = h("div", { id: "context-now" });
    const recOut = h("div", { id: "received", "data-turn": turn }, h("p", { class: "muted" }, "Rebuilding the context of this turn from the log…"));
    fill(this.turnEl,
      h("div", { class: "turn-title" }, h("b", {}, `Turn ${turn}`), " ", snap.compaction_triggered ? h("span", { class: "badge condensed" }, "compaction triggered") : null,
        snap.level ? h("span", { class: "badge" }, `hard compaction, level ${snap.level}`) : null),
      h("div", { class: "bar", title: "context tokens by kind against the usable window" },
        KINDS.map(([k]) => h("span", { style: `width:${(100 * snap[k]) / max}%;background:${COLORS[k]}` }))),
      h("dl", { class: "kv" }, KINDS.map(([k, label]) => [h("dt", {}, label), h("dd", {}, fmt(snap[k]))]),
        h("dt", {}, "total"), h("dd", {}, h("b", {}, fmt(snap.total)), ` of ${fmt(w.usable)} usable (${Math.round((100 * snap.total) / w.usable)}%)`)),
      t.compaction ? h("p", { class: "small" }, `Compacted before the call: ${fmt(t.compaction.tokens_before)} → ${fmt(t.compaction.tokens_after)} tokens, level ${t.compaction.level_used}.`) : null,
      t.summaries_after.length ? h("p", { class: "small" }, "Summaries written after this turn: ",
        t.summaries_after.map((id) => h("a", { href: "#", onclick: (e) => { e.preventDefault(); this.selectNode(id); } }, short(id), " "))) : null,
      recOut,
      t.latest ? [h("h3", { class: "sub" }, "The next call"), h("p", { class: "small muted" }, "The context as it is stored now: exactly what the next call receives."), ctxButton, ctxOut] : null);
    if (t.latest) this.showContext(ctxOut);
    const r = await api(`${this.base}/received/${turn}`).catch((e) => ({ error: e.message }));
    if (r.error) { fill(recOut, h("div", { class: "error" }, r.error)); return; }
    fill(recOut, renderReceived(r, (id) => this.selectNode(id)));
  }

  async showContext(out) {
    const c = await api(this.base + "/context");
    fill(out,
      h("p", { class: "small muted" }, `${c.messages.length} messages · ${fmt(c.breakdown.total)} tokens of ${fmt(c.window.usable)} usable`),
      c.messages.map((m) => h("div", { class: "ctx-msg " + m.role }, h("div", { class: "r" }, m.role, m.tool_call_id ? ` · ${m.tool_call_id}` : ""),
        m.content ? h("pre", {}, typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 1)) : null,
        (m.tool_calls || []).map((call) => h("pre", { class: "muted" }, `→ ${call.function.name}(${call.function.arguments})`)))));
  }

  async selectNode(id) {
    document.querySelectorAll(".dag-node.selected").forEach((e) => e.classList.remove("selected"));
    document.querySelector(`.dag-node[data-id="${CSS.escape(id)}"]`)?.classList.add("selected");
    fill(this.nodeEl, h("p", { class: "muted" }, "Loading…"));
    const data = await api(`${this.base}/summary/${encodeURIComponent(id)}`);
    const d = data.describe;
    const list = h("div", { class: "originals" }, data.originals.map((m) => renderMessage(m)));
    let next = data.next_offset;
    const more = h("button", { hidden: next === null, onclick: async () => {
      const page = await api(`${this.base}/summary/${encodeURIComponent(id)}`, { offset: next });
      list.append(...page.originals.map((m) => renderMessage(m))); next = page.next_offset; more.hidden = next === null;
    } }, "more originals");
    fill(this.nodeEl,
      h("h2", {}, "describe(", h("span", { class: "mono" }, d.id), ")"),
      h("dl", { class: "kv" },
        h("dt", {}, "kind"), h("dd", {}, h("span", { class: "badge " + d.node_kind }, d.node_kind), " depth ", d.depth, " · level ", d.level_used, d.in_context ? [" ", h("span", { class: "badge live" }, "in the context")] : ""),
        h("dt", {}, "covers"), h("dd", {}, `messages #${d.first_seq}–#${d.last_seq} (${fmt(d.message_count)})`),
        h("dt", {}, "tokens"), h("dd", {}, fmt(d.token_count)),
        h("dt", {}, "parent"), h("dd", {}, d.parent_id ? h("a", { href: "#", onclick: (e) => { e.preventDefault(); this.selectNode(d.parent_id); } }, d.parent_id) : "— (top of its chain)"),
        h("dt", {}, "children"), h("dd", { class: "mono small" }, d.child_ids.length > 6 ? `${d.child_ids.length} (${d.child_ids.slice(0, 3).join(", ")}, …)` : d.child_ids.join(", ")),
        h("dt", {}, "written"), h("dd", {}, when(d.created_at))),
      h("pre", { class: "summary-text" }, d.text),
      h("h2", { style: "margin-top:12px" }, `expand(): ${fmt(data.total)} originals`), list, more);
  }
}

function stat(value, label) { return h("div", { class: "stat" }, h("b", {}, value), h("span", {}, label)); }

function legend() {
  return h("div", { class: "legend" }, KINDS.map(([k, label]) => h("span", {}, h("i", { style: `background:${COLORS[k]}` }), label)),
    h("span", {}, h("i", { style: "background:#d97706" }), "soft threshold"), h("span", {}, h("i", { style: "background:#dc2626" }), "hard threshold (usable window)"),
    h("span", {}, h("i", { style: "background:#6d28d9;border-radius:50%" }), "compaction pass (its level)"));
}

/* -- what the model received on a turn, rebuilt from the log --------------- */

function renderReceived(r, onNode) {
  if (!r.rebuilt) return [h("h3", { class: "sub" }, "Its context, rebuilt from the log"), h("p", { class: "small muted" }, "Not rebuilt: ", r.reason, ".")];
  const c = r.check, diff = c.difference;
  const verdict = c.matches
    ? h("div", { class: "check ok" }, "✓ matches the tokens recorded for this turn (", fmt(c.kinds.total.recorded), ")")
    : h("div", { class: "check off" }, "A reconstruction: it differs from the tokens recorded for this turn by ", diff > 0 ? "+" : "−", fmt(Math.abs(diff)),
        ` (${fmt(c.kinds.total.rebuilt)} rebuilt, ${fmt(c.kinds.total.recorded)} recorded).`);
  const kinds = c.matches ? null : h("dl", { class: "kv small" }, [["system_prompt", "system prompt"], ["summary", "summaries"], ["messages", "messages"], ["tool_outputs", "tool outputs"]]
    .map(([k, label]) => [h("dt", {}, label), h("dd", {}, fmt(c.kinds[k].rebuilt), " rebuilt · ", fmt(c.kinds[k].recorded), " recorded")]));
  const pruned = r.pruned.length, summaries = r.summaries.length;
  return [
    h("h3", { class: "sub" }, "Its context, rebuilt from the log"),
    h("p", { class: "small muted" }, `Rebuilt from the log as it stood when turn ${r.turn} was stored (${whenMs(r.cutoff)}): `,
      `${summaries} summar${summaries === 1 ? "y" : "ies"} in place of the messages they cover, ${pruned} tool output${pruned === 1 ? "" : "s"} pruned, `,
      `${fmt(r.request_messages)} request messages, then the turn's reply.`),
    verdict, kinds,
    r.late.length ? h("p", { class: "small muted" }, "Made before the turn was stored but not yet in its context (a compaction committed while the turn ran): ",
      r.late.map((id) => h("span", { class: "mono" }, short(id), " "))) : null,
    h("div", { class: "received" },
      h("div", { class: "ctx-item system", "data-kind": "system" }, h("div", { class: "r" }, "system prompt", h("span", { class: "grow" }), fmt(r.system.tokens), " tok"),
        r.system.content ? h("pre", {}, r.system.content) : h("p", { class: "small muted" }, "(none)")),
      r.items.map((it) => receivedItem(it, onNode, null)),
      receivedItem(r.reply, onNode, `the reply of turn ${r.turn}`)),
  ];
}

function receivedItem(it, onNode, label) {
  const sum = it.summary;
  const head = h("div", { class: "r" },
    label ? h("b", {}, label, " · ") : null,
    sum ? ["summary ", h("a", { href: "#", class: "mono", onclick: (e) => { e.preventDefault(); onNode(it.id); document.getElementById("dag-card").scrollIntoView(); } }, short(it.id)),
      ` · ${sum.kind} · #${sum.first_seq}–#${sum.last_seq}`] : [it.role, " · #", it.seq],
    it.pinned ? [" ", h("span", { class: "badge pinned" }, "pinned")] : null,
    h("span", { class: "grow" }), fmt(it.tokens), " tok");
  const body = it.messages.map((m) => {
    if (m.role === "tool") {
      const state = it.tools[m.tool_call_id] || "result";
      return h("div", { class: "ctx-tool " + state, "data-call": m.tool_call_id, "data-state": state },
        h("div", { class: "r" }, "tool result · ", h("span", { class: "mono" }, m.tool_call_id),
          state === "pruned" ? [" ", h("span", { class: "badge pruned" }, "pruned before this turn")] : null,
          state === "pending" ? [" ", h("span", { class: "badge" }, "no result yet")] : null),
        h("pre", {}, m.content));
    }
    return [m.content ? h("pre", {}, typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 1)) : null,
      (m.tool_calls || []).map((call) => h("pre", { class: "muted" }, `→ ${call.function.name}(${call.function.arguments})`))];
  });
  return h("div", { class: `ctx-item ${it.kind} ${it.role}${label ? " reply" : ""}`, "data-kind": label ? "reply" : it.kind, "data-id": it.id, "data-seq": it.seq }, head, body);
}

/* -- timeline -------------------------------------------------------------- */

function openCard(card) {
  card.querySelector(".originals").hidden = false;
  const b = card.querySelector("button.expand");
  if (b) b.textContent = "hide the originals";
}

function renderTimeline(data, onTurn, onNode) {
  const out = [];
  let lastTurn = null, card = null, cardId = null;
  for (const m of data.messages) {
    const sid = m.covered_by && data.summaries[m.covered_by] ? m.covered_by : null;
    if (sid !== cardId) { card = sid ? summaryCard(data.summaries[sid], onNode) : null; cardId = sid; if (card) out.push(card); }
    const items = [];
    if (m.turn !== lastTurn && m.turn > 0) {
      lastTurn = m.turn;
      items.push(h("div", { class: "turn-head", id: "turn-" + m.turn, "data-turn": m.turn }, `Turn ${m.turn}`,
        h("button", { onclick: () => onTurn(m.turn) }, "what the model received")));
    }
    items.push(renderMessage(m));
    if (card) card.querySelector(".originals").append(...items); else out.push(...items);
  }
  if (!data.messages.length) out.push(h("p", { class: "empty" }, "No messages stored yet."));
  return out;
}

function summaryCard(sum, onNode) {
  const originals = h("div", { class: "originals" }); originals.hidden = true;
  const text = h("div", { class: "stext" }, sum.text);
  const button = h("button", { class: "expand", onclick: () => {
    originals.hidden = !originals.hidden; button.textContent = originals.hidden ? `expand: show the ${fmt(sum.message_count)} originals` : "hide the originals";
  } }, `expand: show the ${fmt(sum.message_count)} originals`);
  return h("div", { class: "summary-card " + sum.kind, "data-summary": sum.id },
    h("div", { class: "head" }, h("b", {}, "Summary"), h("a", { href: "#", class: "mono", onclick: (e) => { e.preventDefault(); onNode(sum.id); document.getElementById("dag-card").scrollIntoView(); } }, sum.id),
      h("span", { class: "badge " + sum.kind }, sum.kind), h("span", { class: "badge" }, `depth ${sum.depth}`), h("span", { class: "badge" }, `level ${sum.level}`),
      h("span", { class: "muted" }, `replaced messages #${sum.first_seq}–#${sum.last_seq} in the context · ${fmt(sum.tokens)} tokens`)),
    text, h("div", {}, h("button", { onclick: (e) => { text.classList.toggle("open"); e.target.textContent = text.classList.contains("open") ? "less" : "read the whole summary"; } }, "read the whole summary"), " ", button),
    originals);
}

function renderMessage(m) {
  const cls = ["msg", m.role, m.status !== "complete" ? "failed" : ""].join(" ");
  return h("div", { class: cls, id: "m-" + m.id, "data-seq": m.seq, "data-turn": m.turn },
    h("div", { class: "msg-head" }, h("span", { class: "role" }, m.role), h("span", {}, "#", m.seq),
      m.pinned ? h("span", { class: "badge pinned" }, "pinned") : null,
      m.status !== "complete" ? h("span", { class: "badge failed" }, m.status, m.error ? ": " + m.error : "") : null,
      h("span", { class: "grow" }), h("span", {}, fmt(m.tokens), " tok"), h("span", {}, whenMs(m.created_at))),
    m.parts.map(renderPart));
}

function renderPart(p) {
  if (p.type === "text") return h("div", { class: "text" }, p.text);
  if (p.type === "file") return h("div", { class: "file" }, `file ${p.path} (${p.file_type}, ${fmt(p.tokens)} tok) · ${p.content_id}`, h("pre", { class: "muted" }, p.summary));
  const args = p.input.replace(/\s+/g, " ");
  return h("details", { class: "tool" + (p.pruned ? " pruned" : "") },
    h("summary", {}, "→ ", p.name, "(", args.length > 70 ? args.slice(0, 70) + "…" : args, ")  ",
      h("span", { class: "badge" }, p.state), p.pruned ? [" ", h("span", { class: "badge pruned" }, "pruned from the context")] : null),
    h("div", {}, h("div", { class: "label" }, "input · ", p.call_id), h("pre", {}, p.input),
      h("div", { class: "label" }, p.error ? "error" : "output", p.pruned ? " (kept in the store; the context shows a tombstone)" : ""),
      h("pre", {}, p.error ?? p.output ?? "(no result recorded)")));
}

/* -- the chart: stacked tokens by kind per turn, thresholds, compaction marks -- */

function drawChart(chart, onTurn) {
  const W = 1000, H = 260, L = 58, R = 14, T = 22, B = 26;
  const pts = chart.points, w = chart.window;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, id: "context-chart", role: "img" });
  if (!pts.length) { svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#6b7280" }, "no turns yet")); return h("div", {}, svg); }
  const first = pts[0].first_turn, last = pts[pts.length - 1].last_turn;
  const top = Math.max(w.hard, ...pts.map((p) => p.total)) * 1.08;
  const x = (turn) => L + ((turn - first + 0.5) / (last - first + 1)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const step = niceStep(top / 4);
  for (let v = 0; v <= top; v += step) svg.append(s("g", { class: "axis" }, s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v) }),
    s("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, compact(v))));
  // stacked areas, bottom up: system, summaries, messages, tool outputs
  let base = pts.map(() => 0);
  const half = (W - L - R) / (last - first + 1) / 2;
  for (const [k] of KINDS) {
    const topv = pts.map((p, i) => base[i] + p[k]);
    let d = "";
    pts.forEach((p, i) => { d += `${i ? "L" : "M"}${x(p.first_turn) - half},${y(topv[i])}L${x(p.last_turn) + half},${y(topv[i])}`; });
    for (let i = pts.length - 1; i >= 0; i--) d += `L${x(pts[i].last_turn) + half},${y(base[i])}L${x(pts[i].first_turn) - half},${y(base[i])}`;
    svg.append(s("path", { d: d + "Z", fill: COLORS[k], opacity: 0.85, class: "area " + k }));
    base = topv;
  }
  for (const [cls, v, label] of [["soft", w.soft, "soft"], ["hard", w.hard, "hard"]]) {
    svg.append(s("line", { class: `threshold ${cls}`, x1: L, x2: W - R, y1: y(v), y2: y(v), "data-tokens": v, "vector-effect": "non-scaling-stroke" }),
      s("text", { class: "threshold-label", x: W - R - 4, y: y(v) - 4, "text-anchor": "end", fill: cls === "soft" ? "#b45309" : "#b91c1c" }, `${label} ${compact(v)}`));
  }
  for (const m of chart.compactions) {
    if (m.turn < first || m.turn > last) continue;
    svg.append(s("g", { class: "compaction-mark", "data-turn": m.turn, "data-level": m.level },
      s("line", { x1: x(m.turn), x2: x(m.turn), y1: T - 6, y2: H - B, "vector-effect": "non-scaling-stroke" }),
      s("circle", { cx: x(m.turn), cy: T - 8, r: 7 }), s("text", { x: x(m.turn), y: T - 4.5, "text-anchor": "middle" }, m.level),
      s("title", {}, `turn ${m.turn}: compaction, level ${m.level}, ${m.nodes.length} summar${m.nodes.length > 1 ? "ies" : "y"}`)));
  }
  const ticks = last - first + 1 <= 16 ? last - first + 1 : 10;
  for (let i = 0; i < ticks; i++) {
    const turn = Math.round(first + (i * (last - first)) / Math.max(1, ticks - 1));
    svg.append(s("g", { class: "axis" }, s("text", { x: x(turn), y: H - 8, "text-anchor": "middle" }, `turn ${fmt(turn)}`)));
  }
  const hover = s("line", { class: "hover-line", y1: T, y2: H - B, visibility: "hidden", "vector-effect": "non-scaling-stroke" });
  svg.append(hover);
  const pointAt = (ev) => {
    const r = svg.getBoundingClientRect(), vx = ((ev.clientX - r.left) / r.width) * W;
    const turn = Math.round(first + ((vx - L) / (W - L - R)) * (last - first + 1) - 0.5);
    return pts.find((p) => turn >= p.first_turn && turn <= p.last_turn) || null;
  };
  svg.addEventListener("mousemove", (ev) => {
    const p = pointAt(ev), t = tip();
    if (!p) { t.hidden = true; hover.setAttribute("visibility", "hidden"); return; }
    hover.setAttribute("x1", x(p.turn)); hover.setAttribute("x2", x(p.turn)); hover.setAttribute("visibility", "visible");
    t.textContent = `turn ${fmt(p.turn)}${p.first_turn !== p.last_turn ? ` (fullest of ${fmt(p.first_turn)}–${fmt(p.last_turn)})` : ""}\n` +
      KINDS.map(([k, label]) => `${label}: ${fmt(p[k])}`).join("\n") + `\ntotal: ${fmt(p.total)} of ${fmt(w.usable)}`;
    t.hidden = false; t.style.left = ev.clientX + 14 + "px"; t.style.top = ev.clientY + 14 + "px";
  });
  svg.addEventListener("mouseleave", () => { tip().hidden = true; hover.setAttribute("visibility", "hidden"); });
  svg.addEventListener("click", (ev) => { const p = pointAt(ev); if (p) { tip().hidden = true; onTurn(p.turn); } });
  return h("div", {}, svg);
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((v) => v >= raw) || raw;
}
function compact(v) {
  const one = (x) => x.toFixed(x < 10 ? 1 : 0).replace(/\.0$/, "");
  return v >= 1e6 ? one(v / 1e6) + "M" : v >= 1e3 ? one(v / 1e3) + "k" : String(Math.round(v));
}

/* -- the DAG: each node spans the messages it covers; depth goes up -------- */

function drawDag(dag, onNode) {
  const W = 1000, L = 10, R = 10, rowH = 34, gap = 16, nodes = dag.nodes;
  if (!nodes.length) return h("p", { class: "empty" }, "No summaries yet: nothing has been compacted.");
  const maxDepth = Math.max(...nodes.map((n) => n.depth));
  const H = (maxDepth + 1) * (rowH + gap) + 24;
  const span = Math.max(1, dag.last_seq);
  const x = (seq) => L + ((seq - 1) / span) * (W - L - R);
  const yOf = (depth) => 8 + (maxDepth - depth) * (rowH + gap);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, id: "dag" });
  const byId = Object.fromEntries(nodes.map((n) => [n.id, n]));
  for (const n of nodes) for (const c of n.children) {
    const child = byId[c]; if (!child) continue;
    const x1 = (x(n.first_seq) + x(n.last_seq + 1)) / 2, x2 = (x(child.first_seq) + x(child.last_seq + 1)) / 2;
    svg.append(s("path", { class: "dag-edge", d: `M${x1},${yOf(n.depth) + rowH}C${x1},${yOf(n.depth) + rowH + gap}  ${x2},${yOf(child.depth) - gap} ${x2},${yOf(child.depth)}`, "vector-effect": "non-scaling-stroke" }));
  }
  for (const n of nodes) {
    const x0 = x(n.first_seq), w = Math.max(4, x(n.last_seq + 1) - x0 - 1);
    const g = s("g", { class: `dag-node ${n.kind}${n.in_context ? " live" : ""}`, "data-id": n.id, "data-kind": n.kind, "data-depth": n.depth, tabindex: 0 },
      s("rect", { x: x0, y: yOf(n.depth), width: w, height: rowH, "vector-effect": "non-scaling-stroke" }),
      w > 70 ? s("text", { x: x0 + 5, y: yOf(n.depth) + 14 }, `${n.kind === "leaf" ? "leaf" : "condensed"} · L${n.level}`) : null,
      w > 70 ? s("text", { x: x0 + 5, y: yOf(n.depth) + 27 }, `#${n.first_seq}–${n.last_seq}`) : null,
      s("title", {}, `${n.id}\n${n.kind}, depth ${n.depth}, level ${n.level}\nmessages #${n.first_seq}–#${n.last_seq} (turns ${n.turns[0]}–${n.turns[1]}), ${n.tokens} tokens`));
    g.addEventListener("click", () => onNode(n.id));
    g.addEventListener("keydown", (e) => { if (e.key === "Enter") onNode(n.id); });
    svg.append(g);
  }
  svg.append(s("g", { class: "axis" }, s("text", { x: L, y: H - 6 }, "message #1"), s("text", { x: W - R, y: H - 6, "text-anchor": "end" }, `#${fmt(dag.last_seq)}`)));
  return h("div", {}, svg);
}

route();
