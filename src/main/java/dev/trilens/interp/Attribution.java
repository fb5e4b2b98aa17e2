package dev.trilens.interp;

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
import java.util.List;
import java.util.function.Predicate;

/**
 * Analysis 5a: direct logit attribution (DLA) of the correct next token to each component that writes into the
 * final residual stream, averaged at trigram-completion positions and at the other positions.
 *
 * <p><b>What is attributed.</b> The logit of the correct next token minus the mean logit over the vocabulary (a
 * logit difference against the average token, which is invariant to adding a constant to every logit). Each
 * component's vector c at a position is projected on W_U[:, correct] - mean_v W_U[:, v]. For LayerNorm models c is
 * first centred and divided by the final LayerNorm's scale from the cache (ln_final.hook_scale), then multiplied by
 * ln_final.w, as TransformerLens's apply_ln_to_stack does on a model with fold_ln; ln_final.b is then a component of
 * its own. The components sum exactly (up to float rounding, reported as max_sum_error) to that logit difference.
 *
 * <p><b>Components</b> (name: source): {@code embed}: hook_embed; {@code pos_embed}: hook_pos_embed; per layer l and
 * head h, {@code LlHh}: blocks.l.attn.hook_result[:, :, h] (per-head output, without b_O); {@code Ll.b_O}:
 * blocks.l.attn.b_O; {@code Ll.mlp_out}: blocks.l.hook_mlp_out (includes b_out); {@code ln_final.b} (LayerNorm
 * models only); {@code b_U}: unembed.b_U.
 *
 * <p><b>Positions</b>: every (sequence, position p) for p = 0 .. seq_len - 2, predicting token p + 1 (as in
 * {@link Predictions}); a trigram position when token p + 1 completes a trigram.
 *
 * <p>JSON keys: {@code direction} (the sentence above), {@code layer_norm_scaled}, {@code n_trigram_positions},
 * {@code n_other_positions}, {@code components} (list of {@link Component}), {@code total_trigram},
 * {@code total_other}, {@code total_all} (mean of the attributed logit difference itself), {@code max_sum_error}
 * (largest |sum of components - logit difference| over all positions), {@code summary}. Means over an empty group are
 * null.
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record Attribution(String direction, boolean layerNormScaled, int nTrigramPositions, int nOtherPositions,
                          List<Component> components, Double totalTrigram, Double totalOther, Double totalAll,
                          double maxSumError, List<String> summary) {

    public static final String DIRECTION = "logit of the correct next token minus the mean logit over the vocabulary";

    /** The activations DLA reads: a cache filter for a pass whose cache {@link #perPosition} is then given. */
    public static final Predicate<String> CACHED = n -> n.equals("hook_embed") || n.equals("hook_pos_embed")
            || n.endsWith("attn.hook_result") || n.endsWith("hook_mlp_out") || n.equals(HookNames.LN_FINAL + ".hook_scale");

    /**
     * {@link #CACHED} and the unembed's input (ln_final.hook_normalized, or the last layer's resid_post without
     * LayerNorm): for a pass run without its logits, whose actual logit differences {@link #perPosition} then reads
     * from there, at the positions it attributes only.
     */
    public static Predicate<String> cachedWithoutLogits(ModelConfig cfg) {
        String unembedIn = unembedInput(cfg);
        return CACHED.or(unembedIn::equals);
    }

    private static String unembedInput(ModelConfig cfg) {
        return cfg.layerNorm() ? HookNames.LN_FINAL + ".hook_normalized" : HookNames.residPost(cfg.nLayers() - 1);
    }

    /**
     * One component's mean direct attribution. JSON keys: {@code name}, {@code source} (hook or parameter),
     * {@code mean_trigram}, {@code mean_other}, {@code mean_all}.
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Component(String name, String source, Double meanTrigram, Double meanOther, Double meanAll) {
    }

    /**
     * Per-position attributions of a batch: values[component][s * (T-1) + p] for p = 0 .. T-2 and actual[...] the
     * logit difference itself.
     */
    public record Table(List<String> names, List<String> sources, double[][] values, double[] actual, int B, int T) {
        /** Largest |sum of components - actual| over positions. */
        public double maxSumError() {
            double worst = 0;
            for (int i = 0; i < actual.length; i++) {
                double sum = 0;
                for (double[] v : values) {
                    sum += v[i];
                }
                worst = Math.max(worst, Math.abs(sum - actual[i]));
            }
            return worst;
        }
    }

    public static Attribution compute(AnalysisContext ctx) {
        TrigramDataset data = Predictions.requireData(ctx, "direct logit attribution");
        int B = data.size(), T = data.seqLen();
        Table table = perPosition(ctx.model(), data.tokens(), B, T);
        boolean[] tri = new boolean[B * (T - 1)];
        int nTri = 0;
        for (int s = 0; s < B; s++) {
            for (int p = 0; p < T - 1; p++) {
                tri[s * (T - 1) + p] = data.completesTrigram(s, p + 1);
                nTri += tri[s * (T - 1) + p] ? 1 : 0;
            }
        }
        int nOther = tri.length - nTri;
        List<Component> comps = new ArrayList<>();
        for (int c = 0; c < table.names().size(); c++) {
            double[] m = means(table.values()[c], tri);
            comps.add(new Component(table.names().get(c), table.sources().get(c), orNull(m[0], nTri),
                    orNull(m[1], nOther), m[2]));
        }
        double[] tot = means(table.actual(), tri);
        List<String> summary = new ArrayList<>();
        summary.add(String.format("direct logit attribution of the %s, mean over %d trigram and %d other positions:",
                DIRECTION, nTri, nOther));
        for (Component c : comps) {
            summary.add(String.format("  %-12s trigram %s  other %s", c.name(), fmt(c.meanTrigram()),
                    fmt(c.meanOther())));
        }
        summary.add(String.format("  %-12s trigram %s  other %s (components sum to it within %.1e)", "total",
                fmt(orNull(tot[0], nTri)), fmt(orNull(tot[1], nOther)), table.maxSumError()));
        if (nTri > 0 && nOther > 0) {
            Component top = comps.get(0);
            for (Component c : comps) {
                if (c.meanTrigram() - c.meanOther() > top.meanTrigram() - top.meanOther()) {
                    top = c;
                }
            }
            summary.add(String.format("  %s adds the most at trigram positions relative to the others (%+.3f)",
                    top.name(), top.meanTrigram() - top.meanOther()));
        }
        return new Attribution(DIRECTION, ctx.model().config().layerNorm(), nTri, nOther, comps,
                orNull(tot[0], nTri), orNull(tot[1], nOther), tot[2], table.maxSumError(), summary);
    }

    /** Runs tokens [B, T] with the cache DLA needs and attributes every prediction p = 0 .. T-2 to token p + 1. */
    public static Table perPosition(HookedTransformer model, int[] tokens, int B, int T) {
        if (T < 2) {
            throw new TrilensException("attribution needs sequences of at least 2 tokens, got " + T);
        }
        return perPosition(model, tokens, B, T, T - 1, (s, p) -> tokens[s * T + p + 1]);
    }

    /**
     * Runs tokens [B, T] and attributes the logit of target(s, p) at positions p = 0 .. P-1 of every sequence s (the
     * table's entry s * P + p). With P = T the last position is attributed too: its prediction lies past the
     * sequence, so its target must be given (e.g. the token the model predicts there).
     */
    public static Table perPosition(HookedTransformer model, int[] tokens, int B, int T, int P,
                                    java.util.function.IntBinaryOperator target) {
        return perPosition(model, model.runWithCache(tokens, B, T, CACHED), B, T, P, target);
    }

    /**
     * As {@link #perPosition(HookedTransformer, int[], int, int, int, java.util.function.IntBinaryOperator)}, from a
     * pass already run over the batch with (at least) {@link #CACHED} in its cache. A position whose target is
     * negative is left out: its entries stay 0.
     */
    public static Table perPosition(HookedTransformer model, HookedTransformer.Run run, int B, int T, int P,
                                    java.util.function.IntBinaryOperator target) {
        return new Readout(model).perPosition(run, B, T, P, target);
    }

    /**
     * A model's side of the attribution, read from its weights once: the components and their sources, the centred
     * unembed, b_U and ln_final. {@link #perPosition} then attributes batch after batch of that model (a training
     * run's dynamics attributes each snapshot's evaluation in chunks) without building this again; kept apart, the
     * per-batch method stays small for the JIT too.
     */
    public static final class Readout {
        private final ModelConfig cfg;
        /** Every component's name and source, the tables' (filled by the constructor, unchanged after). */
        private final List<String> names = new ArrayList<>(), sources = new ArrayList<>();
        private final List<String> tableNames, tableSources;
        /** Per component through ln_final: the cached activation it reads (null: fixedVector) and its layout. */
        private final List<String> actNames = new ArrayList<>();
        private final List<float[]> fixedVectors = new ArrayList<>();
        private final List<int[]> layout = new ArrayList<>(); // {stride, inner}; stride 0 = a vector added everywhere
        private final int[][] layoutRows;
        private final int nResid;
        /** uc[v * D + d] = W_U[d, v] - mean_v' W_U[d, v']: the centred unembed, by target token (dots along memory). */
        private final double[] uc;
        private final float[] bu, lnW, lnB;
        private final double buMean;

        public Readout(HookedTransformer model) {
            cfg = model.config();
            Weights w = model.weights();
            int L = cfg.nLayers(), H = cfg.nHeads(), D = cfg.dModel(), V = cfg.dVocab();
            uc = centredUnembed(w.copyOf(ParamLayout.W_U), D, V);
            bu = w.copyOf(ParamLayout.B_U);
            double mean = 0;
            for (float b : bu) {
                mean += b;
            }
            buMean = mean / V;
            boolean ln = cfg.layerNorm();
            lnW = ln ? w.copyOf(ParamLayout.LN_FINAL + ".w") : null;
            lnB = ln ? w.copyOf(ParamLayout.LN_FINAL + ".b") : null;

            // sources: each is a [B, T, stride] activation read at offset inner * D, or a fixed parameter vector
            component("embed", "hook_embed", "hook_embed", null, D, 0);
            component("pos_embed", "hook_pos_embed", "hook_pos_embed", null, D, 0);
            for (int l = 0; l < L; l++) {
                String result = HookNames.full("result", l);
                for (int h = 0; h < H; h++) {
                    component("L" + l + "H" + h, result + "[:, :, " + h + "]", result, null, H * D, h);
                }
                component("L" + l + ".b_O", ParamLayout.attnBias(l, "O"), null,
                        w.copyOf(ParamLayout.attnBias(l, "O")), 0, 0);
                if (!cfg.attnOnly()) {
                    String mlp = HookNames.full("mlp_out", l);
                    component("L" + l + ".mlp_out", mlp, mlp, null, D, 0);
                }
            }
            nResid = names.size(); // the components that pass through ln_final
            if (ln) {
                names.add(ParamLayout.LN_FINAL + ".b");
                sources.add(ParamLayout.LN_FINAL + ".b");
            }
            names.add("b_U");
            sources.add(ParamLayout.B_U);
            tableNames = List.copyOf(names);
            tableSources = List.copyOf(sources);
            layoutRows = layout.toArray(new int[0][]);
        }

        private void component(String name, String source, String act, float[] fixed, int stride, int inner) {
            names.add(name);
            sources.add(source);
            actNames.add(act);
            fixedVectors.add(fixed);
            layout.add(new int[] {stride, inner});
        }

        private static double[] centredUnembed(float[] wu, int D, int V) {
            double[] uc = new double[D * V];
            for (int d = 0; d < D; d++) {
                double m = 0;
                for (int v = 0; v < V; v++) {
                    m += wu[d * V + v];
                }
                m /= V;
                for (int v = 0; v < V; v++) {
                    uc[v * D + d] = wu[d * V + v] - m;
                }
            }
            return uc;
        }

        /** {@link Attribution#perPosition(HookedTransformer, HookedTransformer.Run, int, int, int, java.util.function.IntBinaryOperator)} for this model's pass run. */
        public Table perPosition(HookedTransformer.Run run, int B, int T, int P,
                                 java.util.function.IntBinaryOperator target) {
            if (P < 1 || P > T) {
                throw new TrilensException("attribution needs 1 to " + T + " positions per sequence, got " + P);
            }
            float[][] acts = new float[nResid][];
            for (int c = 0; c < nResid; c++) {
                acts[c] = actNames.get(c) == null ? fixedVectors.get(c) : run.cache().get(actNames.get(c)).data();
            }
            float[] scale = cfg.layerNorm() ? run.cache().get(HookNames.LN_FINAL + ".hook_scale").data() : null;
            int N = B * P;
            double[][] values = new double[names.size()][N];
            double[] actual = new double[N];
            float[] logits = run.logits() == null ? null : run.logits().data();
            float[] unembedIn = logits == null ? run.cache().get(unembedInput(cfg)).data() : null;
            attribute(new Sources(acts, layoutRows, nResid, uc, bu, buMean, lnW, lnB, scale, logits,
                    unembedIn, cfg.dModel(), cfg.dVocab()), B, T, P, target, values, actual);
            return new Table(tableNames, tableSources, values, actual, B, T);
        }
    }

    /**
     * What {@link #attribute} reads: the activations and layouts of the components that pass through ln_final, the
     * centred unembed uc [V, D], b_U and its mean, ln_final's weights and the batch's scales (LN models; else null),
     * and the logits or, without them, the unembed's input.
     */
    private record Sources(float[][] acts, int[][] layout, int nResid, double[] uc, float[] bu, double buMean,
                           float[] lnW, float[] lnB, float[] scale, float[] logits, float[] unembedIn, int D, int V) {
    }

    /**
     * The positions' attributions into values and actual. A method of its own, apart from the set-up above: the JIT
     * then compiles this loop alone, not the names and lists around it (as one method it took C2 ~0.9 s).
     */
    private static void attribute(Sources src, int B, int T, int P, java.util.function.IntBinaryOperator target,
                                  double[][] values, double[] actual) {
        int D = src.D, V = src.V, nResid = src.nResid;
        boolean ln = src.lnW != null;
        float[] scale = src.scale, lnW = src.lnW, lnB = src.lnB, bu = src.bu, logits = src.logits;
        float[] unembedIn = src.unembedIn;
        double[] uc = src.uc;
        double buMean = src.buMean;
        double[] x = new double[D];
        for (int s = 0; s < B; s++) {
            for (int p = 0; p < P; p++) {
                int i = s * P + p;
                int bt = s * T + p;
                int tgt = target.applyAsInt(s, p);
                if (tgt < 0) {
                    continue;
                }
                double inv = ln ? 1.0 / scale[bt] : 1.0;
                for (int c = 0; c < nResid; c++) {
                    float[] a = src.acts[c];
                    int stride = src.layout[c][0];
                    int off = stride == 0 ? 0 : bt * stride + src.layout[c][1] * D;
                    double mean = 0;
                    for (int d = 0; d < D; d++) {
                        x[d] = a[off + d];
                        mean += x[d];
                    }
                    mean /= D;
                    double dot = 0;
                    for (int d = 0; d < D; d++) {
                        double xd = ln ? (x[d] - mean) * inv * lnW[d] : x[d];
                        dot += xd * uc[tgt * D + d];
                    }
                    values[c][i] = dot;
                }
                int c = nResid;
                if (ln) {
                    double dot = 0;
                    for (int d = 0; d < D; d++) {
                        dot += lnB[d] * uc[tgt * D + d];
                    }
                    values[c++][i] = dot;
                }
                values[c][i] = bu[tgt] - buMean;
                if (logits == null) {
                    // logit(t) - mean logit = unembed input . (W_U[:, t] - mean column) + b_U[t] - mean b_U
                    double dot = bu[tgt] - buMean;
                    for (int d = 0; d < D; d++) {
                        dot += unembedIn[bt * D + d] * uc[tgt * D + d];
                    }
                    actual[i] = dot;
                    continue;
                }
                int row = bt * V;
                double lm = 0;
                for (int v = 0; v < V; v++) {
                    lm += logits[row + v];
                }
                actual[i] = logits[row + tgt] - lm / V;
            }
        }
    }

    /** {mean where tri, mean where !tri, mean of all}. */
    private static double[] means(double[] v, boolean[] tri) {
        double a = 0, b = 0;
        int na = 0;
        for (int i = 0; i < v.length; i++) {
            if (tri[i]) {
                a += v[i];
                na++;
            } else {
                b += v[i];
            }
        }
        int nb = v.length - na;
        return new double[] {na == 0 ? 0 : a / na, nb == 0 ? 0 : b / nb, (a + b) / v.length};
    }

    private static Double orNull(double v, int n) {
        return n == 0 ? null : v;
    }

    private static String fmt(Double d) {
        return d == null ? "   n/a" : String.format("%+.3f", d);
    }
}
