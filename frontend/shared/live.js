// A websocket to /ws/console or /ws/crew that reconnects by itself and never misses an event: it remembers
// the last sequence number it saw and reconnects with ?after=, so the server replays what was missed.

export class LiveSocket {
  // handlers: onMessage(msg), onState("connecting" | "open" | "closed"), onAuthFailed(error)
  constructor(path, { token, after = null, handlers = {} }) {
    this.path = path;
    this.token = token;
    this.lastSeq = after;
    this.handlers = handlers;
    this.ws = null;
    this.backoff = 500;
    this.stopped = false;
    this.timer = null;
    this.heartbeat = null;
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams({ token: this.token });
    if (this.lastSeq !== null && this.lastSeq !== undefined) q.set("after", String(this.lastSeq));
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
    if (this.ws) this.ws.close(1000, "bye");
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
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
      this.state("open");
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => this.send({ type: "heartbeat" }), 20000);
    };
    ws.onmessage = (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      if (msg.type === "event" && typeof msg.seq === "number") {
        if (!msg.resent && this.lastSeq !== null && msg.seq <= this.lastSeq) return; // already applied
        if (this.lastSeq === null || msg.seq > this.lastSeq) this.lastSeq = msg.seq;
      }
      if (msg.type === "hello" && this.lastSeq === null) this.lastSeq = msg.seq;
      if (msg.type === "error" && msg.error && msg.error.status === 401 && this.handlers.onAuthFailed) {
        this.handlers.onAuthFailed(msg.error);
      }
      if (this.handlers.onMessage) this.handlers.onMessage(msg);
    };
    ws.onclose = (e) => {
      clearInterval(this.heartbeat);
      if (this.ws === ws) this.ws = null;
      this.state("closed");
      if (e.code === 4401 || e.code === 4403) {
        this.stopped = true;
        return;
      }
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.connect(), this.backoff);
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
