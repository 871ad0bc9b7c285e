// Throughput chart for the dashboard: polls the console's JSON and draws three lines on a canvas.
// Plain JavaScript, no library and nothing fetched from elsewhere.
(function () {
  "use strict";
  var canvas = document.getElementById("throughput");
  if (!canvas) { return; }
  var ctx = canvas.getContext("2d");
  var series = [["signals", "#1f6fd1"], ["deliveries", "#217a3c"], ["dead_letters", "#b3261e"]];

  function draw(points) {
    var w = canvas.width, h = canvas.height, pad = 36;
    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px sans-serif";
    ctx.fillStyle = "#5a6678";
    if (points.length < 2) {
      ctx.fillText("collecting samples…", pad, h / 2);
      return;
    }
    var t0 = points[0].at, t1 = points[points.length - 1].at;
    var max = 1;
    points.forEach(function (p) {
      series.forEach(function (s) { max = Math.max(max, p[s[0]]); });
    });
    ctx.strokeStyle = "#d8dee8";
    ctx.beginPath(); ctx.moveTo(pad, 8); ctx.lineTo(pad, h - pad); ctx.lineTo(w - 8, h - pad); ctx.stroke();
    ctx.fillText(max.toFixed(1) + "/s", 2, 14);
    ctx.fillText("0", pad - 12, h - pad);
    ctx.fillText(Math.round((t1 - t0) / 60 * 10) / 10 + " min", w - 60, h - pad + 16);
    series.forEach(function (s) {
      ctx.strokeStyle = s[1];
      ctx.lineWidth = 2;
      ctx.beginPath();
      points.forEach(function (p, i) {
        var x = pad + (w - pad - 8) * (p.at - t0) / Math.max(t1 - t0, 1);
        var y = (h - pad) - (h - pad - 8) * p[s[0]] / max;
        if (i === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
      });
      ctx.stroke();
    });
  }

  function refresh() {
    fetch(canvas.dataset.source, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { points: [] }; })
      .then(function (body) { draw(body.points); })
      .catch(function () { /* the next refresh tries again */ });
  }
  refresh();
  setInterval(refresh, 2000);
}());
