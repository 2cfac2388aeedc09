// Alarm tones without sound files. Browsers let a page play sound only after a user gesture, so the pages
// call listenForUnlock() at start: any click, tap or key of the shift unlocks it (also after a reload).

let audio = null;

export function unlockAudio() {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    if (audio.state === "suspended") audio.resume();
  } catch {
    audio = null;
  }
}

export function listenForUnlock() {
  addEventListener("pointerdown", unlockAudio);
  addEventListener("keydown", unlockAudio);
}

// tones: frequencies in Hz, each 0.16 s, one every 0.22 s
export function tones(frequencies, { volume = 0.08, type = "square" } = {}) {
  if (!audio) return;
  if (audio.state !== "running") audio.resume().catch(() => {});
  frequencies.forEach((f, i) => {
    const o = audio.createOscillator();
    const g = audio.createGain();
    o.frequency.value = f;
    o.type = type;
    g.gain.value = volume;
    o.connect(g).connect(audio.destination);
    const at = audio.currentTime + i * 0.22;
    o.start(at);
    o.stop(at + 0.16);
  });
}
