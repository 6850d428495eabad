// The upload page's progress bar (/consola/cargas): the only script of the web pages.
// It sends the chosen file as the body of a POST (the session's CSRF token in a header) as
// an upload job it names at random, shows the bytes sent and, from the job
// (/consola/cargas/{job}, as GET /v1/registrations/jobs/{job}), the lines the registry has
// read, registered and rejected so far; then the registry's report: lines registered, lines
// rejected by number and reason.
"use strict";
(function () {
  var form = document.getElementById("upload");
  if (!form) { return; }
  var bar = document.getElementById("upload-progress");
  var status = document.getElementById("upload-status");
  var result = document.getElementById("upload-result");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var file = document.getElementById("f-file").files[0];
    if (!file) { status.textContent = "Elija un archivo CSV."; return; }
    var job = jobName();
    var request = new XMLHttpRequest();
    request.open("POST", form.getAttribute("action") + "?job=" + job);
    request.setRequestHeader("Content-Type", "text/csv");
    request.setRequestHeader("X-CSRF-Token", form.elements.csrf.value);
    bar.hidden = false;
    bar.value = 0;
    status.textContent = "Enviando…";
    result.textContent = "";
    var sent = "Enviando";
    var read = "";
    var show = function () { status.textContent = sent + (read ? " · " + read : ""); };
    request.upload.onprogress = function (e) {
      if (e.lengthComputable) {
        bar.value = Math.round((e.loaded / e.total) * 100);
        sent = "Enviado " + bar.value + " %";
        show();
      }
    };
    request.upload.onload = function () {
      bar.removeAttribute("value"); // the registry finishes the last batches
      sent = "Archivo enviado; el registro termina de procesarlo";
      show();
    };
    // the job, every 700 ms until the answer comes (not found until the registry starts it)
    var following = setInterval(function () {
      var poll = new XMLHttpRequest();
      poll.open("GET", "/consola/cargas/" + job);
      poll.onload = function () {
        var p;
        try { p = JSON.parse(poll.responseText); } catch (e) { return; }
        if (poll.status === 200 && p && p.lines !== undefined) {
          read = number(p.lines) + " líneas leídas: " + number(p.accepted) + " registradas, " +
            number(p.already_registered) + " ya registradas, " + number(p.rejected) + " rechazadas";
          show();
        }
      };
      poll.send();
    }, 700);
    var stop = function () { clearInterval(following); };
    request.onerror = function () { stop(); status.textContent = "La conexión falló; nada se perdió de lo ya registrado. Intente de nuevo."; };
    request.onload = function () {
      stop();
      bar.value = 100;
      var body;
      try { body = JSON.parse(request.responseText); } catch (e) { body = null; }
      if (request.status >= 200 && request.status < 300 && body) {
        status.textContent = "Carga terminada.";
        report(body);
      } else {
        status.textContent = "La carga fue rechazada: " + ((body && (body.detail || body.title)) || request.status);
        if (body && body.invalidParams) { report({ rejected_lines: body.invalidParams }); }
      }
    };
    request.send(file);
  });
  // 16 hexadecimal digits drawn at random: the job's name, to follow it while it runs
  function jobName() {
    var bytes = new Uint8Array(8);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }
  function number(n) { return Number(n).toLocaleString("es-CO"); }
  function add(parent, tag, text) {
    var node = document.createElement(tag);
    if (text !== undefined) { node.textContent = text; }
    parent.appendChild(node);
    return node;
  }
  function report(body) {
    var list = add(result, "dl");
    list.className = "record";
    var labels = { lines: "Líneas leídas", accepted: "Registradas", already_registered: "Ya estaban registradas", rejected: "Rechazadas" };
    Object.keys(labels).forEach(function (key) {
      if (body[key] !== undefined) { add(list, "dt", labels[key]); add(list, "dd", number(body[key])); }
    });
    var lines = body.rejected_lines || [];
    if (lines.length) {
      add(result, "h2", "Líneas rechazadas");
      var table = add(result, "table");
      var head = add(add(table, "thead"), "tr");
      add(head, "th", "Línea").setAttribute("scope", "col");
      add(head, "th", "Motivo").setAttribute("scope", "col");
      var rows = add(table, "tbody");
      lines.forEach(function (line) {
        var row = add(rows, "tr");
        add(row, "td", String(line.line !== undefined ? line.line : (line.param || "")));
        add(row, "td", String(line.reason || ""));
      });
    }
  }
})();
