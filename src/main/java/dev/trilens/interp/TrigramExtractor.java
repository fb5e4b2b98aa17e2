package dev.trilens.interp;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.TrilensException;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Parallel;
import dev.trilens.model.Weights;
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
 * averaged P(c). (a, b, c) is extracted when the confidence is above a cut that needs no labels: the middle of the
 * widest gap between the confidences above 1/d_vocab ({@link ConfidenceCut#widestGap}; a learned trigram's P(c) is
 * near 1, a non-prefix pair's near uniform, and the gap between them is wide: 0.030 to 0.934 on the challenge
 * model). A fixed {@link Options#threshold()} overrides it.
 *
 * <p>Beside the trigrams it lists the bigram defaults (*, b, c): for each b, the median over every a' of the same
 * P(. | a', b), kept where its argmax clears {@link ConfidenceCut#otsuLog}. These are what a model predicts after b
 * whatever came before it: a small bump (1.3 to 2 times uniform on the challenge model) that is enough to win the
 * argmax for dataset trigrams whose a the model has not learned. {@link ExtractionScore#evaluate} says which dataset trigrams the
 * model gets right that way and which depend on a.
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
     * @param threshold extract (a, b, c) when the position-averaged P(c) exceeds this; null (the default) puts the
     *                  cut at the widest gap of the confidences, {@link ConfidenceCut#widestGap}, which needs no labels
     * @param positions the query positions p to average over (each in [1, n_ctx-1]); null = the default
     *                  {@link #defaultPositions(int)}
     */
    public record Options(Double threshold, int[] positions, Background background) {
        public Options {
            if (threshold != null && !(threshold > 0 && threshold < 1)) {
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

        /** The label-free cut, the default positions and the random-context background. */
        public static Options defaults() {
            return new Options(null, null, Background.RANDOM_CONTEXT);
        }

        /** A fixed threshold instead of the label-free cut. */
        public Options withThreshold(double t) {
            return new Options(t, positions, background);
        }

        public Options withLabelFreeCut() {
            return new Options(null, positions, background);
        }

        public Options withPositions(int... p) {
            return new Options(threshold, p, background);
        }

        public Options withBackground(Background b) {
            return new Options(threshold, positions, b);
        }
    }

    /**
     * The extraction's work in multiply-adds, for Kernels.preferForWork: every pair (a, b) at each query position,
     * about a token's forward pass each. positions null = the default ones.
     */
    public static double multiplyAdds(ModelConfig cfg, int[] positions) {
        int n = positions != null ? positions.length : defaultPositions(cfg.nCtx()).length;
        return (double) cfg.dVocab() * cfg.dVocab() * n * cfg.tokenMultiplyAdds();
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

        /** The entry as `extract --json` lists it: its margin contributions by part, and its explanation. */
        public Listed listed() {
            Map<String, Double> contrib = new LinkedHashMap<>();
            for (int i = 0; i < CONTRIBUTIONS.size(); i++) {
                contrib.put(CONTRIBUTIONS.get(i), marginContributions[i]);
            }
            return new Listed(a, b, c, confidence, confidenceMin, attnPrev, qkAdvantage, confidenceNoAttnPrev,
                    confidenceFullAttnPrev, runnerUp, logitMargin, contrib, decidedBy, explanation());
        }
    }

    /** An {@link Entry} as `extract --json` lists it: {@link Entry#explanation()} written out beside its numbers. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Listed(int a, int b, int c, double confidence, double confidenceMin, double[] attnPrev,
                         double[] qkAdvantage, double confidenceNoAttnPrev, double confidenceFullAttnPrev,
                         int runnerUp, double logitMargin, Map<String, Double> marginContributions, String decidedBy,
                         String explanation) {
    }

    /**
     * Per pair (a, b), flat [a * V + b], position-averaged: the candidate c (argmax), its confidence, the attention
     * on a (the largest over heads) and the QK advantage (of that head); and what an explanation of a pair's
     * prediction needs beyond its argmax: the whole distribution over c ({@link #probability}; V^3 floats, 1.7 MB at
     * the challenge's d_vocab 75, kept in memory but not written to JSON) and, per b, its median over every a'
     * ({@link #median}: what b predicts whatever comes before it).
     *
     * @param distribution [(a * V + b) * V + c] = the weights-only P(c | a, b), averaged over the query positions
     * @param medianOverA [b * V + c] = the median over every a' (all V of them) of that P(c | a', b)
     */
    public record PairTables(int dVocab, int[] argmax, float[] confidence, float[] attnPrev, float[] qkAdvantage,
                             @JsonIgnore float[] distribution, float[] medianOverA) {
        public int idx(int a, int b) {
            return a * dVocab + b;
        }

        /** The weights-only P(c | a, b), averaged over the query positions. */
        public double probability(int a, int b, int c) {
            return distribution[idx(a, b) * dVocab + c];
        }

        /** The median over every a' of the weights-only P(c | a', b). */
        public double median(int b, int c) {
            return medianOverA[b * dVocab + c];
        }
    }

    /**
     * A bigram default (*, b, c): whatever token a comes before b, the weights predict c after it, by a bump that
     * does not depend on a (the median over a' of P(. | a', b) has its argmax at c, above the bigram cut).
     *
     * @param confidence the median over every a' of the weights-only P(c | a', b)
     */
    public record BigramDefault(int b, int c, double confidence) {
    }

    /**
     * What the weights say: the extracted trigrams (by confidence, highest first), the bigram defaults (by b) and
     * every pair's numbers.
     *
     * @param cut where the pair confidences were cut: the label-free widest gap unless {@link Options#threshold()}
     *            fixed it; an entry is extracted when its confidence is above {@code cut.value()}
     * @param maxRejectedConfidence the highest confidence of a pair left out, minExtractedConfidence the lowest of
     *                              one extracted (NaN when there is none): a wide gap means the cut hardly matters
     * @param bigramDefaults for each b whose median over a' of P(. | a', b) has an argmax above bigramCut, that
     *                       (*, b, c), ordered by b
     * @param bigramCut the label-free cut of those per-b argmax confidences ({@link ConfidenceCut#otsuLog})
     */
    public record Result(ModelConfig config, Options options, int[] positions, ConfidenceCut cut,
                         List<Entry> trigrams, List<BigramDefault> bigramDefaults, ConfidenceCut bigramCut,
                         PairTables pairs, double maxRejectedConfidence, double minExtractedConfidence,
                         double seconds) {

        /** The threshold the confidences were compared with: the cut's value. */
        public double threshold() {
            return cut.value();
        }

        /** The extracted c for (a, b), or -1. */
        public int completionOf(int a, int b) {
            int i = pairs.idx(a, b);
            return cut.keeps(pairs.confidence[i]) ? pairs.argmax[i] : -1;
        }

        /** The c of the bigram default (*, b, c), or -1 when b has none. */
        public int bigramDefaultOf(int b) {
            for (BigramDefault d : bigramDefaults) {
                if (d.b() == b) {
                    return d.c();
                }
            }
            return -1;
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

        /** The method and settings, then up to top entries (top < 0: all), then every bigram default. */
        public Table toJson(int top) {
            List<Listed> listed = trigrams.stream().limit(top < 0 ? Long.MAX_VALUE : top).map(Entry::listed)
                    .toList();
            return new Table(METHOD, options.background().key, cut.value(), cut, positions, trigrams.size(),
                    maxRejectedConfidence, minExtractedConfidence, seconds, listed, BIGRAM_METHOD, bigramCut,
                    bigramDefaults);
        }
    }

    /** A {@link Result} as `extract --json` writes it: its settings, the listed entries and the bigram defaults. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Table(String method, String background, double threshold, ConfidenceCut cut, int[] positions,
                        int nExtracted, double maxRejectedConfidence, double minExtractedConfidence, double seconds,
                        List<Listed> trigrams, String bigramMethod, ConfidenceCut bigramCut,
                        List<BigramDefault> bigramDefaults) {
    }

    public static final String METHOD = "weights only: for every (a, b) and query position p, attention of b@p on "
            + "a@p-1 vs itself (and a mean-field background of random tokens at 0..p-2 unless two_key) from QK; "
            + "resid_mid = W_E[b] + W_pos[p] + attention-weighted OV outputs + b_O; MLP and unembed (with the model's "
            + "LayerNorms) -> P(c), averaged over p; (a, b, argmax c) is extracted when P(c) is above the cut: the "
            + "middle of the widest gap of the pairs' P(c) above 1/d_vocab, unless a threshold is given";

    public static final String BIGRAM_METHOD = "weights only: for every b, the median over every a' of the same "
            + "P(. | a', b); (*, b, argmax c) is a bigram default when that median P(c) is above Otsu's two-class "
            + "split of log(d_vocab * P) over the per-b argmaxes";

    /** Extracts with {@link Options#defaults()}. */
    public static Result extract(Weights w) {
        return extract(w, Options.defaults());
    }

    public static Result extract(Weights w, Options opts) {
        return extract(w, opts, true);
    }

    /**
     * What {@link #extract(Weights)} extracts, without explaining each entry or reading the bigram defaults (a third of
     * its work): for reading many models, such as a run's snapshots, when only the table is wanted.
     */
    public static Triples extractTriples(Weights w) {
        ExtractComponents comp = new ExtractComponents(w, true, false);
        Options opts = Options.defaults();
        Pairs pairs = pairs(comp, opts, false);
        List<int[]> triples = new ArrayList<>();
        for (int[] ab : pairs.chosen()) {
            triples.add(new int[] {ab[0], ab[1], pairs.tables().argmax()[ab[0] * comp.V + ab[1]]});
        }
        triples.sort(Comparator.comparingDouble((int[] t) -> -pairs.tables().confidence()[t[0] * comp.V + t[1]])
                .thenComparingInt(t -> t[0]).thenComparingInt(t -> t[1]));
        return new Triples(comp.V, pairs.cut(), List.copyOf(triples));
    }

    /**
     * The extracted (a, b, c), by confidence, highest first, then by a and b (the pair's position-averaged P(c) as the
     * cut read it: {@link Result#trigrams()} orders by its entries' own, recomputed, which can swap near-ties).
     */
    public record Triples(int dVocab, ConfidenceCut cut, List<int[]> triples) {
        /** prefix[a * V + b]: whether (a, b) is an extracted trigram prefix. */
        public boolean[] prefixTable() {
            boolean[] t = new boolean[dVocab * dVocab];
            for (int[] e : triples) {
                t[e[0] * dVocab + e[1]] = true;
            }
            return t;
        }
    }

    /**
     * Pass 1 and the cut: every pair's numbers, the pairs kept (a, b) in row order, the highest confidence left out and
     * the lowest kept; backgrounds[b][i] is the context of query b at positions[i].
     */
    private record Pairs(int[] positions, PairTables tables, ConfidenceCut cut, List<int[]> chosen,
                         double maxRejected, double minExtracted, ExtractComponents.MeanField[][] backgrounds) {
    }

    /** shortcuts=false: a model without LayerNorm is read the direct way too (see {@link ExtractComponents}). */
    static Result extract(Weights w, Options opts, boolean shortcuts) {
        long t0 = System.nanoTime();
        ExtractComponents comp = new ExtractComponents(w, shortcuts);
        int V = comp.V;
        Pairs pairs = pairs(comp, opts, true);
        int[] argmax = pairs.tables().argmax();
        float[] medianOverA = pairs.tables().medianOverA();
        int[] positions = pairs.positions();
        List<int[]> chosen = pairs.chosen();
        ExtractComponents.MeanField[][] backgrounds = pairs.backgrounds();

        // pass 2: explain the extracted entries
        Entry[] entries = new Entry[chosen.size()];
        Parallel.forRange(chosen.size(), (worker, from, to) -> {
            for (int i = from; i < to; i++) {
                int[] ab = chosen.get(i);
                entries[i] = explain(comp, ab[0], ab[1], argmax[ab[0] * V + ab[1]], positions, backgrounds[ab[1]]);
            }
        });
        List<Entry> list = new ArrayList<>(Arrays.asList(entries));
        list.sort(Comparator.comparingDouble(Entry::confidence).reversed()
                .thenComparingInt(Entry::a).thenComparingInt(Entry::b));

        // the bigram defaults: per b, the argmax of the median over a', cut by Otsu's split of their log-ratios
        int[] defaultC = new int[V];
        float[] defaultConf = new float[V];
        for (int b = 0; b < V; b++) {
            int best = 0;
            for (int c = 1; c < V; c++) {
                if (medianOverA[b * V + c] > medianOverA[b * V + best]) {
                    best = c;
                }
            }
            defaultC[b] = best;
            defaultConf[b] = medianOverA[b * V + best];
        }
        ConfidenceCut bigramCut = ConfidenceCut.otsuLog(defaultConf, V);
        List<BigramDefault> defaults = new ArrayList<>();
        for (int b = 0; b < V; b++) {
            if (bigramCut.keeps(defaultConf[b])) {
                defaults.add(new BigramDefault(b, defaultC[b], defaultConf[b]));
            }
        }
        return new Result(w.cfg, opts, positions, pairs.cut(), List.copyOf(list), List.copyOf(defaults), bigramCut,
                pairs.tables(), pairs.maxRejected(), pairs.minExtracted(), (System.nanoTime() - t0) / 1e9);
    }

    private static void divide(double[] v, int by) {
        for (int i = 0; i < v.length; i++) {
            v[i] /= by;
        }
    }

    /**
     * full: whether to read each b's median over a' and keep every query's background (only the full extraction needs
     * them, for its bigram defaults and its entries' explanations; the medians are a fifth of the pass).
     */
    private static Pairs pairs(ExtractComponents comp, Options opts, boolean full) {
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
        float[] dist = new float[V * V * V], medianOverA = full ? new float[V * V] : null;
        // backgrounds[b][i]: the context of query b at positions[i]; the same for every a, so pass 2 reads it back
        // (only the full extraction explains its entries: the table alone keeps none of the V * P contexts)
        ExtractComponents.MeanField[][] backgrounds = full ? new ExtractComponents.MeanField[V][P] : null;

        // pass 1: every pair's position-averaged distribution, one query token b per task
        Parallel.forRange(V, (worker, from, to) -> {
            PositionSums sums = new PositionSums(comp);
            double[] acc = sums.acc, accAttn = sums.accAttn, accAdv = sums.accAdv;
            double[] column = new double[V];
            for (int b = from; b < to; b++) {
                Arrays.fill(acc, 0);
                Arrays.fill(accAttn, 0);
                Arrays.fill(accAdv, 0);
                for (int pi = 0; pi < P; pi++) {
                    ExtractComponents.MeanField bg = sums.add(b, positions[pi], random, backgrounds != null);
                    if (backgrounds != null) {
                        backgrounds[b][pi] = bg;
                    }
                }
                // sums over the positions, then the means: a division per mean instead of one per term
                divide(acc, P);
                divide(accAttn, P);
                divide(accAdv, P);
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
                    for (int c = 0; c < V; c++) {
                        dist[i * V + c] = (float) acc[a * V + c];
                    }
                }
                for (int c = 0; c < V && full; c++) {
                    for (int a = 0; a < V; a++) {
                        column[a] = acc[a * V + c];
                    }
                    medianOverA[b * V + c] = (float) medianInPlace(column, V);
                }
            }
        });

        // the cut: label-free unless a threshold was given
        ConfidenceCut cut = opts.threshold() == null ? ConfidenceCut.widestGap(conf, V)
                : ConfidenceCut.threshold(conf, opts.threshold());

        List<int[]> chosen = new ArrayList<>();
        double maxRejected = Double.NaN, minExtracted = Double.NaN;
        for (int a = 0; a < V; a++) {
            for (int b = 0; b < V; b++) {
                double cf = conf[a * V + b];
                if (cut.keeps(cf)) {
                    chosen.add(new int[] {a, b});
                    minExtracted = Double.isNaN(minExtracted) ? cf : Math.min(minExtracted, cf);
                } else if (!Double.isNaN(cf)) {
                    maxRejected = Double.isNaN(maxRejected) ? cf : Math.max(maxRejected, cf);
                }
            }
        }
        return new Pairs(positions, new PairTables(V, argmax, conf, attnPrev, qkAdv, dist, medianOverA), cut, chosen,
                maxRejected, minExtracted, backgrounds);
    }

    /**
     * One worker's pass-1 sums over the positions of a query b: acc[a * V + c] (P(c | a, b)), accAttn and accAdv
     * [a * H + h] (attention on a, and the score advantage of a over b). One query position per call: the JIT
     * compiles this as a method of its own, invoked thousands of times per model, rather than the whole loop on the
     * stack (on-stack replacement, then again as a method).
     */
    private static final class PositionSums {
        final ExtractComponents comp;
        final double[] scratch;
        final ExtractComponents.Resid r;
        final double[] wPrev, wSelf, sPrev, sSelf, probs;
        // the weights of every a, then the logits of every a: one matrix product per query (b, p)
        final double[] wPrevAll, wSelfAll, wBgAll, logits;
        final double[] acc, accAttn, accAdv;
        final ExtractComponents.MeanField reused;

        PositionSums(ExtractComponents comp) {
            int V = comp.V, H = comp.H;
            this.comp = comp;
            reused = new ExtractComponents.MeanField(comp);
            scratch = comp.backgroundScratch();
            r = new ExtractComponents.Resid(comp);
            wPrev = new double[H];
            wSelf = new double[H];
            sPrev = new double[H];
            sSelf = new double[H];
            probs = new double[V];
            wPrevAll = new double[V * H];
            wSelfAll = new double[V * H];
            wBgAll = new double[V * H];
            logits = new double[comp.rows * comp.stride];
            acc = new double[V * V];
            accAttn = new double[V * H];
            accAdv = new double[V * H];
        }

        /** Adds the query (b, p) of every a; returns its background, a new one if keep, else this worker's reused one. */
        ExtractComponents.MeanField add(int b, int p, boolean random, boolean keep) {
            int V = comp.V, H = comp.H;
            ExtractComponents.MeanField bg = keep ? new ExtractComponents.MeanField(comp) : reused;
            comp.background(bg, scratch, b, p, random);
            for (int a = 0; a < V; a++) {
                comp.attention(a, b, p, bg, wPrev, wSelf, sPrev, sSelf);
                for (int h = 0; h < H; h++) {
                    wPrevAll[a * H + h] = wPrev[h];
                    wSelfAll[a * H + h] = wSelf[h];
                    wBgAll[a * H + h] = Math.max(0, 1 - wPrev[h] - wSelf[h]);
                    accAttn[a * H + h] += wPrev[h];
                    accAdv[a * H + h] += sPrev[h] - sSelf[h];
                }
            }
            comp.allLogits(logits, r, b, p, bg, wPrevAll, wSelfAll, wBgAll);
            for (int a = 0; a < V; a++) {
                ExtractComponents.softmax(logits, a * comp.stride, probs);
                for (int c = 0; c < V; c++) {
                    acc[a * V + c] += probs[c];
                }
            }
            return bg;
        }
    }

    /** The median of v[0..n): the middle value, or the mean of the two middle ones when n is even; NaN when n = 0. */
    static double median(double[] v, int n) {
        return medianInPlace(Arrays.copyOf(v, n), n);
    }

    /** {@link #median}, reordering v: by selection, with no sort (V^2 medians per extraction). */
    static double medianInPlace(double[] v, int n) {
        if (n == 0) {
            return Double.NaN;
        }
        for (int i = 0; i < n; i++) {
            if (Double.isNaN(v[i])) {
                // NaN compares as nothing: the sort's order (NaN last) decides, as it always did
                Arrays.sort(v, 0, n);
                return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
            }
        }
        double upper = select(v, n, n / 2);
        if (n % 2 == 1) {
            return upper;
        }
        // select leaves nothing larger before the k-th: the lower middle is the largest of those
        double lower = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n / 2; i++) {
            lower = Math.max(lower, v[i]);
        }
        return (lower + upper) / 2;
    }

    /** Reorders v[0..n) so that v[k] is its k-th smallest value, nothing before it larger, nothing after smaller. */
    static double select(double[] v, int n, int k) {
        int lo = 0, hi = n - 1;
        while (hi > lo) {
            double pivot = v[(lo + hi) >>> 1];
            int i = lo, j = hi;
            while (i <= j) {
                while (v[i] < pivot) {
                    i++;
                }
                while (v[j] > pivot) {
                    j--;
                }
                if (i <= j) {
                    double t = v[i];
                    v[i] = v[j];
                    v[j] = t;
                    i++;
                    j--;
                }
            }
            if (k <= j) {
                hi = j;
            } else if (k >= i) {
                lo = i;
            } else {
                break;
            }
        }
        return v[k];
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
        ExtractComponents.MeanField bg = new ExtractComponents.MeanField(comp);
        ExtractComponents.Resid r = new ExtractComponents.Resid(comp);
        double[] wPrev = new double[H], wSelf = new double[H], wBg = new double[H], sPrev = new double[H],
                sSelf = new double[H], probs = new double[comp.V];
        comp.background(bg, comp.backgroundScratch(), b, p, background == Background.RANDOM_CONTEXT);
        comp.attention(a, b, p, bg, wPrev, wSelf, sPrev, sSelf);
        for (int h = 0; h < H; h++) {
            wBg[h] = Math.max(0, 1 - wPrev[h] - wSelf[h]);
        }
        comp.forward(r, a, b, p, bg, wPrev, wSelf, wBg);
        ExtractComponents.softmax(r.logits, probs);
        return probs;
    }

    /**
     * The circuit quantities of one pair (a, b) with candidate c, averaged over the positions; backgrounds[i] is the
     * context of query b at positions[i].
     */
    static Entry explain(ExtractComponents comp, int a, int b, int c, int[] positions,
                         ExtractComponents.MeanField[] backgrounds) {
        int V = comp.V, H = comp.H, P = positions.length;
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
            ExtractComponents.MeanField bg = backgrounds[pi];
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
            comp.logits(r, a, b, p, bg, w0, s0, b0);
            ExtractComponents.softmax(r.logits, probs);
            confNo += probs[c] / P;
            comp.logits(r, a, b, p, bg, w1, z, z);
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

    /**
     * The extraction in sentences, for terminal summaries: what was kept and where the cuts are, and with a known
     * dataset (ev not null) precision and recall, saying in words which recall is against which reference.
     */
    public static List<String> summaryLines(Result r, ExtractionScore.Evaluation ev) {
        List<String> lines = new ArrayList<>();
        lines.add(String.format("%d trigrams (a, b, c) read from the weights alone, kept where %s", r.trigrams().size(),
                r.cut().describe("P(c)", r.pairs().dVocab())));
        lines.add(String.format("%d bigram defaults (*, b, c), where b predicts c whatever a comes before it (the "
                + "median over every a' of P(c | a', b)), kept where %s", r.bigramDefaults().size(),
                r.bigramCut().describe("median P(c)", r.pairs().dVocab())));
        if (ev == null) {
            return lines;
        }
        ExtractionScore.Agreement d = ev.vsDataset(), m = ev.vsModel(), dep = ev.vsModelADependent();
        lines.add(String.format("against the dataset's %d trigrams: precision %.3f, recall %.3f (%d of %d)",
                d.nReference(), d.precision(), d.recall(), d.nCorrect(), d.nReference()));
        lines.add(String.format("recall against every argmax-correct trigram (the model's argmax at position 1 of "
                        + "[a, b, c] is c; %d of them, whether a matters or not): %.3f (%d of %d)", m.nReference(),
                ev.recallVsArgmaxCorrect(), m.nCorrect(), m.nReference()));
        lines.add(String.format("recall against the argmax-correct trigrams whose prediction depends on a (P(c | a, b) "
                        + "more than %s times the median over every other a'; %d of the %d): %.3f (%d of %d)",
                fmtRatio(ExtractionScore.A_DEPENDENCE_RATIO), dep.nReference(), m.nReference(), ev.recallVsADependent(),
                dep.nCorrect(), dep.nReference()));
        lines.add(String.format("%d argmax-correct trigrams are not extracted; %d of them have their (b, c) among the "
                + "bigram defaults", ev.nArgmaxCorrectNotExtracted(), ev.nNotExtractedBigramDefaults()));
        ExtractionScore.PairAgreement bd = ev.bigramDefaultsVsDataset();
        lines.add(String.format("bigram defaults against the dataset's %d distinct (b, c) pairs: precision %.3f, "
                        + "recall %.3f (%d of %d listed)", bd.nReference(), bd.precision(), bd.recall(), bd.nCorrect(),
                bd.nListed()));
        return lines;
    }

    private static String fmtRatio(double x) {
        return java.math.BigDecimal.valueOf(x).stripTrailingZeros().toPlainString();
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
