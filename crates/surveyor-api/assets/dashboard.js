// Surveyor dashboard: reads the API of the server that served it and draws the census.
// Plain JavaScript, no dependencies; charts are inline SVG with their numbers as text.
"use strict";

(function () {
  const FAMILIES = ["2007", "2010", "2013", "2016", "2019", "SE"];
  // The sector taxonomy's ids (surveyor registry sectors), in its order.
  const SECTORS = [
    "hospital", "medical-practice", "care-services", "school", "university",
    "social-services", "law-firm", "tax-adviser", "municipality", "municipal-utility",
    "energy", "water", "transport", "finance", "ict-hosting", "manufacturing", "retail",
    "business",
  ];
  const FILTERS = ["family", "support", "sector", "scan", "as_of"];
  const TOKEN_KEY = "surveyor.token";
  const HOSTS_PAGE = 100;
  // Beyond this many scans the trend's column labels would collide.
  const TREND_COLUMNS = 10;
  const SVG_NS = "http://www.w3.org/2000/svg";

  // Each load gets a number; answers of a load that a newer one replaced are dropped.
  let generation = 0;
  let hostsCursor = null;

  // ---- state in the URL fragment ------------------------------------------------------

  function fragment() {
    return new URLSearchParams(location.hash.replace(/^#/, ""));
  }

  /// The filters and the open host as the fragment gives them.
  function readState() {
    const params = fragment();
    const filters = {};
    for (const key of FILTERS) {
      const value = (params.get(key) || "").trim();
      if (value) filters[key] = value;
    }
    // The API takes a scan or a date, not both; the scan wins.
    if (filters.scan && filters.as_of) delete filters.as_of;
    return { filters, host: (params.get("host") || "").trim() || null };
  }

  function stateFragment(filters, host) {
    const params = new URLSearchParams();
    for (const key of FILTERS) if (filters[key]) params.set(key, filters[key]);
    if (host) params.set("host", host);
    const text = params.toString();
    return text ? "#" + text : "#";
  }

  /// A token given once in the fragment (`#token=…`) is kept for the session and taken out
  /// of the address bar, so it is not bookmarked, shared or kept in history.
  function takeTokenFromFragment() {
    const params = fragment();
    const token = params.get("token");
    if (token === null) return;
    params.delete("token");
    if (token.trim()) sessionStorage.setItem(TOKEN_KEY, token.trim());
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  // ---- API ----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, params) {
    const url = new URL(path, location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
    }
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    let response;
    try {
      response = await fetch(url, { headers, cache: "no-store", credentials: "omit" });
    } catch (error) {
      throw new ApiError(0, "the server did not answer (" + error.message + ")");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.error && body.error.message;
      throw new ApiError(response.status, message || response.status + " " + response.statusText);
    }
    return body;
  }

  /// What to tell the user about a failed request, as a sentence.
  function explain(error, what) {
    const text = reason(error, what);
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function reason(error, what) {
    if (error.status === 401) {
      return token()
        ? "The token was refused (unknown or revoked): " + what + " needs a valid token."
        : what + " needs an API token: enter one above.";
    }
    if (error.status === 403) {
      return "This token's role may not see " + what + ": an analyst or admin token is needed.";
    }
    if (error.status === 404) return what + ": " + error.message;
    if (error.status === 429) return what + ": too many requests for this token; wait a minute and reload.";
    return what + " could not be loaded: " + error.message;
  }

  // ---- DOM helpers --------------------------------------------------------------------

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) node.setAttribute(key, String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function clear(node) {
    node.replaceChildren();
    return node;
  }

  function percent(part, whole) {
    return whole ? ((100 * part) / whole).toFixed(1) + " %" : "–";
  }

  function count(n) {
    return Number(n).toLocaleString("en-GB");
  }

  function serverCount(n) {
    return count(n) + (n === 1 ? " server" : " servers");
  }

  function sectorLabel(id) {
    if (!id) return "Unattributed";
    return id.charAt(0).toUpperCase() + id.slice(1).replace(/-/g, " ");
  }

  function describeScan(scan) {
    const finished = scan.finished_at ? "finished " + scan.finished_at.replace("T", " ").replace(/\..*|Z$/, "") + " UTC" : "unfinished";
    const kb = scan.kb ? ", knowledge base " + scan.kb.digest.slice(0, 12) + " (newest release " + scan.kb.newest_release + ")" : "";
    const judged = scan.judged_from ? (scan.projection ? ", a projection of scan #" : ", a re-judgement of scan #") + scan.judged_from : "";
    return "Scan #" + scan.id + ", support judged as of " + scan.as_of + ", " + finished + ", " + count(scan.observations) + " observations" + kb + judged;
  }

  // ---- charts -------------------------------------------------------------------------

  /// The hatching every chart and legend shares, defined once in the page: the unsupported
  /// fill is dark and hatched, the supported one light and plain, so the two stay apart in
  /// greyscale and in print.
  function addPatterns() {
    document.body.append(svg("svg", { class: "patterns", width: 0, height: 0, "aria-hidden": "true", focusable: "false" },
      svg("defs", {},
        svg("pattern", { id: "hatch", patternUnits: "userSpaceOnUse", width: 7, height: 7, patternTransform: "rotate(45)" },
          svg("rect", { width: 7, height: 7, fill: "#b2182b" }),
          svg("line", { x1: 0, y1: 0, x2: 0, y2: 7, stroke: "#ffffff", "stroke-width": 2.5 })))));
  }

  function legend() {
    const swatch = (cls) => svg("svg", { class: "swatch", width: 14, height: 14, viewBox: "0 0 14 14", "aria-hidden": "true" },
      svg("rect", { x: 0.5, y: 0.5, width: 13, height: 13, class: cls, fill: cls === "bar-unsupported" ? "url(#hatch)" : null }));
    return el("p", { class: "legend" },
      el("span", {}, swatch("bar-supported"), " Supported"),
      el("span", {}, swatch("bar-unsupported"), " Unsupported (hatched)"));
  }

  /// Horizontal bars, one per row, split into supported and unsupported, each row labelled
  /// with its numbers in text. `rows`: [{key, label, supported, unsupported, total, data}].
  function stackedBars(container, prefix, title, rows) {
    clear(container);
    if (!rows.length) {
      container.append(el("p", { class: "empty" }, "No Exchange servers match."));
      return;
    }
    const width = 780, labelWidth = 160, barWidth = 300, rowHeight = 30, top = 6;
    const height = top + rows.length * rowHeight + 4;
    const max = Math.max(1, ...rows.map((r) => r.total));
    const chart = svg("svg", { viewBox: "0 0 " + width + " " + height, width: "100%", role: "img", "aria-labelledby": prefix + "-title", class: "bars", preserveAspectRatio: "xMinYMin meet" },
      svg("title", { id: prefix + "-title" }, title));
    rows.forEach((row, i) => {
      const y = top + i * rowHeight;
      const wSupported = (barWidth * row.supported) / max;
      const wUnsupported = (barWidth * row.unsupported) / max;
      const g = svg("g", Object.assign({ class: "bar-row", "data-supported": row.supported, "data-unsupported": row.unsupported, "data-servers": row.total }, row.data));
      g.append(
        svg("text", { x: labelWidth - 8, y: y + 19, "text-anchor": "end", class: "bar-label" }, row.label),
        svg("rect", { x: labelWidth, y: y + 4, width: barWidth, height: 20, class: "bar-track" }),
        svg("rect", { x: labelWidth, y: y + 4, width: wSupported, height: 20, class: "bar-supported" }),
        svg("rect", { x: labelWidth + wSupported, y: y + 4, width: wUnsupported, height: 20, class: "bar-unsupported", fill: "url(#hatch)" }),
        svg("text", { x: labelWidth + barWidth + 10, y: y + 19, class: "bar-value" },
          serverCount(row.total) + ", " + count(row.unsupported) + " unsupported (" + percent(row.unsupported, row.total) + ")"));
      chart.append(g);
    });
    container.append(chart, legend());
  }

  /// Columns per scan, oldest left, split like the bars, with totals above and dates below.
  function trendColumns(container, points) {
    clear(container);
    if (!points.length) {
      container.append(el("p", { class: "empty" }, "No finished scan yet."));
      return;
    }
    const width = 760, height = 280, left = 20, top = 40, bottom = 50;
    const plot = height - top - bottom;
    const slot = (width - left * 2) / points.length;
    const colWidth = Math.min(70, slot * 0.6);
    const max = Math.max(1, ...points.map((p) => p.total));
    const chart = svg("svg", { viewBox: "0 0 " + width + " " + height, width: "100%", role: "img", "aria-labelledby": "trend-svg-title", class: "columns", preserveAspectRatio: "xMinYMin meet" },
      svg("title", { id: "trend-svg-title" }, "Exchange servers per finished scan, supported and unsupported"),
      svg("line", { x1: left, y1: top + plot, x2: width - left, y2: top + plot, class: "axis" }));
    points.forEach((p, i) => {
      const x = left + i * slot + (slot - colWidth) / 2;
      const hSupported = (plot * p.supported) / max;
      const hUnsupported = (plot * p.unsupported) / max;
      const base = top + plot;
      const cx = x + colWidth / 2;
      chart.append(svg("g", { class: "trend-point", "data-scan": p.scan, "data-as-of": p.as_of, "data-servers": p.total, "data-supported": p.supported, "data-unsupported": p.unsupported },
        svg("rect", { x, y: base - hSupported, width: colWidth, height: hSupported, class: "bar-supported" }),
        svg("rect", { x, y: base - hSupported - hUnsupported, width: colWidth, height: hUnsupported, class: "bar-unsupported", fill: "url(#hatch)" }),
        svg("text", { x: cx, y: base - hSupported - hUnsupported - 20, "text-anchor": "middle", class: "bar-value" }, count(p.total)),
        svg("text", { x: cx, y: base - hSupported - hUnsupported - 6, "text-anchor": "middle", class: "bar-note" }, percent(p.unsupported, p.total) + " unsup."),
        svg("text", { x: cx, y: base + 18, "text-anchor": "middle", class: "bar-label" }, "#" + p.scan),
        svg("text", { x: cx, y: base + 34, "text-anchor": "middle", class: "bar-note" }, p.as_of)));
    });
    container.append(chart, legend());
  }

  // ---- views --------------------------------------------------------------------------

  function census(filters) {
    const q = {};
    for (const key of FILTERS) if (filters[key]) q[key] = filters[key];
    return q;
  }

  /// Key numbers and the chart by family, from /statistics under the filters.
  async function loadOverview(filters, gen) {
    const q = census(filters);
    const [total, bySupport, byFamily] = await Promise.all([
      api("/api/v1/statistics", q),
      api("/api/v1/statistics", Object.assign({ group_by: "support" }, q)),
      api("/api/v1/statistics", Object.assign({ group_by: "family,support" }, q)),
    ]);
    if (gen !== generation) return;
    const servers = total.groups.reduce((n, g) => n + g.servers, 0);
    const supported = bySupport.groups.filter((g) => g.support === "supported").reduce((n, g) => n + g.servers, 0);
    const unsupported = bySupport.groups.filter((g) => g.support === "unsupported").reduce((n, g) => n + g.servers, 0);
    setNumber("kpi-servers", servers, count(servers));
    setNumber("kpi-supported", supported, count(supported));
    setNumber("kpi-unsupported", unsupported, count(unsupported));
    setNumber("kpi-unsupported-share", servers ? unsupported / servers : 0, percent(unsupported, servers));
    const scanInfo = $("scan-info");
    scanInfo.textContent = describeScan(total.scan);
    scanInfo.dataset.scan = total.scan.id;
    const families = FAMILIES.filter((f) => !filters.family || f === filters.family);
    stackedBars($("chart-family"), "family", "Exchange servers by family, supported and unsupported",
      families.map((family) => {
        const groups = byFamily.groups.filter((g) => g.family === family);
        const s = groups.filter((g) => g.support === "supported").reduce((n, g) => n + g.servers, 0);
        const u = groups.filter((g) => g.support === "unsupported").reduce((n, g) => n + g.servers, 0);
        return { label: "Exchange " + family, supported: s, unsupported: u, total: s + u, data: { "data-family": family } };
      }));
  }

  function setNumber(id, value, text) {
    const node = $(id);
    node.dataset.value = String(value);
    node.textContent = text;
  }

  async function loadSectors(filters, gen) {
    const answer = await api("/api/v1/statistics", Object.assign({ group_by: "sector,support" }, census(filters)));
    if (gen !== generation) return;
    const bySector = new Map();
    for (const g of answer.groups) {
      const row = bySector.get(g.sector) || { supported: 0, unsupported: 0 };
      row[g.support] += g.servers;
      bySector.set(g.sector, row);
    }
    const rows = [...bySector.entries()].map(([sector, r]) => ({
      label: sectorLabel(sector),
      supported: r.supported,
      unsupported: r.unsupported,
      total: r.supported + r.unsupported,
      data: { "data-sector": sector },
    }));
    rows.sort((a, b) => b.total - a.total || a.label.localeCompare(b.label));
    stackedBars($("chart-sector"), "sector", "Exchange servers by sector, supported and unsupported", rows);
  }

  async function loadTrend(filters, gen) {
    const q = census(filters);
    delete q.scan;
    delete q.as_of;
    const points = await api("/api/v1/trends", Object.assign({ group_by: "support" }, q));
    if (gen !== generation) return;
    const byScan = new Map();
    for (const p of points) {
      const point = byScan.get(p.scan) || { scan: p.scan, as_of: p.as_of, supported: 0, unsupported: 0 };
      if (p.support) point[p.support] += p.servers;
      byScan.set(p.scan, point);
    }
    const series = [...byScan.values()].map((p) => Object.assign(p, { total: p.supported + p.unsupported }));
    if (series.length <= TREND_COLUMNS) {
      trendColumns($("chart-trend"), series);
    } else {
      // Too many scans for columns with readable labels: one bar per scan, oldest first.
      stackedBars($("chart-trend"), "trend-bars", "Exchange servers per finished scan, supported and unsupported",
        series.map((p) => ({ label: "#" + p.scan + " · " + p.as_of, supported: p.supported, unsupported: p.unsupported, total: p.total, data: { "data-scan": p.scan, "data-as-of": p.as_of } })));
    }
  }

  async function loadHosts(filters, gen, cursor) {
    const body = $("hosts-body");
    const note = $("hosts-note");
    const more = $("hosts-more");
    if (!cursor) clear(body);
    more.hidden = true;
    let page;
    try {
      page = await api("/api/v1/hosts", Object.assign({ limit: HOSTS_PAGE, cursor }, census(filters)));
    } catch (error) {
      if (gen !== generation) return;
      note.dataset.state = "unavailable";
      note.textContent = error.status === 401 || error.status === 403
        ? explain(error, "the host list") + " (Host-level data is never public.)"
        : explain(error, "the host list");
      return;
    }
    if (gen !== generation) return;
    for (const obs of page.hosts) body.append(hostRow(obs, filters));
    hostsCursor = page.next_cursor || null;
    more.hidden = !hostsCursor;
    const shown = body.children.length;
    note.dataset.state = "listed";
    note.textContent = shown
      ? count(shown) + (hostsCursor ? " hosts shown, more to load" : " hosts") + " in scan #" + page.scan.id + ". Select an address for its evidence and history."
      : "No Exchange servers match.";
  }

  function hostRow(obs, filters) {
    const x = obs.exchange || {};
    const a = obs.attribution || {};
    const days = x.patch_level && x.patch_level.days_behind_cu;
    return el("tr", { "data-ip": obs.ip, "data-port": obs.port, "data-family": x.family, "data-support": x.support },
      el("td", {}, el("a", { href: stateFragment(filters, obs.ip) }, obs.ip + ":" + obs.port)),
      el("td", {}, x.family || "–"),
      el("td", { class: "mono" }, x.build || "–"),
      el("td", {}, x.version_name || "–"),
      el("td", { class: "support-" + (x.support || "none") }, x.support || "–"),
      el("td", { class: "num" }, days === null || days === undefined ? "–" : count(days)),
      el("td", {}, a.organisation || "–"),
      el("td", {}, a.sector ? sectorLabel(a.sector) : "–"));
  }

  async function loadHostDetail(ip, filters, gen) {
    const panel = $("host-detail");
    const body = clear($("host-detail-body"));
    $("host-detail-close").setAttribute("href", stateFragment(filters, null));
    if (!ip) {
      panel.hidden = true;
      return;
    }
    panel.hidden = false;
    panel.dataset.ip = ip;
    $("host-detail-title").textContent = "Host " + ip;
    let detail;
    try {
      detail = await api("/api/v1/hosts/" + encodeURIComponent(ip));
    } catch (error) {
      if (gen !== generation) return;
      body.append(el("p", { class: "note", "data-state": "unavailable" }, explain(error, "host " + ip)));
      return;
    }
    if (gen !== generation) return;
    body.append(
      el("h3", {}, "Latest state per port"),
      el("table", { class: "detail" },
        el("thead", {}, el("tr", {}, ["Port", "Status", "Family", "Build", "Support", "First seen", "Last seen", "Last scan"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, detail.ports.map((p) => el("tr", { "data-port": p.port },
          el("td", {}, p.port), el("td", {}, p.status),
          el("td", {}, p.exchange ? p.exchange.family : "–"),
          el("td", { class: "mono" }, p.exchange ? p.exchange.build : "–"),
          el("td", { class: "support-" + (p.exchange ? p.exchange.support : "none") }, p.exchange ? p.exchange.support : "–"),
          el("td", {}, day(p.first_seen)), el("td", {}, day(p.last_seen)), el("td", {}, "#" + p.last_scan))))));
    const latest = detail.history.length ? detail.history[detail.history.length - 1] : null;
    if (latest) body.append(observationDetail(latest[0], latest[1]));
    body.append(
      el("h3", {}, "History"),
      el("table", { class: "detail", id: "host-history" },
        el("thead", {}, el("tr", {}, ["Scan", "Port", "Observed", "Status", "Version", "Support"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, detail.history.map(([scan, o]) => el("tr", { "data-scan": scan },
          el("td", {}, "#" + scan), el("td", {}, o.port), el("td", {}, day(o.observed_at)), el("td", {}, o.status),
          el("td", {}, o.exchange ? o.exchange.version_name : "not Exchange"),
          el("td", { class: "support-" + (o.exchange ? o.exchange.support : "none") }, o.exchange ? o.exchange.support : "–"))))));
  }

  function day(timestamp) {
    return timestamp ? timestamp.slice(0, 10) : "–";
  }

  /// The newest observation: verdict, evidence, certificate and attribution.
  function observationDetail(scan, o) {
    const x = o.exchange;
    const facts = [];
    const fact = (name, value) => {
      if (value !== null && value !== undefined && value !== "") facts.push(el("dt", {}, name), el("dd", {}, String(value)));
    };
    fact("Seen in", "scan #" + scan + ", port " + o.port + ", " + o.observed_at);
    fact("HTTP server", o.http_server);
    if (x) {
      fact("Version", x.version_name);
      fact("Support", x.support + (x.support_reason ? " (" + x.support_reason + ")" : ""));
      fact("Build precision", x.build_precision);
      fact("Confidence", x.confidence);
      fact("Upgrade path", x.upgrade_path);
      if (x.esu_patched) fact("ESU", "patched with ESU-only updates (ESU is not support)");
      const vulnerable = (x.cves || []).filter((c) => c.status === "vulnerable").map((c) => c.cve);
      fact("Vulnerable to", vulnerable.join(", "));
      fact("Inconsistencies", (x.inconsistencies || []).join("; "));
    }
    if (o.tls) fact("Certificate names", (o.tls.names || []).join(", ") || o.tls.subject);
    if (o.attribution) {
      fact("Organisation", o.attribution.organisation + " (" + sectorLabel(o.attribution.sector) + ")");
      fact("Attributed by", o.attribution.rule + ", " + o.attribution.confidence + " confidence, matched " + o.attribution.matched);
    }
    const evidence = (x && x.evidence && x.evidence.length ? x.evidence : (o.fingerprint && o.fingerprint.evidence) || []);
    return el("div", { class: "observation" },
      el("h3", {}, "Latest observation"),
      el("dl", { class: "facts" }, facts),
      el("h3", {}, "Evidence"),
      evidence.length
        ? el("table", { class: "detail", id: "host-evidence" },
          el("thead", {}, el("tr", {}, ["Signal", "Request", "Value"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, evidence.map((e) => el("tr", { "data-signal": e.signal },
            el("td", {}, e.signal), el("td", { class: "mono" }, e.source), el("td", { class: "mono" }, e.value)))))
        : el("p", { class: "note" }, "No evidence recorded."));
  }

  // ---- page ---------------------------------------------------------------------------

  function showFilters(filters) {
    for (const key of FILTERS) {
      const input = $("f-" + key);
      if (key === "scan" && filters.scan && ![...input.options].some((o) => o.value === filters.scan)) {
        input.append(el("option", { value: filters.scan }, "#" + filters.scan));
      }
      input.value = filters[key] || "";
    }
    const parts = [];
    if (filters.family) parts.push("family " + filters.family);
    if (filters.support) parts.push(filters.support);
    if (filters.sector) parts.push("sector " + sectorLabel(filters.sector));
    if (filters.scan) parts.push("scan #" + filters.scan);
    if (filters.as_of) parts.push("newest scan finished by " + filters.as_of);
    $("filter-summary").textContent = parts.length ? "Filtered: " + parts.join(", ") + "." : "All Exchange servers of the latest finished scan.";
  }

  function showToken() {
    $("token-state").textContent = token() ? "A token is set for this browser tab." : "No token: public aggregates only, if the server allows them.";
    document.body.dataset.token = token() ? "set" : "none";
  }

  async function fillScans(gen) {
    try {
      const scans = await api("/api/v1/scans");
      if (gen !== generation) return;
      const select = $("f-scan");
      const current = select.value;
      select.replaceChildren(el("option", { value: "" }, "latest finished"),
        ...scans.filter((s) => s.finished_at).map((s) => el("option", { value: String(s.id) }, "#" + s.id + " (as of " + s.as_of + (s.judged_from ? ", judgement of #" + s.judged_from : "") + ")")));
      if (current && ![...select.options].some((o) => o.value === current)) select.append(el("option", { value: current }, "#" + current));
      select.value = current;
    } catch (_) {
      // The overview says why the API refused; the scan list just stays short.
    }
  }

  function showMessage(text) {
    const box = $("message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  async function load() {
    const gen = ++generation;
    const { filters, host } = readState();
    document.body.dataset.state = "loading";
    showToken();
    showFilters(filters);
    showMessage("");
    hostsCursor = null;
    const results = await Promise.allSettled([
      fillScans(gen),
      loadOverview(filters, gen),
      loadSectors(filters, gen),
      loadTrend(filters, gen),
      loadHosts(filters, gen, null),
      loadHostDetail(host, filters, gen),
    ]);
    if (gen !== generation) return;
    const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason);
    if (failed.length) {
      const error = failed[0];
      showMessage(explain(error, "the census"));
      for (const id of ["chart-family", "chart-sector", "chart-trend"]) {
        const chart = $(id);
        if (!chart.firstChild) chart.append(el("p", { class: "empty" }, "Not available."));
      }
      document.body.dataset.state = "error";
      document.body.dataset.error = String(error.status || 0);
    } else {
      document.body.dataset.state = "ready";
      delete document.body.dataset.error;
    }
  }

  function onFilterChange(event) {
    const { filters, host } = readState();
    const key = event.target.name;
    filters[key] = event.target.value;
    // A scan and a date are two ways to pick one scan: choosing one clears the other.
    if (key === "scan" && filters.scan) delete filters.as_of;
    if (key === "as_of" && filters.as_of) delete filters.scan;
    location.hash = stateFragment(filters, host);
  }

  function start() {
    takeTokenFromFragment();
    addPatterns();
    const select = $("f-sector");
    for (const sector of SECTORS) select.append(el("option", { value: sector }, sectorLabel(sector)));
    $("filters").addEventListener("change", onFilterChange);
    $("filters").addEventListener("submit", (event) => event.preventDefault());
    $("f-reset").addEventListener("click", () => {
      location.hash = stateFragment({}, null);
    });
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("token-input");
      if (input.value.trim()) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      load();
    });
    $("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      load();
    });
    $("hosts-more").addEventListener("click", () => {
      if (hostsCursor) loadHosts(readState().filters, generation, hostsCursor);
    });
    document.addEventListener("keydown", (event) => {
      const { filters, host } = readState();
      if (event.key === "Escape" && host) location.hash = stateFragment(filters, null);
    });
    window.addEventListener("hashchange", () => {
      takeTokenFromFragment();
      load();
    });
    load();
  }

  start();
})();
