package dev.trilens.interp;

import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Parallel;
import dev.trilens.model.Tensor;
import dev.trilens.model.Weights;
import dev.trilens.train.Metrics;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the trigram table (a, b) -> c a one-layer model has learned from its weights alone: no training data, no
 * forward pass over a dataset; only the model's components evaluated on its own embedding vectors.
 *
 * <p>The mechanism it reads: at the position of b, the head attends to the previous token a when (a, b) is a trigram
 * prefix (QK), the OV circuit copies a into b's residual stream, and the MLP and unembed turn "a copied into b" into
 * the logit of c. So for every pair (a, b) and every typical position p (query b at p, key a at p-1):
 * <ol>
 *   <li><b>QK.</b> The scores of the query W_E[b] + W_pos[p] against the keys W_E[a] + W_pos[p-1] and against
 *   itself, and (by default) against a background of uniformly random tokens at 0..p-2, taken in expectation
 *   (mean-field: E[sum_j exp(score)] in the softmax denominator). This gives the attention on a, on b and on the
 *   background, per head.</li>
 *   <li><b>OV.</b> resid_mid = W_E[b] + W_pos[p] + sum_h (attention-weighted OV outputs of a, b and the background)
 *   + b_O.</li>
 *   <li><b>MLP and unembed.</b> resid_post = resid_mid + MLP(resid_mid) (no MLP for attention-only models), then the
 *   unembed (LayerNorms applied where the model has them) -> a distribution over c.</li>
 * </ol>
 * The distributions are averaged over the positions; the pair's candidate is c = argmax and its confidence the
 * averaged P(c). (a, b, c) is extracted when the confidence exceeds the threshold (0.5 by default: c is more likely
 * than everything else together, whereas a non-prefix pair's next token is uniform, P = 1/d_vocab).
 *
 * <p>Each entry says which circuit quantities decide it: the attention on a and the QK score advantage of a over b
 * itself (per head), P(c) with no attention on a and with all of it (OV+MLP readout), and the split of the logit
 * margin of c over the runner-up into direct contributions of the embedding, the OV output of a, the rest of the
 * attention output, the MLP and the unembed bias.
 */
public final class TrigramExtractor {

    private TrigramExtractor() {
    }

    /** How the softmax of the query at b sees the context besides a and b. */
    public enum Background {
        /** Only the two keys a (p-1) and b (p): the model on the 2-token context [a, b] at positions (p-1, p). */
        TWO_KEY("two_key"),
        /** Plus positions 0..p-2 holding uniformly random tokens, in expectation (mean-field). */
        RANDOM_CONTEXT("random_context");

        public final String key;

        Background(String key) {
            this.key = key;
        }
    }

    /**
     * @param threshold extract (a, b, c) when the position-averaged P(c) exceeds this
     * @param positions the query positions p to average over (each in [1, n_ctx-1]); null = the default
     *                  {@link #defaultPositions(int)}
     */
    public record Options(double threshold, int[] positions, Background background) {
        public static final double DEFAULT_THRESHOLD = 0.5;

        public Options {
            if (!(threshold > 0 && threshold < 1)) {
                throw new TrilensException("extraction threshold must be > 0 and < 1, got " + threshold);
            }
            if (positions != null && positions.length == 0) {
                throw new TrilensException("extraction needs at least one query position");
            }
            if (background == null) {
                throw new TrilensException("extraction needs a background mode (two_key or random_context)");
            }
            positions = positions == null ? null : positions.clone();
        }

        public static Options defaults() {
            return new Options(DEFAULT_THRESHOLD, null, Background.RANDOM_CONTEXT);
        }

        public Options withThreshold(double t) {
            return new Options(t, positions, background);
        }

        public Options withPositions(int... p) {
            return new Options(threshold, p, background);
        }

        public Options withBackground(Background b) {
            return new Options(threshold, positions, b);
        }
    }

    /**
     * Every position whose prediction the training loss uses, 1..n_ctx-2 (the last position predicts nothing and is
     * never trained), thinned to at most 16 evenly spaced ones for long contexts.
     */
    public static int[] defaultPositions(int nCtx) {
        int lo = 1, hi = Math.max(1, nCtx - 2);
        int n = hi - lo + 1;
        int k = Math.min(n, 16);
        int[] out = new int[k];
        for (int i = 0; i < k; i++) {
            out[i] = k == 1 ? lo : lo + (int) Math.round(i * (double) (n - 1) / (k - 1));
        }
        return out;
    }

    /** Names of the direct logit contributions to an entry's margin, in order; they sum to the margin. */
    public static final List<String> CONTRIBUTIONS = List.of("embed", "ov_prev", "ov_rest", "mlp", "unembed_bias");

    /**
     * One extracted trigram and the circuit quantities that decide it (all averaged over the query positions).
     *
     * @param confidence P(c) under the model's own attention
     * @param confidenceMin the smallest P(c) over the positions
     * @param attnPrev per head: the attention of b (at p) on a (at p-1)
     * @param qkAdvantage per head: score(b@p -> a@p-1) - score(b@p -> b@p)
     * @param confidenceNoAttnPrev P(c) with head attention on a set to 0 (renormalised over the rest): what b alone gives
     * @param confidenceFullAttnPrev P(c) with every head attending a only: the "OV(x_prev) + x_current, MLP,
     *                               unembed" readout
     * @param runnerUp the second most likely token
     * @param logitMargin logit(c) - logit(runnerUp)
     * @param marginContributions direct contribution of each {@link #CONTRIBUTIONS} part to the margin
     * @param decidedBy the part with the largest positive contribution
     */
    public record Entry(int a, int b, int c, double confidence, double confidenceMin, double[] attnPrev,
                        double[] qkAdvantage, double confidenceNoAttnPrev, double confidenceFullAttnPrev,
                        int runnerUp, double logitMargin, double[] marginContributions, String decidedBy) {

        /** A one-line reading of the entry. */
        public String explanation() {
            StringBuilder s = new StringBuilder();
            s.append("QK: b attends a with ").append(fmtList(attnPrev)).append(" (score over self ")
                    .append(fmtSigned(qkAdvantage)).append("); OV+MLP: P(c) ").append(f2(confidenceFullAttnPrev))
                    .append(" with full attention on a, ").append(f2(confidenceNoAttnPrev))
                    .append(" with none; margin ").append(f2(logitMargin)).append(" over ").append(runnerUp)
                    .append(" =");
            for (int i = 0; i < CONTRIBUTIONS.size(); i++) {
                s.append(' ').append(CONTRIBUTIONS.get(i)).append(' ')
                        .append(String.format("%+.2f", marginContributions[i]));
            }
            return s.toString();
        }

        public Map<String, Object> toJson() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("a", a);
            m.put("b", b);
            m.put("c", c);
            m.put("confidence", confidence);
            m.put("confidence_min", confidenceMin);
            m.put("attn_prev", attnPrev);
            m.put("qk_advantage", qkAdvantage);
            m.put("confidence_no_attn_prev", confidenceNoAttnPrev);
            m.put("confidence_full_attn_prev", confidenceFullAttnPrev);
            m.put("runner_up", runnerUp);
            m.put("logit_margin", logitMargin);
            Map<String, Double> contrib = new LinkedHashMap<>();
            for (int i = 0; i < CONTRIBUTIONS.size(); i++) {
                contrib.put(CONTRIBUTIONS.get(i), marginContributions[i]);
            }
            m.put("margin_contributions", contrib);
            m.put("decided_by", decidedBy);
            m.put("explanation", explanation());
            return m;
        }
    }

    /**
     * Per pair (a, b), flat [a * V + b], position-averaged: the candidate c (argmax), its confidence, the attention
     * on a (the largest over heads) and the QK advantage (of that head).
     */
    public record PairTables(int dVocab, int[] argmax, float[] confidence, float[] attnPrev, float[] qkAdvantage) {
        public int idx(int a, int b) {
            return a * dVocab + b;
        }
    }

    /**
     * What the weights say: the extracted trigrams (by confidence, highest first) and every pair's numbers.
     *
     * @param maxRejectedConfidence the highest confidence of a pair left out, minExtractedConfidence the lowest of
     *                              one extracted (NaN when there is none): a wide gap means the threshold hardly matters
     */
    public record Result(ModelConfig config, Options options, int[] positions, List<Entry> trigrams,
                         PairTables pairs, double maxRejectedConfidence, double minExtractedConfidence,
                         double seconds) {

        /** The extracted c for (a, b), or -1. */
        public int completionOf(int a, int b) {
            int i = pairs.idx(a, b);
            return pairs.confidence[i] > options.threshold() ? pairs.argmax[i] : -1;
        }

        /** prefix[a * V + b]: whether (a, b) is an extracted trigram prefix. */
        public boolean[] prefixTable() {
            boolean[] t = new boolean[pairs.dVocab() * pairs.dVocab()];
            for (Entry e : trigrams) {
                t[pairs.idx(e.a(), e.b())] = true;
            }
            return t;
        }

        public int[][] triples() {
            int[][] out = new int[trigrams.size()][];
            for (int i = 0; i < out.length; i++) {
                Entry e = trigrams.get(i);
                out[i] = new int[] {e.a(), e.b(), e.c()};
            }
            return out;
        }

        /** The method and settings, then up to top entries (top < 0: all). */
        public Map<String, Object> toJson(int top) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("method", METHOD);
            m.put("background", options.background().key);
            m.put("threshold", options.threshold());
            m.put("positions", positions);
            m.put("n_extracted", trigrams.size());
            m.put("max_rejected_confidence", maxRejectedConfidence);
            m.put("min_extracted_confidence", minExtractedConfidence);
            m.put("seconds", seconds);
            List<Map<String, Object>> list = new ArrayList<>();
            for (int i = 0; i < trigrams.size() && (top < 0 || i < top); i++) {
                list.add(trigrams.get(i).toJson());
            }
            m.put("trigrams", list);
            return m;
        }
    }

    public static final String METHOD = "weights only: for every (a, b) and query position p, attention of b@p on "
            + "a@p-1 vs itself (and a mean-field background of random tokens at 0..p-2 unless two_key) from QK; "
            + "resid_mid = W_E[b] + W_pos[p] + attention-weighted OV outputs + b_O; MLP and unembed (with the model's "
            + "LayerNorms) -> P(c), averaged over p; (a, b, argmax c) is extracted when P(c) > threshold";

    /** Extracts with {@link Options#defaults()}. */
    public static Result extract(Weights w) {
        return extract(w, Options.defaults());
    }

    public static Result extract(Weights w, Options opts) {
        long t0 = System.nanoTime();
        ExtractComponents comp = new ExtractComponents(w);
        int V = comp.V, H = comp.H;
        int[] positions = opts.positions() == null ? defaultPositions(comp.N) : opts.positions();
        for (int p : positions) {
            if (p < 1 || p >= comp.N) {
                throw new TrilensException("query position " + p + " is outside [1, " + (comp.N - 1)
                        + "]: b at p needs a at p-1 inside the model's context of " + comp.N);
            }
        }
        boolean random = opts.background() == Background.RANDOM_CONTEXT;
        int P = positions.length;
        int[] argmax = new int[V * V];
        float[] conf = new float[V * V], attnPrev = new float[V * V], qkAdv = new float[V * V];

        // pass 1: every pair's position-averaged distribution, one query token b per task
        Parallel.forRange(V, (worker, from, to) -> {
            ExtractComponents.Background bg = new ExtractComponents.Background(H, comp.D);
            ExtractComponents.Resid r = new ExtractComponents.Resid(comp);
            double[] wPrev = new double[H], wSelf = new double[H], wBg = new double[H], sPrev = new double[H],
                    sSelf = new double[H], probs = new double[V];
            double[] acc = new double[V * V], accAttn = new double[V * H], accAdv = new double[V * H];
            for (int b = from; b < to; b++) {
                Arrays.fill(acc, 0);
                Arrays.fill(accAttn, 0);
                Arrays.fill(accAdv, 0);
                for (int p : positions) {
                    comp.background(bg, b, p, random);
                    for (int a = 0; a < V; a++) {
                        comp.attention(a, b, p, bg, wPrev, wSelf, sPrev, sSelf);
                        for (int h = 0; h < H; h++) {
                            wBg[h] = Math.max(0, 1 - wPrev[h] - wSelf[h]);
                            accAttn[a * H + h] += wPrev[h] / P;
                            accAdv[a * H + h] += (sPrev[h] - sSelf[h]) / P;
                        }
                        comp.forward(r, a, b, p, bg, wPrev, wSelf, wBg);
                        ExtractComponents.softmax(r.logits, probs);
                        for (int c = 0; c < V; c++) {
                            acc[a * V + c] += probs[c] / P;
                        }
                    }
                }
                for (int a = 0; a < V; a++) {
                    int best = 0;
                    for (int c = 1; c < V; c++) {
                        if (acc[a * V + c] > acc[a * V + best]) {
                            best = c;
                        }
                    }
                    int head = 0;
                    for (int h = 1; h < H; h++) {
                        if (accAttn[a * H + h] > accAttn[a * H + head]) {
                            head = h;
                        }
                    }
                    int i = a * V + b;
                    argmax[i] = best;
                    conf[i] = (float) acc[a * V + best];
                    attnPrev[i] = (float) accAttn[a * H + head];
                    qkAdv[i] = (float) accAdv[a * H + head];
                }
            }
        });

        // pass 2: explain the extracted entries
        List<int[]> chosen = new ArrayList<>();
        double maxRejected = Double.NaN, minExtracted = Double.NaN;
        for (int a = 0; a < V; a++) {
            for (int b = 0; b < V; b++) {
                double cf = conf[a * V + b];
                if (cf > opts.threshold()) {
                    chosen.add(new int[] {a, b});
                    minExtracted = Double.isNaN(minExtracted) ? cf : Math.min(minExtracted, cf);
                } else {
                    maxRejected = Double.isNaN(maxRejected) ? cf : Math.max(maxRejected, cf);
                }
            }
        }
        Entry[] entries = new Entry[chosen.size()];
        Parallel.forRange(chosen.size(), (worker, from, to) -> {
            for (int i = from; i < to; i++) {
                int[] ab = chosen.get(i);
                entries[i] = explain(comp, ab[0], ab[1], argmax[ab[0] * V + ab[1]], positions, random);
            }
        });
        List<Entry> list = new ArrayList<>(Arrays.asList(entries));
        list.sort(Comparator.comparingDouble(Entry::confidence).reversed()
                .thenComparingInt(Entry::a).thenComparingInt(Entry::b));
        return new Result(w.cfg, opts, positions, List.copyOf(list), new PairTables(V, argmax, conf, attnPrev, qkAdv),
                maxRejected, minExtracted, (System.nanoTime() - t0) / 1e9);
    }

    /**
     * The distribution over c the extraction computes for one pair at one query position (not averaged): with
     * TWO_KEY it is exactly the model's prediction at p when the query at p sees only a at p-1 and b at p.
     */
    public static double[] distribution(Weights w, int a, int b, int p, Background background) {
        ExtractComponents comp = new ExtractComponents(w);
        if (a < 0 || a >= comp.V || b < 0 || b >= comp.V) {
            throw new TrilensException("tokens must be in [0, " + comp.V + "), got a=" + a + " b=" + b);
        }
        if (p < 1 || p >= comp.N) {
            throw new TrilensException("query position " + p + " is outside [1, " + (comp.N - 1) + "]");
        }
        int H = comp.H;
        ExtractComponents.Background bg = new ExtractComponents.Background(H, comp.D);
        ExtractComponents.Resid r = new ExtractComponents.Resid(comp);
        double[] wPrev = new double[H], wSelf = new double[H], wBg = new double[H], sPrev = new double[H],
                sSelf = new double[H], probs = new double[comp.V];
        comp.background(bg, b, p, background == Background.RANDOM_CONTEXT);
        comp.attention(a, b, p, bg, wPrev, wSelf, sPrev, sSelf);
        for (int h = 0; h < H; h++) {
            wBg[h] = Math.max(0, 1 - wPrev[h] - wSelf[h]);
        }
        comp.forward(r, a, b, p, bg, wPrev, wSelf, wBg);
        ExtractComponents.softmax(r.logits, probs);
        return probs;
    }

    /** The circuit quantities of one pair (a, b) with candidate c, averaged over the positions. */
    static Entry explain(ExtractComponents comp, int a, int b, int c, int[] positions, boolean random) {
        int V = comp.V, H = comp.H, P = positions.length;
        ExtractComponents.Background bg = new ExtractComponents.Background(H, comp.D);
        ExtractComponents.Resid r = new ExtractComponents.Resid(comp);
        double[] wPrev = new double[H], wSelf = new double[H], wBg = new double[H], sPrev = new double[H],
                sSelf = new double[H], probs = new double[V];
        double[] w0 = new double[H], s0 = new double[H], b0 = new double[H], w1 = new double[H], z = new double[H];
        double[] attn = new double[H], adv = new double[H], meanProbs = new double[V];
        double[][] logitsAt = new double[P][];
        double[] lnfScaleAt = new double[P];
        double[][][] piecesAt = new double[P][][];
        double conf = 0, confMin = 1, confNo = 0, confFull = 0;
        for (int pi = 0; pi < P; pi++) {
            int p = positions[pi];
            comp.background(bg, b, p, random);
            comp.attention(a, b, p, bg, wPrev, wSelf, sPrev, sSelf);
            for (int h = 0; h < H; h++) {
                wBg[h] = Math.max(0, 1 - wPrev[h] - wSelf[h]);
                attn[h] += wPrev[h] / P;
                adv[h] += (sPrev[h] - sSelf[h]) / P;
            }
            comp.forward(r, a, b, p, bg, wPrev, wSelf, wBg);
            ExtractComponents.softmax(r.logits, probs);
            for (int t = 0; t < V; t++) {
                meanProbs[t] += probs[t] / P;
            }
            conf += probs[c] / P;
            confMin = Math.min(confMin, probs[c]);
            logitsAt[pi] = r.logits.clone();
            lnfScaleAt[pi] = r.lnfScale;
            piecesAt[pi] = new double[][] {r.embed.clone(), r.ovPrev.clone(), r.ovRest.clone(), r.mlpOut.clone()};
            // no attention on a: the rest renormalised
            for (int h = 0; h < H; h++) {
                double rest = 1 - wPrev[h];
                w0[h] = 0;
                s0[h] = rest > 0 ? wSelf[h] / rest : 1;
                b0[h] = rest > 0 ? wBg[h] / rest : 0;
                w1[h] = 1;
            }
            comp.forward(r, a, b, p, bg, w0, s0, b0);
            ExtractComponents.softmax(r.logits, probs);
            confNo += probs[c] / P;
            comp.forward(r, a, b, p, bg, w1, z, z);
            ExtractComponents.softmax(r.logits, probs);
            confFull += probs[c] / P;
        }
        int runnerUp = c == 0 ? 1 : 0;
        for (int t = 0; t < V; t++) {
            if (t != c && meanProbs[t] > meanProbs[runnerUp]) {
                runnerUp = t;
            }
        }
        double margin = 0;
        double[] contrib = new double[CONTRIBUTIONS.size()];
        for (int pi = 0; pi < P; pi++) {
            margin += (logitsAt[pi][c] - logitsAt[pi][runnerUp]) / P;
            for (int k = 0; k < 4; k++) {
                contrib[k] += comp.directLogitDiff(piecesAt[pi][k], lnfScaleAt[pi], c, runnerUp) / P;
            }
        }
        contrib[4] = comp.biasLogitDiff(c, runnerUp);
        int top = 0;
        for (int k = 1; k < contrib.length; k++) {
            if (contrib[k] > contrib[top]) {
                top = k;
            }
        }
        return new Entry(a, b, c, conf, confMin, attn, adv, confNo, confFull, runnerUp, margin, contrib,
                CONTRIBUTIONS.get(top));
    }

    // -------------------------------------------------------------------------------------------------------------
    // Against the truth, when the dataset is known

    /**
     * Extracted vs reference trigrams: an extracted entry is correct when (a, b, c) is in the reference; prefixes
     * count (a, b) matches whatever c.
     */
    public record Comparison(int nExtracted, int nReference, int nCorrect, double precision, double recall,
                             int nPrefixCorrect, double prefixPrecision, double prefixRecall) {
        public Map<String, Object> toJson() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("n_extracted", nExtracted);
            m.put("n_reference", nReference);
            m.put("n_correct", nCorrect);
            m.put("precision", precision);
            m.put("recall", recall);
            m.put("n_prefix_correct", nPrefixCorrect);
            m.put("prefix_precision", prefixPrecision);
            m.put("prefix_recall", prefixRecall);
            return m;
        }
    }

    /**
     * @param vsDataset against the dataset's trigrams
     * @param vsModel against the dataset trigrams the model predicts (argmax at position 1 of the all-trigrams batch
     *                is c, as the challenge's trigram metric counts them): the only place extraction runs the model,
     *                as ground truth
     * @param vsModelConfident against those the model predicts with P(c) above the extraction threshold
     * @param nPredictedUnconfident how many the model predicts (argmax) with P(c) at most the threshold, and
     *                              meanProbUnconfident their mean P(c): right by a small margin, not by a learned rule
     */
    public record Evaluation(long seed, double trigramProb, Comparison vsDataset, Comparison vsModel,
                             Comparison vsModelConfident, int nPredictedUnconfident, double meanProbUnconfident) {
        public Map<String, Object> toJson() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("seed", seed);
            m.put("trigram_prob", trigramProb);
            m.put("vs_dataset", vsDataset.toJson());
            m.put("vs_model", vsModel.toJson());
            m.put("vs_model_confident", vsModelConfident.toJson());
            m.put("n_predicted_unconfident", nPredictedUnconfident);
            m.put("mean_prob_unconfident", meanProbUnconfident);
            return m;
        }
    }

    public static Evaluation evaluate(Result r, HookedTransformer model, TrigramDataset data) {
        int[][] all = data.trigrams();
        double[] probC = new double[all.length];
        boolean[] predicted = predictedTrigrams(model, data, probC);
        List<int[]> modelSet = new ArrayList<>(), confident = new ArrayList<>();
        double unconfidentProb = 0;
        for (int i = 0; i < all.length; i++) {
            if (predicted[i]) {
                modelSet.add(all[i]);
                if (probC[i] > r.options().threshold()) {
                    confident.add(all[i]);
                } else {
                    unconfidentProb += probC[i];
                }
            }
        }
        int nUnconfident = modelSet.size() - confident.size();
        return new Evaluation(data.seed(), data.trigramProb(), compare(r, Arrays.asList(all), data.dVocab()),
                compare(r, modelSet, data.dVocab()), compare(r, confident, data.dVocab()), nUnconfident,
                nUnconfident == 0 ? Double.NaN : unconfidentProb / nUnconfident);
    }

    /** Per dataset trigram, in generation order: does the model's argmax at position 1 of [a, b, c] equal c? */
    public static boolean[] predictedTrigrams(HookedTransformer model, TrigramDataset data) {
        return predictedTrigrams(model, data, new double[data.nTrigrams()]);
    }

    /** Same, also filling probC[i] with the model's P(c) there. */
    public static boolean[] predictedTrigrams(HookedTransformer model, TrigramDataset data, double[] probC) {
        int n = data.nTrigrams();
        boolean[] out = new boolean[n];
        if (n == 0) {
            return out;
        }
        Tensor logits = model.forward(data.trigramBatch(), n, 3);
        int V = logits.dim(2);
        int[][] t = data.trigrams();
        for (int i = 0; i < n; i++) {
            int row = (i * 3 + 1) * V;
            out[i] = Metrics.argmax(logits.data(), row, V) == t[i][2];
            probC[i] = Math.exp(Metrics.logProb(logits.data(), row, V, t[i][2]));
        }
        return out;
    }

    static Comparison compare(Result r, List<int[]> reference, int V) {
        int[] refC = new int[V * V];
        Arrays.fill(refC, -1);
        for (int[] t : reference) {
            refC[t[0] * V + t[1]] = t[2];
        }
        int correct = 0, prefix = 0;
        for (Entry e : r.trigrams()) {
            int c = refC[e.a() * V + e.b()];
            if (c >= 0) {
                prefix++;
                if (c == e.c()) {
                    correct++;
                }
            }
        }
        int nE = r.trigrams().size(), nR = reference.size();
        return new Comparison(nE, nR, correct, ratio(correct, nE), ratio(correct, nR), prefix, ratio(prefix, nE),
                ratio(prefix, nR));
    }

    private static double ratio(int num, int den) {
        return den == 0 ? Double.NaN : num / (double) den;
    }

    // -------------------------------------------------------------------------------------------------------------

    static String f2(double v) {
        return String.format("%.2f", v);
    }

    private static String fmtList(double[] v) {
        if (v.length == 1) {
            return f2(v[0]);
        }
        StringBuilder s = new StringBuilder("[");
        for (int i = 0; i < v.length; i++) {
            s.append(i == 0 ? "" : ", ").append(f2(v[i]));
        }
        return s.append(']').toString();
    }

    private static String fmtSigned(double[] v) {
        StringBuilder s = new StringBuilder(v.length == 1 ? "" : "[");
        for (int i = 0; i < v.length; i++) {
            s.append(i == 0 ? "" : ", ").append(String.format("%+.2f", v[i]));
        }
        return s.append(v.length == 1 ? "" : "]").toString();
    }
}
