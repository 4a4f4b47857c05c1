// eosbench leaderboard: sortable tables, row filters, and plots drawn from each page's embedded JSON.
"use strict";

function cellValue(row, index, type) {
  const cell = row.children[index];
  const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
  if (type !== "num") return raw.toLowerCase();
  return raw === "" ? null : Number(raw);
}

function sortTable(table, index, type, ascending) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellValue(a, index, type), y = cellValue(b, index, type);
    if (x === null || y === null) return (x === null) - (y === null);  // unknown values last either way
    const order = x < y ? -1 : x > y ? 1 : 0;
    return ascending ? order : -order;
  });
  rows.forEach((row) => body.appendChild(row));
}

document.querySelectorAll("table.sortable").forEach((table) => {
  table.querySelectorAll("thead th").forEach((th, index) => {
    th.tabIndex = 0;
    th.setAttribute("aria-sort", "none");
    const activate = () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach((other) => other.setAttribute("aria-sort", "none"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      sortTable(table, index, th.dataset.type, ascending);
    };
    th.addEventListener("click", activate);
    th.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") activate(); });
  });
});

const filters = Array.from(document.querySelectorAll("select[data-filter]"));
function applyFilters() {
  const table = document.getElementById("leaderboard");
  if (!table) return;
  let shown = 0;
  Array.from(table.tBodies[0].rows).forEach((row) => {
    const visible = filters.every((f) => f.value === "" || row.dataset[f.dataset.filter] === f.value);
    row.hidden = !visible;
    shown += visible;
  });
  const count = document.getElementById("row-count");
  if (count) count.textContent = `${shown} of ${table.tBodies[0].rows.length} rows`;
}
filters.forEach((f) => f.addEventListener("change", applyFilters));
applyFilters();

// The home page: one suite's rankings at a time (without scripts every suite shows).
const suiteSelect = document.getElementById("suite-select");
function showSuite() {
  document.querySelectorAll("section.suite-block").forEach((block) => {
    block.hidden = block.dataset.suite !== suiteSelect.value;
  });
}
if (suiteSelect) {
  suiteSelect.addEventListener("change", showSuite);
  showSuite();
}

if (window.Plotly) {
  document.querySelectorAll('script[type="application/json"][data-plot]').forEach((node) => {
    const figure = JSON.parse(node.textContent);
    Plotly.newPlot(node.dataset.plot, figure.data, figure.layout, {responsive: true, displaylogo: false});
  });
}
