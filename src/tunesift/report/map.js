// The report's interactive map: one canvas, no library, no network. Reads the JSON in #map-data:
// {x, y, index, text, chars, palette, scores: {label: [value|null]}, selections: [{label, rows}]}.
// Pan (drag), zoom (wheel, around the cursor), hover (nearest point within 8 px), click (pins the record),
// colour by selection or by any score, a toggle per selection, a phrase box that highlights matching records.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("map-data").textContent);
  const canvas = document.getElementById("map-canvas");
  const tip = document.getElementById("map-tip");
  const pinned = document.getElementById("map-pinned");
  const colourBy = document.getElementById("map-colour");
  const phrase = document.getElementById("map-search");
  const found = document.getElementById("map-found");
  const n = data.x.length;
  const PALETTE = data.palette; // the legend's swatches use the same list
  const lowered = data.text.map((t) => t.toLowerCase());
  const memberOf = data.selections.map((s) => new Set(s.rows));
  const shown = data.selections.map(() => true);
  let matches = null; // Set of rows containing the phrase, or null
  let drawnMarked = 0;

  // world coordinates: x and y scaled into [0, 1]
  const bounds = (v) => { let lo = Infinity, hi = -Infinity; for (const a of v) { if (a < lo) lo = a; if (a > hi) hi = a; } return [lo, hi > lo ? hi - lo : 1]; };
  const [x0, xs] = bounds(data.x), [y0, ys] = bounds(data.y);
  const wx = data.x.map((v) => (v - x0) / xs), wy = data.y.map((v) => 1 - (v - y0) / ys);
  let view = { scale: 1, dx: 0, dy: 0 };
  const pad = 12;

  function size() {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio);
    canvas.getContext("2d").setTransform(ratio, 0, 0, ratio, 0, 0);
  }
  // a row's position in CSS pixels within the canvas
  function screen(row) {
    const w = canvas.clientWidth - 2 * pad, h = canvas.clientHeight - 2 * pad;
    return [pad + (wx[row] * w) * view.scale + view.dx, pad + (wy[row] * h) * view.scale + view.dy];
  }
  function scoreColour(label) {
    const v = data.scores[label];
    let lo = Infinity, hi = -Infinity;
    for (const a of v) if (a !== null) { if (a < lo) lo = a; if (a > hi) hi = a; }
    const span = hi > lo ? hi - lo : 1;
    return (row) => {
      const a = v[row];
      if (a === null) return "#d0d3d8";
      const t = (a - lo) / span; // dark blue (low) to yellow (high)
      return `hsl(${Math.round(240 - 190 * t)}, 75%, ${Math.round(30 + 30 * t)}%)`;
    };
  }
  function draw() {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.clientWidth, canvas.clientHeight);
    const mode = colourBy.value;
    const byScore = mode !== "selection" ? scoreColour(mode) : null;
    const r = n > 20000 ? 1.5 : n > 2000 ? 2.5 : 3.5;
    drawnMarked = 0;
    const marked = []; // drawn last and larger, so no grey point hides a selected one
    for (let row = 0; row < n; row++) {
      const [px, py] = screen(row);
      if (px < -5 || py < -5 || px > canvas.clientWidth + 5 || py > canvas.clientHeight + 5) continue;
      if (!byScore) {
        const s = memberOf.findIndex((m, k) => shown[k] && m.has(row));
        if (s >= 0) { marked.push([px, py, PALETTE[s % PALETTE.length]]); continue; }
      }
      ctx.fillStyle = byScore ? byScore(row) : "#c9ced6";
      ctx.fillRect(px - r / 2, py - r / 2, r, r);
    }
    for (const [px, py, colour] of marked) {
      ctx.fillStyle = colour;
      ctx.fillRect(px - r, py - r, 2 * r, 2 * r);
    }
    drawnMarked = marked.length;
    if (matches) {
      ctx.strokeStyle = "#111"; ctx.lineWidth = 1.2;
      for (const row of matches) {
        const [px, py] = screen(row);
        ctx.beginPath(); ctx.arc(px, py, r + 3, 0, 2 * Math.PI); ctx.stroke();
      }
    }
  }
  function nearest(mx, my) {
    let best = -1, bestD = 64; // 8 px
    for (let row = 0; row < n; row++) {
      const [px, py] = screen(row);
      const d = (px - mx) ** 2 + (py - my) ** 2;
      if (d < bestD) { bestD = d; best = row; }
    }
    return best;
  }
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  function describe(row, full) {
    const text = full ? data.text[row] : data.text[row].slice(0, 160) + (data.text[row].length > 160 ? "…" : "");
    const scores = Object.keys(data.scores).map((l) => `${esc(l)}: ${data.scores[l][row] === null ? "–" : Number(data.scores[l][row]).toPrecision(4)}`);
    const taken = data.selections.filter((s, k) => memberOf[k].has(row)).map((s) => esc(s.label));
    return `<b>#${data.index[row]}</b> · ${taken.length ? "selected by " + taken.join(", ") : "in no selection"}<br>` +
      `<span class="map-scores">${scores.join(" · ")}</span><div class="map-text">${esc(text)}</div>` +
      (full && data.text[row].length >= data.chars ? `<span class="note">(first ${data.chars} characters)</span>` : "");
  }
  function mouse(event) {
    const rect = canvas.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }

  let drag = null;
  canvas.addEventListener("mousedown", (e) => { drag = { at: mouse(e), dx: view.dx, dy: view.dy, moved: false }; });
  window.addEventListener("mouseup", (e) => {
    if (drag && !drag.moved && e.target === canvas) {
      const [mx, my] = mouse(e);
      const row = nearest(mx, my);
      pinned.innerHTML = row < 0 ? "" : describe(row, true);
      pinned.dataset.row = row < 0 ? "" : String(data.index[row]);
    }
    drag = null;
  });
  canvas.addEventListener("mousemove", (e) => {
    const [mx, my] = mouse(e);
    if (drag) {
      if (Math.abs(mx - drag.at[0]) + Math.abs(my - drag.at[1]) > 3) drag.moved = true;
      view.dx = drag.dx + mx - drag.at[0]; view.dy = drag.dy + my - drag.at[1];
      tip.style.display = "none"; draw(); return;
    }
    const row = nearest(mx, my);
    if (row < 0) { tip.style.display = "none"; return; }
    tip.innerHTML = describe(row, false);
    tip.dataset.row = String(data.index[row]);
    tip.style.display = "block";
    tip.style.left = `${Math.min(mx + 14, canvas.clientWidth - 320)}px`;
    tip.style.top = `${my + 14}px`;
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [mx, my] = mouse(e);
    const factor = Math.exp(-e.deltaY * 0.0015);
    const scale = Math.min(200, Math.max(0.5, view.scale * factor));
    const k = scale / view.scale;
    view.dx = mx - k * (mx - view.dx - pad) - pad; view.dy = my - k * (my - view.dy - pad) - pad;
    view.scale = scale; draw();
  }, { passive: false });
  document.getElementById("map-reset").addEventListener("click", () => { view = { scale: 1, dx: 0, dy: 0 }; draw(); });
  colourBy.addEventListener("change", draw);
  document.querySelectorAll(".map-toggle").forEach((box) => box.addEventListener("change", () => {
    shown[Number(box.dataset.selection)] = box.checked; draw();
  }));
  phrase.addEventListener("input", () => {
    const q = phrase.value.trim().toLowerCase();
    matches = q ? new Set(lowered.flatMap((t, row) => (t.includes(q) ? [row] : []))) : null;
    found.textContent = matches ? `${matches.size} record(s) contain “${phrase.value.trim()}”` : "";
    draw();
  });
  window.addEventListener("resize", () => { size(); draw(); });
  // for tests and for the curious: where a record is drawn, and what the last frame drew
  window.tunesiftMap = {
    rowOf: (index) => data.index.indexOf(index),
    indexOf: (row) => data.index[row],
    screenOf: (row) => screen(row),
    drawnMarked: () => drawnMarked,
    matches: () => (matches ? matches.size : 0),
    isolated: () => { // the row farthest (on screen) from any other: a safe target to hover
      let best = 0, bestD = -1;
      const pts = data.x.map((_, row) => screen(row));
      for (let a = 0; a < n; a++) {
        let d = Infinity;
        for (let b = 0; b < n; b++) if (a !== b) d = Math.min(d, (pts[a][0] - pts[b][0]) ** 2 + (pts[a][1] - pts[b][1]) ** 2);
        if (d > bestD && pts[a][0] > 20 && pts[a][1] > 20) { bestD = d; best = a; }
      }
      return best;
    },
  };
  size(); draw();
})();
