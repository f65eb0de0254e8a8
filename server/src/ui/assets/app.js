// tokenops dashboard: progressive enhancement only. Every page works without
// this file; it adds the copy button, select-all and the selection count.
(function () {
  "use strict";

  // Copy the shown-once value from the field named by data-copy.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var field = document.getElementById(button.getAttribute("data-copy"));
      if (!field) return;
      var done = function () {
        var label = button.textContent;
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 2000);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () {
          field.select();
        });
      } else {
        field.select();
        try { if (document.execCommand("copy")) done(); } catch (e) { /* selected for a manual copy */ }
      }
    });
  });

  // Select all rows, and keep the bulk button's label in step with the selection.
  var all = document.getElementById("select-all");
  var boxes = document.querySelectorAll("input[name=id][type=checkbox]");
  var bulk = document.getElementById("bulk-revoke");
  var count = document.getElementById("selected-count");
  function refresh() {
    var n = 0;
    boxes.forEach(function (b) { if (b.checked) n++; });
    if (bulk) bulk.disabled = n === 0;
    if (count) count.textContent = n === 0 ? "No tokens selected" : n === 1 ? "1 token selected" : n + " tokens selected";
    if (all) {
      all.checked = n > 0 && n === boxes.length;
      all.indeterminate = n > 0 && n < boxes.length;
    }
  }
  if (all) {
    all.hidden = false;
    all.addEventListener("change", function () {
      boxes.forEach(function (b) { b.checked = all.checked; });
      refresh();
    });
  }
  boxes.forEach(function (b) { b.addEventListener("change", refresh); });
  if (boxes.length) refresh();
})();
