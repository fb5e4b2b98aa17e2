package dev.trilens.interp;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookNames;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Tensor;
import dev.trilens.model.Weights;
import dev.trilens.model.ParamLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;

/**
 * Analysis 4b: what the MLP does with what the attention head copied.
 *
 * <p><b>Neurons per trigram</b> (needs the dataset). Every trigram (a, b, c) is run through the model as the
 * sequence [a, b, c] (one batch); at position 1 (the token b, where the model must predict c from the a it
 * attends) the MLP's neuron activations blocks.l.mlp.hook_post are read, with the attention of position 1 to
 * position 0. The same is done for every pair (x, y) of the vocabulary as a 2-token sequence (a uniform sample of
 * {@value #MAX_PAIRS} pairs when V^2 is larger), giving each neuron's firing rate (activation > 0) and mean
 * activation on trigram prefixes vs. other pairs, and for each trigram the baseline of its top neuron on the
 * non-prefix pairs (x, b) with the same b: what makes the neuron fire for (a, b) and not for b alone.
 *
 * <p><b>Subspace overlap</b> (weights only). For each head of layer l, the output space of its OV circuit in the
 * residual stream (span of the right singular vectors of W_V W_O with non-zero singular value, at most d_head
 * dimensions) against the input space of layer l's MLP (the column space of W_in [d_model, d_mlp]): principal
 * angles from the SVD of Q1^T Q2 after orthonormalising both. Two subspaces of dimensions d1 and d2 in d_model
 * dimensions always share at least max(0, d1 + d2 - d_model) dimensions, so the result is set against that and
 * against random subspaces of the same dimensions. Weights are read as in {@link Circuits}.
 *
 * <p>JSON keys: {@code has_mlp}, {@code note} (for attention-only models: that there is no MLP),
 * {@code layers} (list of {@link Layer}; empty without an MLP), {@code summary} (list of sentences).
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record MlpAnalysis(boolean hasMlp, String note, List<Layer> layers, List<String> summary) {

    /** Neurons listed per trigram. */
    public static final int TOP_K = 3;
    /** Most pairs run for the firing-rate baselines. */
    public static final int MAX_PAIRS = 65536;
    private static final int RANDOM_DRAWS = 50;

    /**
     * One layer's MLP.
     *
     * <p>JSON keys: {@code layer}, {@code d_mlp}, {@code trigrams} ([n][3] a, b, c; empty without a dataset),
     * {@code trigram_activations} ([n][d_mlp], hook_post at position 1 of [a, b, c]), {@code top_neurons} (list of
     * {@link TrigramNeurons}, one per trigram), {@code top1_counts} ([d_mlp]: for how many trigrams each neuron is the
     * top one), {@code n_pairs} (pairs run for the baselines), {@code fire_frac_all}, {@code mean_all} ([d_mlp], over
     * all pairs run), {@code fire_frac_prefix}, {@code fire_frac_other}, {@code mean_prefix}, {@code mean_other}
     * ([d_mlp], over trigram prefixes / other pairs; null without a dataset), {@code mean_active_prefix},
     * {@code mean_active_other} (mean number of neurons > 0; null without a dataset), {@code overlaps} (list of
     * {@link SubspaceOverlap}, one per head of this layer).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Layer(int layer, int dMlp, int[][] trigrams, float[][] trigramActivations,
                        List<TrigramNeurons> topNeurons, int[] top1Counts, int nPairs, double[] fireFracAll,
                        double[] meanAll, double[] fireFracPrefix, double[] fireFracOther, double[] meanPrefix,
                        double[] meanOther, Double meanActivePrefix, Double meanActiveOther,
                        List<SubspaceOverlap> overlaps) {
    }

    /**
     * One trigram's strongest neurons at position 1. JSON keys: {@code a}, {@code b}, {@code c}, {@code neurons}
     * (top {@value #TOP_K} by activation), {@code activations}, {@code attention_to_a} ([heads]: pattern[1, 0] per
     * head of this layer), {@code top_neuron_baseline} (the top neuron's mean activation over the non-prefix pairs
     * (x, b) with the same b; null when none was run).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record TrigramNeurons(int a, int b, int c, int[] neurons, float[] activations, float[] attentionToA,
                                 Double topNeuronBaseline) {
    }

    /**
     * A head's OV output space against the MLP's W_in input space.
     *
     * <p>JSON keys: {@code head}, {@code name}, {@code d_model}, {@code dim_ov_output}, {@code dim_w_in}
     * (numerical ranks), {@code forced_shared_dims} (max(0, d1 + d2 - d_model): dimensions any two such subspaces
     * share), {@code principal_angles_deg} (min(d1, d2) angles, ascending), {@code cosines} (their cosines,
     * descending), {@code mean_cosine}, {@code random_mean_cosine} (mean cosine for random subspaces of the same
     * dimensions, averaged over 50 draws, seed 7), {@code ov_energy_in_w_in} (||OV P||_F^2 / ||OV||_F^2 with P
     * the projection on W_in's input space: the share of what the head writes that the MLP can read),
     * {@code random_energy} (d2 / d_model, its expectation for a random subspace).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    @JsonPropertyOrder({"head", "name", "d_model", "dim_ov_output", "dim_w_in", "forced_shared_dims",
            "principal_angles_deg", "cosines", "mean_cosine", "random_mean_cosine", "ov_energy_in_w_in",
            "random_energy"})
    public record SubspaceOverlap(int head, String name, int dModel, int dimOvOutput,
                                  @JsonProperty("dim_w_in") int dimWIn, int forcedSharedDims,
                                  double[] principalAnglesDeg, double[] cosines, double meanCosine,
                                  double randomMeanCosine, @JsonProperty("ov_energy_in_w_in") double ovEnergyInWIn,
                                  double randomEnergy) {
    }

    public static MlpAnalysis compute(AnalysisContext ctx) {
        return compute(ctx.model(), ctx.data());
    }

    public static MlpAnalysis compute(HookedTransformer model, TrigramDataset data) {
        ModelConfig cfg = model.config();
        if (cfg.attnOnly()) {
            String note = "attention-only model: there is no MLP";
            return new MlpAnalysis(false, note, List.of(), List.of("MLP: " + note));
        }
        if (cfg.nCtx() < 2) {
            throw new TrilensException("the MLP analysis reads position 1 and needs n_ctx >= 2, the model has "
                    + cfg.nCtx());
        }
        Circuits.requireSameVocab(cfg, data);
        Circuits.CircuitWeights cw = Circuits.circuitWeights(model.weights());
        int[][] tri = data == null ? new int[0][] : data.trigrams();
        int n = tri.length;
        int T = Math.min(3, cfg.nCtx());
        HookedTransformer.Run triRun = null;
        if (n > 0) {
            int[] tokens = new int[n * T];
            for (int i = 0; i < n; i++) {
                System.arraycopy(tri[i], 0, tokens, i * T, T);
            }
            triRun = model.runWithCache(tokens, n, T, name -> name.endsWith("mlp.hook_post")
                    || name.endsWith("attn.hook_pattern"));
        }
        int[] pairs = pairs(cfg.dVocab());
        int nPairs = pairs.length / 2;
        HookedTransformer.Run pairRun = model.runWithCache(pairs, nPairs, 2, name -> name.endsWith("mlp.hook_post"));
        boolean[] prefixMask = data == null || n == 0 ? null : QkCircuit.prefixMask(data);

        List<Layer> layers = new ArrayList<>();
        List<String> summary = new ArrayList<>();
        for (int l = 0; l < cfg.nLayers(); l++) {
            Layer layer = layer(cfg, cw.weights(), l, tri, triRun, T, pairs, pairRun, prefixMask);
            layers.add(layer);
            summary.addAll(describe(layer, cfg));
        }
        if (data == null) {
            summary.add("MLP: dataset unknown, so the neurons of each trigram are not reported");
        }
        if (cw.linearised()) {
            summary.add("MLP subspaces read the folded weights: " + cw.note());
        }
        return new MlpAnalysis(true, "MLP subspaces: " + cw.note(), layers, summary);
    }

    /** All V^2 pairs as 2-token sequences, or a uniform sample of MAX_PAIRS of them (seed 11). */
    private static int[] pairs(int V) {
        long all = (long) V * V;
        if (all <= MAX_PAIRS) {
            int[] out = new int[(int) all * 2];
            for (int i = 0; i < all; i++) {
                out[2 * i] = i / V;
                out[2 * i + 1] = i % V;
            }
            return out;
        }
        Random rng = new Random(11);
        int[] out = new int[MAX_PAIRS * 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = rng.nextInt(V);
        }
        return out;
    }

    private static Layer layer(ModelConfig cfg, Weights w, int l, int[][] tri, HookedTransformer.Run triRun, int T,
                               int[] pairs, HookedTransformer.Run pairRun, boolean[] prefixMask) {
        int M = cfg.dMlp(), H = cfg.nHeads(), V = cfg.dVocab(), n = tri.length;
        int k = Math.min(TOP_K, M);
        // baselines over the pairs
        float[] post = pairRun.cache().get(HookNames.full("post", l)).data();
        int nPairs = pairs.length / 2;
        double[] fireAll = new double[M], meanAll = new double[M];
        double[] firePre = new double[M], fireOth = new double[M], meanPre = new double[M], meanOth = new double[M];
        // per b, per neuron: sum and count of activations over non-prefix pairs (x, b)
        double[][] sameB = new double[V][M];
        int[] sameBCount = new int[V];
        int nPre = 0, nOth = 0;
        double activePre = 0, activeOth = 0;
        for (int i = 0; i < nPairs; i++) {
            int x = pairs[2 * i], y = pairs[2 * i + 1];
            boolean isPrefix = prefixMask != null && prefixMask[x * V + y];
            int base = (i * 2 + 1) * M; // position 1
            int active = 0;
            for (int m = 0; m < M; m++) {
                float a = post[base + m];
                boolean fires = a > 0;
                active += fires ? 1 : 0;
                fireAll[m] += fires ? 1 : 0;
                meanAll[m] += a;
                if (isPrefix) {
                    firePre[m] += fires ? 1 : 0;
                    meanPre[m] += a;
                } else {
                    fireOth[m] += fires ? 1 : 0;
                    meanOth[m] += a;
                    sameB[y][m] += a;
                }
            }
            if (isPrefix) {
                nPre++;
                activePre += active;
            } else {
                nOth++;
                activeOth += active;
                sameBCount[y]++;
            }
        }
        divide(fireAll, nPairs);
        divide(meanAll, nPairs);
        divide(firePre, nPre);
        divide(meanPre, nPre);
        divide(fireOth, nOth);
        divide(meanOth, nOth);
        boolean withData = prefixMask != null;

        float[][] acts = new float[n][M];
        List<TrigramNeurons> tops = new ArrayList<>();
        int[] top1 = new int[M];
        if (n > 0) {
            float[] tpost = triRun.cache().get(HookNames.full("post", l)).data();
            Tensor pattern = triRun.cache().get(HookNames.full("pattern", l));
            for (int i = 0; i < n; i++) {
                System.arraycopy(tpost, (i * T + 1) * M, acts[i], 0, M);
                int[] idx = Stats.topK(acts[i], k);
                float[] vals = new float[k];
                for (int j = 0; j < k; j++) {
                    vals[j] = acts[i][idx[j]];
                }
                float[] att = new float[H];
                for (int h = 0; h < H; h++) {
                    att[h] = pattern.data()[((i * H + h) * T + 1) * T];
                }
                int b = tri[i][1];
                Double baseline = sameBCount[b] == 0 ? null : sameB[b][idx[0]] / sameBCount[b];
                tops.add(new TrigramNeurons(tri[i][0], b, tri[i][2], idx, vals, att, baseline));
                top1[idx[0]]++;
            }
        }
        return new Layer(l, M, tri, acts, tops, top1, nPairs, fireAll, meanAll, withData ? firePre : null,
                withData ? fireOth : null, withData ? meanPre : null, withData ? meanOth : null,
                withData && nPre > 0 ? activePre / nPre : null, withData && nOth > 0 ? activeOth / nOth : null,
                overlaps(w, l));
    }

    private static void divide(double[] v, int n) {
        for (int i = 0; i < v.length; i++) {
            v[i] = n == 0 ? 0 : v[i] / n;
        }
    }

    /** Each head's OV output space against W_in's input space, for layer l. */
    public static List<SubspaceOverlap> overlaps(Weights w, int l) {
        ModelConfig cfg = w.cfg;
        int D = cfg.dModel();
        DMatrixRMaj wIn = WeightMatrices.matrix(w, ParamLayout.mlp(l, "W_in"));
        DMatrixRMaj qIn = WeightMatrices.orthonormalBasis(wIn);
        List<SubspaceOverlap> out = new ArrayList<>();
        for (int h = 0; h < cfg.nHeads(); h++) {
            FactoredMatrix ov = WeightMatrices.ov(w, l, h);
            FactoredMatrix.Svd svd = ov.svd();
            double tol = D * Math.ulp(1.0) * (svd.s().length == 0 ? 0 : svd.s()[0]);
            int r = 0;
            while (r < svd.s().length && svd.s()[r] > tol) {
                r++;
            }
            // output space: rows of Vh with non-zero singular values, as columns [D, r]
            DMatrixRMaj qOut = new DMatrixRMaj(D, r);
            for (int i = 0; i < r; i++) {
                for (int j = 0; j < D; j++) {
                    qOut.set(j, i, svd.vh().get(i, j));
                }
            }
            double[] cos = WeightMatrices.principalCosines(qOut, qIn);
            double[] deg = new double[cos.length];
            for (int i = 0; i < cos.length; i++) {
                deg[i] = Math.toDegrees(Math.acos(cos[i]));
            }
            double energy = 0, total = 0;
            if (r > 0) {
                double projected = ov.multiply(qIn).norm();
                total = ov.norm();
                energy = total == 0 ? 0 : projected * projected / (total * total);
            }
            out.add(new SubspaceOverlap(h, WeightMatrices.headName(l, h), D, r, qIn.numCols,
                    Math.max(0, r + qIn.numCols - D), deg, cos, mean(cos), randomMeanCosine(D, r, qIn.numCols),
                    energy, (double) qIn.numCols / D));
        }
        return out;
    }

    private static double randomMeanCosine(int D, int d1, int d2) {
        if (d1 == 0 || d2 == 0) {
            return 0;
        }
        Random rng = new Random(7);
        double sum = 0;
        for (int t = 0; t < RANDOM_DRAWS; t++) {
            double[] cos = WeightMatrices.principalCosines(WeightMatrices.orthonormalBasis(gaussian(D, d1, rng)),
                    WeightMatrices.orthonormalBasis(gaussian(D, d2, rng)));
            sum += mean(cos);
        }
        return sum / RANDOM_DRAWS;
    }

    private static DMatrixRMaj gaussian(int rows, int cols, Random rng) {
        DMatrixRMaj m = new DMatrixRMaj(rows, cols);
        for (int i = 0; i < m.data.length; i++) {
            m.data[i] = rng.nextGaussian();
        }
        return m;
    }

    private static double mean(double[] v) {
        return v.length == 0 ? 0 : Arrays.stream(v).average().orElse(0);
    }

    private static List<String> describe(Layer layer, ModelConfig cfg) {
        List<String> out = new ArrayList<>();
        String L = "L" + layer.layer() + " MLP";
        int n = layer.trigrams().length;
        if (n > 0) {
            int fires = 0;
            double topAct = 0, baseline = 0, att = 0;
            int nBase = 0;
            for (TrigramNeurons t : layer.topNeurons()) {
                fires += t.activations()[0] > 0 ? 1 : 0;
                topAct += t.activations()[0];
                if (t.topNeuronBaseline() != null) {
                    baseline += t.topNeuronBaseline();
                    nBase++;
                }
                for (float a : t.attentionToA()) {
                    att += a / t.attentionToA().length;
                }
            }
            Integer[] order = new Integer[layer.dMlp()];
            for (int i = 0; i < order.length; i++) {
                order[i] = i;
            }
            Arrays.sort(order, (x, y) -> Integer.compare(layer.top1Counts()[y], layer.top1Counts()[x]));
            StringBuilder common = new StringBuilder();
            int distinct = 0;
            for (int c : layer.top1Counts()) {
                distinct += c > 0 ? 1 : 0;
            }
            for (int i = 0; i < Math.min(3, order.length) && layer.top1Counts()[order[i]] > 0; i++) {
                common.append(i == 0 ? "" : ", ").append("N").append(order[i]).append(" (")
                        .append(layer.top1Counts()[order[i]]).append(")");
            }
            out.add(String.format("%s: at the b of [a, b, c] (attention to a %.3f on average over the %d trigrams), "
                            + "the top neuron fires for %d of %d trigrams, %d distinct neurons are some trigram's "
                            + "top neuron, most often %s", L, att / n, n, fires, n, distinct, common));
            if (nBase > 0) {
                out.add(String.format("%s: the top neuron's activation averages %.3f on the trigram vs %.3f for the "
                        + "same b after a non-prefix token; %.2f vs %.2f neurons active on prefixes vs other pairs",
                        L, topAct / n, baseline / nBase,
                        layer.meanActivePrefix() == null ? 0 : layer.meanActivePrefix(),
                        layer.meanActiveOther() == null ? 0 : layer.meanActiveOther()));
            }
        }
        for (SubspaceOverlap o : layer.overlaps()) {
            out.add(String.format("%s vs %s OV output: principal angles (deg) %s between the %d-dim OV output space "
                            + "and the %d-dim W_in input space in d_model=%d (%d dims shared by any such pair); mean "
                            + "cosine %.3f vs %.3f for random subspaces; %.1f%% of the OV output's energy lies in "
                            + "W_in's space (random: %.1f%%)", L, o.name(), OvCircuit.top(o.principalAnglesDeg(), 6),
                    o.dimOvOutput(), o.dimWIn(), o.dModel(), o.forcedSharedDims(), o.meanCosine(),
                    o.randomMeanCosine(), 100 * o.ovEnergyInWIn(), 100 * o.randomEnergy()));
        }
        return out;
    }
}
