/* Sortable tables, inlined at the end of <body> (no modules, no external files).
   Click a header cell of a table.sortable, or focus it (Tab) and press Enter or Space, to sort the
   body rows by that column; again to reverse. A column whose filled cells all start with a number
   sorts numerically ("9" before "10"; "1e-3", "1,234", "12.3 s", "91.37 (diverged)"), any other
   column as text. Empty, "—" and "nan" cells stay last in both directions.
   WeasyPrint runs no script, so the PDF keeps the stored order. This file is a Jinja include:
   it must not contain Jinja's delimiters or a closing script tag. */
(function () {
  "use strict";
  var MISSING = /^(?:[—–-]|nan)?$/i;
  // A leading number that ends the cell or is followed by a space, "(" or "%": "3x3" and "32, 64" are text.
  var NUMBER = /^([-+−]?(?:\d{1,3}(?:,\d{3})+|\d*)(?:\.\d+)?(?:e[-+−]?\d+)?)(?=$|[\s(%])/i;
  var INFINITE = /^([-+−]?)inf(?:inity)?$/i;
  var each = function (list, f) { Array.prototype.forEach.call(list, f); };

  function value(cell) {
    var text = cell ? cell.textContent.trim() : "";
    if (MISSING.test(text)) return null;
    var m = NUMBER.exec(text), inf = INFINITE.exec(text), number = NaN;
    if (m && /\d/.test(m[1])) number = Number(m[1].replace(/,/g, "").replace(/−/g, "-"));
    if (inf) number = inf[1] ? (inf[1] === "+" ? Infinity : -Infinity) : Infinity;
    return { text: text, number: number };
  }

  function sort(table, th) {
    var body = table.tBodies[0], column = th.cellIndex;
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.map.call(body.rows, function (row, index) {
      return { row: row, index: index, value: value(row.cells[column]) };
    });
    var numeric = rows.every(function (r) { return r.value === null || !isNaN(r.value.number); });
    rows.sort(function (a, b) {
      // Missing last whatever the direction; equal keys keep their current order (stable).
      if (a.value === null || b.value === null) return (a.value === null) - (b.value === null) || a.index - b.index;
      var order = numeric ? a.value.number - b.value.number
        : a.value.text.localeCompare(b.value.text, undefined, { numeric: true });
      return (ascending ? order : -order) || a.index - b.index;   // NaN (inf - inf) counts as equal
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
    each(th.parentNode.cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  each(document.querySelectorAll("table.sortable"), function (table) {
    if (!table.tHead || !table.tHead.rows.length || !table.tBodies.length) return;
    each(table.tHead.rows[table.tHead.rows.length - 1].cells, function (th) {
      th.tabIndex = 0;   // also what report.css keys the pointer cursor on: no script, no cursor
      th.addEventListener("click", function () { sort(table, th); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(table, th); }
      });
    });
  });
})();
