// motcua: small progressive enhancements, no framework, no CDN.
(function () {
  "use strict";
  function fold(s) {
    return s.normalize("NFD").replace(/[\u0300-\u036f]/g, "").replace(/đ/g, "d").replace(/Đ/g, "D").toLowerCase();
  }
  var filter = document.getElementById("proc-filter");
  var list = document.getElementById("proc-list");
  if (filter && list) {
    filter.addEventListener("input", function () {
      var words = fold(filter.value).split(/\s+/).filter(Boolean);
      list.querySelectorAll("li").forEach(function (li) {
        var hay = fold(li.getAttribute("data-search"));
        li.hidden = !words.every(function (w) { return hay.indexOf(w) >= 0; });
      });
    });
  }
  var catalogEl = document.getElementById("catalog");
  var docs = document.getElementById("docs");
  if (catalogEl && docs) {
    var catalog = JSON.parse(catalogEl.textContent);
    var kinds = JSON.parse(document.getElementById("copy-kinds").textContent);
    var en = document.documentElement.lang === "en";
    var byCode = {};
    catalog.forEach(function (p) { byCode[p.code] = p; });
    function el(tag, attrs) {
      var e = document.createElement(tag);
      Object.keys(attrs || {}).forEach(function (k) { if (k === "text") { e.textContent = attrs[k]; } else { e.setAttribute(k, attrs[k]); } });
      return e;
    }
    // After a refused submission the server sends back the rows as the officer left them.
    var keptEl = document.getElementById("docs-kept");
    var kept = keptEl ? JSON.parse(keptEl.textContent) : null;
    function render(code, rows) {
      docs.innerHTML = "";
      var p = byCode[code];
      if (!p) { return; }
      (rows || p.documents).forEach(function (d, i) {
        var tr = el("tr");
        var td0 = el("td"); var inc = el("input", {type: "checkbox", name: "doc_include_" + i}); inc.checked = d.include !== false; td0.appendChild(inc); tr.appendChild(td0);
        var td1 = el("td"); td1.appendChild(el("input", {name: "doc_name", value: rows ? d.name : (en ? d.name_en : d.name_vi)})); tr.appendChild(td1);
        var td2 = el("td"); var sel = el("select", {name: "doc_kind_" + i});
        Object.keys(kinds).forEach(function (k) { var o = el("option", {value: k, text: kinds[k][en ? 1 : 0]}); if (k === d.copy_kind) { o.selected = true; } sel.appendChild(o); });
        td2.appendChild(sel); tr.appendChild(td2);
        var td3 = el("td"); td3.appendChild(el("input", {name: "doc_count_" + i, type: "number", min: "1", max: "100", value: d.count})); tr.appendChild(td3);
        var td4 = el("td"); var dig = el("input", {name: "doc_digitised_" + i, type: "checkbox"}); dig.checked = d.digitised === true; td4.appendChild(dig); tr.appendChild(td4);
        docs.appendChild(tr);
      });
    }
    document.querySelectorAll("input[name=procedure_code]").forEach(function (r) {
      r.addEventListener("change", function () { render(r.value); });
      if (r.checked) { render(r.value, kept); }
    });
  }
})();
