// Forensight web app: uploads with progress, the recent-jobs list, live job status.
// Every piece of server text is put in the page with textContent (never as HTML).
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  function fmtTime(t) {
    if (!t) { return "–"; }
    var d = new Date(t * 1000);
    function p(n) { return (n < 10 ? "0" : "") + n; }
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" +
      p(d.getMinutes()) + ":" + p(d.getSeconds());
  }

  function errorText(xhrStatus, body) {
    try {
      var e = JSON.parse(body).error;
      if (e && e.message) { return e.reason + ": " + e.message; }
    } catch (ignore) { /* not JSON */ }
    return "HTTP " + xhrStatus;
  }

  function badgeFor(job) {
    if (job.status === "done" && job.summary && job.summary.status === "ok") {
      return el("span", "badge " + job.summary.verdict, String(job.summary.verdict).toUpperCase());
    }
    if (job.status === "done") { return el("span", "badge failed", "NOT SCORED"); }
    return el("span", "badge " + job.status, job.status.toUpperCase());
  }

  // ---- upload page ------------------------------------------------------------------------
  function initIndex() {
    var form = $("#upload-form"), input = $("#file-input"), drop = $("#drop"), list = $("#upload-list");
    if (!form || input.disabled) { return; }

    function showChosen() {
      var names = Array.prototype.map.call(input.files, function (f) { return f.name; });
      $("#drop-files").textContent = names.length ? names.length + " file(s): " + names.join(", ") :
        "no file chosen";
    }
    input.addEventListener("change", showChosen);
    ["dragenter", "dragover"].forEach(function (t) {
      drop.addEventListener(t, function (ev) { ev.preventDefault(); drop.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      drop.addEventListener(t, function () { drop.classList.remove("over"); });
    });
    drop.addEventListener("drop", function (ev) {
      ev.preventDefault();
      if (ev.dataTransfer && ev.dataTransfer.files.length) {
        input.files = ev.dataTransfer.files;
        showChosen();
      }
    });

    function uploadOne(file, model) {
      return new Promise(function (resolve) {
        var li = el("li"), name = el("span", "name", file.name), bar = el("span", "bar"), fill = el("i");
        var state = el("span", "state", "uploading…");
        bar.appendChild(fill);
        li.appendChild(name); li.appendChild(bar); li.appendChild(state);
        list.appendChild(li);
        var fd = new FormData();
        fd.append("model", model);
        if ($("#explain-check") && $("#explain-check").checked) { fd.append("explain", "top"); }
        fd.append("file", file, file.name);
        var xhr = new XMLHttpRequest();
        xhr.open("POST", "/api/jobs");
        xhr.upload.onprogress = function (ev) {
          if (ev.lengthComputable) { fill.style.width = (100 * ev.loaded / ev.total).toFixed(1) + "%"; }
        };
        xhr.onload = function () {
          if (xhr.status === 202) {
            var job = JSON.parse(xhr.responseText);
            fill.style.width = "100%";
            state.textContent = "";
            var a = el("a", null, "queued: open the job");
            a.href = job.links.page;
            state.appendChild(a);
            li.className = "ok";
            resolve(job);
          } else {
            li.className = "bad";
            state.textContent = errorText(xhr.status, xhr.responseText);
            resolve(null);
          }
        };
        xhr.onerror = function () { li.className = "bad"; state.textContent = "network error"; resolve(null); };
        xhr.send(fd);
      });
    }

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var files = Array.prototype.slice.call(input.files);
      if (!files.length) { $("#drop-files").textContent = "choose at least one video first"; return; }
      var model = $("#model-select").value, button = $("#upload-button");
      button.disabled = true;
      list.textContent = "";
      var jobs = [];
      files.reduce(function (chain, f) {
        return chain.then(function () { return uploadOne(f, model).then(function (j) { if (j) { jobs.push(j); } }); });
      }, Promise.resolve()).then(function () {
        button.disabled = false;
        input.value = "";
        if (files.length === 1 && jobs.length === 1) { window.location.href = jobs[0].links.page; return; }
        refreshJobs();
      });
    });

    function refreshJobs() {
      fetch("/api/jobs?limit=50", { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.json() : null;
      }).then(function (data) {
        if (!data) { return; }
        var body = $("#jobs-body");
        body.textContent = "";
        if (!data.jobs.length) {
          var tr0 = el("tr", "empty"), td0 = el("td", null, "No jobs yet.");
          td0.colSpan = 5; tr0.appendChild(td0); body.appendChild(tr0);
        }
        data.jobs.forEach(function (j) {
          var tr = el("tr"), a = el("a", null, j.name), td = el("td");
          tr.dataset.status = j.status;
          a.href = j.links.page; td.appendChild(a); tr.appendChild(td);
          tr.appendChild(el("td", null, j.model));
          var tdb = el("td"); tdb.appendChild(badgeFor(j)); tr.appendChild(tdb);
          var p = j.summary && j.summary.p_fake !== null && j.summary.p_fake !== undefined ? j.summary.p_fake.toFixed(3) : "–";
          tr.appendChild(el("td", "num", p));
          tr.appendChild(el("td", null, fmtTime(j.created_at)));
          body.appendChild(tr);
        });
        if (data.queue.active > 0) { window.setTimeout(refreshJobs, 2000); }
      }).catch(function () { window.setTimeout(refreshJobs, 5000); });
    }
    if (document.querySelector('#jobs-body tr[data-status="queued"], #jobs-body tr[data-status="running"]')) {
      window.setTimeout(refreshJobs, 2000);
    }
  }

  // ---- job page ---------------------------------------------------------------------------
  function initJob() {
    var root = $("#job");
    if (!root) { return; }
    var id = root.dataset.jobId, frame = $("#report");

    function fitFrame() {
      try {
        var doc = frame.contentDocument;
        if (doc && doc.documentElement) { frame.style.height = (doc.documentElement.scrollHeight + 16) + "px"; }
      } catch (ignore) { /* not readable */ }
    }
    frame.addEventListener("load", fitFrame);
    if (frame.getAttribute("src")) { fitFrame(); }

    function render(job) {
      root.dataset.status = job.status;
      var badge = $("#status-badge");
      badge.className = "badge " + job.status;
      badge.textContent = job.status.toUpperCase();
      var text = $("#status-text"), verdict = $("#verdict");
      if (job.status === "queued") {
        text.textContent = "Waiting in the queue: position " + job.queue_position;
      } else if (job.status === "running") {
        var f = job.progress.fraction;
        text.textContent = job.progress.label + (f !== null && f !== undefined ? " (" + Math.round(100 * f) + "%)" : "");
      } else if (job.status === "failed") {
        text.textContent = job.error ? job.error.message : "failed";
      } else {
        text.textContent = "";
      }
      var stages = $("#stages");
      stages.textContent = "";
      job.progress.stages.forEach(function (s) {
        var li = el("li", s.state, s.label);
        li.dataset.stage = s.name;
        stages.appendChild(li);
      });
      if (job.status === "done") {
        var s = job.summary;
        verdict.textContent = s.status === "ok" ? String(s.verdict).toUpperCase() + " · P(fake) " + s.p_fake.toFixed(3)
          : "NOT SCORED · " + s.message;
        $("#download").classList.remove("hidden");
        if (job.links.report) {
          $("#open-report").href = job.links.report;
          $("#open-report").classList.remove("hidden");
          frame.classList.remove("hidden");
          if (frame.getAttribute("src") !== job.links.report) { frame.setAttribute("src", job.links.report); }
        }
      }
    }

    function poll() {
      fetch("/api/jobs/" + encodeURIComponent(id) + "?result=false", { credentials: "same-origin" })
        .then(function (r) {
          if (r.status === 404) { $("#status-text").textContent = "This job was deleted."; return null; }
          return r.ok ? r.json() : null;
        })
        .then(function (job) {
          if (!job) { return; }
          render(job);
          if (job.status === "queued" || job.status === "running") { window.setTimeout(poll, 1000); }
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    }
    var st = root.dataset.status;
    if (st === "queued" || st === "running") { poll(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.body.dataset.page;
    if (page === "index") { initIndex(); } else if (page === "job") { initJob(); }
  });
}());
