// A websocket to /ws/console or /ws/crew that reconnects by itself and never misses an event: it remembers
// the last sequence number it saw and reconnects with ?after=, so the server replays what was missed.
//
// A connection that silently died (a Wi-Fi roam, a cell handover: the TCP socket stays half-open for minutes)
// is noticed by a watchdog: the server answers every heartbeat, so a socket that has heard nothing for
// WATCHDOG_MS is dropped and opened again.

const HEARTBEAT_MS = 15000;
const WATCHDOG_MS = 45000;

export class LiveSocket {
  // handlers: onMessage(msg), onState("connecting" | "open" | "closed"), onAuthFailed(error), onReset()
  constructor(path, { token, after = null, handlers = {}, batch = false }) {
    this.path = path;
    this.batch = batch; // the server may put messages that wait together into one {"type": "batch"} frame
    this.token = token;
    this.lastSeq = after;
    this.handlers = handlers;
    this.ws = null;
    this.backoff = 500;
    this.stopped = false;
    this.timer = null;
    this.heartbeat = null;
    this.lastHeard = 0;
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams({ token: this.token });
    if (this.lastSeq !== null && this.lastSeq !== undefined) q.set("after", String(this.lastSeq));
    if (this.batch) q.set("batch", "1");
    return `${proto}//${location.host}${this.path}?${q}`;
  }

  start() {
    this.stopped = false;
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    this.drop("bye");
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  // forget the current socket (its late events are ignored) and close it
  drop(reason) {
    const ws = this.ws;
    this.ws = null;
    clearInterval(this.heartbeat);
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(4000, reason);
    } catch {
      /* already closed */
    }
  }

  // drop the socket now and open a new one (the radio came back, or the socket looks dead)
  reconnect(reason = "reconnect") {
    if (this.stopped) return;
    this.drop(reason);
    this.state("closed");
    this.backoff = 500;
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.drop("replaced");
    this.state("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      this.lastHeard = Date.now();
      this.state("open");
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => {
        if (Date.now() - this.lastHeard > WATCHDOG_MS) return this.reconnect("silent");
        this.send({ type: "heartbeat" });
      }, HEARTBEAT_MS);
    };
    ws.onmessage = (e) => {
      this.lastHeard = Date.now();
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      for (const one of msg.type === "batch" ? msg.messages : [msg]) this.handle(one);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return; // a socket we already replaced
      this.ws = null;
      clearInterval(this.heartbeat);
      this.state("closed");
      if (e.code === 4401 || e.code === 4403) {
        this.stopped = true;
        return;
      }
      if (e.code === 4400) this.lastSeq = null; // our after= was refused: start from now, the state is reread
      this.retry();
    };
  }

  // one message (a batch frame's messages one by one, in order)
  handle(msg) {
    if (msg.type === "hello") {
      if (this.lastSeq !== null && typeof msg.seq === "number" && msg.seq < this.lastSeq) {
        // the server's log is behind what we saw (a restored database): start over from it
        this.lastSeq = msg.seq;
        if (this.handlers.onReset) this.handlers.onReset();
      }
      if (this.lastSeq === null) this.lastSeq = msg.seq;
    }
    if (msg.type === "event" && typeof msg.seq === "number") {
      if (!msg.resent && this.lastSeq !== null && msg.seq <= this.lastSeq) return; // already applied
      if (this.lastSeq === null || msg.seq > this.lastSeq) this.lastSeq = msg.seq;
    }
    if (msg.type === "error" && msg.error && msg.error.status === 401 && this.handlers.onAuthFailed) {
      this.handlers.onAuthFailed(msg.error);
    }
    if (this.handlers.onMessage) this.handlers.onMessage(msg);
  }

  retry() {
    if (this.stopped) return;
    const wait = this.backoff * (0.75 + Math.random() * 0.5); // jitter: a whole centre must not reconnect in step
    this.timer = setTimeout(() => this.connect(), wait);
    this.backoff = Math.min(this.backoff * 2, 5000);
  }

  state(s) {
    if (this.handlers.onState) this.handlers.onState(s);
  }

  send(msg) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }
}
