// The moderator's desk: player and timeline as one instrument, and keyboard-first review.
// Loaded once per page through `launch(head=...)` (see app/desk.py); it only listens to the page
// (clicks, keys, the player's time) and uses public APIs: the <video> element, Plotly's
// `plotly_click` event and `Plotly.relayout`, and clicks on the app's own buttons and table cells,
// so every decision still goes through the server's events.
(() => {
  if (window.vadDesk) return;
  const STEP_S = 5;                    // arrow keys / h, l
  const PLAYHEAD_MS = 120;             // at most one playhead move per this many ms
  const PLAYHEAD = "vad-playhead";
  const desk = { current: { analyse: -1, review: -1 }, lastSeek: null, moves: 0 };
  window.vadDesk = desk;

  const $ = (sel) => document.querySelector(sel);
  const visible = (el) => !!el && el.offsetParent !== null;
  const player = () => $("#video video");
  const plotDiv = () => $("#timeline .js-plotly-plot");
  const activeTab = () => (visible($("#tab-review")) ? "review" : visible($("#tab-analyse")) ? "analyse" : null);

  // ------------------------------------------------------------------ seeking
  desk.seek = (seconds) => {
    const v = player();
    const t = Number(seconds);
    if (!v || !Number.isFinite(t)) return false;
    const end = Number.isFinite(v.duration) ? Math.max(v.duration - 0.05, 0) : t;
    v.currentTime = Math.min(Math.max(t, 0), end);
    desk.lastSeek = { t: v.currentTime, at: performance.now() };
    movePlayhead(true);
    return true;
  };

  // a table's body rows (ARIA grid rows holding cells; Gradio also keeps a hidden sizing copy)
  const ROW = "[role=row]", CELL = "[role=gridcell]";
  const tableRows = (id) => Array.from(document.querySelectorAll(`#${id} ${ROW}`))
    .filter((row) => visible(row) && row.querySelector(CELL));
  const cellText = (row, n) => {
    const cells = row.querySelectorAll(CELL);
    return cells.length > n ? cells[n].innerText.trim() : "";
  };
  // Analyse tab segment table columns: #, start (s), end (s), ...
  const segmentSpans = () => tableRows("segment-table").map((row) => ({
    row, start: parseFloat(cellText(row, 1)), end: parseFloat(cellText(row, 2)),
  })).filter((s) => Number.isFinite(s.start));

  document.addEventListener("click", (event) => {
    const row = event.target.closest && event.target.closest(`#segment-table ${ROW}`);
    if (row) {
      const spans = segmentSpans();
      const n = spans.findIndex((s) => s.row === row);
      if (n >= 0) { desk.current.analyse = n; desk.seek(spans[n].start); highlight(); }
      return;
    }
    const qrow = event.target.closest && event.target.closest(`#review-table ${ROW}`);
    if (qrow) desk.current.review = tableRows("review-table").indexOf(qrow);
  }, true);

  // ------------------------------------------------------------------ timeline: click and playhead
  function hookPlot() {
    const div = plotDiv();
    if (!div || !div.on || div.vadHooked === div.data) return;
    div.vadHooked = div.data;            // a new figure replaces `data`: hook it again
    div.removeAllListeners && div.removeAllListeners("plotly_click");
    div.on("plotly_click", (ev) => {
      const point = ev && ev.points && ev.points[0];
      if (point && point.x !== undefined) { desk.plotClickAt = performance.now(); desk.seek(point.x); }
    });
    if (!div.vadNativeClick) {
      // a click Plotly reports without points (no hover computed yet, e.g. right after the playhead
      // moved): take the time under the pointer from the x axis
      div.vadNativeClick = true;
      div.addEventListener("click", (ev) => {
        if (desk.plotClickAt && performance.now() - desk.plotClickAt < 100) return;
        const ax = div._fullLayout && div._fullLayout.xaxis;
        if (!ax || !ev.target.closest || !ev.target.closest(".draglayer")) return;
        const x = ev.clientX - div.getBoundingClientRect().left - ax._offset;
        if (x >= 0 && x <= ax._length) desk.seek(ax.p2l(x));
      });
    }
    movePlayhead(true);
  }

  let lastMove = 0;
  function movePlayhead(force) {
    const div = plotDiv();
    const v = player();
    if (!div || !v || !window.Plotly || !div.layout) return;
    const now = performance.now();
    if (!force && now - lastMove < PLAYHEAD_MS) return;
    lastMove = now;
    const shapes = div.layout.shapes || [];
    let n = shapes.findIndex((s) => s.name === PLAYHEAD);
    const t = v.currentTime || 0;
    if (n >= 0 && shapes[n].x0 === t) return;
    if (n < 0) n = shapes.length;
    window.Plotly.relayout(div, {
      [`shapes[${n}]`]: { type: "line", name: PLAYHEAD, xref: "x", yref: "paper", x0: t, x1: t,
                          y0: 0, y1: 1, line: { color: "#111", width: 2 }, layer: "above" },
    });
    desk.moves += 1;
  }

  // the segment under the playhead (or the selected one) is highlighted in the table
  function highlight() {
    const spans = segmentSpans();
    const v = player();
    const t = v ? v.currentTime : NaN;
    let n = spans.findIndex((s) => t >= s.start && t < s.end);
    if (n < 0) n = desk.current.analyse;
    spans.forEach((s, i) => s.row.classList.toggle("vad-current", i === n));
    const qrows = tableRows("review-table");
    qrows.forEach((r, i) => r.classList.toggle("vad-current", i === desk.current.review));
  }

  function hookPlayer() {
    const v = player();
    if (!v || v.vadHooked) return;
    v.vadHooked = true;
    const tick = () => { movePlayhead(false); highlight(); };
    v.addEventListener("timeupdate", tick);
    v.addEventListener("seeked", () => { movePlayhead(true); highlight(); });
    const frame = () => { if (!v.paused && v.isConnected) { tick(); requestAnimationFrame(frame); } };
    v.addEventListener("play", () => requestAnimationFrame(frame));
  }

  setInterval(() => { hookPlot(); hookPlayer(); highlight(); }, 400);

  // ------------------------------------------------------------------ keys
  const BUTTONS = {
    analyse: { c: "#quick-confirm", d: "#quick-dismiss", r: "#quick-label" },
    review: { c: "#confirm-btn", d: "#dismiss-btn", r: "#new-label" },
  };
  const typing = (el) => !!el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));

  function selectRow(tab, step) {
    const rows = tableRows(tab === "analyse" ? "segment-table" : "review-table");
    if (!rows.length) return;
    const n = Math.min(Math.max(desk.current[tab] + step, 0), rows.length - 1);
    desk.current[tab] = n;
    const cell = rows[n].querySelector(CELL);
    if (!cell) return;
    cell.scrollIntoView({ block: "nearest" });
    // the table selects a row on mousedown: send the events a real click sends
    for (const type of ["mousedown", "mouseup", "click"]) {
      cell.dispatchEvent(new MouseEvent(type, { bubbles: true, cancelable: true, button: 0, view: window }));
    }
  }

  function press(sel) {
    const el = $(sel);
    const button = el && (el.tagName === "BUTTON" ? el : el.querySelector("button"));
    if (button) button.click();
  }

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && typing(event.target)) { event.target.blur(); return; }
    // Enter in a relabel box submits it (the server event); then the keys work again
    if (event.key === "Enter" && event.target.closest && event.target.closest("#quick-label, #new-label")) {
      const box = event.target;
      setTimeout(() => box.blur(), 0);
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const tab = activeTab();
    if (!tab) return;
    const key = event.key;
    const v = player();
    let done = true;
    if (key === "j") selectRow(tab, +1);
    else if (key === "k") selectRow(tab, -1);
    else if (key === "c" || key === "d") press(BUTTONS[tab][key]);
    else if (key === "r") {
      const box = $(`${BUTTONS[tab].r} textarea, ${BUTTONS[tab].r} input`);
      if (box) box.focus(); else done = false;
    } else if (key === " " && tab === "analyse" && v) { if (v.paused) v.play(); else v.pause(); }
    else if ((key === "ArrowLeft" || key === "h") && tab === "analyse" && v) desk.seek(v.currentTime - STEP_S);
    else if ((key === "ArrowRight" || key === "l") && tab === "analyse" && v) desk.seek(v.currentTime + STEP_S);
    else done = false;
    if (done) { event.preventDefault(); event.stopPropagation(); }
  }, true);
})();
