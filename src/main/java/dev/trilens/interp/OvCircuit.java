package dev.trilens.interp;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import dev.trilens.model.ParamLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.ejml.data.DMatrixRMaj;

/**
 * Analysis 4a: the OV circuit of every head: what a head writes when it attends a token, and what that does to the
 * logits directly.
 *
 * <p>OV = {@link FactoredMatrix}(W_V[h], W_O[h]) [d_model, d_model] (rank at most d_head). The embedding OV
 * W_E W_V W_O [V, d_model] is what the head writes for each attended token; the full OV circuit
 * W_E W_V W_O W_U [V, V] is, row X, the direct effect on every logit of attending token X (the value bias b_V
 * adds the same vector b_V W_O whatever is attended, and the positional part W_pos W_V W_O is left out). In a
 * model with an MLP the direct effect is only part of the story: the MLP reads the same vector (see
 * {@link MlpAnalysis}). Weights are read as described in {@link Circuits} (exact for layer 0 without LayerNorm).
 *
 * <p><b>Copying score</b> (Elhage et al.): the sum of the full OV circuit's eigenvalues over the sum of their
 * magnitudes, in [-1, 1]; near 1 for a head that copies the attended token into the logits.
 *
 * <p>JSON keys: {@code linearised}, {@code weights_note}, {@code heads} (list of {@link Head}), {@code summary}
 * (list of sentences).
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record OvCircuit(boolean linearised, String weightsNote, List<Head> heads, List<String> summary) {

    /** How many boosted tokens are listed per attended token. */
    public static final int TOP_K = 5;

    /**
     * One head.
     *
     * <p>JSON keys: {@code layer}, {@code head}, {@code name}, {@code ov_singular_values} (of W_V W_O, min(d_model,
     * d_head) values, descending), {@code ov_frobenius_norm}, {@code ov_eigenvalues} ([n][2] re/im pairs of W_V W_O,
     * via the smaller W_O W_V, sorted by magnitude), {@code embed_ov_singular_values} (of W_E W_V W_O),
     * {@code full_ov} ([V][V], W_E W_V W_O W_U: row = attended token X, column = logit), {@code
     * full_ov_singular_values}, {@code full_ov_eigenvalues} ([n][2]), {@code copying_score}, {@code top_boosted}
     * ([V][k]: for each attended token, the k tokens whose logits it raises most), {@code top_boosted_logits}
     * ([V][k], those entries of full_ov minus the row mean), {@code frac_self_top1} (fraction of tokens whose own
     * logit is the one they raise most), {@code trigram_direct_effect} ({@link DirectEffect}; null without a
     * dataset or when it has no trigrams).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Head(int layer, int head, String name, double[] ovSingularValues, double ovFrobeniusNorm,
                       double[][] ovEigenvalues, double[] embedOvSingularValues, float[][] fullOv,
                       double[] fullOvSingularValues, double[][] fullOvEigenvalues, double copyingScore,
                       int[][] topBoosted, float[][] topBoostedLogits, double fracSelfTop1,
                       DirectEffect trigramDirectEffect) {
    }

    /**
     * For each trigram (a, b, c): where c ranks in the full OV row of a, i.e. what copying a from the previous
     * position does directly to the logit of the completion c (rank 0 = the logit a raises most).
     *
     * <p>JSON keys: {@code n_trigrams}, {@code mean_rank}, {@code median_rank}, {@code chance_mean_rank}
     * ((V - 1) / 2), {@code frac_top1}, {@code frac_top5}, {@code mean_centered_logit_c} (full_ov[a][c] minus the
     * row mean, averaged over trigrams), {@code mean_centered_logit_a} (full_ov[a][a] minus the row mean: copying a
     * itself).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record DirectEffect(int nTrigrams, double meanRank, double medianRank, double chanceMeanRank,
                               double fracTop1, double fracTop5, double meanCenteredLogitC,
                               double meanCenteredLogitA) {
    }

    public static OvCircuit compute(AnalysisContext ctx) {
        return compute(ctx.model(), ctx.data());
    }

    public static OvCircuit compute(HookedTransformer model, TrigramDataset data) {
        ModelConfig cfg = model.config();
        Circuits.requireSameVocab(cfg, data);
        Circuits.CircuitWeights cw = Circuits.circuitWeights(model.weights());
        List<Head> heads = new ArrayList<>();
        List<String> summary = new ArrayList<>();
        for (int l = 0; l < cfg.nLayers(); l++) {
            for (int h = 0; h < cfg.nHeads(); h++) {
                Head head = head(cw.weights(), l, h, data);
                heads.add(head);
                summary.add(describe(head, cfg));
            }
        }
        if (cw.linearised()) {
            summary.add("LayerNorm model: " + cw.note());
        }
        return new OvCircuit(cw.linearised(), cw.note(), heads, summary);
    }

    /** Head h of layer l from the given weights (see {@link Circuits#circuitWeights}). */
    public static Head head(Weights w, int layer, int head, TrigramDataset data) {
        Circuits.requireLayerHead(w.cfg, layer, head);
        int V = w.cfg.dVocab();
        FactoredMatrix ov = WeightMatrices.ov(w, layer, head);
        FactoredMatrix.Svd svd = ov.svd();
        double norm = 0;
        for (double s : svd.s()) {
            norm += s * s;
        }
        FactoredMatrix embedOv = ov.leftMultiply(WeightMatrices.matrix(w, ParamLayout.W_E));
        FactoredMatrix full = embedOv.multiply(WeightMatrices.matrix(w, ParamLayout.W_U));
        double[][] fullEig = full.eigenvalues();
        double sumRe = 0, sumAbs = 0;
        for (double[] z : fullEig) {
            sumRe += z[0];
            sumAbs += Math.hypot(z[0], z[1]);
        }
        DMatrixRMaj fullDense = full.ab();
        float[][] fullOv = WeightMatrices.toFloat(fullDense);
        int k = Math.min(TOP_K, V);
        int[][] top = new int[V][];
        float[][] topLogits = new float[V][k];
        double[][] centered = new double[V][V];
        int selfTop = 0;
        for (int x = 0; x < V; x++) {
            double mean = 0;
            for (int v = 0; v < V; v++) {
                mean += fullDense.get(x, v) / V;
            }
            for (int v = 0; v < V; v++) {
                centered[x][v] = fullDense.get(x, v) - mean;
            }
            top[x] = Stats.topK(centered[x], k);
            for (int i = 0; i < k; i++) {
                topLogits[x][i] = (float) centered[x][top[x][i]];
            }
            selfTop += top[x][0] == x ? 1 : 0;
        }
        DirectEffect effect = data == null ? null : directEffect(centered, data);
        return new Head(layer, head, WeightMatrices.headName(layer, head), svd.s(), Math.sqrt(norm), ov.eigenvalues(),
                embedOv.singularValues(), fullOv, full.singularValues(), fullEig,
                sumAbs == 0 ? 0 : sumRe / sumAbs, top, topLogits, (double) selfTop / V, effect);
    }

    private static DirectEffect directEffect(double[][] centered, TrigramDataset data) {
        int[][] tri = data.trigrams();
        int V = centered.length;
        if (tri.length == 0) {
            return null;
        }
        double[] ranks = new double[tri.length];
        double sumC = 0, sumA = 0;
        int top1 = 0, top5 = 0;
        for (int i = 0; i < tri.length; i++) {
            int a = tri[i][0], c = tri[i][2];
            double lc = centered[a][c];
            int rank = 0;
            for (int v = 0; v < V; v++) {
                rank += centered[a][v] > lc ? 1 : 0;
            }
            ranks[i] = rank;
            top1 += rank == 0 ? 1 : 0;
            top5 += rank < 5 ? 1 : 0;
            sumC += lc;
            sumA += centered[a][a];
        }
        double[] sorted = ranks.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
        return new DirectEffect(n, Arrays.stream(ranks).average().orElse(Double.NaN), median, (V - 1) / 2.0,
                (double) top1 / n, (double) top5 / n, sumC / n, sumA / n);
    }

    private static String describe(Head h, ModelConfig cfg) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("%s OV: singular values of W_V W_O %s (Frobenius norm %.3f); full OV circuit "
                        + "W_E W_V W_O W_U top singular values %s, copying score %.3f; %d of %d tokens raise their own "
                        + "logit most", h.name(), top(h.ovSingularValues(), 4), h.ovFrobeniusNorm(),
                top(h.fullOvSingularValues(), 4), h.copyingScore(), Math.round(h.fracSelfTop1() * cfg.dVocab()),
                cfg.dVocab()));
        DirectEffect e = h.trigramDirectEffect();
        if (e != null && e.nTrigrams() > 0) {
            sb.append(String.format("; directly, copying a raises the completion c of its trigrams to mean rank "
                            + "%.1f (chance %.1f; top-1 %.1f%%, top-5 %.1f%%), centred logit of c %.3f vs of a "
                            + "itself %.3f", e.meanRank(), e.chanceMeanRank(), 100 * e.fracTop1(),
                    100 * e.fracTop5(), e.meanCenteredLogitC(), e.meanCenteredLogitA()));
        }
        return sb.toString();
    }

    static String top(double[] v, int k) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < Math.min(k, v.length); i++) {
            sb.append(i == 0 ? "" : ", ").append(String.format("%.3f", v[i]));
        }
        return sb.append(v.length > k ? ", ...]" : "]").toString();
    }
}
