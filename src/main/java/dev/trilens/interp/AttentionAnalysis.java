package dev.trilens.interp;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import com.fasterxml.jackson.databind.annotation.JsonSerialize;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.Hook;
import dev.trilens.model.HookNames;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Analysis 2: the attention patterns, each head's attention to the previous token, the worklog's test comparing the
 * positions that attend their previous token with the positions the model predicts well, and the last-position
 * quirk.
 *
 * <p><b>Positions.</b> Attention of query position p to key p - 1 is what lets the model predict token p + 1 from
 * tokens (p - 1, p); the correct-token probability of that prediction is {@link Predictions}' entry [s][p]. So the
 * sets compared are sets of (sequence s, query position p) with 1 <= p <= seq_len - 2: position 0 has no previous
 * token and position seq_len - 1 no next token. A position is in
 * <ul>
 *   <li>the attention set when pattern[s, head, p, p - 1] > threshold (for "any head": in some head of any layer);
 *   <li>the correct-probability set when the probability of token p + 1 at p is > threshold;
 *   <li>the trigram set when token p + 1 completes a trigram ((tok[p-1], tok[p]) is a trigram's (a, b)).
 * </ul>
 *
 * <p>JSON keys: {@code threshold}, {@code n_sequences}, {@code seq_len}, {@code n_positions_compared} (size of the
 * universe, n_sequences x (seq_len - 2)), {@code heads} (list of {@link HeadAttention}), {@code any_head}
 * ({@link HeadAttention} of the elementwise max over heads, without patterns), {@code correct_prob_vs_trigram}
 * ({@link SetComparison}), {@code summary} (list of sentences).
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record AttentionAnalysis(double threshold, int nSequences, int seqLen, int nPositionsCompared,
                                List<HeadAttention> heads, HeadAttention anyHead,
                                SetComparison correctProbVsTrigram, List<String> summary) {

    /** The thresholds of the sweep: 0.05, 0.10, ..., 0.95. */
    public static final double[] SWEEP = sweepThresholds();

    /** How many (sequence, position) examples each side of a set difference lists. */
    public static final int N_SET_EXAMPLES = 5;

    /**
     * One head (or "any head").
     *
     * <p>JSON keys: {@code layer}, {@code head} (-1 for any head), {@code name} ("L0H0" or "any"), {@code patterns}
     * ([n_examples][seq_len][seq_len], query x key, of the first sequences; empty for any head),
     * {@code prev_token_attention} ([n_sequences][seq_len]: entry [s][p] is pattern[s, head, p, p - 1], and 0 at
     * p = 0, which has no previous token), {@code mean_prev_attention_by_position} ([seq_len], the column means of
     * prev_token_attention over the batch), {@code quirk} ({@link PositionQuirk}), {@code vs_correct_prob} and
     * {@code vs_trigram} ({@link SetComparison} at the threshold), {@code sweep} (list of {@link SweepPoint}).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record HeadAttention(int layer, int head, String name, float[][][] patterns, float[][] prevTokenAttention,
                                double[] meanPrevAttentionByPosition, PositionQuirk quirk,
                                SetComparison vsCorrectProb, SetComparison vsTrigram, List<SweepPoint> sweep) {
    }

    /**
     * Two sets of (sequence, query position) compared.
     *
     * <p>JSON keys: {@code a}, {@code b} (what each set holds), {@code threshold}, {@code size_a}, {@code size_b},
     * {@code intersection}, {@code only_a}, {@code only_b}, {@code symmetric_difference}, {@code equal},
     * {@code jaccard} (|a ∩ b| / |a ∪ b|, 1 when both are empty), {@code examples_only_a}, {@code examples_only_b}
     * (up to {@value N_SET_EXAMPLES} [sequence, position] pairs each, in order), {@code summary}.
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record SetComparison(String a, String b, double threshold, int sizeA, int sizeB, int intersection,
                                int onlyA, int onlyB, int symmetricDifference, boolean equal, double jaccard,
                                List<int[]> examplesOnlyA, List<int[]> examplesOnlyB,
                                @JsonSerialize(using = OneSentenceList.class) String summary) {
    }

    /**
     * The comparisons at one threshold of the sweep. JSON keys: {@code threshold}, {@code n_attention},
     * {@code n_correct_prob}, {@code n_trigram}, {@code equal_correct_prob}, {@code symmetric_difference_correct_prob},
     * {@code jaccard_correct_prob}, {@code equal_trigram}, {@code symmetric_difference_trigram},
     * {@code jaccard_trigram}.
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record SweepPoint(double threshold, int nAttention, int nCorrectProb, int nTrigram,
                             boolean equalCorrectProb, int symmetricDifferenceCorrectProb, double jaccardCorrectProb,
                             boolean equalTrigram, int symmetricDifferenceTrigram, double jaccardTrigram) {
    }

    /**
     * The last-position quirk: which query position's mean attention to its previous token departs most from the
     * other positions'. A position stands out when it is more than {@value STANDOUT_MADS} median absolute
     * deviations and more than {@value STANDOUT_MIN} from the median of the positions 1 .. seq_len - 1.
     *
     * <p>JSON keys: {@code standout_position}, {@code standout_value}, {@code median_value} (median over positions
     * 1 .. seq_len - 1), {@code mad} (their median absolute deviation), {@code stands_out},
     * {@code final_position_stands_out}, {@code summary}.
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record PositionQuirk(int standoutPosition, double standoutValue, double medianValue, double mad,
                                boolean standsOut, boolean finalPositionStandsOut,
                                @JsonSerialize(using = OneSentenceList.class) String summary) {
    }

    static final double STANDOUT_MADS = 5;
    static final double STANDOUT_MIN = 0.05;

    /** With the context's threshold, the patterns of the first 4 sequences, and no hooks. */
    public static AttentionAnalysis compute(AnalysisContext ctx) {
        return compute(ctx, 4, List.of());
    }

    /**
     * Runs the evaluation batch once (under hooks, e.g. an ablation or a hand-set pattern) and analyses its
     * patterns and correct-token probabilities.
     *
     * @param nExamples how many of the first sequences' full patterns to keep per head
     */
    public static AttentionAnalysis compute(AnalysisContext ctx, int nExamples, List<Hook.At> hooks) {
        TrigramDataset data = Predictions.requireData(ctx, "the attention analysis");
        double thr = ctx.threshold();
        if (!(thr >= 0 && thr <= 1)) {
            throw new TrilensException("the attention threshold must be in [0, 1], got " + thr);
        }
        HookedTransformer model = ctx.model();
        ModelConfig cfg = model.config();
        int B = data.size(), T = data.seqLen(), H = cfg.nHeads(), L = cfg.nLayers();
        if (T < 3) {
            throw new TrilensException("the attention test needs sequences of at least 3 tokens, got " + T);
        }
        int nEx = Math.max(0, Math.min(nExamples, B));
        HookedTransformer.Run run = model.run(data.tokens(), B, T, n -> n.endsWith("attn.hook_pattern"), hooks);
        Predictions pred = Predictions.of(run.logits(), data);
        float[][] probs = pred.correctProbs();

        // the universe: (s, p) for 1 <= p <= T-2, flattened as s * T + p
        boolean[] inTrigram = new boolean[B * T];
        for (int s = 0; s < B; s++) {
            for (int p = 1; p <= T - 2; p++) {
                inTrigram[s * T + p] = data.completesTrigram(s, p + 1);
            }
        }

        List<HeadAttention> heads = new ArrayList<>();
        List<String> summary = new ArrayList<>();
        float[][] anyPrev = new float[B][T];
        for (int l = 0; l < L; l++) {
            Tensor pattern = run.cache().get(HookNames.full("pattern", l));
            float[] pd = pattern.data();
            for (int h = 0; h < H; h++) {
                float[][][] examples = new float[nEx][T][T];
                for (int s = 0; s < nEx; s++) {
                    for (int q = 0; q < T; q++) {
                        System.arraycopy(pd, ((s * H + h) * T + q) * T, examples[s][q], 0, T);
                    }
                }
                float[][] prev = new float[B][T];
                for (int s = 0; s < B; s++) {
                    for (int p = 1; p < T; p++) {
                        float v = pd[((s * H + h) * T + p) * T + p - 1];
                        prev[s][p] = v;
                        anyPrev[s][p] = Math.max(anyPrev[s][p], v);
                    }
                }
                HeadAttention ha = analyseHead(l, h, "L" + l + "H" + h, examples, prev, probs, inTrigram, thr);
                heads.add(ha);
                summary.add(ha.name() + ": " + ha.vsCorrectProb().summary());
                summary.add(ha.name() + ": " + ha.vsTrigram().summary());
                summary.add(ha.name() + ": " + ha.quirk().summary());
            }
        }
        HeadAttention any = analyseHead(-1, -1, "any", new float[0][][], anyPrev, probs, inTrigram, thr);
        if (heads.size() > 1) {
            summary.add("any head: " + any.vsCorrectProb().summary());
            summary.add("any head: " + any.vsTrigram().summary());
        }
        boolean[] probSet = new boolean[B * T];
        for (int s = 0; s < B; s++) {
            for (int p = 1; p <= T - 2; p++) {
                probSet[s * T + p] = probs[s][p] > thr;
            }
        }
        SetComparison probVsTri = compare("correct-token probability > " + thr, "next token completes a trigram",
                thr, probSet, inTrigram, T);
        summary.add(probVsTri.summary());
        return new AttentionAnalysis(thr, B, T, B * (T - 2), heads, any, probVsTri, summary);
    }

    private static HeadAttention analyseHead(int layer, int head, String name, float[][][] examples, float[][] prev,
                                             float[][] probs, boolean[] inTrigram, double thr) {
        int B = prev.length, T = prev[0].length;
        double[] mean = new double[T];
        for (int s = 0; s < B; s++) {
            for (int p = 1; p < T; p++) {
                mean[p] += prev[s][p];
            }
        }
        for (int p = 1; p < T; p++) {
            mean[p] /= B;
        }
        boolean[] attn = threshold(prev, thr, T);
        boolean[] prob = threshold(probs, thr, T);
        String label = (head < 0 ? "attention of any head" : "attention") + " to the previous token > " + thr;
        SetComparison vsProb = compare(label, "correct-token probability > " + thr, thr, attn, prob, T);
        SetComparison vsTri = compare(label, "next token completes a trigram", thr, attn, inTrigram, T);
        List<SweepPoint> sweep = new ArrayList<>();
        for (double t : SWEEP) {
            boolean[] a = threshold(prev, t, T);
            boolean[] c = threshold(probs, t, T);
            Counts ac = Counts.of(a, c), at = Counts.of(a, inTrigram);
            sweep.add(new SweepPoint(t, ac.sizeA, ac.sizeB, at.sizeB, ac.symDiff() == 0, ac.symDiff(), ac.jaccard(),
                    at.symDiff() == 0, at.symDiff(), at.jaccard()));
        }
        return new HeadAttention(layer, head, name, examples, prev, mean, quirk(mean), vsProb, vsTri, sweep);
    }

    /**
     * Membership of (s, p), 1 <= p <= T-2, flattened as s * T + p: values[s][p] > thr. Both matrices are indexed by
     * the query position: previous-token attention of p, and the probability of token p + 1 predicted at p.
     */
    private static boolean[] threshold(float[][] values, double thr, int T) {
        boolean[] out = new boolean[values.length * T];
        for (int s = 0; s < values.length; s++) {
            for (int p = 1; p <= T - 2; p++) {
                out[s * T + p] = values[s][p] > thr;
            }
        }
        return out;
    }

    private record Counts(int sizeA, int sizeB, int inter) {
        static Counts of(boolean[] a, boolean[] b) {
            int na = 0, nb = 0, both = 0;
            for (int i = 0; i < a.length; i++) {
                na += a[i] ? 1 : 0;
                nb += b[i] ? 1 : 0;
                both += a[i] && b[i] ? 1 : 0;
            }
            return new Counts(na, nb, both);
        }

        int symDiff() {
            return sizeA + sizeB - 2 * inter;
        }

        double jaccard() {
            int union = sizeA + sizeB - inter;
            return union == 0 ? 1.0 : inter / (double) union;
        }
    }

    /** Compares two membership arrays over (s, p) flattened as s * T + p. */
    static SetComparison compare(String aName, String bName, double thr, boolean[] a, boolean[] b, int T) {
        Counts c = Counts.of(a, b);
        List<int[]> onlyA = new ArrayList<>(), onlyB = new ArrayList<>();
        for (int i = 0; i < a.length; i++) {
            if (a[i] && !b[i] && onlyA.size() < N_SET_EXAMPLES) {
                onlyA.add(new int[] {i / T, i % T});
            }
            if (b[i] && !a[i] && onlyB.size() < N_SET_EXAMPLES) {
                onlyB.add(new int[] {i / T, i % T});
            }
        }
        int sd = c.symDiff();
        String summary;
        if (sd == 0) {
            summary = String.format("the sets are equal: %d positions (%s; %s)", c.sizeA, aName, bName);
        } else {
            summary = String.format("the sets differ: %d vs %d positions (%s vs %s); %d in both, %d only in the "
                            + "first, %d only in the second, Jaccard %.3f", c.sizeA, c.sizeB, aName, bName, c.inter,
                    c.sizeA - c.inter, c.sizeB - c.inter, c.jaccard());
        }
        return new SetComparison(aName, bName, thr, c.sizeA, c.sizeB, c.inter, c.sizeA - c.inter, c.sizeB - c.inter,
                sd, sd == 0, c.jaccard(), onlyA, onlyB, summary);
    }

    /** Which position's mean previous-token attention stands out (positions 1 .. T-1). */
    static PositionQuirk quirk(double[] mean) {
        int T = mean.length;
        double[] vals = Arrays.copyOfRange(mean, 1, T);
        double med = median(vals);
        double[] dev = new double[vals.length];
        for (int i = 0; i < vals.length; i++) {
            dev[i] = Math.abs(vals[i] - med);
        }
        double mad = median(dev);
        int best = 1;
        for (int p = 1; p < T; p++) {
            if (Math.abs(mean[p] - med) > Math.abs(mean[best] - med)) {
                best = p;
            }
        }
        double d = Math.abs(mean[best] - med);
        boolean out = d > STANDOUT_MADS * mad && d > STANDOUT_MIN;
        String summary = out
                ? String.format("position %d%s stands out: mean attention to its previous token %.3f vs a median of "
                        + "%.3f over positions 1..%d", best, best == T - 1 ? " (the final position)" : "", mean[best],
                med, T - 1)
                : String.format("no position stands out: mean attention to the previous token has median %.3f over "
                        + "positions 1..%d; the largest departure is position %d (%.3f)", med, T - 1, best,
                mean[best]);
        return new PositionQuirk(best, mean[best], med, mad, out, out && best == T - 1, summary);
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    private static double[] sweepThresholds() {
        double[] t = new double[19];
        for (int i = 0; i < t.length; i++) {
            t[i] = Math.round((i + 1) * 5) / 100.0;
        }
        return t;
    }
}
