package dev.trilens.report;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.AtomicFiles;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * report.html: one self-contained page (no network, opens from file://) that shows the analysis pictures first:
 * data embedded as JSON, drawn by the plain JavaScript below onto canvases, with a CircuitsVis-style attention
 * explorer. Sections have stable ids: explanation, worklog, model, training, dynamics, metrics, sample-probs,
 * attention-explorer, prev-token, qk, ov, dla, ablation, patching, trigram-table, causal, failures. The training
 * curves need the run's metrics.jsonl, the dynamics section its dynamics.json (trilens dynamics); without them those
 * sections say so.
 */
public final class ReportPage {
    /** Sequences embedded for the explorer and the probability heatmap. */
    static final int SEQUENCES = 40;
    private static final ObjectMapper JSON = new ObjectMapper();

    private ReportPage() {
    }

    public static void write(JsonNode analysis, Path metricsJsonl, Path outFile) {
        write(analysis, metricsJsonl, null, outFile);
    }

    /** dynamics: dynamics.json's tree, or null when the folder has none. */
    public static void write(JsonNode analysis, Path metricsJsonl, JsonNode dynamics, Path outFile) {
        String data = embeddedJson(analysis, metricsJsonl, dynamics);
        String html = PAGE.replace("%TITLE%", escapeHtml("trilens report: " + analysis.at("/model/path").asText()))
                .replace("%DATA%", data);
        AtomicFiles.write(outFile, out -> out.write(html.getBytes(StandardCharsets.UTF_8)));
    }

    /** The subset of the analysis the page draws, plus the example sequences' tokens; safe inside a script tag. */
    static String embeddedJson(JsonNode a, Path metricsJsonl, JsonNode dynamics) {
        ObjectNode d = JSON.createObjectNode();
        d.set("model", a.path("model"));
        d.set("dataset", a.path("dataset"));
        d.set("metrics", a.path("metrics"));
        d.set("weight_processing", a.at("/circuits/weight_processing"));
        d.set("summaries", summaries(a));
        d.set("explanation", a.path("explanation"));
        d.set("glossary", a.path("glossary"));
        d.set("worklog", a.path("worklog"));
        JsonNode probs = a.at("/predictions/correct_probs");
        ArrayNode probRows = d.putArray("probs");
        for (int s = 0; s < Math.min(SEQUENCES, probs.size()); s++) {
            probRows.add(probs.get(s));
        }
        TrigramDataset ds = dataset(a);
        ArrayNode seqs = d.putArray("sequences");
        ArrayNode marks = d.putArray("completes");
        if (ds != null) {
            for (int s = 0; s < Math.min(SEQUENCES, ds.size()); s++) {
                ArrayNode row = seqs.addArray(), m = marks.addArray();
                for (int p = 0; p < ds.seqLen(); p++) {
                    row.add(ds.token(s, p));
                    m.add(ds.completesTrigram(s, p));
                }
            }
            ArrayNode prefixes = d.putArray("prefixes");
            for (int[] t : ds.trigrams()) {
                prefixes.addArray().add(t[0]).add(t[1]).add(t[2]);
            }
        }
        ArrayNode heads = d.putArray("heads");
        for (JsonNode h : a.at("/attention/heads")) {
            ObjectNode o = heads.addObject();
            o.set("name", h.path("name"));
            o.set("patterns", h.path("patterns"));
            o.set("mean_prev", h.path("mean_prev_attention_by_position"));
        }
        JsonNode qk = a.at("/circuits/qk_circuit/heads/0");
        d.set("token_token", qk.at("/decomposition/token_token"));
        d.set("pos_pos", qk.at("/decomposition/pos_pos"));
        d.set("prefix_advantage", qk.path("prefix_advantage"));
        d.set("pos_cosine", a.at("/circuits/qk_circuit/positional_cosine"));
        d.set("ov", a.at("/circuits/ov_circuit/heads/0"));
        d.set("dla", a.at("/attribution/components"));
        d.set("ablation", a.path("ablation"));
        d.set("patching", a.path("patching"));
        ArrayNode table = d.putArray("trigrams");
        for (JsonNode e : a.at("/extraction/table/trigrams")) {
            table.addObject().put("a", e.path("a").asInt()).put("b", e.path("b").asInt()).put("c", e.path("c").asInt())
                    .put("confidence", e.path("confidence").asDouble()).put("decided_by", e.path("decided_by").asText())
                    .put("attn_prev", e.path("attn_prev").path(0).asDouble());
        }
        JsonNode extractionEval = a.at("/extraction/evaluation");
        if (extractionEval.isObject()) {
            // the per-trigram rows stay in analysis.json; the page shows only the totals
            extractionEval = extractionEval.deepCopy();
            ((ObjectNode) extractionEval).remove("dataset_trigrams");
        }
        d.set("extraction_eval", extractionEval);
        d.set("causal", a.at("/causal_validation/variants"));
        d.set("top", topPredictions(a.at("/predictions/top_predictions")));
        d.set("failures", failures(a.path("failure_modes")));
        d.set("training", training(metricsJsonl));
        d.set("dynamics", dynamics == null ? null : dynamics(dynamics));
        try {
            // "</" could close the script element early; JSON allows "<\/"
            return JSON.writeValueAsString(d).replace("</", "<\\/");
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The explorer's hover: the top predictions of the embedded sequences, probabilities to 4 decimals. */
    private static ObjectNode topPredictions(JsonNode top) {
        ObjectNode o = JSON.createObjectNode();
        ArrayNode tokens = o.putArray("tokens"), probs = o.putArray("probs");
        for (int s = 0; s < Math.min(SEQUENCES, top.path("tokens").size()); s++) {
            tokens.add(top.path("tokens").get(s));
            ArrayNode seq = probs.addArray();
            for (JsonNode pos : top.path("probs").get(s)) {
                ArrayNode ps = seq.addArray();
                pos.forEach(v -> ps.add(Math.round(v.asDouble() * 1e4) / 1e4));
            }
        }
        return o;
    }

    /** The failure-modes section without its example contexts, which are long and not shown. */
    private static ObjectNode failures(JsonNode fm) {
        ObjectNode o = JSON.createObjectNode();
        o.set("catalogue", fm.path("catalogue"));
        o.set("error", fm.path("error"));
        ArrayNode families = o.putArray("families");
        for (JsonNode f : fm.path("families")) {
            ObjectNode copy = f.deepCopy();
            copy.remove("examples");
            families.add(copy);
        }
        return o;
    }

    private static ObjectNode summaries(JsonNode a) {
        ObjectNode s = JSON.createObjectNode();
        for (String section : new String[] {"predictions", "attention", "circuits", "attribution", "ablation",
                "patching", "extraction", "failure_modes"}) {
            JsonNode n = a.path(section).path("summary");
            s.set(section, n.isMissingNode() ? JSON.createArrayNode() : n);
        }
        return s;
    }

    private static ArrayNode training(Path metricsJsonl) {
        ArrayNode rows = JSON.createArrayNode();
        if (metricsJsonl == null || !Files.isRegularFile(metricsJsonl)) {
            return rows;
        }
        try {
            for (String line : Files.readAllLines(metricsJsonl, StandardCharsets.UTF_8)) {
                if (!line.isBlank()) {
                    rows.add(JSON.readTree(line));
                }
            }
        } catch (IOException e) {
            throw new TrilensException("cannot read " + metricsJsonl + ": " + e.getMessage()
                    + "; expected metrics.jsonl as trilens train writes it", e);
        }
        return rows;
    }

    /** What the dynamics section draws: dynamics.json without the per-snapshot lists of extracted trigrams. */
    private static ObjectNode dynamics(JsonNode dyn) {
        ObjectNode o = JSON.createObjectNode();
        for (String k : new String[] {"run", "snapshot_every", "n_trigrams", "notes", "summary", "onset", "milestones",
                "order", "phase_rule", "phase_changes", "trigrams"}) {
            o.set(k, dyn.path(k));
        }
        ArrayNode snaps = o.putArray("snapshots");
        for (JsonNode s : dyn.path("snapshots")) {
            ObjectNode copy = s.deepCopy();
            copy.remove("extracted");
            copy.remove("weight_distance");
            snaps.add(copy);
        }
        return o;
    }

    private static TrigramDataset dataset(JsonNode a) {
        JsonNode d = a.path("dataset");
        if (!d.path("trigram_prob").isNumber()) {
            return null;
        }
        return TrigramDataset.generate(d.path("d_vocab").asInt(), d.path("seq_len").asInt(),
                d.path("trigram_prob").asDouble(), d.path("seed").asLong(),
                Math.min(SEQUENCES, d.path("size").asInt(SEQUENCES)));
    }

    private static String escapeHtml(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    }

    private static final String PAGE = """
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>%TITLE%</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#2b3a55;color:#fff;padding:12px 20px}
header div{overflow-wrap:anywhere}
main{max-width:1240px;margin:0 auto;padding:0 16px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;margin:16px 0;padding:12px 16px;overflow-x:auto}
h2{margin:4px 0 8px;font-size:1.2em}
h3{margin:12px 0 4px;font-size:1em}
.row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.fig{display:flex;flex-direction:column;gap:4px;max-width:100%}
canvas{border:1px solid #ccc;max-width:100%}
table{border-collapse:collapse;font-size:.9em}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#eee;cursor:pointer}
table.kv{margin-right:16px}
table.kv th{text-align:left;cursor:default;font-weight:normal;font-family:monospace}
td.text{text-align:left;min-width:14em;max-width:36em}
.tables{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.tok{font-family:monospace;border:1px solid #bbb;border-radius:3px;margin:1px;padding:2px 3px;background:#fff;cursor:pointer;color:#222}
.tok.trigram{border-bottom:3px solid #2166ac}
.tok.correct{border-top:3px solid #1a9850}
.tok.sel{outline:2px solid #000}
.legend{display:flex;align-items:center;gap:6px;font-size:.8em;flex-wrap:wrap}
.summary li{margin:2px 0}
#explanation-body li{margin:6px 0;line-height:1.4}
.claim a,.answer a{margin-left:6px;white-space:nowrap}
details.evidence summary{cursor:pointer;color:#555;font-size:.85em}
details.evidence code{display:block;font-size:.8em;overflow-wrap:anywhere;color:#444}
.answer{margin:8px 0}.answer h3{margin:8px 0 2px}.answer p{margin:2px 0;line-height:1.4}
.note{color:#555;font-size:.9em}
dt{font-weight:bold;margin-top:4px}dd{margin:0 0 4px 16px}
#tooltip{position:fixed;pointer-events:none;background:#333;color:#fff;padding:3px 6px;border-radius:3px;font-size:.8em;display:none;max-width:320px;z-index:2}
@media (max-width:600px){main{padding:0 6px}section{padding:8px 8px}td.text{min-width:10em}}
</style></head>
<body><header><h1 style="margin:0;font-size:1.4em">trilens report</h1><div id="subtitle"></div></header>
<div id="tooltip" role="tooltip"></div>
<main>
<section id="explanation"><h2>What the model does</h2><p class="note">Each sentence is computed from this model's numbers; open "evidence" for them, or follow the link to the section that shows them.</p><ol id="explanation-body"></ol>
<details id="glossary-box"><summary>Terms used here</summary><dl id="glossary"></dl></details></section>
<section id="worklog"><h2>The worklog's questions, answered</h2><div id="worklog-body"></div></section>
<section id="model"><h2>Model</h2><div id="model-card" class="tables"></div></section>
<section id="training"><h2>Training curves</h2><div id="training-body"></div></section>
<section id="dynamics"><h2>Training dynamics</h2><ul class="summary" id="dynamics-summary"></ul><div id="dynamics-body"></div></section>
<section id="metrics"><h2>Metrics</h2><div id="metrics-body"></div></section>
<section id="sample-probs"><h2>Probability of the correct next token</h2><p>Rows: sequences; columns: positions (each predicting the next token). Blue dots: the next token completes a trigram.</p><div class="row" id="probs-fig"></div><ul class="summary" id="sum-predictions"></ul></section>
<section id="attention-explorer"><h2>Attention explorer</h2>
<div>Sequence <select id="seq-select"></select> Head <select id="head-select"></select>
<label><input type="checkbox" id="reverse"> show what attends to the token</label></div>
<p>Hover, click or focus a token (arrow keys move): the others are shaded by its attention, and the tooltip lists the model's top predictions for the next token. Blue underline: the next token completes a trigram, so this token (b of a prefix a, b) attends to a; green overline: the model predicted the next token with probability above 0.5.</p>
<div id="tokens"></div><div class="row" id="pattern-fig"></div></section>
<section id="prev-token"><h2>Attention to the previous token</h2><div class="row" id="prev-fig"></div><ul class="summary" id="sum-attention"></ul></section>
<section id="qk"><h2>QK circuit</h2><div class="row" id="qk-figs"></div><ul class="summary" id="sum-circuits"></ul></section>
<section id="ov"><h2>OV circuit</h2><div id="ov-body"></div></section>
<section id="dla"><h2>Direct logit attribution</h2><div id="dla-body"></div><ul class="summary" id="sum-attribution"></ul></section>
<section id="ablation"><h2>Ablations</h2><div id="ablation-body"></div></section>
<section id="patching"><h2>Patching: the attention swap</h2><ul class="summary" id="sum-patching"></ul></section>
<section id="trigram-table"><h2>Trigrams read from the weights</h2><div id="extraction-eval"></div><ul class="summary" id="sum-extraction"></ul>
<input id="trigram-filter" placeholder="filter, e.g. 12 or mlp" aria-label="filter the trigram table"><div id="trigram-body"></div></section>
<section id="causal"><h2>Causal validation</h2><div id="causal-body"></div></section>
<section id="failures"><h2>Failure modes</h2><div id="failures-body"></div><ul class="summary" id="sum-failure_modes"></ul></section>
</main>
<script type="application/json" id="data">%DATA%</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById('data').textContent);
const tip = document.getElementById('tooltip');
const $ = id => document.getElementById(id);
const fmt = v => typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : v === null || v === undefined ? '' : String(v);
// colour-bar ends and axis ticks: at most two significant digits past the integer part
const nice = v => Math.abs(v) >= 10 ? v.toFixed(0) : String(+v.toPrecision(2));
function el(tag, attrs, text) { const e = document.createElement(tag); Object.assign(e, attrs || {}); if (text !== undefined) e.textContent = text; return e; }
function seqColor(t) { t = Math.max(0, Math.min(1, t)); return `rgb(${255 - Math.round(t * 128)},${247 - Math.round(t * 247)},${236 - Math.round(t * 236)})`; }
function divColor(t) { t = Math.max(-1, Math.min(1, t)); return t >= 0 ? `rgb(${247 - Math.round(t * 69)},${247 - Math.round(t * 223)},${247 - Math.round(t * 204)})` : `rgb(${247 + Math.round(t * 214)},${247 + Math.round(t * 145)},${247 + Math.round(t * 75)})`; }
const MASKED = '#bdbdbd', RING = '#08306b';
// the smallest two-significant-digit number at or above x, so a data-fitted scale gets round ends
function roundUp(x) { if (!(x > 0) || !isFinite(x)) return 1; const e = Math.pow(10, Math.floor(Math.log10(x)) - 1); return +(Math.ceil(x / e - 1e-9) * e).toPrecision(2); }
const tickStep = n => n <= 20 ? 1 : n <= 60 ? 5 : 10;
// an axis step of 1, 2, 2.5 or 5 times a power of ten, at least x
function niceStep(x) { const e = Math.pow(10, Math.floor(Math.log10(x))), f = x / e; return +((f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * e).toPrecision(3); }
function showTip(x, y, text) { tip.style.display = 'block'; tip.textContent = text; tip.style.left = Math.min(x + 12, window.innerWidth - tip.offsetWidth - 4) + 'px'; tip.style.top = y + 12 + 'px'; }
function hideTip() { tip.style.display = 'none'; }
function legend(lo, hi, color, note) {
  const l = el('div', {className: 'legend'}); l.append(el('span', {}, nice(lo)));
  const c = el('canvas', {width: 120, height: 10}); c.style.border = '0'; const g = c.getContext('2d');
  for (let i = 0; i < 120; i++) { g.fillStyle = color(i / 119 * (hi - lo) + lo); g.fillRect(i, 0, 1, 10); }
  l.append(c, el('span', {}, nice(hi))); if (note) l.append(el('span', {}, note)); return l;
}
// A canvas sized in CSS pixels and drawn sharp on high-density screens.
function canvas(w, h, label) {
  const r = window.devicePixelRatio || 1, c = el('canvas', {width: Math.round(w * r), height: Math.round(h * r)});
  c.style.width = w + 'px'; c.style.height = h + 'px'; c.setAttribute('aria-label', label); const g = c.getContext('2d'); g.scale(r, r); return [c, g];
}
function roomFor(parent) { const w = parent.clientWidth || 600; return Math.max(200, Math.min(w, 640)); }
// m[r][k] with row 0 at the top (as CircuitsVis and plotly draw a pattern), key/column along x; every 5th or 10th
// index labelled; opts.causal greys the cells whose key comes after the query.
function heatmap(parent, title, m, opts) {
  opts = opts || {}; if (!m || !m.length || !m[0].length) return;
  const rows = m.length, cols = m[0].length, L = opts.yLabel ? 46 : 30, T = 4, R = 6, B = opts.xLabel ? 36 : 20;
  const cell = Math.max(2, Math.min(opts.cell || 12, Math.floor((roomFor(parent) - L - R - 2) / cols), Math.floor(560 / rows) || 12));
  let lo = opts.lo, hi = opts.hi;
  if (lo === undefined) { let mx = 0; m.forEach(r => r.forEach(v => { if (isFinite(v)) mx = Math.max(mx, Math.abs(v)); })); hi = roundUp(mx); lo = -hi; }
  const color = opts.color || (lo < 0 ? v => divColor(v / hi) : v => seqColor((v - lo) / (hi - lo)));
  const W = L + cols * cell + R, H = T + rows * cell + B, [c, g] = canvas(W, H, title);
  Object.assign(c.dataset, {left: L, top: T, cell});
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) {
    const v = m[r][k]; g.fillStyle = opts.causal && k > r ? MASKED : isFinite(v) ? color(v) : '#ddd'; g.fillRect(L + k * cell, T + r * cell, cell, cell);
  }
  (opts.marks || []).forEach(([r, k]) => { g.fillStyle = '#2166ac'; g.beginPath(); g.arc(L + k * cell + cell / 2, T + r * cell + cell / 2, Math.max(1.5, cell / 4), 0, 7); g.fill(); });
  g.strokeStyle = RING; g.lineWidth = 1.4;
  (opts.rings || []).forEach(([r, k]) => { g.beginPath(); g.arc(L + k * cell + cell / 2, T + r * cell + cell / 2, Math.max(2, cell / 2 - 0.5), 0, 7); g.stroke(); });
  g.fillStyle = '#222'; g.strokeStyle = '#666'; g.lineWidth = 1; g.font = '11px sans-serif';
  if (rows > 1) { g.textAlign = 'right'; for (let r = 0; r < rows; r += tickStep(rows)) { const y = T + r * cell + cell / 2; g.fillText(String(r), L - 6, y + 4); g.beginPath(); g.moveTo(L - 4, y); g.lineTo(L, y); g.stroke(); } }
  g.textAlign = 'center'; for (let k = 0; k < cols; k += tickStep(cols)) { const x = L + k * cell + cell / 2; g.fillText(String(k), x, T + rows * cell + 14); g.beginPath(); g.moveTo(x, T + rows * cell); g.lineTo(x, T + rows * cell + 3); g.stroke(); }
  g.font = 'bold 11px sans-serif';
  if (opts.xLabel) g.fillText(opts.xLabel, L + cols * cell / 2, H - 4);
  if (opts.yLabel) { g.save(); g.translate(11, T + rows * cell / 2); g.rotate(-Math.PI / 2); g.fillText(opts.yLabel, 0, 0); g.restore(); }
  c.addEventListener('mousemove', ev => {
    const b = c.getBoundingClientRect(), sx = W / b.width, k = Math.floor(((ev.clientX - b.left) * sx - L) / cell), r = Math.floor(((ev.clientY - b.top) * sx - T) / cell);
    if (r < 0 || k < 0 || r >= rows || k >= cols) { hideTip(); return; }
    showTip(ev.clientX, ev.clientY, (opts.label ? opts.label(r, k) : `row ${r}, col ${k}`) + ': ' + (opts.causal && k > r ? 'masked' : opts.value ? opts.value(r, k) : fmt(m[r][k])));
  });
  c.addEventListener('mouseleave', hideTip);
  const f = el('div', {className: 'fig'}); f.append(el('strong', {}, title), c, legend(lo, hi, color, opts.note)); parent.append(f); return c;
}
// Lines over epochs, one y scale; ticks at round values.
// Lines over epochs, one y scale; ticks at round values; x placed by value; marks: epochs to draw a dashed line at.
// Values that are not finite numbers (NaN is the string "NaN" in the data) leave a gap.
function lineChart(parent, title, xs, series, yLabel, lo, hi, marks) {
  const W = Math.min(roomFor(parent), 560), H = 240, L = 52, R = 10, T = 10, B = 40, [c, g] = canvas(W, H, title);
  if (lo === undefined) { const all = series.flatMap(s => s.values).filter(v => isFinite(v)); lo = all.length ? Math.min(...all) : 0; hi = all.length ? Math.max(...all) : 1; if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; } }
  const n = xs.length, x0 = xs[0], x1 = xs[n - 1], XV = x => n === 1 || x1 === x0 ? L + (W - L - R) / 2 : L + (x - x0) / (x1 - x0) * (W - L - R), X = i => XV(xs[i]), Y = v => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  g.strokeStyle = '#999'; g.strokeRect(L, T, W - L - R, H - T - B); g.fillStyle = '#222'; g.font = '11px sans-serif';
  const step = niceStep((hi - lo) / 5), dec = (String(step).split('.')[1] || '').length; g.textAlign = 'right';
  for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + 1e-9; i++) { const v = i * step; g.fillText(v.toFixed(dec), L - 4, Y(v) + 4); g.strokeStyle = '#eee'; g.beginPath(); g.moveTo(L + 1, Y(v)); g.lineTo(W - R - 1, Y(v)); g.stroke(); }
  g.textAlign = 'center'; const xStep = Math.max(1, Math.ceil(n / 8));
  for (let i = 0; i < n; i += xStep) g.fillText(String(xs[i]), X(i), H - B + 14);
  g.font = 'bold 11px sans-serif'; g.fillText('epoch', L + (W - L - R) / 2, H - 6);
  g.save(); g.translate(12, T + (H - T - B) / 2); g.rotate(-Math.PI / 2); g.fillText(yLabel, 0, 0); g.restore();
  g.save(); g.strokeStyle = '#888'; g.lineWidth = 1; g.setLineDash([5, 4]);
  (marks || []).filter(m => m >= x0 && m <= x1).forEach(m => { g.beginPath(); g.moveTo(XV(m), T + 1); g.lineTo(XV(m), H - B - 1); g.stroke(); });
  g.restore();
  series.forEach(s => { g.strokeStyle = s.color; g.fillStyle = s.color; g.lineWidth = 2; g.beginPath(); let on = false; s.values.forEach((v, i) => { if (!isFinite(v)) { on = false; return; } if (on) g.lineTo(X(i), Y(v)); else g.moveTo(X(i), Y(v)); on = true; }); g.stroke(); if (n === 1 && isFinite(s.values[0])) { g.beginPath(); g.arc(X(0), Y(s.values[0]), 3, 0, 7); g.fill(); } });
  const f = el('div', {className: 'fig'}), keys = el('div', {className: 'legend'});
  series.forEach(s => { const k = el('span', {}, '\u25ac ' + s.name); k.style.color = s.color; keys.append(k); });
  if ((marks || []).length) keys.append(el('span', {}, '- - phase change'));
  f.append(el('strong', {}, title), c, keys); parent.append(f);
}
function table(parent, header, rows, id, textCols) {
  const t = el('table'); if (id) t.id = id; const h = t.createTHead().insertRow(); header.forEach(x => h.append(el('th', {}, x)));
  const b = t.createTBody(); rows.forEach(r => { const tr = b.insertRow(); r.forEach((x, i) => { const td = tr.insertCell(); td.textContent = fmt(x); if (textCols && textCols.includes(i)) td.className = 'text'; else if (typeof x !== 'number') td.style.textAlign = 'left'; }); }); parent.append(t); return t;
}
// name/value pairs as rows, so a long list of metrics wraps down the page instead of across it
function kvTable(parent, pairs, id) {
  const t = el('table', {className: 'kv'}); if (id) t.id = id; const b = t.createTBody();
  pairs.forEach(([k, v]) => { const tr = b.insertRow(); tr.append(el('th', {scope: 'row'}, k)); const td = tr.insertCell(); td.textContent = fmt(v); if (typeof v !== 'number') td.style.textAlign = 'left'; }); parent.append(t); return t;
}
function list(id, lines) { const u = $(id); (Array.isArray(lines) ? lines : lines ? [lines] : []).forEach(l => u.append(el('li', {}, l))); }
// model card
const cfg = D.model.config || {};
$('subtitle').textContent = D.model.path || '';
kvTable($('model-card'), [['checkpoint', D.model.path], ['parameters', D.model.n_params], ['d_vocab', cfg.d_vocab], ['n_ctx', cfg.n_ctx], ['d_model', cfg.d_model]]);
kvTable($('model-card'), [['layers', cfg.n_layers], ['heads', cfg.n_heads], ['d_head', cfg.d_head], ['d_mlp', cfg.d_mlp || 'none'], ['layer norm', cfg.layer_norm ? 'yes' : 'no']]);
kvTable($('model-card'), [['weight processing applied', (D.weight_processing.applied || []).join(', ') || 'none']]);
// training
if (D.training.length) {
  const ep = D.training.map(r => r.epoch), col = k => D.training.map(r => r[k]), row = el('div', {className: 'row'}); $('training-body').append(row);
  lineChart(row, 'Loss', ep, [{name: 'train_loss', color: '#b2182b', values: col('train_loss')}, {name: 'val_loss', color: '#ef8a62', values: col('val_loss')}], 'loss (nats)');
  lineChart(row, 'Trigram metrics', ep, [{name: 'trigram_frac_correct', color: '#2166ac', values: col('trigram_frac_correct')}, {name: 'trigram_avg_correct_prob', color: '#1a9850', values: col('trigram_avg_correct_prob')}], 'fraction / probability', 0, 1);
  table($('training-body'), ['epoch', 'train_loss', 'val_loss', 'trigram_frac_correct', 'trigram_avg_correct_prob'], D.training.filter((r, i) => i % Math.ceil(D.training.length / 10) === 0 || i === D.training.length - 1).map(r => [r.epoch, r.train_loss, r.val_loss, r.trigram_frac_correct, r.trigram_avg_correct_prob]));
} else { $('training-body').textContent = 'No training metrics next to this model (analyze a run folder to see them).'; }
// training dynamics (trilens dynamics): the sentences, the curves with their phase changes, the learning order
const DY = D.dynamics;
if (DY && DY.snapshots && DY.snapshots.length) {
  list('dynamics-summary', DY.summary);
  const body = $('dynamics-body'), S = DY.snapshots, ep = S.map(s => s.epoch), col = f => S.map(f);
  (DY.notes || []).forEach(n => body.append(el('p', {className: 'note'}, n)));
  const marks = [...new Set((DY.phase_changes || []).map(p => p.epoch))], row = el('div', {className: 'row'}); body.append(row);
  lineChart(row, 'Metrics', ep, [{name: 'trigram_avg_correct_prob', color: '#2166ac', values: col(s => s.trigram_avg_correct_prob)}, {name: 'extracted / n_trigrams', color: '#b2182b', values: col(s => s.n_extracted / DY.n_trigrams)}, {name: 'qk_auc', color: '#ef8a62', values: col(s => s.qk_auc)}], 'fraction / AUC', 0, Math.max(1, ...col(s => s.n_extracted / DY.n_trigrams)), marks);
  lineChart(row, 'Attention on the previous token a', ep, [{name: 'at learned prefixes', color: '#1a9850', values: col(s => s.attn_prev_learned)}, {name: 'elsewhere', color: '#999999', values: col(s => s.attn_prev_elsewhere)}, {name: "at the dataset's prefixes", color: '#2166ac', values: col(s => s.attn_prev_dataset)}, {name: 'at other pairs', color: '#ef8a62', values: col(s => s.attn_prev_not_dataset)}], 'mean attention', 0, 1, marks);
  const groupColors = ['#2166ac', '#1a9850', '#b2182b', '#999999'];
  lineChart(row, 'Direct logit attribution at trigram positions', ep, Object.keys(S[0].dla_trigram || {}).map((k, i) => ({name: k, color: groupColors[i % 4], values: col(s => s.dla_trigram[k])})), 'logits', undefined, undefined, marks);
  const rel = S[S.length - 1].weight_relative_distance || {}, paramColors = ['#2166ac', '#1a9850', '#b2182b', '#ef8a62', '#762a83', '#8c510a', '#01665e', '#c51b7d'];
  lineChart(row, 'Distance from the initial weights (relative)', ep, Object.keys(rel).filter(k => isFinite(rel[k])).map((k, i) => ({name: k.split('.').pop(), color: paramColors[i % 8], values: col(s => s.weight_relative_distance[k])})), '||W - W_init|| / ||W_init||', undefined, undefined, marks);
  const fp = S[0].final_position || {};
  lineChart(row, `W_pos[${fp.position}] against the other rows`, ep, [{name: `W_pos[${fp.position}]`, color: '#b2182b', values: col(s => s.final_position.distance_from_initial)}, {name: 'median of the others', color: '#2166ac', values: col(s => s.final_position.median_other_distance_from_initial)}], 'distance from the initial row', undefined, undefined, marks);
  body.append(el('p', {className: 'note'}, 'Dashed lines: phase changes. Rule: ' + DY.phase_rule + '.'));
  if ((DY.phase_changes || []).length) table(body, ['metric', 'epoch', 'from epoch', 'from', 'to', 'change per epoch'], DY.phase_changes.map(p => [p.metric, p.epoch, p.from_epoch, p.from, p.to, p.change_per_epoch]), 'dynamics-phases');
  const learned = (DY.trigrams || []).filter(t => t.in_dataset).sort((x, y) => (x.learned_epoch === null) - (y.learned_epoch === null) || x.learned_epoch - y.learned_epoch || y.count - x.count);
  const det = el('details'); det.append(el('summary', {}, `The dataset's ${learned.length} trigrams in the order they were learned`)); body.append(det);
  table(det, ['a', 'b', 'c', 'learned at epoch', 'first extracted', 'count in training data', "b shared"], learned.map(t => [t.a, t.b, t.c, t.learned_epoch === null ? 'never' : t.learned_epoch, t.first_epoch === null ? 'never' : t.first_epoch, t.count, t.shares_b ? 'yes' : 'no']), 'dynamics-trigrams');
} else { $('dynamics-body').textContent = 'No training dynamics for this folder: train with --snapshot-every N, then run trilens dynamics --run DIR (run --snapshot-every N does both).'; }
kvTable($('metrics-body'), Object.entries(D.metrics), 'metrics-table');
// probabilities
const marks = []; (D.completes || []).forEach((row, s) => row.forEach((c, p) => { if (c && p >= 1 && s < D.probs.length) marks.push([s, p - 1]); }));
heatmap($('probs-fig'), 'p(correct next token)', D.probs, {lo: 0, hi: 1, marks, xLabel: 'position', yLabel: 'sequence', label: (r, k) => `seq ${r}, pos ${k}: ${D.sequences[r] ? D.sequences[r][k] + ' -> ' + D.sequences[r][k + 1] : ''}`});
list('sum-predictions', D.summaries.predictions);
// attention explorer
const seqSel = $('seq-select'), headSel = $('head-select');
const nEx = D.heads.length ? D.heads[0].patterns.length : 0;
for (let s = 0; s < nEx; s++) seqSel.append(el('option', {value: s}, String(s)));
D.heads.forEach((h, i) => headSel.append(el('option', {value: i}, h.name)));
let selected = -1;
// the model's top predictions for the token after position j of sequence s
function topText(s, j, seq) {
  const T = D.top && D.top.tokens[s] && D.top.tokens[s][j]; if (!T) return `token ${seq[j]} at position ${j}`;
  const P = D.top.probs[s][j], next = j + 1 < seq.length ? `; actual next ${seq[j + 1]}` : '';
  return `token ${seq[j]} at position ${j}; predicts next: ` + T.map((t, i) => `${t} (p=${P[i].toFixed(3)})`).join(', ') + next;
}
function shade(pos) {
  const s = +seqSel.value, P = D.heads[+headSel.value].patterns[s], rev = $('reverse').checked;
  document.querySelectorAll('#tokens .tok').forEach((b, j) => { const a = pos < 0 ? 0 : (rev ? P[j][pos] : P[pos][j]); b.style.background = seqColor(a); b.style.color = a > 0.6 ? '#fff' : '#222'; b.dataset.attention = a.toFixed(4); b.classList.toggle('sel', j === pos); });
}
function renderExplorer() {
  const s = +seqSel.value, toks = $('tokens'); toks.textContent = '';
  const P = D.heads[+headSel.value].patterns[s], seq = D.sequences[s] || P.map((_, i) => i);
  const pr = D.probs[s] || [], comp = D.completes[s] || [];
  seq.forEach((t, j) => { const b = el('button', {className: 'tok' + (comp[j + 1] ? ' trigram' : '') + (j < pr.length && pr[j] > 0.5 ? ' correct' : '')}, String(t)); b.dataset.pos = j; b.dataset.top = topText(s, j, seq); b.setAttribute('aria-label', b.dataset.top);
    const hover = () => { const r = b.getBoundingClientRect(); showTip(r.left, r.bottom, b.dataset.top); };
    b.addEventListener('mouseenter', () => { shade(j); hover(); }); b.addEventListener('mouseleave', hideTip); b.addEventListener('focus', () => { selected = j; shade(j); hover(); }); b.addEventListener('blur', hideTip); b.addEventListener('click', () => { selected = j; shade(j); });
    b.addEventListener('keydown', ev => { const d = ev.key === 'ArrowRight' ? 1 : ev.key === 'ArrowLeft' ? -1 : 0; if (d) { ev.preventDefault(); const n = toks.children[Math.max(0, Math.min(seq.length - 1, j + d))]; n.focus(); } });
    toks.append(b); });
  const f = $('pattern-fig'); f.textContent = '';
  heatmap(f, 'attention pattern (query x key)', P, {lo: 0, hi: 1, causal: true, note: 'grey: masked', xLabel: 'key position', yLabel: 'query position', label: (r, k) => `query ${r} (${seq[r]}) -> key ${k} (${seq[k]})`});
  shade(selected >= 0 && selected < seq.length ? selected : -1);
}
[seqSel, headSel, $('reverse')].forEach(x => x.addEventListener('change', renderExplorer));
if (nEx) renderExplorer();
// previous-token attention
D.heads.forEach(h => heatmap($('prev-fig'), 'mean attention to the previous token by query position (' + h.name + ')', [h.mean_prev], {lo: 0, hi: 1, cell: 14, xLabel: 'query position', label: (r, k) => 'position ' + k}));
list('sum-attention', D.summaries.attention);
// QK
const dsPrefixes = (D.prefixes || []).map(t => [t[0], t[1]]);
const rings = dsPrefixes.length ? dsPrefixes : (D.trigrams || []).map(t => [t.a, t.b]);
heatmap($('qk-figs'), 'token-token scores', D.token_token, {xLabel: 'key token', yLabel: 'query token', label: (r, k) => `query ${r}, key ${k}`});
heatmap($('qk-figs'), 'position-position scores', D.pos_pos, {causal: true, note: 'grey: masked', xLabel: 'key position', yLabel: 'query position', label: (r, k) => `query ${r}, key ${k}`});
// sigma(advantage): the share of attention X at p-1 gets if it and Y itself were the only keys
const sig = v => 1 / (1 + Math.exp(-v));
if (D.prefix_advantage && D.prefix_advantage.length) heatmap($('qk-figs'), 'prefix scores \u03c3(advantage)', D.prefix_advantage.map(r => r.map(sig)), {lo: 0, hi: 1, rings, note: `rings: ${dsPrefixes.length ? "the dataset's" : 'the extracted'} ${rings.length} prefixes`, xLabel: 'Y (current token)', yLabel: 'X (previous token)', label: (r, k) => `X=${r}, Y=${k}`, value: (r, k) => `advantage ${fmt(D.prefix_advantage[r][k])}, \u03c3 ${fmt(sig(D.prefix_advantage[r][k]))}`});
heatmap($('qk-figs'), 'W_pos cosine similarity', D.pos_cosine, {lo: -1, hi: 1, xLabel: 'position', yLabel: 'position'});
list('sum-circuits', D.summaries.circuits);
// OV
if (D.ov && D.ov.ov_singular_values) { table($('ov-body'), ['', ...D.ov.ov_singular_values.slice(0, 8).map((_, i) => 's' + i)], [['W_V W_O', ...D.ov.ov_singular_values.slice(0, 8)], ['W_E W_V W_O W_U', ...(D.ov.full_ov_singular_values || []).slice(0, 8)]]); }
table($('dla-body'), ['component', 'trigram positions', 'other positions'], (D.dla || []).map(c => [c.name, c.mean_trigram, c.mean_other]));
list('sum-attribution', D.summaries.attribution);
const clean = D.ablation.clean || {};
table($('ablation-body'), ['ablation', 'loss', 'trigram_n_correct', 'trigram_avg_correct_prob'], [['clean', clean.loss, clean.trigram_n_correct, clean.trigram_avg_correct_prob]].concat((D.ablation.ablations || []).map(a => [a.mode + ' ' + a.target, a.metrics.loss, a.metrics.trigram_n_correct, a.metrics.trigram_avg_correct_prob])));
list('sum-patching', D.patching.summary);
// trigram table: sortable, filterable
const ev = D.extraction_eval || {};
$('extraction-eval').textContent = ev.vs_dataset ? `precision ${fmt(ev.vs_dataset.precision)}, recall ${fmt(ev.vs_dataset.recall)} against the dataset's trigrams; ${D.trigrams.length} extracted.` : `${D.trigrams.length} extracted; the dataset is unknown.`;
list('sum-extraction', D.summaries.extraction);
// the explanation and the worklog's answers: text, then the numbers behind it and where they are shown
const evidenceText = ev => Object.entries(ev || {}).map(([k, v]) => k + ' = ' + (Array.isArray(v) ? v.join(', ') : fmt(v))).join('; ');
function evidence(parent, ev) {
  const det = el('details', {className: 'evidence'});
  det.append(el('summary', {}, 'evidence'), el('code', {}, evidenceText(ev)));
  parent.append(det);
}
function sectionLink(parent, id) {
  const target = $(id), h = target && target.querySelector('h2');
  if (h) parent.append(el('a', {href: '#' + id}, '→ ' + h.textContent));
}
(D.explanation || []).forEach(c => {
  const li = el('li', {className: 'claim', id: 'claim-' + c.topic});
  li.append(el('span', {className: 'claim-text'}, c.text));
  sectionLink(li, c.section);
  evidence(li, c.evidence);
  $('explanation-body').append(li);
});
(D.glossary || []).forEach(t => $('glossary').append(el('dt', {}, t.term), el('dd', {}, t.meaning)));
(D.worklog || []).forEach(a => {
  const div = el('div', {className: 'answer', id: 'answer-' + a.id});
  div.append(el('h3', {}, a.question));
  const p = el('p'); p.append(el('span', {className: 'verdict'}, a.verdict)); sectionLink(p, a.section);
  div.append(p);
  evidence(div, a.evidence);
  $('worklog-body').append(div);
});
let rows = D.trigrams.map(t => [t.a, t.b, t.c, t.confidence, t.attn_prev, t.decided_by]), sortCol = -1, asc = true;
function renderTable() {
  const q = $('trigram-filter').value.trim().toLowerCase(), body = $('trigram-body'); body.textContent = '';
  const shown = rows.filter(r => !q || r.some(x => String(x).toLowerCase() === q || String(x).toLowerCase().includes(q) && isNaN(+q)));
  const t = table(body, ['a', 'b', 'c', 'confidence', 'attention on a', 'decided by'], shown, 'trigrams');
  t.querySelectorAll('th').forEach((th, i) => th.addEventListener('click', () => { asc = sortCol === i ? !asc : true; sortCol = i; rows.sort((x, y) => (x[i] < y[i] ? -1 : x[i] > y[i] ? 1 : 0) * (asc ? 1 : -1)); renderTable(); }));
}
$('trigram-filter').addEventListener('input', renderTable); renderTable();
table($('causal-body'), ['variant', 'what the attention does', 'loss', 'trigram_n_correct', 'recovered loss', 'recovered trigram accuracy'], (D.causal || []).map(v => [v.name, v.description, v.metrics.loss, v.metrics.trigram_n_correct, v.recovered_loss, v.recovered_trigram_frac]), 'causal-table', [1]);
// failure modes: the missed trigrams with their causes, then the adversarial families
const F = D.failures || {}, cat = F.catalogue || {}, fb = $('failures-body');
if (typeof F.error === 'string') { fb.append(el('p', {}, 'not computed: ' + F.error)); }
if (cat.n_trigrams !== undefined) {
  fb.append(el('p', {}, `${cat.n_missed} of ${cat.n_trigrams} trigrams missed: at b of [a, b, c] the model's top prediction is not c. Each miss gets the first cause that holds.`));
  const counts = Object.entries(cat.counts || {});
  const tables = el('div', {className: 'tables'}); fb.append(tables);
  const left = el('div'); left.append(el('h3', {}, 'Causes')); table(left, ['cause', 'missed trigrams'], counts.map(([k, n]) => [k.toLowerCase(), n]), 'failure-causes'); tables.append(left);
  const right = el('div'); right.append(el('h3', {}, 'Flags (a miss can have several)')); table(right, ['flag', 'missed trigrams'], Object.entries(cat.flag_counts || {}), 'failure-flags'); tables.append(right);
  fb.append(el('h3', {}, 'Missed trigrams'));
  table(fb, ['a', 'b', 'c', 'predicted', 'p(c)', 'p(predicted)', 'attention on a', 'QK advantage', 'full attention on a predicts', 'cause', 'flags'], (cat.missed || []).map(m => [m.a, m.b, m.c, m.predicted, m.prob_c, m.prob_predicted, m.attn_prev, m.qk_advantage, m.full_attention_predicts, String(m.cause).toLowerCase(), (m.flags || []).join(', ')]), 'failure-missed', [10]);
}
if ((F.families || []).length) {
  fb.append(el('h3', {}, 'Adversarial sequences: how often the model is fooled'));
  table(fb, ['family', 'what the sequences hold', 'n', 'fooled (share)', 'control fooled (share)', 'mean p(c)', 'control mean p(c)'], F.families.map(f => [f.name, f.description, f.n, f.fooled_rate, f.control_fooled_rate, f.mean_prob, f.control_mean_prob]), 'failure-families', [1]);
}
list('sum-failure_modes', D.summaries.failure_modes);
</script></body></html>
""";
}
