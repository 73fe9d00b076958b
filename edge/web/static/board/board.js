/* Display board: follows /board/events (SSE) and resyncs from /board/state after every (re)connect.
   No build step, no dependencies. The server sends the whole board in each `state` message, so a board can never
   be left with a gap; `seq` only orders messages. */
(() => {
  "use strict";
  const boot = JSON.parse(document.getElementById("board-boot").textContent);
  const labels = boot.labels;
  const query = `${boot.scope.kind}=${encodeURIComponent(boot.scope.id)}&key=${encodeURIComponent(boot.key)}`;
  const $ = (id) => document.getElementById(id);
  const STALE_MS = 25000;   // the server pings every 10 s: silence this long means a dead connection
  const RETRY_MS = 2000;

  let seq = -1;
  let state = boot.state;
  let source = null;
  let lastMessage = Date.now();
  let retryTimer = null;

  // ---- rendering -------------------------------------------------------------------------------------------

  function text(el, value) { if (el.textContent !== value) el.textContent = value; }

  function render(next) {
    const now = next.now;
    const card = $("now");
    text($("now-number"), now ? now.ticket_number : "—");
    text($("now-counter"), now ? now.counter_name : labels.waiting);
    // "Counter 3" only when the name is a bare number: names such as "Loket 3" already say it.
    $("now-counter-label").hidden = !now || /[^\d\s]/.test(now.counter_name);
    $("recall-badge").hidden = !(now && now.recall_count > 0);
    const key = now ? now.seq_key : "";
    if (key && key !== card.dataset.key) {
      card.classList.remove("flash");
      void card.offsetWidth;  // restart the animation
      card.classList.add("flash");
    }
    card.dataset.key = key;
    const list = $("recent");
    const items = next.recent.map((call) => {
      const li = document.createElement("li");
      const num = document.createElement("span");
      num.className = "num";
      num.textContent = call.ticket_number;
      const ctr = document.createElement("span");
      ctr.className = "ctr";
      ctr.textContent = call.counter_name;
      li.append(num, ctr);
      return li;
    });
    list.replaceChildren(...items);
    document.body.dataset.seq = String(next.seq);
    playlist.update(next.playlist || [], next.timezone);
  }

  function apply(next) {
    if (typeof next.seq !== "number" || next.seq < seq) return;  // an older answer overtaken by the stream
    seq = next.seq;
    state = next;
    render(next);
  }

  async function resync() {
    try {
      const response = await fetch(`/board/state?${query}`, { cache: "no-store" });
      if (response.ok) apply(await response.json());
    } catch (_) { /* offline: the stream's reconnect will try again */ }
  }

  // ---- connection ------------------------------------------------------------------------------------------

  function online(yes) {
    $("offline").hidden = yes;
    document.body.dataset.online = yes ? "1" : "0";
  }

  function connect() {
    clearTimeout(retryTimer);
    if (source) source.close();
    seq = -1;  // after a reconnect the server's state wins, even an older one (e.g. after a restore)
    source = new EventSource(`/board/events?${query}`);
    source.onopen = () => { lastMessage = Date.now(); online(true); resync(); };
    source.addEventListener("state", (e) => { lastMessage = Date.now(); online(true); apply(JSON.parse(e.data)); });
    source.addEventListener("announce", (e) => { lastMessage = Date.now(); speaker.enqueue(JSON.parse(e.data)); });
    source.addEventListener("ping", () => { lastMessage = Date.now(); online(true); });
    source.onerror = () => {
      online(false);
      if (source.readyState === EventSource.CLOSED) retryTimer = setTimeout(connect, RETRY_MS);  // e.g. a 5xx
    };
  }

  setInterval(() => {
    if (Date.now() - lastMessage > STALE_MS) { online(false); connect(); }
  }, 5000);

  // ---- clock -----------------------------------------------------------------------------------------------

  function tick() {
    const tz = state.timezone || undefined;
    try {
      text($("clock"), new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: tz }).format(new Date()));
    } catch (_) {
      text($("clock"), new Date().toTimeString().slice(0, 5));
    }
  }

  // ---- announcements (only with ?audio=1: the kiosk browser must allow autoplay) -----------------------------

  const speaker = {
    queue: [],
    playing: false,
    enqueue(item) {
      if (!boot.audio) return;
      this.queue.push(item);
      this.next();
    },
    next() {
      if (this.playing || !this.queue.length) return;
      const item = this.queue.shift();
      const audio = new Audio(`${item.url}?key=${encodeURIComponent(boot.key)}`);
      this.playing = true;
      const done = () => { this.playing = false; this.next(); };
      audio.onended = done;
      audio.onerror = done;
      audio.play().catch(done);
    },
  };

  // ---- signage playlist ------------------------------------------------------------------------------------

  const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
  const playlist = {
    items: [], signature: "", index: -1, timer: null, timezone: undefined,
    update(items, timezone) {
      this.timezone = timezone || undefined;
      const signature = JSON.stringify(items);
      if (signature === this.signature) return;
      this.signature = signature;
      this.items = items;
      this.index = -1;
      this.advance();
    },
    local() {
      const parts = new Intl.DateTimeFormat("en-GB", { weekday: "short", hour: "2-digit", minute: "2-digit", hour12: false, timeZone: this.timezone })
        .formatToParts(new Date());
      const get = (type) => (parts.find((p) => p.type === type) || {}).value || "";
      return { day: get("weekday").slice(0, 3).toLowerCase(), time: `${get("hour")}:${get("minute")}` };
    },
    active() {
      let now;
      try { now = this.local(); } catch (_) { now = { day: DAYS[new Date().getDay()], time: new Date().toTimeString().slice(0, 5) }; }
      return this.items.filter((s) => (!s.days.length || s.days.includes(now.day))
        && (!s.start || now.time >= s.start) && (!s.end || now.time < s.end));
    },
    src(item) {
      return /^https?:/.test(item.src) ? `/board/remote?src=${encodeURIComponent(item.src)}` : item.src;
    },
    advance() {
      clearTimeout(this.timer);
      const active = this.active();
      const box = $("slides");
      if (!active.length) {
        box.replaceChildren();
        $("signage").classList.remove("playing");
        this.timer = setTimeout(() => this.advance(), 30000);  // a schedule may open later
        return;
      }
      this.index = (this.index + 1) % active.length;
      const item = active[this.index];
      let el;
      if (item.kind === "image") {
        el = document.createElement("img");
        el.alt = "";
      } else if (item.kind === "video") {
        el = document.createElement("video");
        el.muted = true; el.autoplay = true; el.playsInline = true; el.loop = active.length === 1;
        el.onended = () => this.advance();
      } else {
        el = document.createElement("iframe");
        el.setAttribute("sandbox", "allow-scripts");
        el.setAttribute("scrolling", "no");
      }
      el.src = this.src(item);
      box.replaceChildren(el);
      $("signage").classList.add("playing");
      this.timer = setTimeout(() => this.advance(), item.seconds * 1000);
    },
  };

  // ---- start -----------------------------------------------------------------------------------------------

  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("/board/sw.js", { scope: "/board" }).catch(() => {});
  }
  apply(boot.state);
  tick();
  setInterval(tick, 1000);
  connect();
})();
