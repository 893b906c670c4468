// slurmtune dashboard: draws the charts the server sends (uPlot) and keeps
// the runs page's states live. It only ever sets text, never HTML.
"use strict";
window.stCharts = {};
window.stChartsReady = false;

const palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

function emptyState(el, title, msg) {
  el.textContent = "";
  const h = document.createElement("h3");
  h.textContent = title;
  const p = document.createElement("p");
  p.className = "empty";
  p.textContent = msg;
  el.append(h, p);
  el.dataset.points = "0";
  el.dataset.state = "empty";
}

function marksPlugin(marks) {
  return {
    hooks: {
      draw: (u) => {
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#888";
        ctx.fillStyle = "#555";
        ctx.setLineDash([5, 4]);
        ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.font = (11 * devicePixelRatio) + "px sans-serif";
        for (const m of marks) {
          const x = Math.round(u.valToPos(m.x, "x", true));
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.fillText(m.label, x + 4 * devicePixelRatio, u.bbox.top + 12 * devicePixelRatio);
        }
        ctx.restore();
      },
    },
  };
}

function drawChart(el, c) {
  const points = c.series.reduce((n, s) => n + s.y.filter((v) => v !== null).length, 0);
  if (!c.x.length || points === 0) {
    emptyState(el, c.title, c.empty || "No data.");
    return;
  }
  el.textContent = "";
  const opts = {
    title: c.title,
    width: Math.max(el.clientWidth || 560, 320),
    height: 260,
    scales: { x: { time: c.x_time } },
    axes: [{ label: c.x_label }, { label: c.y_label }],
    series: [{ label: c.x_label }].concat(c.series.map((s, i) => ({
      label: s.label, stroke: palette[i % palette.length], width: 2, spanGaps: true,
      points: { show: c.x.length < 120 },
    }))),
    plugins: [marksPlugin(c.marks || [])],
  };
  const u = new uPlot(opts, [c.x].concat(c.series.map((s) => s.y)), el);
  window.stCharts[c.id] = u;
  el.dataset.points = String(points);
  el.dataset.state = "drawn";
}

async function drawCharts() {
  const src = document.getElementById("charts-src");
  if (!src) {
    window.stChartsReady = true;
    return;
  }
  try {
    const res = await fetch(src.dataset.src, { credentials: "same-origin" });
    if (!res.ok) throw new Error(res.status + " " + res.statusText);
    const charts = await res.json();
    for (const c of charts) {
      const el = document.querySelector('[data-chart="' + CSS.escape(c.id) + '"]');
      if (el) drawChart(el, c);
    }
  } catch (e) {
    for (const el of document.querySelectorAll("[data-chart]")) emptyState(el, el.dataset.chart, "Could not load the chart data: " + e.message);
  }
  window.stChartsReady = true;
}

async function refreshRuns() {
  const table = document.getElementById("runs");
  if (!table) return;
  try {
    const res = await fetch("/api/runs" + location.search, { credentials: "same-origin" });
    if (!res.ok) return;
    const runs = await res.json();
    for (const r of runs) {
      const row = table.querySelector('tr[data-run="' + CSS.escape(r.id) + '"]');
      if (!row) continue;
      const st = row.querySelector('[data-field="state"]');
      if (st.textContent !== r.state) {
        st.textContent = r.state;
        st.className = "state state-" + r.state.toLowerCase();
      }
      for (const s of r.stages) {
        const chip = row.querySelector('[data-stage="' + CSS.escape(s.name) + '"]');
        if (chip) {
          chip.className = "chip state-" + s.state.toLowerCase();
          chip.title = s.name + ": " + s.state;
        }
      }
    }
  } catch (e) {
    // The next tick tries again.
  }
}

document.addEventListener("DOMContentLoaded", () => {
  drawCharts();
  if (document.getElementById("runs")) setInterval(refreshRuns, 10000);
});
