/* Kiosk page: screens, issuing, health/reconnect, offline buffer (leases + IndexedDB), offline printing through the
   kiosk computer's print relay, remote config. No build step. */
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const app = $("app");
  const POLL_MS = 5000;
  const REQUEST_MS = 8000;
  const RELAY_MS = 5000; // the relay answers within its printer timeout (3 s by default)
  const LEASE_LOW = 3;
  const TOKEN_KEY = "qms.kiosk.token";
  const LEASE_KEY = "qms.kiosk.leases";

  let doc = JSON.parse($("kiosk-doc").textContent);
  let pendingDoc = null;
  let lang = doc.languages[0];
  let service = null;
  let online = true;
  let idleTimer = null;
  let countdownTimer = null;
  let activeField = null;

  // ---- token: given once by the launcher as #token=…, then kept on the device ----------------------------------
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    localStorage.setItem(TOKEN_KEY, hash.get("token"));
    history.replaceState(null, "", location.pathname);
  }
  const token = () => localStorage.getItem(TOKEN_KEY);
  const RENEW_BEFORE_MS = 3 * 24 * 3600 * 1000; // device tokens live 7 days: renew in their last 3
  function tokenExpiry() {
    try {
      const part = token().split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4))).exp * 1000;
    } catch (err) {
      return null;
    }
  }

  // ---- nothing to break out of ------------------------------------------------------------------------------
  for (const type of ["contextmenu", "dragstart", "selectstart", "gesturestart"]) {
    document.addEventListener(type, (e) => e.preventDefault());
  }
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.altKey || e.metaKey || /^F\d+$/.test(e.key) || e.key === "Escape") e.preventDefault();
  });
  history.pushState(null, "", location.pathname);
  window.addEventListener("popstate", () => history.pushState(null, "", location.pathname));
  document.addEventListener("touchmove", (e) => { if (e.touches.length > 1) e.preventDefault(); }, { passive: false });

  // ---- words and screens ------------------------------------------------------------------------------------
  const w = (key, vars) => {
    let text = (doc.words[lang] || doc.words[doc.languages[0]])[key] || key;
    for (const [k, v] of Object.entries(vars || {})) text = text.replace(`{${k}}`, v);
    return text;
  };
  function translate() {
    document.documentElement.lang = lang;
    for (const el of document.querySelectorAll("[data-w]")) el.textContent = w(el.dataset.w);
  }
  function show(name) {
    for (const el of document.querySelectorAll(".screen")) el.hidden = el.id !== `screen-${name}`;
    app.dataset.screen = name;
    armIdle();
  }
  function busy(on) { $("busy").hidden = !on; }

  function reset() {
    clearInterval(countdownTimer);
    service = null;
    lang = doc.languages[0];
    document.body.classList.remove("large", "contrast");
    $("btn-large").setAttribute("aria-pressed", "false");
    $("btn-contrast").setAttribute("aria-pressed", "false");
    if (pendingDoc) { applyDoc(pendingDoc); pendingDoc = null; app.dataset.pending = "false"; }
    translate();
    show("lang");
  }

  // ---- idle timeout: any screen but home returns home when nobody touches it --------------------------------
  function armIdle() {
    clearTimeout(idleTimer);
    if (app.dataset.screen === "lang" || app.dataset.screen === "unpaired") return;
    idleTimer = setTimeout(reset, doc.settings.idle_seconds * 1000);
  }
  for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, armIdle, true);

  // ---- accessibility toggles --------------------------------------------------------------------------------
  for (const [id, cls] of [["btn-large", "large"], ["btn-contrast", "contrast"]]) {
    $(id).addEventListener("click", () => {
      const on = document.body.classList.toggle(cls);
      $(id).setAttribute("aria-pressed", String(on));
    });
  }

  // ---- clock in the branch's time zone ----------------------------------------------------------------------
  const clockFmt = () => new Intl.DateTimeFormat("en-GB", { timeZone: doc.timezone, hour: "2-digit", minute: "2-digit" });
  const stampFmt = () => new Intl.DateTimeFormat("en-GB", {
    timeZone: doc.timezone, day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit",
  });
  // "24/11/2026 09:05": 16 ASCII characters, the width of the time slot in an offline print job.
  const stamp = (date) => {
    const p = Object.fromEntries(stampFmt().formatToParts(date).map((part) => [part.type, part.value]));
    return `${p.day}/${p.month}/${p.year} ${p.hour === "24" ? "00" : p.hour}:${p.minute}`;
  };
  const tick = () => { $("clock").textContent = clockFmt().format(new Date()); };
  tick();
  setInterval(tick, 1000);

  // ---- services ---------------------------------------------------------------------------------------------
  // The weekday `days` from today in the branch's time zone, in the customer's language ("Monday", "Senin").
  function weekday(days) {
    const at = new Date(Date.now() + days * 24 * 3600 * 1000);
    return new Intl.DateTimeFormat(lang === "id" ? "id-ID" : "en-GB", { timeZone: doc.timezone, weekday: "long" })
      .format(at);
  }
  function serviceInfo(s) {
    const wait = s.eta_text ? s.eta_text[lang] || s.eta_text[doc.languages[0]] : null; // worded by the appliance
    if (s.open) return wait ? `${s.waiting} ${w("waiting")} · ${wait}` : `${s.waiting} ${w("waiting")}`;
    if (s.reason === "closed" && s.opens) {
      const day = s.opens[0] === 0 ? w("today") : s.opens[0] === 1 ? w("tomorrow") : weekday(s.opens[0]);
      return `${w("closed_now")} · ${w("opens_at", { day, time: s.opens[1] }).replace("  ", " ")}`;
    }
    return w(s.reason === "full" ? "full" : s.reason === "closed" ? "closed_now" : "unavailable");
  }
  function renderServices() {
    const box = $("services");
    box.replaceChildren();
    box.style.setProperty("--count", String(doc.services.length)); // rows of the grid (kiosk.css)
    for (const s of doc.services) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = `service${s.open ? "" : " closed"}`;
      b.dataset.service = s.id;
      if (!s.open) b.setAttribute("aria-disabled", "true");
      const prefix = document.createElement("span");
      prefix.className = "prefix";
      prefix.textContent = s.prefix;
      const name = document.createElement("span");
      name.className = "sname";
      name.textContent = s.names[lang] || s.names[doc.languages[0]];
      const info = document.createElement("span");
      info.className = "sinfo";
      info.textContent = serviceInfo(s);
      b.append(prefix, name, info);
      b.addEventListener("click", () => { if (s.open) chooseService(s); });
      box.append(b);
    }
  }
  function applyDoc(next) {
    doc = next;
    document.documentElement.style.setProperty("--accent", doc.settings.accent_color);
    $("branch-name").textContent = doc.branch_name;
    if (!doc.languages.includes(lang)) lang = doc.languages[0];
    renderHome();
    renderServices();
    translate();
  }

  // The start screen and the header follow the document too: welcome lines, language buttons, logo text.
  function renderHome() {
    const title = $("lang-title");
    const sub = document.querySelector("#screen-lang .sub");
    const box = document.querySelector("#screen-lang .langs");
    title.replaceChildren();
    sub.replaceChildren();
    box.replaceChildren();
    for (const l of doc.languages) {
      const welcome = document.createElement("span");
      welcome.className = "welcome";
      welcome.textContent = (doc.settings.title || {})[l] || doc.words[l].welcome;
      title.append(welcome);
      const ask = document.createElement("span");
      ask.textContent = doc.words[l].choose_lang;
      sub.append(ask);
      const b = document.createElement("button");
      b.type = "button";
      b.className = "lang";
      b.id = `lang-${l}`;
      b.dataset.lang = l;
      const code = document.createElement("span");
      code.className = "code";
      code.textContent = l.toUpperCase();
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = doc.words[l].lang_name;
      b.append(code, name);
      b.addEventListener("click", () => { lang = l; translate(); renderServices(); show("service"); });
      box.append(b);
    }
    const brand = document.querySelector(".brand");
    let logo = brand.querySelector(".logo");
    if (!brand.querySelector(".logo-img")) {
      if (doc.settings.logo_text) {
        if (!logo) { logo = document.createElement("span"); logo.className = "logo"; brand.prepend(logo); }
        logo.textContent = doc.settings.logo_text;
      } else if (logo) {
        logo.remove();
      }
    }
  }
  renderHome();
  for (const b of document.querySelectorAll("[data-go]")) b.addEventListener("click", () => {
    if (b.dataset.go === "lang") reset(); else show(b.dataset.go);
  });

  // ---- optional details: phone / customer reference ---------------------------------------------------------
  const PHONE = /^\+?[0-9]{8,15}$/;
  const REF = /^[A-Za-z0-9][A-Za-z0-9 ./-]{0,31}$/;
  const inputs = () => ({ phone: doc.settings.phone_input, ref: doc.settings.customer_ref_input });

  function chooseService(s) {
    service = s;
    const modes = inputs();
    if (modes.phone === "off" && modes.ref === "off") { issue(); return; }
    for (const [key, mode] of Object.entries(modes)) {
      $(`field-${key}`).hidden = mode === "off";
      $(key).value = "";
      $(`${key}-error`).textContent = "";
      $(`field-${key}`).classList.remove("invalid");
      $(`${key}-opt`).textContent = mode === "optional" ? `(${w("optional")})` : "";
    }
    $("btn-skip").hidden = modes.phone === "required" || modes.ref === "required";
    $("field-notify").hidden = modes.phone === "off";  // the consent question goes with a phone number (UU PDP)
    $("notify").checked = true;
    focusField(modes.phone !== "off" ? "phone" : "ref");
    show("details");
  }
  function focusField(key) {
    activeField = key;
    for (const k of ["phone", "ref"]) $(`field-${k}`).classList.toggle("active", k === key);
  }
  for (const k of ["phone", "ref"]) $(k).addEventListener("pointerdown", () => focusField(k));
  for (const key of document.querySelectorAll(".key")) {
    key.addEventListener("click", () => {
      const field = $(activeField);
      const k = key.dataset.key;
      if (k === "clear") field.value = "";
      else if (k === "⌫") field.value = field.value.slice(0, -1);
      else if (k === "+" && (activeField !== "phone" || field.value !== "")) return;
      else if (field.value.length < (activeField === "phone" ? 16 : 32)) field.value += k;
      $(`${activeField}-error`).textContent = "";
      $(`field-${activeField}`).classList.remove("invalid");
    });
  }
  function validate() {
    const modes = inputs();
    const out = {};
    let ok = true;
    for (const [key, pattern, bad, missing] of [["phone", PHONE, "phone_invalid", "phone_required"],
                                                 ["ref", REF, "ref_invalid", "ref_required"]]) {
      if (modes[key] === "off") continue;
      const value = $(key).value.trim();
      let error = "";
      if (!value && modes[key] === "required") error = w(missing);
      else if (value && !pattern.test(value)) error = w(bad);
      $(`${key}-error`).textContent = error;
      $(`field-${key}`).classList.toggle("invalid", Boolean(error));
      if (error) { if (ok) focusField(key); ok = false; } // the first invalid field takes the keypad
      if (value) out[key === "ref" ? "customer_ref" : "phone"] = value;
      if (value && key === "phone") out.notify_opt_in = $("notify").checked;
    }
    return ok ? out : null;
  }
  $("btn-issue").addEventListener("click", () => { const extra = validate(); if (extra) issue(extra); });
  $("btn-skip").addEventListener("click", () => issue({}));

  // ---- talking to the appliance -----------------------------------------------------------------------------
  class Unreachable extends Error {}
  class Refused extends Error { constructor(status, body) { super(body.detail || status); this.status = status; this.body = body; } }

  async function call(method, path, body) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), REQUEST_MS);
    let res;
    try {
      res = await fetch(path, {
        method, signal: ctrl.signal, cache: "no-store",
        headers: { "Authorization": `Bearer ${token()}`, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new Unreachable(String(err));
    } finally {
      clearTimeout(timer);
    }
    if (res.status >= 500 && res.status !== 503) throw new Unreachable(`HTTP ${res.status}`);
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Refused(res.status, data);
    return data;
  }
  const newId = () => `k-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;

  async function issue(extra = {}) {
    const s = service;
    busy(true);
    const body = { service_id: s.id, lang, request_id: newId(), ...extra };
    try {
      let result;
      try {
        result = await call("POST", "/kiosk/api/tickets", body);
      } catch (err) {
        if (!(err instanceof Unreachable)) throw err;
        result = await call("POST", "/kiosk/api/tickets", body); // same request_id: at most one ticket
      }
      setOnline(true);
      showTicket({
        number: result.ticket.ticket_number, issued: result.issued_local, position: result.ticket.position,
        eta: result.eta_text, phone: result.ticket.phone, qr: result.qr_svg, print: result.print,
      });
    } catch (err) {
      if (err instanceof Unreachable) { setOnline(false); await issueOffline(s, extra); }
      else if (err instanceof Refused && err.status === 401) show("unpaired");
      else message(refusal(err));
    } finally {
      busy(false);
    }
  }

  function message(text) { $("message").textContent = text; show("message"); }

  // The customer reads their own language, never the engine's English detail.
  const REFUSALS = { service_closed: "closed_now", service_inactive: "unavailable", service_full: "full" };
  function refusal(err) {
    const code = err instanceof Refused ? err.body.code : null;
    return w(REFUSALS[code] || (code === "phone_invalid" ? "phone_invalid" : "error"));
  }

  function showTicket(t) {
    $("t-number").textContent = t.number;
    $("t-service").textContent = service ? (service.names[lang] || service.names[doc.languages[0]]) : "";
    $("t-time").textContent = t.issued;
    $("t-ahead-row").hidden = t.position == null;
    $("t-ahead").textContent = t.position == null ? "" : String(Math.max(t.position - 1, 0));
    $("t-eta-row").hidden = t.eta == null;
    $("t-eta").textContent = t.eta == null ? "" : t.eta; // the appliance words it ("next", "< 1 min", …)
    $("t-phone-row").hidden = !t.phone;
    $("t-phone").textContent = t.phone || "";
    $("t-qr").innerHTML = t.qr; // server-made SVG (segno), never customer input
    const status = $("t-print");
    // A screen-only kiosk (no printer configured) says nothing about printers: the QR on screen is the normal path.
    const screenOnly = !t.offline && Boolean(t.print) && t.print.error === "no_printer";
    const printedOffline = Boolean(t.offline && t.print && t.print.ok);
    const failed = (t.offline && !printedOffline) || (!t.offline && !screenOnly && t.print && !t.print.ok);
    status.className = `tprint ${failed ? "failed" : "ok"}`;
    status.textContent = screenOnly ? "" : printedOffline ? w("offline_printed") : t.offline ? w("offline_ticket")
      : failed ? w("print_failed") : w("printed");
    status.hidden = screenOnly;
    status.dataset.print = screenOnly ? "none" : printedOffline ? "offline-printed" : t.offline ? "offline"
      : t.print && !t.print.ok ? t.print.error : "ok";
    document.querySelector(".ticket").classList.toggle("fallback", Boolean(failed));
    show("ticket");
    let left = doc.settings.ticket_seconds * (failed ? 2 : 1);
    $("countdown").textContent = `(${left})`;
    clearInterval(countdownTimer);
    countdownTimer = setInterval(() => {
      left -= 1;
      $("countdown").textContent = `(${left})`;
      if (left <= 0) reset();
    }, 1000);
    if (failed && t.offline && doc.settings.offline_browser_print) setTimeout(() => window.print(), 300);
  }
  $("btn-done").addEventListener("click", reset);

  // ---- appointments: check-in with the booking's QR -----------------------------------------------------------
  // A USB scanner is a keyboard: it types the code (Q1 + base32) fast and ends with Enter, on whatever screen is up.
  // The check-in screen also has a field for it (and for typing by hand), and the camera where BarcodeDetector exists.
  const QR_CODE = /^Q1[A-Z2-7]{40,}$/;
  let scanned = "";
  let scannedAt = 0;
  let cameraStream = null;
  document.addEventListener("keydown", (e) => {
    if (e.target === $("checkin-code")) return;
    const now = Date.now();
    if (now - scannedAt > 300) scanned = "";
    scannedAt = now;
    if (e.key === "Enter") {
      const text = scanned.toUpperCase();
      scanned = "";
      if (QR_CODE.test(text)) { e.preventDefault(); checkin(text); }
    } else if (e.key.length === 1) {
      scanned += e.key;
    }
  });
  function openCheckin() {
    $("checkin-code").value = "";
    show("checkin");
    $("btn-camera").hidden = !(navigator.mediaDevices && ("BarcodeDetector" in window || window.jsQR));
    $("checkin-code").focus();
  }
  $("btn-checkin").addEventListener("click", openCheckin);
  $("checkin-back").addEventListener("click", () => { stopCamera(); reset(); });
  $("checkin-code").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();
    const text = $("checkin-code").value.trim().toUpperCase();
    if (text) checkin(text);
  });
  function stopCamera() {
    if (cameraStream) for (const track of cameraStream.getTracks()) track.stop();
    cameraStream = null;
    $("checkin-video").hidden = true;
  }
  // The camera: the browser's BarcodeDetector where it has one, else the vendored jsQR on canvas frames.
  async function readFrame(video, detector, canvas) {
    if (detector) {
      const found = await detector.detect(video).catch(() => []);
      return found.length ? found[0].rawValue : null;
    }
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    if (!canvas.width) return null;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0);
    const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const found = window.jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
    return found ? found.data : null;
  }
  $("btn-camera").addEventListener("click", async () => {
    try {
      const detector = "BarcodeDetector" in window ? new window.BarcodeDetector({ formats: ["qr_code"] }) : null;
      const canvas = document.createElement("canvas");
      cameraStream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" } });
      const video = $("checkin-video");
      video.srcObject = cameraStream;
      video.hidden = false;
      await video.play();
      const look = async () => {
        if (!cameraStream || app.dataset.screen !== "checkin") { stopCamera(); return; }
        const text = ((await readFrame(video, detector, canvas)) || "").toUpperCase();
        // any QR held up here goes to the appliance: one not ours gets the "cannot be read here" answer
        if (text) { stopCamera(); checkin(text); } else setTimeout(look, 250);
      };
      look();
    } catch (err) {
      stopCamera();
    }
  });
  async function checkin(text) {
    stopCamera();
    busy(true);
    try {
      const result = await call("POST", "/kiosk/api/checkin", { code: text, lang });
      setOnline(true);
      service = doc.services.find((s) => s.id === result.service_id) || null;
      showTicket({
        number: result.ticket.ticket_number, issued: result.issued_local, position: result.ticket.position,
        eta: result.eta_text, phone: null, qr: result.qr_svg, print: result.print,
      });
      $("t-time").textContent = result.late ? `${result.issued_local} · ${w("checkin_late_note")}` : result.issued_local;
    } catch (err) {
      if (err instanceof Refused && err.status === 401) show("unpaired");
      else if (err instanceof Refused && err.body.code && err.body.code.startsWith("checkin_")) {
        message(w(err.body.code, { time: (err.body.opens_at || "").slice(11) }));
      } else if (err instanceof Refused && err.status === 400) {
        message(w("checkin_invalid")); // text longer than any QR holds: not one of ours, said as such
      } else message(w("error"));
    } finally {
      busy(false);
    }
  }

  // ---- offline buffer: leased numbers (localStorage) and issued tickets (IndexedDB) --------------------------
  const leases = () => JSON.parse(localStorage.getItem(LEASE_KEY) || "{}");
  function saveLeases(all) {
    try {
      localStorage.setItem(LEASE_KEY, JSON.stringify(all));
    } catch (err) { // storage full: the print jobs are the bulk, the numbers must be kept (they print on screen)
      for (const list of Object.values(all)) for (const l of list) for (const n of l.numbers) delete n.print_jobs;
      localStorage.setItem(LEASE_KEY, JSON.stringify(all));
    }
  }

  function db() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open("qms-kiosk", 1);
      req.onupgradeneeded = () => req.result.createObjectStore("pending", { keyPath: "temp_id" });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  async function store(mode, fn) {
    const conn = await db();
    return new Promise((resolve, reject) => {
      const tx = conn.transaction("pending", mode);
      const result = fn(tx.objectStore("pending"));
      tx.oncomplete = () => { conn.close(); resolve(result.result === undefined ? result : result.result); };
      tx.onerror = () => { conn.close(); reject(tx.error); };
    });
  }
  const pendingAll = () => store("readonly", (s) => s.getAll());

  function takeNumber(serviceId) {
    const all = leases();
    for (const lease of all[serviceId] || []) {
      if (lease.business_date !== doc.business_date) continue;
      const free = lease.numbers.find((n) => !lease.used.includes(n.seq_no));
      if (free) {
        lease.used.push(free.seq_no);
        saveLeases(all);
        return { lease, number: free };
      }
    }
    return null;
  }

  async function issueOffline(s, extra) {
    const taken = takeNumber(s.id);
    if (!taken) { message(w("offline_empty")); return; }
    const issuedAt = new Date();
    const record = {
      temp_id: taken.number.temp_id, lease_id: taken.lease.lease_id, seq_no: taken.number.seq_no,
      issued_at: issuedAt.toISOString(), lang, ...extra,
    };
    await store("readwrite", (st) => st.put(record));
    let phone = null;
    if (extra.phone && doc.settings.phone_display === "masked") {
      const p = extra.phone;
      phone = p.length <= 7 ? "*".repeat(p.length) : `${p.slice(0, 4)}${"*".repeat(p.length - 7)}${p.slice(-3)}`;
    }
    const issued = stamp(issuedAt);
    const print = await printOffline(taken, issued); // the ticket is already stored: a failure only changes `print`
    showTicket({ number: taken.number.ticket_number, issued, position: null, eta: null, phone,
                 qr: taken.number.qr_svg, offline: true, print });
  }

  // ---- offline printing: the leased number's ready ESC/POS job, time filled in, sent to the local print relay ----
  function fillTime(job, slot, text) {
    const bytes = Uint8Array.from(atob(job), (c) => c.charCodeAt(0));
    const want = Array.from(slot, (c) => c.charCodeAt(0));
    const fill = Array.from(text.padEnd(want.length).slice(0, want.length), (c) => c.charCodeAt(0) & 0x7f);
    outer: for (let i = 0; i + want.length <= bytes.length; i++) {
      for (let j = 0; j < want.length; j++) if (bytes[i + j] !== want[j]) continue outer;
      bytes.set(fill, i); // same length: the job stays valid ESC/POS byte for byte
      let binary = "";
      for (const b of bytes) binary += String.fromCharCode(b);
      return btoa(binary);
    }
    return null;
  }
  async function printOffline(taken, issued) {
    const url = doc.settings.offline_print_url;
    const jobs = taken.number.print_jobs || {};
    const raw = jobs[lang] || Object.values(jobs)[0]; // the customer's language
    const job = raw && taken.lease.print_time_slot && fillTime(raw, taken.lease.print_time_slot, issued);
    if (!url || !job) return null;
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), RELAY_MS);
    try {
      const res = await fetch(url, { method: "POST", signal: ctrl.signal, cache: "no-store",
                                     headers: { "Content-Type": "application/json" }, body: JSON.stringify({ job }) });
      const body = await res.json().catch(() => ({}));
      return res.ok && body.ok ? { ok: true } : { ok: false, error: body.error || `HTTP ${res.status}` };
    } catch (err) {
      return { ok: false, error: "relay_unreachable" };
    } finally {
      clearTimeout(timer);
    }
  }

  async function syncOffline() {
    const pending = await pendingAll();
    if (!pending.length) return;
    pending.sort((a, b) => a.issued_at.localeCompare(b.issued_at));
    const tickets = pending.map(({ temp_id, lease_id, seq_no, issued_at, lang: l, phone, customer_ref,
                                   notify_opt_in }) =>
      ({ temp_id, lease_id, seq_no, issued_at, lang: l, phone, customer_ref, notify_opt_in }));
    const { results } = await call("POST", "/kiosk/api/offline", { tickets });
    // Dropped once in the queue, or refused and recorded by the appliance for staff (the customer holds paper the
    // queue does not know: someone at the branch must see it). Anything else stays and is sent again.
    const finished = results.filter((r) => r.ok || (!r.retry && r.recorded)).map((r) => r.temp_id);
    await store("readwrite", (st) => { for (const id of finished) st.delete(id); return finished; });
  }

  // Each change is read-modify-written at once from what is stored *now*: a customer may take an offline number
  // while a lease request is out (its issue request failed), and a copy read before the await would put that number
  // back, handing it out twice (one temporary id for two customers, the second overwriting the first).
  async function topUpLeases() {
    if (!doc.settings.offline_lease_size) return;
    const usable = (l) => l.business_date === doc.business_date && l.numbers.some((n) => !l.used.includes(n.seq_no));
    const freeOf = (list) => list.reduce((sum, l) => sum + l.numbers.filter((n) => !l.used.includes(n.seq_no)).length,
                                         0);
    for (const s of doc.services) {
      let all = leases();
      const kept = (all[s.id] || []).filter(usable);
      if (kept.length !== (all[s.id] || []).length) { all[s.id] = kept; saveLeases(all); }
      if (!s.open || freeOf(kept) >= LEASE_LOW) continue;
      const lease = await call("POST", "/kiosk/api/leases", { service_id: s.id });
      all = leases();
      all[s.id] = [...(all[s.id] || []).filter(usable), { ...lease, used: [] }];
      saveLeases(all);
    }
  }

  // A kiosk runs for months: while its token is still valid it asks for a fresh one (a revoked kiosk cannot).
  async function renewToken() {
    const exp = tokenExpiry();
    if (exp === null || exp - Date.now() > RENEW_BEFORE_MS) return;
    const fresh = await call("POST", "/api/v1/auth/refresh");
    if (fresh.access_token) localStorage.setItem(TOKEN_KEY, fresh.access_token);
  }

  // ---- health check, reconnect, remote config ---------------------------------------------------------------
  function setOnline(on) {
    online = on;
    $("offline").hidden = on;
    app.dataset.online = String(on);
  }
  async function poll() {
    if (!token()) { show("unpaired"); return; }
    try {
      const next = await call("GET", "/kiosk/api/catalog");
      setOnline(true);
      if (app.dataset.screen === "unpaired") reset();
      if (next.version !== doc.version || JSON.stringify(next.services) !== JSON.stringify(doc.services)) {
        // A whole new document, applied between customers only: never a half-applied configuration.
        if (app.dataset.screen === "lang") applyDoc(next);
        else { pendingDoc = next; app.dataset.pending = "true"; }
      }
      await syncOffline();
      await topUpLeases();
      await renewToken();
      app.dataset.synced = "true";
    } catch (err) {
      if (err instanceof Unreachable) setOnline(false);
      else if (err instanceof Refused && err.status === 401) show("unpaired");
    }
  }
  async function loop() {
    await poll();
    setTimeout(loop, online ? POLL_MS : POLL_MS / 2);
  }

  renderServices();
  translate();
  show("lang");
  loop();
})();
