// The playground's countdowns: each [data-until] (milliseconds on the server's clock) counts
// down to "passed". The page works without this script; it only saves reloading to see time go.
(function () {
  "use strict";
  var offset = Number(document.body.dataset.now) - Date.now();
  function tick() {
    var now = Date.now() + offset;
    document.querySelectorAll("[data-until]").forEach(function (element) {
      var left = Math.ceil((Number(element.dataset.until) - now) / 1000);
      element.textContent = left > 0 ? left + " s left" : "passed";
    });
  }
  tick();
  setInterval(tick, 500);
})();
