"""The browser half of the pointer explorers: two small ES modules that anywidget loads as they are (no build step).

Not for reading first: the course's ideas live in Python (:mod:`vae_lesson.views.pointer` and
:mod:`vae_lesson.views.widgets`). This file only moves pixels and pointer positions between the page and the kernel.

* :data:`POINTER_FIGURE_ESM` -- a matplotlib figure drawn once (a PNG), its axes' pixel boxes and data limits, and an
  overlay (marker, ellipse, trail, vertical line) drawn by the browser at every update. A click, a drag or an arrow
  key becomes a point in *data* coordinates, sent to the kernel as ``pointer = [seq, x, y]``; the kernel decodes
  and answers with the images (raw ``uint8`` bytes, one per pixel, drawn without smoothing), the overlay and
  ``frame = seq``. The browser never has more than one request in flight and always sends the newest point, so a
  slow kernel lowers the rate of updates but the picture never lags behind a queue.
* :data:`DRAW_PAD_ESM` -- a black square to draw on with the mouse (or a finger). While you draw, the drawing is
  averaged down to ``side x side`` grey levels (like MNIST's anti-aliased strokes) and sent as
  ``drawing = {"seq": n, "pixels": [...]}``, with the same one-in-flight rule.

Both keep counters on their root element (``data-frames``: answers received, ``data-sent``: requests sent,
``data-busy``: a request is in flight, ``data-waited``: milliseconds spent waiting for answers) so a browser test can
measure updates per second and the round trip without guessing.
"""

POINTER_FIGURE_ESM = r"""
const MAX_IN_FLIGHT = 1;  // ipywidgets itself holds back a second state update until the kernel is idle
function bytesOf(v) {
  if (!v) return new Uint8Array(0);
  if (v instanceof DataView) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return new Uint8Array(0);
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "vae-pointer-figure";
  root.style.cssText = "display:flex;flex-direction:column;gap:4px;font:13px sans-serif;color:#222";
  const title = document.createElement("div");
  title.style.cssText = "font-weight:bold";
  const row = document.createElement("div");
  row.style.cssText = "display:flex;gap:14px;align-items:flex-start;flex-wrap:wrap";
  const canvas = document.createElement("canvas");
  canvas.className = "vae-figure";
  canvas.tabIndex = 0;
  canvas.style.cssText = "touch-action:none;outline:none;border:1px solid #ccc";
  const side = document.createElement("div");
  side.className = "vae-panels";
  side.style.cssText = "display:flex;flex-direction:column;gap:8px";
  const status = document.createElement("div");
  status.className = "vae-status";
  status.style.cssText = "font-family:monospace;white-space:pre";
  row.append(canvas, side);
  root.append(title, row, status);
  el.append(root);
  const ctx = canvas.getContext("2d");

  let background = null, frames = 0, sent = 0, seq = model.get("frame"), inflight = 0, wanted = null;
  let dragRegion = null;
  let lastSentAt = 0, current = null, waited = 0;

  function regionAt(px, py) {
    for (const r of model.get("regions")) {
      if (px >= r.x0 && px <= r.x1 && py >= r.y0 && py <= r.y1) return r;
    }
    return null;
  }
  const toData = (r, px, py) => [r.xlim[0] + (px - r.x0) / (r.x1 - r.x0) * (r.xlim[1] - r.xlim[0]),
                                 r.ylim[0] + (r.y1 - py) / (r.y1 - r.y0) * (r.ylim[1] - r.ylim[0])];
  const toPixel = (r, x, y) => [r.x0 + (x - r.xlim[0]) / (r.xlim[1] - r.xlim[0]) * (r.x1 - r.x0),
                                r.y1 - (y - r.ylim[0]) / (r.ylim[1] - r.ylim[0]) * (r.y1 - r.y0)];

  function clampValue(value) {
    const c = model.get("clamp");
    return value.map((v, i) => c && c.length ? Math.min(c[i][1], Math.max(c[i][0], v)) : v);
  }

  function send() {
    if (wanted === null) return;
    if (inflight >= MAX_IN_FLIGHT && performance.now() - lastSentAt < 1000) return;  // (1 s safety net)
    seq = Math.max(seq, model.get("frame")) + 1;  // the kernel may have answered a point set from Python
    sent += 1; inflight += 1; lastSentAt = performance.now(); root.dataset.busy = "1";
    model.set("pointer", [seq, ...wanted]);
    model.save_changes();
    wanted = null;
    root.dataset.sent = String(sent);
  }

  function point(value) {
    current = clampValue(value);
    wanted = current;
    send();
  }

  function fromEvent(event, region) {
    const rect = canvas.getBoundingClientRect();
    const px = (event.clientX - rect.left) * canvas.width / rect.width;
    const py = (event.clientY - rect.top) * canvas.height / rect.height;
    const r = region || regionAt(px, py);
    if (!r) return null;
    const [x, y] = toData(r, px, py);
    return [r, model.get("mode") === "x" ? [x] : [x, y]];
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (model.get("mode") === "none") return;
    const hit = fromEvent(event, null);
    if (!hit) return;
    dragRegion = hit[0];
    canvas.setPointerCapture(event.pointerId);
    canvas.focus();
    point(hit[1]);
    event.preventDefault();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (dragRegion === null) return;
    const hit = fromEvent(event, dragRegion);
    if (hit) point(hit[1]);
  });
  const release = () => { dragRegion = null; };
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("keydown", (event) => {
    const moves = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1]};
    const move = moves[event.key];
    if (!move || model.get("mode") === "none") return;
    const step = model.get("step");
    const start = current || model.get("overlay").marker || model.get("overlay").vline_at || [0, 0];
    const value = model.get("mode") === "x" ? [start[0] + move[0] * step] : [start[0] + move[0] * step,
                                                                               start[1] + move[1] * step];
    point(value);
    event.preventDefault();
  });

  function drawOverlay() {
    if (!background) return;
    ctx.drawImage(background, 0, 0);
    const overlay = model.get("overlay") || {}, k = model.get("pixel_ratio");
    for (const r of model.get("regions")) {
      ctx.save();
      ctx.beginPath();
      ctx.rect(r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0);
      ctx.clip();
      if (overlay.trail && overlay.trail.length > 1) {
        ctx.strokeStyle = "rgba(214,39,40,0.55)"; ctx.lineWidth = 1.5 * k; ctx.beginPath();
        overlay.trail.forEach(([x, y], i) => {
          const [px, py] = toPixel(r, x, y);
          i ? ctx.lineTo(px, py) : ctx.moveTo(px, py);
        });
        ctx.stroke();
      }
      if (overlay.ellipse) {
        const [cx, cy] = toPixel(r, ...overlay.ellipse.center);
        const rx = Math.abs(toPixel(r, overlay.ellipse.center[0] + overlay.ellipse.radii[0], 0)[0] - cx);
        const ry = Math.abs(toPixel(r, 0, overlay.ellipse.center[1] + overlay.ellipse.radii[1])[1] - cy);
        ctx.beginPath(); ctx.ellipse(cx, cy, Math.max(rx, k), Math.max(ry, k), 0, 0, 2 * Math.PI);
        ctx.fillStyle = "rgba(214,39,40,0.25)"; ctx.fill();
        ctx.strokeStyle = "rgb(214,39,40)"; ctx.lineWidth = 2 * k; ctx.stroke();
        const a = 6 * k;
        ctx.beginPath(); ctx.moveTo(cx - a, cy); ctx.lineTo(cx + a, cy); ctx.moveTo(cx, cy - a); ctx.lineTo(cx, cy + a);
        ctx.stroke();
      }
      if (overlay.marker) {
        const [px, py] = toPixel(r, ...overlay.marker);
        ctx.lineCap = "round";
        const a = 8 * k;
        for (const [width, colour] of [[7, "white"], [3.5, "black"]]) {
          ctx.strokeStyle = colour; ctx.lineWidth = width * k; ctx.beginPath();
          ctx.moveTo(px - a, py - a); ctx.lineTo(px + a, py + a);
          ctx.moveTo(px - a, py + a); ctx.lineTo(px + a, py - a);
          ctx.stroke();
        }
      }
      if (overlay.vline !== undefined && overlay.vline !== null) {
        const px = toPixel(r, overlay.vline, 0)[0];
        ctx.strokeStyle = "rgb(255,127,14)"; ctx.lineWidth = 2.5 * k; ctx.beginPath();
        ctx.moveTo(px, r.y0); ctx.lineTo(px, r.y1); ctx.stroke();
      }
      ctx.restore();
    }
  }

  function loadBackground() {
    const blob = new Blob([bytesOf(model.get("background"))], {type: "image/png"});
    createImageBitmap(blob).then((bitmap) => {
      background = bitmap;
      canvas.width = bitmap.width; canvas.height = bitmap.height;
      const ratio = model.get("pixel_ratio");  // the PNG has ratio x the screen pixels: crisp on any screen
      canvas.style.width = bitmap.width / ratio + "px"; canvas.style.height = bitmap.height / ratio + "px";
      drawOverlay();
    }).catch(() => { background = null; });
  }

  function drawPanels() {
    const n = model.get("panel_side"), scale = model.get("panel_scale"), captions = model.get("captions");
    const bytes = bytesOf(model.get("panels"));
    while (side.children.length > captions.length) side.lastChild.remove();
    while (side.children.length < captions.length) {
      const box = document.createElement("div");
      const caption = document.createElement("div");
      caption.className = "vae-caption";
      caption.style.cssText = "max-width:" + (n * scale + 40) + "px;white-space:normal";
      const image = document.createElement("canvas");
      image.className = "vae-panel";
      image.style.cssText = "image-rendering:pixelated;border:1px solid #ccc;display:block";
      box.append(caption, image); side.append(box);
    }
    captions.forEach((text, k) => {
      const [caption, image] = side.children[k].children;
      caption.textContent = text;
      image.width = n; image.height = n;
      image.style.width = n * scale + "px"; image.style.height = n * scale + "px";
      if (bytes.length < (k + 1) * n * n) return;
      const data = new ImageData(n, n);
      for (let i = 0; i < n * n; i++) {
        const g = bytes[k * n * n + i];
        data.data[4 * i] = g; data.data[4 * i + 1] = g; data.data[4 * i + 2] = g; data.data[4 * i + 3] = 255;
      }
      image.getContext("2d").putImageData(data, 0, 0);
    });
  }

  function showText() {
    title.textContent = model.get("title");
    const error = model.get("error");
    status.textContent = model.get("status") + (error ? "\n" + error : "");
    status.style.color = error ? "#b00" : "#222";
  }
  model.on("change:background", loadBackground);
  model.on("change:regions", drawOverlay);
  model.on("change:overlay", drawOverlay);
  model.on("change:panels", drawPanels);
  model.on("change:captions", drawPanels);
  model.on("change:title", showText);
  model.on("change:status", showText);
  model.on("change:error", showText);
  model.on("change:frame", () => {
    if (inflight) { waited += performance.now() - lastSentAt; root.dataset.waited = waited.toFixed(1); }
    frames += 1; inflight = Math.max(0, inflight - 1);
    root.dataset.frames = String(frames); root.dataset.busy = inflight ? "1" : "0";
    send();  // the newest point, if the pointer moved while the kernel was busy
  });
  root.dataset.frames = "0"; root.dataset.sent = "0"; root.dataset.busy = "0"; root.dataset.waited = "0";
  loadBackground(); drawPanels(); showText();
}
export default { render };
"""

DRAW_PAD_ESM = r"""
const MAX_IN_FLIGHT = 1;
function render({ model, el }) {
  const scale = model.get("scale"), n = model.get("side"), size = n * scale;
  const root = document.createElement("div");
  root.className = "vae-draw-pad";
  root.style.cssText = "display:flex;flex-direction:column;gap:6px;font:13px sans-serif";
  const caption = document.createElement("div");
  caption.textContent = model.get("caption");
  const canvas = document.createElement("canvas");
  canvas.width = size; canvas.height = size;
  canvas.style.cssText = `width:${size}px;height:${size}px;touch-action:none;cursor:crosshair;border:1px solid #888`;
  const clear = document.createElement("button");
  clear.className = "vae-clear";
  clear.textContent = "clear the pad";
  clear.style.cssText = "width:max-content;padding:3px 10px";
  root.append(caption, canvas, clear);
  el.append(root);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  let frames = 0, sent = 0, seq = model.get("frame"), inflight = 0, dirty = false, last = null, lastSentAt = 0;
  let waited = 0;

  function wipe() { ctx.fillStyle = "black"; ctx.fillRect(0, 0, size, size); }

  function pixels() {  // the mean grey level of each scale x scale block: side x side values in 0..255
    const rgba = ctx.getImageData(0, 0, size, size).data, out = new Array(n * n).fill(0);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) out[Math.floor(y / scale) * n + Math.floor(x / scale)] += rgba[4 * (y * size + x)];
    }
    return out.map((v) => Math.round(v / (scale * scale)));
  }

  function send() {
    if (!dirty) return;
    if (inflight >= MAX_IN_FLIGHT && performance.now() - lastSentAt < 1000) return;
    seq = Math.max(seq, model.get("frame")) + 1;
    sent += 1; inflight += 1; dirty = false; lastSentAt = performance.now(); root.dataset.busy = "1";
    model.set("drawing", { seq: seq, pixels: pixels() });
    model.save_changes();
    root.dataset.sent = String(sent);
  }

  function position(event) {
    const rect = canvas.getBoundingClientRect();
    return [(event.clientX - rect.left) * size / rect.width, (event.clientY - rect.top) * size / rect.height];
  }

  function stroke(to) {
    ctx.strokeStyle = "white"; ctx.fillStyle = "white";
    ctx.lineWidth = model.get("brush") * scale; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath();
    if (last) { ctx.moveTo(...last); ctx.lineTo(...to); ctx.stroke(); }
    else { ctx.arc(to[0], to[1], ctx.lineWidth / 2, 0, 2 * Math.PI); ctx.fill(); }
    last = to; dirty = true; send();
  }

  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId); last = null; stroke(position(event)); event.preventDefault();
  });
  canvas.addEventListener("pointermove", (event) => { if (last) stroke(position(event)); });
  const release = () => { last = null; };
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  clear.addEventListener("click", () => { wipe(); dirty = true; send(); });

  function load() {  // an image the kernel put on the pad (e.g. a test digit to edit)
    const image = model.get("loaded");
    if (!image || image.length !== n * n) return;
    const small = document.createElement("canvas");
    small.width = n; small.height = n;
    const data = new ImageData(n, n);
    image.forEach((g, i) => { data.data.set([g, g, g, 255], 4 * i); });
    small.getContext("2d").putImageData(data, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(small, 0, 0, size, size);
    dirty = true; send();
  }
  model.on("change:loaded", load);
  model.on("change:error", () => {
    const error = model.get("error");
    caption.textContent = error || model.get("caption");
    caption.style.color = error ? "#b00" : "inherit";
  });
  model.on("change:frame", () => {
    if (inflight) { waited += performance.now() - lastSentAt; root.dataset.waited = waited.toFixed(1); }
    frames += 1; inflight = Math.max(0, inflight - 1);
    root.dataset.frames = String(frames); root.dataset.busy = inflight ? "1" : "0"; send();
  });
  root.dataset.frames = "0"; root.dataset.sent = "0"; root.dataset.busy = "0"; root.dataset.waited = "0";
  wipe();
  load();
}
export default { render };
"""
