/* EmoCare's analysis in the page: BlazeFace and EmoCare's expression model on onnxruntime-web.
 *
 * Why a port and not a new pipeline: the server's analyzer (src/emocare/vision/blazeface.py,
 * emocare_backend.py, fer_backend.square_crop) is the specification, and the scores care acts
 * on are calibrated on exactly what it computes. So every step is written again here with the
 * same arithmetic, down to OpenCV's: INTER_AREA resizing (its float32 accumulation, its
 * integer-scale shortcut, its bilinear emulation when enlarging), the fixed-point BGR→grey
 * weights, Python's round-half-even, numpy's float32 box decoding and the float32 0.3 IoU
 * threshold. tests/test_device_parity.py holds the two to the same scores on real faces in
 * headless Chromium.
 *
 * Not ported: the Haar "second opinion" on faces neither BlazeFace model is sure of (it would
 * need OpenCV.js): such a frame has no face here. The page gives frames as ImageData (RGBA);
 * nothing leaves the page.
 *
 * Usage: const analyzer = await loadAnalyzer(); const faces = await analyzer.analyze(imageData);
 */

export const EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
/** Side of the crops the model was trained on (emocare_backend.CROP_SIDE). */
export const CROP_SIDE = 64;
const DEFAULT_MARGIN = 0.1;
const DBL_EPSILON = 2.220446049250313e-16;
const fround = Math.fround;

// --- the arithmetic of Python and OpenCV --------------------------------------------------

/** Python's round() and OpenCV's cvRound: halves go to the even neighbour. */
export function roundHalfEven(x) {
  if (Math.abs(x % 1) === 0.5) return 2 * Math.round(x / 2);
  return Math.round(x);
}

function saturateU8(x) {
  const r = roundHalfEven(x);
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

/** x / 127.5 - 1 in float32, as numpy computes it on uint8 pixels made float32. */
const UNIT = Float32Array.from({ length: 256 }, (_, v) => fround(fround(v / 127.5) - 1));

/** cv2.cvtColor(BGR2GRAY) on 8 bits: OpenCV 4's fixed-point weights of 15 bits, rounded
 * (the 14-bit ones of older versions differ by one level on about one pixel in a thousand). */
export function grayFromRGBA(rgba, width, height) {
  const gray = new Uint8Array(width * height);
  for (let i = 0, p = 0; i < gray.length; i++, p += 4) {
    gray[i] = (rgba[p] * 9798 + rgba[p + 1] * 19235 + rgba[p + 2] * 3735 + 16384) >> 15;
  }
  return gray;
}

/** The colour channels of RGBA pixels, interleaved (the alpha of a camera frame is opaque). */
export function rgbFromRGBA(rgba, width, height) {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, p = 0, q = 0; i < width * height; i++, p += 4, q += 3) {
    rgb[q] = rgba[p];
    rgb[q + 1] = rgba[p + 1];
    rgb[q + 2] = rgba[p + 2];
  }
  return rgb;
}

/** cv2.resize(src, (dw, dh), interpolation=cv2.INTER_AREA) on 8-bit pixels of cn channels. */
export function resizeArea(src, sw, sh, cn, dw, dh) {
  if (sw === dw && sh === dh) return Uint8Array.from(src);
  const invX = dw / sw;
  const invY = dh / sh;
  const scaleX = 1 / invX;
  const scaleY = 1 / invY;
  if (scaleX >= 1 && scaleY >= 1) {
    const ix = roundHalfEven(scaleX);
    const iy = roundHalfEven(scaleY);
    if (Math.abs(scaleX - ix) < DBL_EPSILON && Math.abs(scaleY - iy) < DBL_EPSILON) {
      return areaFast(src, sw, sh, cn, dw, dh, ix, iy);
    }
    return areaGeneral(src, sw, sh, cn, dw, dh, scaleX, scaleY);
  }
  return linearArea(src, sw, sh, cn, dw, dh, scaleX, scaleY, invX, invY);
}

/** OpenCV's resizeAreaFast_: integer scales, integer sums (2×2 rounds with +2 >> 2). */
function areaFast(src, sw, sh, cn, dw, dh, ix, iy) {
  const dst = new Uint8Array(dw * dh * cn);
  const area = ix * iy;
  const scale = fround(1 / area);
  const rowStride = sw * cn;
  for (let dy = 0; dy < dh; dy++) {
    const sy0 = dy * iy;
    for (let dx = 0; dx < dw; dx++) {
      for (let c = 0; c < cn; c++) {
        let sum = 0;
        for (let sy = 0; sy < iy; sy++) {
          const row = (sy0 + sy) * rowStride + dx * ix * cn + c;
          for (let sx = 0; sx < ix; sx++) sum += src[row + sx * cn];
        }
        const out = (dy * dw + dx) * cn + c;
        dst[out] = ix === 2 && iy === 2 && cn !== 2 ? (sum + 2) >> 2 : saturateU8(fround(sum * scale));
      }
    }
  }
  return dst;
}

/** OpenCV's computeResizeAreaTab: which source cells feed each destination cell, and how much. */
function areaTab(ssize, dsize, cn, scale) {
  const di = [];
  const si = [];
  const alpha = [];
  const push = (d, s, a) => {
    di.push(d);
    si.push(s);
    alpha.push(a);
  };
  for (let dx = 0; dx < dsize; dx++) {
    const fsx1 = dx * scale;
    const fsx2 = fsx1 + scale;
    const cellWidth = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1);
    let sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1);
    sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) push(dx * cn, (sx1 - 1) * cn, fround((sx1 - fsx1) / cellWidth));
    for (let sx = sx1; sx < sx2; sx++) push(dx * cn, sx * cn, fround(1.0 / cellWidth));
    if (fsx2 - sx2 > 1e-3) {
      push(dx * cn, sx2 * cn, fround(Math.min(Math.min(fsx2 - sx2, 1), cellWidth) / cellWidth));
    }
  }
  return { di, si, alpha };
}

/** OpenCV's resizeArea_: fractional scales, float32 sums row by row. */
function areaGeneral(src, sw, sh, cn, dw, dh, scaleX, scaleY) {
  const xtab = areaTab(sw, dw, cn, scaleX);
  const ytab = areaTab(sh, dh, 1, scaleY);
  const width = dw * cn;
  const dst = new Uint8Array(width * dh);
  const buf = new Float32Array(width);
  const sum = new Float32Array(width);
  let prevDy = ytab.di[0];
  for (let j = 0; j < ytab.di.length; j++) {
    const beta = ytab.alpha[j];
    const dy = ytab.di[j];
    const row = ytab.si[j] * sw * cn;
    buf.fill(0);
    for (let k = 0; k < xtab.di.length; k++) {
      const dxn = xtab.di[k];
      const sxn = row + xtab.si[k];
      const a = xtab.alpha[k];
      for (let c = 0; c < cn; c++) buf[dxn + c] += fround(src[sxn + c] * a);
    }
    if (dy !== prevDy) {
      const out = prevDy * width;
      for (let dx = 0; dx < width; dx++) {
        dst[out + dx] = saturateU8(sum[dx]);
        sum[dx] = beta * buf[dx];
      }
      prevDy = dy;
    } else {
      for (let dx = 0; dx < width; dx++) sum[dx] += fround(beta * buf[dx]);
    }
  }
  const out = prevDy * width;
  for (let dx = 0; dx < width; dx++) dst[out + dx] = saturateU8(sum[dx]);
  return dst;
}

/** INTER_AREA when enlarging: OpenCV's bilinear with "area" coefficients, 11-bit fixed point. */
function linearArea(src, sw, sh, cn, dw, dh, scaleX, scaleY, invX, invY) {
  const ONE = 2048;
  const coefs = (d, scale, inv, size) => {
    let s = Math.floor(d * scale);
    let f = fround(d + 1 - (s + 1) * inv);
    f = f <= 0 ? 0 : fround(f - Math.floor(f));
    let inside = true;
    if (s + 1 >= size) {
      inside = false;
      if (s >= size - 1) {
        f = 0;
        s = size - 1;
      }
    }
    return [s, roundHalfEven(fround(fround(1 - f) * ONE)), roundHalfEven(fround(f * ONE)), inside];
  };
  const xs = Array.from({ length: dw }, (_, dx) => coefs(dx, scaleX, invX, sw));
  let xmax = dw;
  xs.forEach(([, , , inside], dx) => {
    if (!inside) xmax = Math.min(xmax, dx);
  });
  const hrow = (sy) => {
    const out = new Int32Array(dw * cn);
    const base = sy * sw * cn;
    for (let dx = 0; dx < dw; dx++) {
      const [sx, a0, a1] = xs[dx];
      for (let c = 0; c < cn; c++) {
        const p = base + sx * cn + c;
        out[dx * cn + c] = dx < xmax ? src[p] * a0 + src[p + cn] * a1 : src[p] * ONE;
      }
    }
    return out;
  };
  const width = dw * cn;
  const dst = new Uint8Array(width * dh);
  const simdEnd = width - (width % 16);
  for (let dy = 0; dy < dh; dy++) {
    const [sy, b0, b1] = coefs(dy, scaleY, invY, sh);
    const r0 = hrow(Math.min(sy, sh - 1));
    const r1 = hrow(Math.min(sy + 1, sh - 1));
    for (let x = 0; x < width; x++) {
      let v;
      if (x < simdEnd) {
        // VResizeLinearVec_32s8u: 16-bit products' high halves, then (+2) >> 2
        v = (((r0[x] >> 4) * b0) >> 16) + (((r1[x] >> 4) * b1) >> 16);
        v = (v + 2) >> 2;
      } else {
        v = (r0[x] * b0 + r1[x] * b1 + (1 << 21)) >> 22;
      }
      dst[dy * width + x] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return dst;
}

// --- the crop the network sees (fer_backend.square_crop, emocare_backend.model_crop) --------

/** A square crop around box = [x, y, w, h] grown by margin per side, padded where it leaves
 * the frame with the mean of the frame's bottom two rows (as the model was trained). */
export function squareCrop(gray, width, height, box, margin) {
  const [x, y, w, h] = box;
  const side = Math.max(w, h);
  const cx = x + w / 2;
  const cy = y + h / 2;
  const half = side * (0.5 + margin);
  const x1 = roundHalfEven(cx - half);
  const y1 = roundHalfEven(cy - half);
  const x2 = roundHalfEven(cx + half);
  const y2 = roundHalfEven(cy + half);
  const ix1 = Math.max(0, x1);
  const iy1 = Math.max(0, y1);
  const innerW = Math.max(0, Math.min(width, x2) - ix1);
  const innerH = Math.max(0, Math.min(height, y2) - iy1);
  const top = Math.max(0, -y1);
  const left = Math.max(0, -x1);
  const outW = innerW + left + Math.max(0, x2 - width);
  const outH = innerH + top + Math.max(0, y2 - height);
  const crop = new Uint8Array(outW * outH);
  if (outW !== innerW || outH !== innerH) {
    let total = 0;
    for (let i = (height - 2) * width; i < height * width; i++) total += gray[i];
    crop.fill(saturateU8(total / (2 * width)));
  }
  for (let r = 0; r < innerH; r++) {
    const from = (iy1 + r) * width + ix1;
    crop.set(gray.subarray(from, from + innerW), (top + r) * outW + left);
  }
  return { data: crop, width: outW, height: outH };
}

/** The 64×64 crop of a detected face: the one geometry of training and run time. */
export function modelCrop(gray, width, height, box, margin = DEFAULT_MARGIN) {
  const crop = squareCrop(gray, width, height, box, margin);
  return resizeArea(crop.data, crop.width, crop.height, 1, CROP_SIDE, CROP_SIDE);
}

// --- BlazeFace (blazeface.py) -------------------------------------------------------------

/** model name → input side and anchor grids (cells per side, anchors per cell) */
export const BLAZEFACE = {
  short: { side: 128, grids: [[16, 2], [8, 6]] },
  full: { side: 192, grids: [[48, 1]] },
};

function anchors(grids) {
  const xs = [];
  const ys = [];
  for (const [grid, perCell] of grids) {
    for (let y = 0; y < grid; y++) {
      for (let x = 0; x < grid; x++) {
        for (let k = 0; k < perCell; k++) {
          xs.push(fround((x + 0.5) / grid));
          ys.push(fround((y + 0.5) / grid));
        }
      }
    }
  }
  return { xs, ys };
}

/** numpy's float64 sum of a short 1-D array (pairwise: eight partial sums from eight on). */
function npSum(values) {
  const n = values.length;
  if (n < 8) {
    let res = 0;
    for (const v of values) res += v;
    return res;
  }
  const r = values.slice(0, 8);
  let i = 8;
  for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += values[i + j];
  let res = r[0] + r[1] + (r[2] + r[3]) + (r[4] + r[5] + (r[6] + r[7]));
  for (; i < n; i++) res += values[i];
  return res;
}

const IOU = fround(0.3);

function iouAbove(a, b) {
  const x1 = Math.max(a[0], b[0]);
  const y1 = Math.max(a[1], b[1]);
  const x2 = Math.min(a[2], b[2]);
  const y2 = Math.min(a[3], b[3]);
  const inter = fround(Math.max(fround(x2 - x1), 0) * Math.max(fround(y2 - y1), 0));
  const area = fround(fround(a[2] - a[0]) * fround(a[3] - a[1]));
  const areas = fround(fround(b[2] - b[0]) * fround(b[3] - b[1]));
  const union = Math.max(fround(fround(area + areas) - inter), fround(1e-9));
  return fround(inter / union) > IOU;
}

/** Overlapping candidates merged into one box each, weighted by score (MediaPipe's blending). */
export function weightedNms(boxes, scores) {
  const order = scores.map((s, i) => i).sort((i, j) => scores[j] - scores[i]);
  let left = order.map((i) => [boxes[i], scores[i]]);
  const kept = [];
  while (left.length) {
    const first = left[0][0];
    const overlap = left.filter(([box]) => iouAbove(first, box));
    const weights = overlap.map(([, s]) => s);
    const total = npSum(weights);
    const merged = [0, 1, 2, 3].map((c) => {
      let acc = overlap[0][0][c] * weights[0];
      for (let k = 1; k < overlap.length; k++) acc += overlap[k][0][c] * weights[k];
      return acc / total;
    });
    kept.push([merged, left[0][1]]);
    left = left.filter(([box]) => !iouAbove(first, box));
  }
  return kept;
}

/** One BlazeFace model on one onnxruntime-web session (blazeface.BlazeFaceDetector). */
export class BlazeFace {
  constructor(ort, session, name, { minScore = 0.5, boxScale = 1.05, lift = 0.05 } = {}) {
    this.ort = ort;
    this.session = session;
    this.side = BLAZEFACE[name].side;
    this.anchors = anchors(BLAZEFACE[name].grids);
    this.minScore = minScore;
    this.boxScale = boxScale;
    this.lift = lift;
  }

  /** The square, letterboxed, [-1, 1] input tensor for an RGB frame, and how it maps back. */
  input(rgb, width, height) {
    const size = this.side;
    const scale = size / Math.max(width, height);
    const newW = Math.max(1, roundHalfEven(width * scale));
    const newH = Math.max(1, roundHalfEven(height * scale));
    const small = resizeArea(rgb, width, height, 3, newW, newH);
    const top = Math.floor((size - newH) / 2);
    const left = Math.floor((size - newW) / 2);
    const tensor = new Float32Array(size * size * 3).fill(UNIT[0]);
    for (let y = 0; y < newH; y++) {
      for (let x = 0; x < newW * 3; x++) {
        tensor[((top + y) * size + left) * 3 + x] = UNIT[small[y * newW * 3 + x]];
      }
    }
    return { tensor, scale, top, left };
  }

  /** Face boxes [x, y, w, h] in frame pixels whose score is at least minScore. */
  async detect(rgb, width, height) {
    const size = this.side;
    const { tensor, scale, top, left } = this.input(rgb, width, height);
    const feeds = { [this.session.inputNames[0]]: new this.ort.Tensor("float32", tensor, [1, size, size, 3]) };
    const results = await this.session.run(feeds);
    const outputs = this.session.outputNames.map((name) => results[name]);
    const raw = outputs.find((t) => t.dims[t.dims.length - 1] !== 1).data;
    const logits = outputs.find((t) => t.dims[t.dims.length - 1] === 1).data;
    const stride = raw.length / logits.length;
    const boxes = [];
    const scores = [];
    for (let i = 0; i < logits.length; i++) {
      const logit = Math.min(100, Math.max(-100, logits[i]));
      const score = 1 / (1 + Math.exp(-logit));
      if (score < this.minScore) continue;
      const r = i * stride;
      const cx = fround(fround(raw[r] / size) + this.anchors.xs[i]);
      const cy = fround(fround(raw[r + 1] / size) + this.anchors.ys[i]);
      const hw = fround(fround(raw[r + 2] / size) / 2);
      const hh = fround(fround(raw[r + 3] / size) / 2);
      boxes.push([fround(cx - hw), fround(cy - hh), fround(cx + hw), fround(cy + hh)]);
      scores.push(score);
    }
    const side = size / scale; // the letterboxed square, in frame pixels
    const padX = left / scale;
    const padY = top / scale;
    return weightedNms(boxes, scores).map(([[x1, y1, x2, y2]]) => {
      const bw = (x2 - x1) * side;
      const bh = (y2 - y1) * side;
      const bx = x1 * side - padX;
      const by = y1 * side - padY;
      const grown = Math.max(bw, bh) * this.boxScale;
      const cx = bx + bw / 2;
      const cy = by + bh / 2 - this.lift * bh;
      return [roundHalfEven(cx - grown / 2), roundHalfEven(cy - grown / 2), roundHalfEven(grown), roundHalfEven(grown)];
    });
  }
}

// --- the model card and the classifier (emocare_backend.py) --------------------------------

/** The card's input geometry and calibration for the way the model runs (ModelCard.read):
 * flip null keeps the card's choice; the other way uses the card's calibration for it. */
export function readCard(card, flip = null) {
  const chosen = card.input.flip ?? true;
  let calibration = card.calibration ?? {};
  let care = card.care ?? {};
  const other = card.flip_choice ?? {};
  if (flip !== null && flip !== chosen && "calibration_other" in other) {
    calibration = other.calibration_other;
    care = other.care_other;
  }
  if (JSON.stringify(card.labels) !== JSON.stringify(EMOTIONS)) {
    throw new Error(`labels ${card.labels} are not ${EMOTIONS}`);
  }
  return {
    side: card.input.side,
    bias: calibration.bias ?? EMOTIONS.map(() => 0),
    temperature: calibration.temperature ?? 1,
    margin: card.input.margin ?? DEFAULT_MARGIN,
    careThresholds: (care && care.thresholds) || {},
    flip: flip === null ? chosen : flip,
  };
}

/** Calibrated probabilities from raw logits: the card's bias and temperature, then softmax. */
export function probabilities(logits, card) {
  const z = logits.map((l, k) => (l + card.bias[k]) / card.temperature);
  const top = Math.max(...z);
  const e = z.map((v) => Math.exp(v - top));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

export class DeviceAnalyzer {
  constructor(ort, classifier, short, full, card) {
    this.ort = ort;
    this.classifier = classifier;
    this.short = short;
    this.full = full;
    this.card = card;
  }

  /** Short-range BlazeFace, the full-range model only when it finds nothing. */
  async detect(rgb, width, height) {
    const found = await this.short.detect(rgb, width, height);
    return found.length ? found : this.full.detect(rgb, width, height);
  }

  /** Raw logits for 64×64 crops, averaged with their mirror images when the card says so. */
  async logits(crops) {
    const side = this.card.side;
    const n = crops.length;
    const passes = this.card.flip ? 2 : 1;
    const batch = new Float32Array(passes * n * side * side);
    crops.forEach((crop, i) => {
      const face = resizeArea(crop, CROP_SIDE, CROP_SIDE, 1, side, side);
      for (let y = 0; y < side; y++) {
        for (let x = 0; x < side; x++) {
          const v = UNIT[face[y * side + x]];
          batch[(i * side + y) * side + x] = v;
          if (passes === 2) batch[((n + i) * side + y) * side + (side - 1 - x)] = v;
        }
      }
    });
    const input = new this.ort.Tensor("float32", batch, [passes * n, 1, side, side]);
    const results = await this.classifier.run({ [this.classifier.inputNames[0]]: input });
    const out = results[this.classifier.outputNames[0]].data;
    const k = EMOTIONS.length;
    return crops.map((_, i) =>
      EMOTIONS.map((_, c) => (passes === 2 ? (out[i * k + c] + out[(n + i) * k + c]) / 2 : out[i * k + c])),
    );
  }

  /** Frame in (ImageData or {data: RGBA, width, height}), faces out: [{box, scores}]. */
  async analyze(frame) {
    const { data, width, height } = frame;
    const boxes = await this.detect(rgbFromRGBA(data, width, height), width, height);
    if (!boxes.length) return [];
    const gray = grayFromRGBA(data, width, height);
    const crops = boxes.map((box) => modelCrop(gray, width, height, box, this.card.margin));
    const logits = await this.logits(crops);
    return boxes.map((box, i) => {
      const p = probabilities(logits[i], this.card);
      return { box, scores: Object.fromEntries(EMOTIONS.map((e, k) => [e, p[k]])) };
    });
  }
}

/** Fetch the runtime and the three models the server offers (GET /device/manifest.json) and
 * open them: one wasm thread unless asked (two need cross-origin isolation, and were slower
 * than one while the other core was busy). flip: null keeps the card's choice. */
export async function loadAnalyzer({ manifestUrl = "/device/manifest.json", flip = null, threads = 1 } = {}) {
  const answer = await fetch(manifestUrl);
  if (!answer.ok) throw new Error(`${manifestUrl}: ${answer.status}`);
  const manifest = await answer.json();
  const ort = await import(manifest.runtime.module);
  ort.env.wasm.wasmPaths = manifest.runtime.wasm_path;
  ort.env.wasm.numThreads = threads;
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  const bytes = async (url) => {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  };
  const open = async (url) => ort.InferenceSession.create(await bytes(url), options);
  const [classifier, short, full, card] = await Promise.all([
    open(manifest.classifier.model),
    open(manifest.detector.short),
    open(manifest.detector.full),
    fetch(manifest.classifier.card).then((r) => r.json()),
  ]);
  return new DeviceAnalyzer(
    ort,
    classifier,
    new BlazeFace(ort, short, "short"),
    new BlazeFace(ort, full, "full"),
    readCard(card, flip),
  );
}
