package dev.trilens.interp;

import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.Hook;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Tensor;
import dev.trilens.train.EvalMetrics;
import dev.trilens.train.Metrics;
import dev.trilens.model.HookNames;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Tests the explanation by intervention: the attention pattern (blocks.0.attn.hook_pattern) of the trigram heads is
 * replaced by the explained rule, "query p attends p-1 iff (tok[p-1], tok[p]) is a trigram prefix, else itself", and
 * the model's metrics are compared with the clean model and with ablated ones. The trigram heads ("rule heads") are
 * those the extractor finds attending a on the extracted trigrams (the only head of the challenge model); the other
 * heads of a multi-head model keep their own pattern in the rule and simplified variants. Variants:
 * <ul>
 *   <li>{@code clean}: the model as it is;</li>
 *   <li>{@code rule_extracted}: the rule with the prefixes {@link TrigramExtractor} read from the weights;</li>
 *   <li>{@code rule_prefix_only}: only the first half of the rule: attend p-1 at extracted prefixes, the model's own
 *   pattern elsewhere (tells which half of the rule fails when the rule recovers little);</li>
 *   <li>{@code rule_dataset}: the rule with the dataset's own prefixes;</li>
 *   <li>{@code simplified}: every position p >= 1 attends p-1 (resid_mid = x_current + OV(x_prev) + b_O, then MLP
 *   and unembed: the readout without any QK decision);</li>
 *   <li>{@code ablated_self} (the baseline): every position attends itself, so no information moves between
 *   positions;</li>
 *   <li>{@code ablated_mean}: every sequence gets the evaluation batch's mean pattern.</li>
 * </ul>
 * Each variant's recovered fraction is how much of the gap between the baseline and the clean model it closes:
 * (baseline - variant) / (baseline - clean) for the loss, (variant - baseline) / (clean - baseline) for the trigram
 * accuracy and the trigram probability. Position 0 always attends itself.
 */
public final class CausalValidation {

    public static final String PATTERN_HOOK = HookNames.full("pattern", 0);
    public static final String BASELINE = "ablated_self";
    /** Sequences per forward pass, so a hooked run over a large evaluation batch stays small in memory. */
    static final int CHUNK = 512;

    private CausalValidation() {
    }

    /** Builds the pattern hook for one batch of tokens [B, T]. */
    @FunctionalInterface
    public interface PatternRule {
        Hook.At hookFor(int[] tokens, int T);
    }

    /**
     * The explained rule over a batch: query p attends p-1 when prefix[tok[p-1] * V + tok[p]], else itself; position 0
     * itself. Every head gets the same one-hot row.
     */
    public static Hook.At ruleHook(boolean[] prefix, int V, int[] tokens, int T) {
        return ruleHook(prefix, V, tokens, T, null);
    }

    /** The same on the heads marked in heads only (null: every head); the other heads keep their own pattern. */
    public static Hook.At ruleHook(boolean[] prefix, int V, int[] tokens, int T, boolean[] heads) {
        return oneHotHook(tokens, T, heads, (seq, p) -> p > 0
                && prefix[tokens[seq * T + p - 1] * V + tokens[seq * T + p]] ? p - 1 : p);
    }

    /**
     * Only the first half of the rule: on the heads marked (null: every head) query p attends p-1 when
     * prefix[tok[p-1] * V + tok[p]]; every other row keeps the model's own pattern.
     */
    public static Hook.At prefixOnlyHook(boolean[] prefix, int V, int[] tokens, int T, boolean[] heads) {
        return oneHotHook(tokens, T, heads, (seq, p) -> p > 0
                && prefix[tokens[seq * T + p - 1] * V + tokens[seq * T + p]] ? p - 1 : -1);
    }

    /** The simplified model: every position p >= 1 attends p-1, position 0 itself; every head. */
    public static Hook.At previousTokenHook(int[] tokens, int T) {
        return previousTokenHook(tokens, T, null);
    }

    /** The same on the heads marked in heads only (null: every head). */
    public static Hook.At previousTokenHook(int[] tokens, int T, boolean[] heads) {
        return oneHotHook(tokens, T, heads, (seq, p) -> Math.max(0, p - 1));
    }

    /** The ablation baseline: every position attends itself, on every head. */
    public static Hook.At selfHook(int[] tokens, int T) {
        return oneHotHook(tokens, T, null, (seq, p) -> p);
    }

    /** Replaces each sequence's pattern by a fixed [H, T0, T0] one (T0 >= T; its top-left T x T block is used). */
    public static Hook.At fixedPatternHook(float[] pattern, int H, int T0) {
        return Hook.at(PATTERN_HOOK, (t, name) -> {
            int B = t.dim(0), T = t.dim(2);
            if (t.dim(1) != H || T > T0) {
                throw new IllegalStateException("fixed pattern is [" + H + ", " + T0 + ", " + T0 + "], activation "
                        + t.shapeString());
            }
            float[] d = t.data();
            for (int b = 0; b < B; b++) {
                for (int h = 0; h < H; h++) {
                    for (int i = 0; i < T; i++) {
                        System.arraycopy(pattern, (h * T0 + i) * T0, d, ((b * H + h) * T + i) * T, T);
                    }
                }
            }
        });
    }

    /** The key a query attends; -1 keeps the query's own row. */
    @FunctionalInterface
    private interface Target {
        int keyOf(int seq, int pos);
    }

    private static Hook.At oneHotHook(int[] tokens, int T, boolean[] heads, Target target) {
        return Hook.at(PATTERN_HOOK, (t, name) -> {
            int B = t.dim(0), H = t.dim(1);
            if (t.dim(2) != T || B * T != tokens.length) {
                throw new IllegalStateException("rule hook built for " + tokens.length / T + " x " + T
                        + " tokens, activation " + t.shapeString());
            }
            if (heads != null && heads.length != H) {
                throw new IllegalStateException("rule hook built for " + heads.length + " heads, activation "
                        + t.shapeString());
            }
            float[] d = t.data();
            for (int b = 0; b < B; b++) {
                for (int h = 0; h < H; h++) {
                    if (heads == null || heads[h]) {
                        for (int p = 0; p < T; p++) {
                            int key = target.keyOf(b, p);
                            if (key >= 0) {
                                int row = ((b * H + h) * T + p) * T;
                                Arrays.fill(d, row, row + T, 0f);
                                d[row + key] = 1f;
                            }
                        }
                    }
                }
            }
        });
    }

    // -------------------------------------------------------------------------------------------------------------

    /**
     * One variant's metrics (evaluation batch + all-trigrams batch, as `evaluate` reports them), its loss split into
     * the positions that complete a trigram (the token predicted is forced) and the rest, and the fraction of the
     * baseline-to-clean gap it recovers (NaN when the gap is 0).
     */
    public record Variant(String name, String description, EvalMetrics metrics, double lossTrigramPositions,
                          double lossOtherPositions, double recoveredLoss, double recoveredTrigramFrac,
                          double recoveredTrigramProb) {
    }

    /**
     * @param ruleHeads the heads the rule and the simplified model replace: those whose attention on a (from the
     *                  extractor) averages over 0.5 on the extracted trigrams, or every head when none does; the other
     *                  heads keep their own pattern in those two variants
     * @param ruleAgreement over every position p >= 1 of the evaluation batch: the fraction where the clean model's
     *                      attention on p-1 (the largest over the rule heads) exceeds 0.5 exactly when the extracted
     *                      rule says "attend p-1"
     * @param ruleAgreementDataset the same with the dataset's prefixes
     */
    public record Result(String baseline, List<Variant> variants, int[] ruleHeads, double ruleAgreement,
                         double ruleAgreementDataset, int nExtracted, double seconds) {
        public Variant variant(String name) {
            for (Variant v : variants) {
                if (v.name().equals(name)) {
                    return v;
                }
            }
            throw new IllegalArgumentException("no variant " + name);
        }

    }

    /** Runs every variant on the dataset's evaluation batch and its all-trigrams batch. */
    public static Result run(HookedTransformer model, TrigramDataset data, TrigramExtractor.Result extracted) {
        long t0 = System.nanoTime();
        int V = model.config().dVocab(), H = model.config().nHeads();
        if (data.dVocab() != V || data.seqLen() > model.config().nCtx()) {
            throw new TrilensException("dataset (d_vocab " + data.dVocab() + ", seq_len " + data.seqLen()
                    + ") does not fit the model (d_vocab " + V + ", n_ctx " + model.config().nCtx() + ")");
        }
        boolean[] extractedPrefix = extracted.prefixTable();
        boolean[] datasetPrefix = new boolean[V * V];
        for (int[] t : data.trigrams()) {
            datasetPrefix[t[0] * V + t[1]] = true;
        }
        boolean[] heads = ruleHeads(extracted, H);
        // the clean run: metrics, mean pattern and the rule's agreement with the model's own attention
        int T = data.seqLen();
        float[] meanPattern = new float[H * T * T];
        long[] agree = new long[2];
        long[] positions = {0};
        Scored clean = score(model, data, null, (tokens, B, logitsPattern) -> {
            float[] pat = logitsPattern.data();
            for (int b = 0; b < B; b++) {
                for (int h = 0; h < H; h++) {
                    int off = (b * H + h) * T * T;
                    for (int i = 0; i < T * T; i++) {
                        meanPattern[h * T * T + i] += pat[off + i] / data.size();
                    }
                }
                for (int p = 1; p < T; p++) {
                    float maxPrev = 0;
                    for (int h = 0; h < H; h++) {
                        if (heads[h]) {
                            maxPrev = Math.max(maxPrev, pat[((b * H + h) * T + p) * T + p - 1]);
                        }
                    }
                    boolean attends = maxPrev > 0.5f;
                    int pair = tokens[b * T + p - 1] * V + tokens[b * T + p];
                    agree[0] += attends == extractedPrefix[pair] ? 1 : 0;
                    agree[1] += attends == datasetPrefix[pair] ? 1 : 0;
                    positions[0]++;
                }
            }
        });
        Scored self = score(model, data, CausalValidation::selfHook, null);
        List<Variant> vs = new ArrayList<>();
        vs.add(variant("clean", "the model as it is", clean, clean, self));
        vs.add(variant("rule_extracted", "attend p-1 iff (tok[p-1], tok[p]) is an extracted prefix, else itself",
                score(model, data, (tok, t) -> ruleHook(extractedPrefix, V, tok, t, heads), null), clean, self));
        vs.add(variant("rule_prefix_only", "attend p-1 where (tok[p-1], tok[p]) is an extracted prefix, the "
                + "model's own pattern elsewhere", score(model, data,
                (tok, t) -> prefixOnlyHook(extractedPrefix, V, tok, t, heads), null), clean, self));
        vs.add(variant("rule_dataset", "attend p-1 iff (tok[p-1], tok[p]) is a dataset prefix, else itself",
                score(model, data, (tok, t) -> ruleHook(datasetPrefix, V, tok, t, heads), null), clean, self));
        vs.add(variant("simplified", "every position attends p-1: resid_mid = x_current + OV(x_prev) + b_O, then "
                + "MLP and unembed", score(model, data, (tok, t) -> previousTokenHook(tok, t, heads), null), clean,
                self));
        vs.add(variant(BASELINE, "every position attends itself (baseline)", self, clean, self));
        vs.add(variant("ablated_mean", "every sequence gets the evaluation batch's mean pattern",
                score(model, data, (tok, t) -> fixedPatternHook(meanPattern, H, T), null), clean, self));
        int[] headList = java.util.stream.IntStream.range(0, H).filter(h -> heads[h]).toArray();
        return new Result(BASELINE, List.copyOf(vs), headList, agree[0] / (double) positions[0],
                agree[1] / (double) positions[0], extracted.trigrams().size(), (System.nanoTime() - t0) / 1e9);
    }

    /** Heads whose extracted attention on a averages over 0.5 on the extracted trigrams; every head if none. */
    static boolean[] ruleHeads(TrigramExtractor.Result extracted, int H) {
        boolean[] heads = new boolean[H];
        boolean any = false;
        List<TrigramExtractor.Entry> es = extracted.trigrams();
        for (int h = 0; h < H && !es.isEmpty(); h++) {
            double sum = 0;
            for (TrigramExtractor.Entry e : es) {
                sum += e.attnPrev()[h];
            }
            heads[h] = sum / es.size() > 0.5;
            any |= heads[h];
        }
        if (!any) {
            Arrays.fill(heads, true);
        }
        return heads;
    }

    private static Variant variant(String name, String description, Scored scored, Scored cleanScored,
                                   Scored baseScored) {
        EvalMetrics m = scored.metrics, clean = cleanScored.metrics, base = baseScored.metrics;
        return new Variant(name, description, m, scored.lossTrigram, scored.lossOther,
                recovered(base.loss() - m.loss(), base.loss() - clean.loss()),
                recovered(m.trigramFracCorrect() - base.trigramFracCorrect(),
                        clean.trigramFracCorrect() - base.trigramFracCorrect()),
                recovered(m.trigramAvgCorrectProb() - base.trigramAvgCorrectProb(),
                        clean.trigramAvgCorrectProb() - base.trigramAvgCorrectProb()));
    }

    private static double recovered(double closed, double gap) {
        return gap == 0 ? Double.NaN : closed / gap;
    }

    /** Sees each clean chunk's tokens and pattern [B, H, T, T]. */
    @FunctionalInterface
    interface PatternSink {
        void accept(int[] tokens, int B, Tensor pattern);
    }

    /**
     * `evaluate`'s metrics (Metrics.evaluate) with the pattern hook of rule applied (null: clean), run in chunks of
     * {@link #CHUNK} sequences; sink (clean runs only) sees each chunk's pattern.
     */
    public static EvalMetrics evaluate(HookedTransformer model, TrigramDataset data, PatternRule rule) {
        return score(model, data, rule, null).metrics;
    }

    private record Scored(EvalMetrics metrics, double lossTrigram, double lossOther) {
    }

    private static Scored score(HookedTransformer model, TrigramDataset data, PatternRule rule, PatternSink sink) {
        int T = data.seqLen(), S = data.size();
        float[] probs = new float[S * (T - 1)];
        double lossSum = 0, lossTri = 0, lossOther = 0;
        long nTri = 0;
        for (int from = 0; from < S; from += CHUNK) {
            int to = Math.min(S, from + CHUNK), B = to - from;
            int[] tokens = data.tokensOf(from, to);
            Tensor logits;
            if (sink != null) {
                HookedTransformer.Run run = model.runWithCache(tokens, B, T, PATTERN_HOOK::equals);
                logits = run.logits();
                sink.accept(tokens, B, run.cache().get(PATTERN_HOOK));
            } else {
                logits = rule == null ? model.forward(tokens, B, T)
                        : model.runWithHooks(tokens, B, T, List.of(rule.hookFor(tokens, T)));
            }
            double[] lp = Metrics.nextTokenLogProbs(logits, tokens);
            lossSum += Metrics.meanLoss(lp) * B * (T - 1);
            float[] p = Metrics.probs(lp);
            System.arraycopy(p, 0, probs, from * (T - 1), p.length);
            for (int b = 0; b < B; b++) {
                for (int t = 0; t < T - 1; t++) {
                    double nll = -lp[b * (T - 1) + t];
                    if (data.completesTrigram(from + b, t + 1)) {
                        lossTri += nll;
                        nTri++;
                    } else {
                        lossOther += nll;
                    }
                }
            }
        }
        long nAll = (long) S * (T - 1);
        Metrics.TrigramScore tri;
        if (rule == null || data.nTrigrams() == 0) {
            tri = Metrics.trigramScore(model, data);
        } else {
            int[] batch = data.trigramBatch();
            tri = Metrics.trigramScore(model.runWithHooks(batch, data.nTrigrams(), 3,
                    List.of(rule.hookFor(batch, 3))), data);
        }
        EvalMetrics m = Metrics.summarize(lossSum / nAll, probs, tri, data);
        return new Scored(m, nTri == 0 ? Double.NaN : lossTri / nTri,
                nAll == nTri ? Double.NaN : lossOther / (nAll - nTri));
    }
}
