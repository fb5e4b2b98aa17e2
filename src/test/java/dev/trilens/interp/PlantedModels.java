package dev.trilens.interp;

import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.util.List;

/**
 * One-layer, one-head models written by hand, whose trigram table is known by construction: an oracle for the
 * interpretability code that owes nothing to training or to trilens's own output.
 *
 * <p>The residual stream (d_model {@value #D_MODEL}, no LayerNorm) is split into orthogonal one-hot blocks:
 * token t writes e_t (dims [0, V)); the head's OV copies e_t of the key into g_t (dims [V, 2V)); the MLP writes o_c
 * (dims [2V, 3V)); position p writes f_p (dims [3V, 3V + n_ctx)). d_head = d_model = 64 so the attention scale
 * 1/sqrt(d_head) is exactly 1/8, and W_Q = 8 A, W_K = I make the score of query x_p on key x_j exactly x_p^T A x_j:
 * <ul>
 *   <li>A[f_p, f_p] = {@link #SELF}: every query prefers itself by default;</li>
 *   <li>A[f_p, f_{p-1}] = 0; A[f_p, f_j] = -{@link #FAR} for j &lt;= p-2: positions before p-1 are never
 *       attended (e^-(FAR - GATE) ~ 1e-12 of the mass);</li>
 *   <li>A[e_b, e_a] = {@link #GATE} for each planted prefix (a, b): b at p prefers a at p-1 to itself by
 *       GATE - SELF = 6 nats.</li>
 * </ul>
 * So at a planted prefix the head puts w = 1 / (1 + e^(SELF - GATE)) = 1 / (1 + e^-6) = 0.9975274 on a, and at
 * any other pair 1 - w' with w' = 1 / (1 + e^SELF) = 0.0024726 on the previous token and the rest on itself.
 *
 * <p>The readout differs by variant. Attention-only: W_U[g_a, c] = strength, so the copied a alone names c; this
 * needs every planted a to have one c and no planted b to be a planted a (a copy of b itself would name c: a bigram
 * default). A planted a as the current token of an unplanted pair copies itself with weight 1 - w', so
 * W_U[e_a, c] = -strength (1 - w') cancels that (to float rounding, ~5e-7 of a logit).
 * With MLP: one ReLU neuron per prefix (a, b) reads K (g_a + e_b) - 1.5 K and writes strength / (0.5 K) per unit of
 * activation into o_c, and W_U[o_c, c] = 1; the neuron only fires when both a was copied and b is
 * current, so any function table without a = b works, including prefixes sharing a or b with different c.
 */
public final class PlantedModels {

    public static final int D_MODEL = 64;
    /** The score of a query on itself: the default preference for self. */
    public static final double SELF = 6;
    /** The token score of b on a planted a. */
    public static final double GATE = 12;
    /** The penalty on every key before p-1. */
    public static final double FAR = 40;
    /** The MLP neurons' input gain K. */
    public static final double MLP_GAIN = 20;

    /** One planted trigram and how many logits its c gets at full attention on a. */
    public record Planted(int a, int b, int c, double strength) {
    }

    private PlantedModels() {
    }

    /** Attention on a at a planted prefix: 1 / (1 + e^(SELF - GATE)). */
    public static double attnPlanted() {
        return 1 / (1 + Math.exp(SELF - GATE));
    }

    /** Attention on the previous token elsewhere: 1 / (1 + e^SELF). */
    public static double attnElsewhere() {
        return 1 / (1 + Math.exp(SELF));
    }

    /** P(c) when c's logit is x and the other V - 1 logits are 0. */
    public static double softmaxOne(double x, int V) {
        return Math.exp(x) / (Math.exp(x) + V - 1);
    }

    public static Weights attentionOnly(int V, int nCtx, List<Planted> table) {
        return build(V, nCtx, table, false);
    }

    public static Weights withMlp(int V, int nCtx, List<Planted> table) {
        return build(V, nCtx, table, true);
    }

    private static Weights build(int V, int nCtx, List<Planted> table, boolean mlp) {
        int e = 0, g = V, o = 2 * V, f = 3 * V, D = D_MODEL;
        if (f + nCtx > D) {
            throw new IllegalArgumentException("3 V + n_ctx must fit in " + D + ", got V=" + V + " n_ctx=" + nCtx);
        }
        ModelConfig cfg = new ModelConfig(V, nCtx, D, 1, 1, D, mlp ? table.size() : 0, false);
        Weights w = new Weights(cfg);
        float[] d = w.data;
        int we = w.offset("embed.W_E"), wp = w.offset("pos_embed.W_pos");
        for (int t = 0; t < V; t++) {
            d[we + t * D + e + t] = 1;
        }
        for (int p = 0; p < nCtx; p++) {
            d[wp + p * D + f + p] = 1;
        }
        // W_Q [1, D, Dh] = sqrt(Dh) A, W_K = I: score = x_q^T A x_k
        int wq = w.offset("blocks.0.attn.W_Q"), wk = w.offset("blocks.0.attn.W_K");
        float scale = (float) Math.sqrt(D);
        for (int i = 0; i < D; i++) {
            d[wk + i * D + i] = 1;
        }
        for (int p = 0; p < nCtx; p++) {
            d[wq + (f + p) * D + f + p] = (float) (scale * SELF);
            for (int j = 0; j < p - 1; j++) {
                d[wq + (f + p) * D + f + j] = (float) (-scale * FAR);
            }
        }
        for (Planted t : table) {
            d[wq + (e + t.b()) * D + e + t.a()] = (float) (scale * GATE);
        }
        // OV: W_V keeps the token block, W_O moves it to the copy block
        int wv = w.offset("blocks.0.attn.W_V"), wo = w.offset("blocks.0.attn.W_O");
        for (int t = 0; t < V; t++) {
            d[wv + (e + t) * D + t] = 1;
            d[wo + t * D + g + t] = 1;
        }
        int wu = w.offset("unembed.W_U");
        if (!mlp) {
            // a planted a that is itself the current token attends itself (1 - w') and copies g_a: its own embedding
            // cancels that copy, or every a would predict its c after any token (a bigram default)
            double selfAttn = 1 - attnElsewhere();
            for (Planted t : table) {
                d[wu + (g + t.a()) * V + t.c()] = (float) t.strength();
                d[wu + (e + t.a()) * V + t.c()] = (float) (-t.strength() * selfAttn);
            }
            return w;
        }
        int m = table.size();
        int win = w.offset("blocks.0.mlp.W_in"), bin = w.offset("blocks.0.mlp.b_in");
        int wout = w.offset("blocks.0.mlp.W_out");
        for (int k = 0; k < m; k++) {
            Planted t = table.get(k);
            if (t.a() == t.b()) {
                throw new IllegalArgumentException("a neuron for (a, a) would fire on every self-attending a");
            }
            d[win + (g + t.a()) * m + k] = (float) MLP_GAIN;
            d[win + (e + t.b()) * m + k] = (float) MLP_GAIN;
            d[bin + k] = (float) (-1.5 * MLP_GAIN);
            d[wout + k * D + o + t.c()] = (float) (t.strength() / (0.5 * MLP_GAIN));
        }
        for (int c = 0; c < V; c++) {
            d[wu + (o + c) * V + c] = 1;
        }
        return w;
    }
}
