package dev.trilens.interp;

import dev.trilens.TrilensException;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;

/**
 * A one-layer model's components evaluated on its own embedding vectors, in double precision: what
 * {@link TrigramExtractor} reads the trigram table from. Nothing here runs the model over a dataset; every quantity
 * is a function of the weights and of a (token, position) pair.
 *
 * <p>Letters: V vocab, N n_ctx, D d_model, H heads, Dh d_head, M d_mlp. A "context" is a query b at position p, the
 * key a at p-1 and the key b itself at p, plus (optionally) the positions 0..p-2 filled with random tokens, whose
 * expected contribution is the mean-field background {@link Background}.
 */
final class ExtractComponents {
    final ModelConfig cfg;
    final int V, N, D, H, Dh, M;
    final boolean ln;
    /** x[t, j, :] = W_E[t] + W_pos[j]: the residual stream a token enters with, [V, N, D]. */
    final double[] x;
    /** q, k of every (token, position), after ln1 when the model has it: [V, N, H, Dh]. */
    final double[] q, k;
    /** vo[t, j, h, :] = (ln1(x[t, j]) @ W_V[h] + b_V[h]) @ W_O[h]: what head h writes when it attends (t, j), [V, N, H, D]. */
    final double[] vo;
    final double[] bO, wIn, bIn, wOut, bOut, wU, bU, ln2w, ln2b, lnfw, lnfb;
    final double scale;

    ExtractComponents(Weights w) {
        cfg = w.cfg;
        if (cfg.nLayers() != 1) {
            throw new TrilensException("trigram extraction reads one-layer models (the challenge's shape); this "
                    + "model has n_layers=" + cfg.nLayers());
        }
        if (cfg.nCtx() < 3) {
            throw new TrilensException("trigram extraction needs n_ctx >= 3, the model has " + cfg.nCtx());
        }
        V = cfg.dVocab();
        N = cfg.nCtx();
        D = cfg.dModel();
        H = cfg.nHeads();
        Dh = cfg.dHead();
        M = cfg.dMlp();
        ln = cfg.layerNorm();
        scale = 1.0 / Math.sqrt(Dh);
        double[] wE = d(w, "embed.W_E"), wPos = d(w, "pos_embed.W_pos");
        double[] wQ = d(w, "blocks.0.attn.W_Q"), wK = d(w, "blocks.0.attn.W_K"), wV = d(w, "blocks.0.attn.W_V");
        double[] bQ = d(w, "blocks.0.attn.b_Q"), bK = d(w, "blocks.0.attn.b_K"), bV = d(w, "blocks.0.attn.b_V");
        double[] wO = d(w, "blocks.0.attn.W_O");
        bO = d(w, "blocks.0.attn.b_O");
        wU = d(w, "unembed.W_U");
        bU = d(w, "unembed.b_U");
        if (M > 0) {
            wIn = d(w, "blocks.0.mlp.W_in");
            bIn = d(w, "blocks.0.mlp.b_in");
            wOut = d(w, "blocks.0.mlp.W_out");
            bOut = d(w, "blocks.0.mlp.b_out");
        } else {
            wIn = bIn = wOut = bOut = null;
        }
        double[] ln1w = ln ? d(w, "blocks.0.ln1.w") : null, ln1b = ln ? d(w, "blocks.0.ln1.b") : null;
        ln2w = ln && M > 0 ? d(w, "blocks.0.ln2.w") : null;
        ln2b = ln && M > 0 ? d(w, "blocks.0.ln2.b") : null;
        lnfw = ln ? d(w, "ln_final.w") : null;
        lnfb = ln ? d(w, "ln_final.b") : null;

        x = new double[V * N * D];
        q = new double[V * N * H * Dh];
        k = new double[V * N * H * Dh];
        vo = new double[V * N * H * D];
        double[] xin = new double[D], v = new double[Dh];
        for (int t = 0; t < V; t++) {
            for (int j = 0; j < N; j++) {
                int x_tj = (t * N + j) * D;
                for (int i = 0; i < D; i++) {
                    x[x_tj + i] = wE[t * D + i] + wPos[j * D + i];
                }
                System.arraycopy(x, x_tj, xin, 0, D);
                if (ln) {
                    layerNorm(xin, ln1w, ln1b);
                }
                for (int h = 0; h < H; h++) {
                    int qk = ((t * N + j) * H + h) * Dh;
                    for (int e = 0; e < Dh; e++) {
                        double sq = bQ[h * Dh + e], sk = bK[h * Dh + e], sv = bV[h * Dh + e];
                        for (int i = 0; i < D; i++) {
                            int wi = (h * D + i) * Dh + e;
                            sq += xin[i] * wQ[wi];
                            sk += xin[i] * wK[wi];
                            sv += xin[i] * wV[wi];
                        }
                        q[qk + e] = sq;
                        k[qk + e] = sk;
                        v[e] = sv;
                    }
                    int o = ((t * N + j) * H + h) * D;
                    for (int e = 0; e < Dh; e++) {
                        for (int i = 0; i < D; i++) {
                            vo[o + i] += v[e] * wO[(h * Dh + e) * D + i];
                        }
                    }
                }
            }
        }
    }

    private static double[] d(Weights w, String name) {
        float[] f = w.copyOf(name);
        double[] out = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            out[i] = f[i];
        }
        return out;
    }

    /** In place: (x - mean) / sqrt(var + eps) * w + b, as TransformerLens's LayerNorm. Returns the scale. */
    static double layerNorm(double[] x, double[] w, double[] b) {
        int n = x.length;
        double mean = 0;
        for (double v : x) {
            mean += v;
        }
        mean /= n;
        double var = 0;
        for (double v : x) {
            var += (v - mean) * (v - mean);
        }
        double s = Math.sqrt(var / n + ModelConfig.LN_EPS);
        for (int i = 0; i < n; i++) {
            x[i] = (x[i] - mean) / s * w[i] + b[i];
        }
        return s;
    }

    /** Pre-softmax score of head h: query token qt at position qp against key token kt at position kp. */
    double score(int qt, int qp, int kt, int kp, int h) {
        int qo = ((qt * N + qp) * H + h) * Dh, ko = ((kt * N + kp) * H + h) * Dh;
        double s = 0;
        for (int e = 0; e < Dh; e++) {
            s += q[qo + e] * k[ko + e];
        }
        return s * scale;
    }

    /**
     * The expected softmax mass and value of the keys at 0..p-2 for the query (b, p), each holding a uniformly random
     * token (mean-field: the expectation of the denominator and of the numerator, not of their ratio). Per head,
     * mass = sum_j mean_t exp(s(t, j) - max[h]) and value = sum_j mean_t exp(s(t, j) - max[h]) vo(t, j, h).
     */
    static final class Background {
        final double[] max, mass, value; // [H], [H], [H, D]
        double[] scores = new double[0]; // scratch: one head's scores of the keys 0..p-2, [p-1, V]

        Background(int H, int D) {
            max = new double[H];
            mass = new double[H];
            value = new double[H * D];
        }
    }

    /** Fills bg for query (b, p); with random=false (the two-key reading) the background is empty. */
    void background(Background bg, int b, int p, boolean random) {
        java.util.Arrays.fill(bg.mass, 0);
        java.util.Arrays.fill(bg.value, 0);
        java.util.Arrays.fill(bg.max, Double.NEGATIVE_INFINITY);
        if (!random || p < 2) {
            return;
        }
        if (bg.scores.length < (p - 1) * V) {
            bg.scores = new double[N * V];
        }
        for (int h = 0; h < H; h++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j <= p - 2; j++) {
                for (int t = 0; t < V; t++) {
                    double s = score(b, p, t, j, h);
                    bg.scores[j * V + t] = s;
                    max = Math.max(max, s);
                }
            }
            bg.max[h] = max;
            double mass = 0;
            for (int j = 0; j <= p - 2; j++) {
                for (int t = 0; t < V; t++) {
                    double e = Math.exp(bg.scores[j * V + t] - max) / V;
                    mass += e;
                    int o = ((t * N + j) * H + h) * D, bo = h * D;
                    for (int i = 0; i < D; i++) {
                        bg.value[bo + i] += e * vo[o + i];
                    }
                }
            }
            bg.mass[h] = mass;
        }
    }

    /**
     * Attention of the query (b, p) per head on a at p-1 (wPrev), on itself (wSelf) and on the background (the
     * rest), from the scores; sPrev/sSelf receive the raw scores.
     */
    void attention(int a, int b, int p, Background bg, double[] wPrev, double[] wSelf, double[] sPrev,
                   double[] sSelf) {
        for (int h = 0; h < H; h++) {
            double s1 = score(b, p, a, p - 1, h), s0 = score(b, p, b, p, h);
            double m = Math.max(Math.max(s1, s0), bg.max[h]);
            double e1 = Math.exp(s1 - m), e0 = Math.exp(s0 - m);
            double eb = bg.mass[h] == 0 ? 0 : bg.mass[h] * Math.exp(bg.max[h] - m);
            double z = e1 + e0 + eb;
            wPrev[h] = e1 / z;
            wSelf[h] = e0 / z;
            sPrev[h] = s1;
            sSelf[h] = s0;
        }
    }

    /**
     * The pieces of the residual stream at the query (b, p) for given attention weights; wBg[h] is the weight on the
     * background as a whole (1 - wPrev - wSelf, or 0). Each piece is [D].
     */
    static final class Resid {
        final double[] embed, ovPrev, ovRest, mlpOut, mid, post, tmpM, tmpD, logits;
        double lnfScale = 1;

        Resid(ExtractComponents c) {
            embed = new double[c.D];
            ovPrev = new double[c.D];
            ovRest = new double[c.D];
            mlpOut = new double[c.D];
            mid = new double[c.D];
            post = new double[c.D];
            tmpM = new double[Math.max(1, c.M)];
            tmpD = new double[c.D];
            logits = new double[c.V];
        }
    }

    /** Builds the residual at (b, p) attending a at p-1 with the given weights, then MLP and unembed into r.logits. */
    void forward(Resid r, int a, int b, int p, Background bg, double[] wPrev, double[] wSelf, double[] wBg) {
        System.arraycopy(x, (b * N + p) * D, r.embed, 0, D);
        System.arraycopy(bO, 0, r.ovRest, 0, D);
        java.util.Arrays.fill(r.ovPrev, 0);
        for (int h = 0; h < H; h++) {
            int oa = ((a * N + p - 1) * H + h) * D, ob = ((b * N + p) * H + h) * D;
            double bgNorm = bg.mass[h] == 0 || wBg[h] == 0 ? 0 : wBg[h] / bg.mass[h];
            for (int i = 0; i < D; i++) {
                r.ovPrev[i] += wPrev[h] * vo[oa + i];
                r.ovRest[i] += wSelf[h] * vo[ob + i] + bgNorm * bg.value[h * D + i];
            }
        }
        for (int i = 0; i < D; i++) {
            r.mid[i] = r.embed[i] + r.ovPrev[i] + r.ovRest[i];
        }
        java.util.Arrays.fill(r.mlpOut, 0);
        if (M > 0) {
            System.arraycopy(r.mid, 0, r.tmpD, 0, D);
            if (ln) {
                layerNorm(r.tmpD, ln2w, ln2b);
            }
            for (int m = 0; m < M; m++) {
                double s = bIn[m];
                for (int i = 0; i < D; i++) {
                    s += r.tmpD[i] * wIn[i * M + m];
                }
                r.tmpM[m] = Math.max(0, s);
            }
            System.arraycopy(bOut, 0, r.mlpOut, 0, D);
            for (int m = 0; m < M; m++) {
                double h = r.tmpM[m];
                if (h != 0) {
                    for (int i = 0; i < D; i++) {
                        r.mlpOut[i] += h * wOut[m * D + i];
                    }
                }
            }
        }
        for (int i = 0; i < D; i++) {
            r.post[i] = r.mid[i] + r.mlpOut[i];
        }
        System.arraycopy(r.post, 0, r.tmpD, 0, D);
        r.lnfScale = ln ? layerNorm(r.tmpD, lnfw, lnfb) : 1;
        System.arraycopy(bU, 0, r.logits, 0, V);
        for (int i = 0; i < D; i++) {
            double xi = r.tmpD[i];
            int row = i * V;
            for (int c = 0; c < V; c++) {
                r.logits[c] += xi * wU[row + c];
            }
        }
    }

    /**
     * Direct logit attribution of one residual piece to logit(c) - logit(r): through ln_final as TransformerLens's
     * apply_ln_to_stack does (centred, divided by the final scale of the whole stream, times ln_final.w).
     */
    double directLogitDiff(double[] piece, double lnfScale, int c, int r) {
        double mean = 0;
        if (ln) {
            for (double v : piece) {
                mean += v;
            }
            mean /= D;
        }
        double s = 0;
        for (int i = 0; i < D; i++) {
            double xi = ln ? (piece[i] - mean) / lnfScale * lnfw[i] : piece[i];
            s += xi * (wU[i * V + c] - wU[i * V + r]);
        }
        return s;
    }

    /** The bias part of logit(c) - logit(r): b_U, plus ln_final.b @ W_U for LN models. */
    double biasLogitDiff(int c, int r) {
        double s = bU[c] - bU[r];
        if (ln) {
            for (int i = 0; i < D; i++) {
                s += lnfb[i] * (wU[i * V + c] - wU[i * V + r]);
            }
        }
        return s;
    }

    /** Softmax of logits into probs (both [V]). */
    static void softmax(double[] logits, double[] probs) {
        double max = Double.NEGATIVE_INFINITY;
        for (double l : logits) {
            max = Math.max(max, l);
        }
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            probs[i] = Math.exp(logits[i] - max);
            sum += probs[i];
        }
        for (int i = 0; i < logits.length; i++) {
            probs[i] /= sum;
        }
    }
}
