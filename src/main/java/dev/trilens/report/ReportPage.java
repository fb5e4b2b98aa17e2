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
 * explorer. Sections have stable ids: model, training, metrics, sample-probs, attention-explorer, prev-token, qk,
 * ov, dla, ablation, patching, trigram-table, causal, failures.
 */
public final class ReportPage {
    /** Sequences embedded for the explorer and the probability heatmap. */
    static final int SEQUENCES = 40;
    private static final ObjectMapper JSON = new ObjectMapper();

    private ReportPage() {
    }

    public static void write(JsonNode analysis, Path metricsJsonl, Path outFile) {
        String data = embeddedJson(analysis, metricsJsonl);
        String html = PAGE.replace("%TITLE%", escapeHtml("trilens report: " + analysis.at("/model/path").asText()))
                .replace("%DATA%", data);
        AtomicFiles.write(outFile, out -> out.write(html.getBytes(StandardCharsets.UTF_8)));
    }

    /** The subset of the analysis the page draws, plus the example sequences' tokens; safe inside a script tag. */
    static String embeddedJson(JsonNode a, Path metricsJsonl) {
        ObjectNode d = JSON.createObjectNode();
        d.set("model", a.path("model"));
        d.set("dataset", a.path("dataset"));
        d.set("metrics", a.path("metrics"));
        d.set("weight_processing", a.at("/circuits/weight_processing"));
        d.set("summaries", summaries(a));
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
        d.set("training", training(metricsJsonl));
        try {
            // "</" could close the script element early; JSON allows "<\/"
            return JSON.writeValueAsString(d).replace("</", "<\\/");
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
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
main{max-width:1240px;margin:0 auto;padding:0 16px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;margin:16px 0;padding:12px 16px;overflow-x:auto}
h2{margin:4px 0 8px;font-size:1.2em}
.row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.fig{display:flex;flex-direction:column;gap:4px}
canvas{border:1px solid #ccc;image-rendering:pixelated;max-width:100%}
table{border-collapse:collapse;font-size:.9em}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#eee;cursor:pointer}
.tok{font-family:monospace;border:1px solid #bbb;border-radius:3px;margin:1px;padding:2px 3px;background:#fff;cursor:pointer}
.tok.trigram{border-bottom:3px solid #2166ac}
.tok.correct{border-top:3px solid #1a9850}
.tok.sel{outline:2px solid #000}
.legend{display:flex;align-items:center;gap:6px;font-size:.8em}
.summary li{margin:2px 0}
#tooltip{position:fixed;pointer-events:none;background:#333;color:#fff;padding:3px 6px;border-radius:3px;font-size:.8em;display:none}
</style></head>
<body><header><h1 style="margin:0;font-size:1.4em">trilens report</h1><div id="subtitle"></div></header>
<div id="tooltip"></div>
<main>
<section id="model"><h2>Model</h2><div id="model-card"></div></section>
<section id="training"><h2>Training curves</h2><div id="training-body"></div></section>
<section id="metrics"><h2>Metrics</h2><div id="metrics-body"></div></section>
<section id="sample-probs"><h2>Probability of the correct next token</h2><p>Rows: sequences; columns: positions (each predicting the next token). Blue dots: the next token completes a trigram.</p><div class="row" id="probs-fig"></div><ul class="summary" id="sum-predictions"></ul></section>
<section id="attention-explorer"><h2>Attention explorer</h2>
<div>Sequence <select id="seq-select"></select> Head <select id="head-select"></select>
<label><input type="checkbox" id="reverse"> show what attends to the token</label></div>
<p>Hover, click or focus a token (arrow keys move): the others are shaded by attention. Blue underline: the token completes a trigram; green overline: the model predicted it with probability above 0.5.</p>
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
<section id="failures"><h2>Failure modes</h2><ul class="summary" id="sum-failure_modes"></ul></section>
</main>
<script type="application/json" id="data">%DATA%</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById('data').textContent);
const tip = document.getElementById('tooltip');
const $ = id => document.getElementById(id);
const fmt = v => typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : String(v);
function el(tag, attrs, text) { const e = document.createElement(tag); Object.assign(e, attrs || {}); if (text !== undefined) e.textContent = text; return e; }
function seqColor(t) { t = Math.max(0, Math.min(1, t)); return `rgb(${255 - Math.round(t * 150)},${247 - Math.round(t * 200)},${236 - Math.round(t * 236)})`; }
function divColor(t) { t = Math.max(-1, Math.min(1, t)); return t >= 0 ? `rgb(${247 - Math.round(t * 69)},${247 - Math.round(t * 223)},${247 - Math.round(t * 204)})` : `rgb(${247 + Math.round(t * 214)},${247 + Math.round(t * 145)},${247 + Math.round(t * 75)})`; }
function legend(lo, hi, color) { const l = el('div', {className: 'legend'}); l.append(el('span', {}, fmt(lo))); const c = el('canvas', {width: 120, height: 10}); const g = c.getContext('2d'); for (let i = 0; i < 120; i++) { g.fillStyle = color(i / 119 * (hi - lo) + lo); g.fillRect(i, 0, 1, 10); } l.append(c, el('span', {}, fmt(hi))); return l; }
function heatmap(parent, title, m, opts) {
  opts = opts || {}; if (!m || !m.length) return;
  const rows = m.length, cols = m[0].length, cell = opts.cell || Math.max(2, Math.min(12, Math.floor(560 / Math.max(rows, cols))));
  let lo = opts.lo, hi = opts.hi;
  if (lo === undefined) { let mx = 1e-9; m.forEach(r => r.forEach(v => { if (isFinite(v)) mx = Math.max(mx, Math.abs(v)); })); lo = -mx; hi = mx; }
  const color = opts.color || (lo < 0 ? v => divColor(v / hi) : v => seqColor((v - lo) / (hi - lo)));
  const c = el('canvas', {width: cols * cell, height: rows * cell}); c.setAttribute('aria-label', title);
  const g = c.getContext('2d');
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) { const v = m[r][k]; g.fillStyle = isFinite(v) ? color(v) : '#ddd'; g.fillRect(k * cell, r * cell, cell, cell); }
  (opts.marks || []).forEach(([r, k]) => { g.fillStyle = '#2166ac'; g.beginPath(); g.arc(k * cell + cell / 2, r * cell + cell / 2, Math.max(1.5, cell / 4), 0, 7); g.fill(); });
  c.addEventListener('mousemove', ev => { const b = c.getBoundingClientRect(); const k = Math.floor((ev.clientX - b.left) / b.width * cols), r = Math.floor((ev.clientY - b.top) / b.height * rows); if (r < 0 || k < 0 || r >= rows || k >= cols) return; tip.style.display = 'block'; tip.style.left = ev.clientX + 12 + 'px'; tip.style.top = ev.clientY + 12 + 'px'; tip.textContent = (opts.label ? opts.label(r, k) : `row ${r}, col ${k}`) + ': ' + fmt(m[r][k]); });
  c.addEventListener('mouseleave', () => tip.style.display = 'none');
  const f = el('div', {className: 'fig'}); f.append(el('strong', {}, title), c, legend(lo, hi, lo < 0 ? v => divColor(v / hi) : v => seqColor((v - lo) / (hi - lo)))); parent.append(f); return c;
}
function table(parent, header, rows, id) {
  const t = el('table'); if (id) t.id = id; const h = t.createTHead().insertRow(); header.forEach(x => h.append(el('th', {}, x)));
  const b = t.createTBody(); rows.forEach(r => { const tr = b.insertRow(); r.forEach(x => tr.insertCell().textContent = fmt(x)); }); parent.append(t); return t;
}
function list(id, lines) { const u = $(id); (Array.isArray(lines) ? lines : lines ? [lines] : []).forEach(l => u.append(el('li', {}, l))); }
// model card
const cfg = D.model.config || {};
$('subtitle').textContent = D.model.path || '';
table($('model-card'), ['checkpoint', 'parameters', 'd_vocab', 'n_ctx', 'd_model', 'layers', 'heads', 'd_head', 'd_mlp', 'layer norm', 'weight processing applied'],
  [[D.model.path, D.model.n_params, cfg.d_vocab, cfg.n_ctx, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_head, cfg.d_mlp || 'none', cfg.layer_norm ? 'yes' : 'no', (D.weight_processing.applied || []).join(', ') || 'none']]);
// training
if (D.training.length) {
  // line chart: train_loss_as_frac and trigram_frac_correct per epoch, both on a 0..1 scale
  const W = 720, H = 260, pad = 36, c = el('canvas', {width: W, height: H}), g = c.getContext('2d'), n = D.training.length;
  c.setAttribute('aria-label', 'training curves');
  const X = i => pad + (n === 1 ? 0 : i / (n - 1)) * (W - 2 * pad), Y = v => H - pad - Math.max(0, Math.min(1.2, v)) / 1.2 * (H - 2 * pad);
  g.strokeStyle = '#999'; g.strokeRect(pad, pad, W - 2 * pad, H - 2 * pad); g.fillStyle = '#222'; g.font = '12px sans-serif';
  [0, 0.5, 1].forEach(v => g.fillText(String(v), 4, Y(v) + 4)); g.fillText('epoch ' + D.training[0].epoch, pad, H - 10); g.fillText('epoch ' + D.training[n - 1].epoch, W - pad - 60, H - 10);
  [['train_loss_as_frac', '#b2182b'], ['trigram_frac_correct', '#2166ac']].forEach(([k, col], i) => { g.strokeStyle = col; g.lineWidth = 2; g.beginPath(); D.training.forEach((r, j) => j ? g.lineTo(X(j), Y(r[k])) : g.moveTo(X(j), Y(r[k]))); g.stroke(); g.fillStyle = col; g.fillText(k, pad + 8 + i * 170, pad - 8); });
  const f = el('div', {className: 'fig'}); f.append(el('strong', {}, 'Training curves'), c); $('training-body').append(f);
  table($('training-body'), ['epoch', 'train_loss', 'val_loss', 'trigram_frac_correct'], D.training.filter((r, i) => i % Math.ceil(D.training.length / 10) === 0 || i === D.training.length - 1).map(r => [r.epoch, r.train_loss, r.val_loss, r.trigram_frac_correct]));
} else { $('training-body').textContent = 'No training metrics next to this model (analyze a run folder to see them).'; }
table($('metrics-body'), Object.keys(D.metrics), [Object.values(D.metrics)]);
// probabilities
const marks = []; (D.completes || []).forEach((row, s) => row.forEach((c, p) => { if (c && p >= 1 && s < D.probs.length) marks.push([s, p - 1]); }));
heatmap($('probs-fig'), 'p(correct next token)', D.probs, {lo: 0, hi: 1, marks, label: (r, k) => `seq ${r}, pos ${k}: ${D.sequences[r] ? D.sequences[r][k] + ' -> ' + D.sequences[r][k + 1] : ''}`});
list('sum-predictions', D.summaries.predictions);
// attention explorer
const seqSel = $('seq-select'), headSel = $('head-select');
const nEx = D.heads.length ? D.heads[0].patterns.length : 0;
for (let s = 0; s < nEx; s++) seqSel.append(el('option', {value: s}, String(s)));
D.heads.forEach((h, i) => headSel.append(el('option', {value: i}, h.name)));
let selected = -1;
function shade(pos) {
  const s = +seqSel.value, P = D.heads[+headSel.value].patterns[s], rev = $('reverse').checked;
  document.querySelectorAll('#tokens .tok').forEach((b, j) => { const a = pos < 0 ? 0 : (rev ? P[j][pos] : P[pos][j]); b.style.background = seqColor(a); b.dataset.attention = a.toFixed(4); b.classList.toggle('sel', j === pos); });
}
function renderExplorer() {
  const s = +seqSel.value, toks = $('tokens'); toks.textContent = '';
  const P = D.heads[+headSel.value].patterns[s], seq = D.sequences[s] || P.map((_, i) => i);
  const pr = D.probs[s] || [];
  seq.forEach((t, j) => { const b = el('button', {className: 'tok' + (D.completes[s] && D.completes[s][j] ? ' trigram' : '') + (j > 0 && pr[j - 1] > 0.5 ? ' correct' : '')}, String(t)); b.dataset.pos = j; b.setAttribute('aria-label', `token ${t} at position ${j}`);
    b.addEventListener('mouseenter', () => shade(j)); b.addEventListener('focus', () => { selected = j; shade(j); }); b.addEventListener('click', () => { selected = j; shade(j); });
    b.addEventListener('keydown', ev => { const d = ev.key === 'ArrowRight' ? 1 : ev.key === 'ArrowLeft' ? -1 : 0; if (d) { ev.preventDefault(); const n = toks.children[Math.max(0, Math.min(seq.length - 1, j + d))]; n.focus(); } });
    toks.append(b); });
  const f = $('pattern-fig'); f.textContent = '';
  heatmap(f, 'query x key attention pattern', P, {lo: 0, hi: 1, label: (r, k) => `query ${r} (${seq[r]}) -> key ${k} (${seq[k]})`});
  shade(selected >= 0 && selected < seq.length ? selected : -1);
}
[seqSel, headSel, $('reverse')].forEach(x => x.addEventListener('change', renderExplorer));
if (nEx) renderExplorer();
// previous-token attention
D.heads.forEach(h => heatmap($('prev-fig'), 'mean attention to the previous token by position (' + h.name + ')', [h.mean_prev], {lo: 0, hi: 1, cell: 14, label: (r, k) => 'position ' + k}));
list('sum-attention', D.summaries.attention);
// QK
const prefMarks = (D.prefixes || []).map(t => [t[0], t[1]]);
heatmap($('qk-figs'), 'token-token scores (query x key)', D.token_token);
heatmap($('qk-figs'), 'position-position scores (query x key)', D.pos_pos);
heatmap($('qk-figs'), 'prefix score advantage [X prev][Y current], dots: dataset prefixes', D.prefix_advantage, {marks: prefMarks, label: (r, k) => `X=${r}, Y=${k}`});
heatmap($('qk-figs'), 'W_pos cosine similarity', D.pos_cosine, {lo: -1, hi: 1});
list('sum-circuits', D.summaries.circuits);
// OV
if (D.ov && D.ov.ov_singular_values) { table($('ov-body'), ['', ...D.ov.ov_singular_values.slice(0, 8).map((_, i) => 's' + i)], [['W_V W_O', ...D.ov.ov_singular_values.slice(0, 8)], ['W_E W_V W_O W_U', ...(D.ov.full_ov_singular_values || []).slice(0, 8)]]); }
table($('dla-body'), ['component', 'trigram positions', 'other positions'], (D.dla || []).map(c => [c.name, c.mean_trigram, c.mean_other]));
list('sum-attribution', D.summaries.attribution);
const clean = D.ablation.clean || {};
table($('ablation-body'), ['ablation', 'loss', 'trigram_n_correct', 'trigram_avg_correct_prob'], [['clean', clean.loss, clean.trigram_n_correct, clean.trigram_avg_correct_prob]].concat((D.ablation.ablations || []).map(a => [a.mode + ' ' + a.target, a.metrics.loss, a.metrics.trigram_n_correct, a.metrics.trigram_avg_correct_prob])));
list('sum-patching', [D.patching.summary].filter(x => x));
// trigram table: sortable, filterable
const ev = D.extraction_eval || {};
$('extraction-eval').textContent = ev.vs_dataset ? `precision ${fmt(ev.vs_dataset.precision)}, recall ${fmt(ev.vs_dataset.recall)} against the dataset's trigrams; ${D.trigrams.length} extracted.` : `${D.trigrams.length} extracted; the dataset is unknown.`;
list('sum-extraction', D.summaries.extraction);
let rows = D.trigrams.map(t => [t.a, t.b, t.c, t.confidence, t.attn_prev, t.decided_by]), sortCol = -1, asc = true;
function renderTable() {
  const q = $('trigram-filter').value.trim().toLowerCase(), body = $('trigram-body'); body.textContent = '';
  const shown = rows.filter(r => !q || r.some(x => String(x).toLowerCase() === q || String(x).toLowerCase().includes(q) && isNaN(+q)));
  const t = table(body, ['a', 'b', 'c', 'confidence', 'attention on a', 'decided by'], shown, 'trigrams');
  t.querySelectorAll('th').forEach((th, i) => th.addEventListener('click', () => { asc = sortCol === i ? !asc : true; sortCol = i; rows.sort((x, y) => (x[i] < y[i] ? -1 : x[i] > y[i] ? 1 : 0) * (asc ? 1 : -1)); renderTable(); }));
}
$('trigram-filter').addEventListener('input', renderTable); renderTable();
table($('causal-body'), ['variant', 'loss', 'trigram_n_correct', 'recovered loss', 'recovered trigram accuracy'], (D.causal || []).map(v => [v.name, v.metrics.loss, v.metrics.trigram_n_correct, v.recovered_loss, v.recovered_trigram_frac]));
list('sum-failure_modes', D.summaries.failure_modes);
</script></body></html>
""";
}
