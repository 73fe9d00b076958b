/* Staff console: posts actions without reloading, re-renders live regions on each engine event (SSE),
   keyboard shortcuts. No framework, no build step. */
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var live = document.getElementById("live");
  var toast = document.getElementById("toast");
  var pending = null, refreshing = false, again = false, deferred = false;

  function showToast(message, isError, retry) {
    if (!toast || !message) { return; }
    toast.querySelector(".toast-text").textContent = message;
    toast.classList.toggle("toast-error", !!isError);
    var btn = toast.querySelector(".toast-retry");
    btn.hidden = !retry;
    btn.onclick = retry ? function () { toast.hidden = true; retry(); } : null;
    toast.hidden = false;
    clearTimeout(showToast.timer);
    if (!retry) { showToast.timer = setTimeout(function () { toast.hidden = true; }, isError ? 8000 : 4000); }
  }
  if (toast) { toast.querySelector(".toast-close").onclick = function () { toast.hidden = true; }; }

  function requestId() {
    if (window.crypto && window.crypto.randomUUID) { return "web-" + window.crypto.randomUUID(); }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);  /* randomUUID needs a secure context; the LAN app may be plain http */
    return "web-" + Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  function liveUrl() {
    var url = live.getAttribute("data-live");
    var service = live.getAttribute("data-service");
    return service ? url + "?service=" + encodeURIComponent(service) : url;
  }

  /* A region the user is working in (open transfer form, focused field) is left alone until they are done. */
  function busy(region) {
    var active = document.activeElement;
    if (region.querySelector("details[open]")) { return true; }
    return !!(active && region.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName));
  }

  /* What the agent already picked (an outcome, a transfer target, a reason) survives a live re-render. */
  function keepChoices(from, to) {
    from.querySelectorAll("select[id], input[id]:not([type=hidden]), textarea[id]").forEach(function (el) {
      var twin = to.querySelector("#" + CSS.escape(el.id));
      if (twin && twin.tagName === el.tagName && el.value !== el.defaultValue && el.type !== "checkbox") {
        twin.value = el.value;
      } else if (twin && el.tagName === "SELECT" && el.selectedIndex > 0) {
        twin.value = el.value;
      }
    });
  }

  function refresh() {
    if (!live) { return Promise.resolve(); }
    if (refreshing) { again = true; return Promise.resolve(); }
    refreshing = true;
    return fetch(liveUrl(), { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null || html === undefined) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var regions = doc.querySelectorAll("[data-region]");
        deferred = false;
        if (!regions.length) { live.innerHTML = html; return; }
        regions.forEach(function (fresh) {
          var name = fresh.getAttribute("data-region");
          var current = live.querySelector('[data-region="' + name + '"]');
          if (!current) { return; }
          if (busy(current)) { deferred = true; return; }
          var next = document.importNode(fresh, true);
          keepChoices(current, next);
          current.replaceWith(next);
        });
        var seq = doc.querySelector("[data-seq]");
        if (seq) { live.setAttribute("data-seq", seq.getAttribute("data-seq")); }
      })
      .catch(function () { /* the next event or the periodic refresh tries again */ })
      .finally(function () {
        refreshing = false;
        if (again) { again = false; refresh(); }
      });
  }

  function schedule() {
    if (pending) { return; }
    pending = setTimeout(function () { pending = null; refresh(); }, 60);
  }

  function post(form, submitter) {
    var data = new FormData(form);
    if (submitter && submitter.name) { data.set(submitter.name, submitter.value); }
    var need = form.getAttribute("data-need-target");
    if (need && !data.get("to_service_id") && !data.get("to_counter_id")) { showToast(need, true); return; }
    /* One request id per action, kept by its retries: a retry after a lost answer never acts twice. */
    if (!data.get("request_id")) { data.set("request_id", requestId()); }
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.setAttribute("aria-busy", "true"); b.disabled = true; });
    var lost = document.documentElement.lang === "en" ? "Connection lost. Retry?" : "Koneksi terputus. Coba lagi?";
    var send = function () {
      return fetch(form.getAttribute("action"), {
        method: "POST", body: new URLSearchParams(data), credentials: "same-origin",
        headers: { "X-Requested-With": "fetch", "X-CSRF-Token": csrf }
      }).then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        /* a server or proxy failure (5xx, 429) may pass: offer to send the same request again */
        var transient = r.status >= 500 || r.status === 429;
        return r.json().then(function (b) { if (transient) { b.retry = true; } return b; })
          .catch(function () { return { ok: false, message: transient ? lost : r.statusText, retry: transient }; });
      }).then(function (body) {
        if (!body) { return; }
        if (body.ok) {
          if (body.message) { showToast(body.message, false); }
          /* the action is done: its form no longer holds the region back from the fresh state */
          var region = form.closest("[data-region]");
          if (region) { region.querySelectorAll("details[open]").forEach(function (d) { d.open = false; }); }
          if (document.activeElement && form.contains(document.activeElement)) { document.activeElement.blur(); }
        }
        else { showToast(body.message, true, body.retry ? again : null); }
        return refresh();
      }).catch(function () { showToast(lost, true, again); });
    };
    var done = function () { buttons.forEach(function (b) { b.removeAttribute("aria-busy"); b.disabled = false; }); };
    var again = function () {
      buttons.forEach(function (b) { b.setAttribute("aria-busy", "true"); b.disabled = true; });
      return send().finally(done);
    };
    send().finally(done);
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.hasAttribute("data-act")) { return; }
    ev.preventDefault();
    var confirmText = form.getAttribute("data-confirm");
    if (confirmText && !window.confirm(confirmText)) { return; }
    post(form, ev.submitter);
  });

  document.addEventListener("change", function (ev) {
    var form = ev.target.form;
    if (!form || !form.hasAttribute("data-filter") || !live) { return; }
    var value = ev.target.value;
    live.setAttribute("data-service", value);
    var url = new URL(window.location.href);
    if (value) { url.searchParams.set("service", value); } else { url.searchParams.delete("service"); }
    history.replaceState(null, "", url);
    refresh();
  });

  /* Frequent actions from the keyboard: N call next, S start, R recall, C complete, H hold. */
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var t = ev.target;
    if (t && /^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName)) { return; }
    var key = (ev.key || "").toLowerCase();
    var btn = document.querySelector('[data-region="now"] [data-key="' + key + '"]');
    if (btn && !btn.disabled) { ev.preventDefault(); btn.click(); }
  });

  document.addEventListener("toggle", function (ev) {
    if (ev.target.tagName === "DETAILS" && !ev.target.open && deferred) { refresh(); }
  }, true);
  document.addEventListener("focusout", function () { if (deferred) { setTimeout(function () { if (deferred) { refresh(); } }, 0); } });

  if (live && window.EventSource) {
    var source = new EventSource("/staff/events");
    source.onmessage = schedule;
    source.onopen = schedule; /* after a reconnect, catch up on anything missed */
    source.addEventListener("hq_alerts", schedule); /* HQ's anomaly alerts for the floor changed */
  }
  /* Waiting times tick even when nothing happens. */
  if (live) { setInterval(refresh, 30000); }

  var clock = document.querySelector("[data-clock]");
  if (clock) {
    var fmt = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", timeZone: clock.getAttribute("data-tz") || undefined });
    setInterval(function () { clock.textContent = fmt.format(new Date()); }, 10000);
  }
})();
