package dev.trilens.interp;

import dev.trilens.TrilensException;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import dev.trilens.model.kernels.Kernels;
import dev.trilens.model.kernels.TensorOps;
import dev.trilens.model.ParamLayout;

/**
 * A one-layer model's components evaluated on its own embedding vectors, in double precision: what
 * {@link TrigramExtractor} reads the trigram table from. Nothing here runs the model over a dataset; every quantity
 * is a function of the weights and of a (token, position) pair.
 *
 * <p>Letters: V vocab, N n_ctx, D d_model, H heads, Dh d_head, M d_mlp. A "context" is a query b at position p, the
 * key a at p-1 and the key b itself at p, plus (optionally) the positions 0..p-2 filled with random tokens, whose
 * expected contribution is the mean-field background {@link MeanField}.
 *
 * <p>Without LayerNorm every map before the MLP's ReLU and after it is linear in the embeddings, and a key's score
 * splits into a token part plus a position part. {@link #linear} models then take two shortcuts that give the same
 * numbers up to rounding: the background's sums over (token, position) factor into a sum over tokens times a sum
 * over positions, and {@link #logits} reads tables of every piece already multiplied by W_U and W_in instead of
 * building the residual stream. A LayerNorm model takes the direct route.
 */
final class ExtractComponents {
    private static final TensorOps OPS = Kernels.ops();
    final ModelConfig cfg;
    final int V, N, D, H, Dh, M;
    final boolean ln;
    /**
     * x[t, j, :] = W_E[t] + W_pos[j]: the residual stream a token enters with, [V, N, D]. This, k, kByDim and vo are
     * the direct route's tables: null when the model is {@link #linear} and the caller said it reads the tables only
     * (see {@link #ExtractComponents(Weights, boolean, boolean)}).
     */
    final double[] x;
    /** q, k of every (token, position), after ln1 when the model has it: [V, N, H, Dh]. */
    final double[] q, k;
    /**
     * k again, laid out [H, Dh, N, V]: the keys of positions 0..j-1 are then one contiguous run per dimension, so a
     * query's scores against all of them are a few long vector loops rather than one short dot product per key.
     */
    final double[] kByDim;
    /** vo[t, j, h, :] = (ln1(x[t, j]) @ W_V[h] + b_V[h]) @ W_O[h]: what head h writes when it attends (t, j), [V, N, H, D]. */
    final double[] vo;
    final double[] bO, wIn, bIn, wOut, bOut, wU, bU, ln2w, ln2b, lnfw, lnfb;
    final double scale;
    /** No LayerNorm, and the shortcuts allowed: see the class comment. */
    final boolean linear;
    /**
     * The linear tables: the key of (t, j) is kTok[t, h] + kPos[j, h] ([V, H, Dh] and [N, H, Dh], b_K in kPos), its
     * OV output voTok[t, h] + voPos[j, h] ([V, H, D] and [N, H, D], b_V W_O in voPos); voU[t, j, h] and
     * voIn[t, j, h] are vo[t, j, h] @ W_U and @ W_in ([V, N, H, V] and [V, N, H, M]); base[t, j] = (x[t, j] + b_O
     * + b_out) @ W_U + b_U and preBase[t, j] = (x[t, j] + b_O) @ W_in + b_in; wOutU = W_out @ W_U [M, stride],
     * its columns past V zero.
     */
    private final double[] kTok, kPos, voTok, voPos, voU, voIn, base, preBase, wOutU;
    /**
     * The layout of {@link #allLogits}'s output: rows of stride doubles (V rounded up to whole vectors of the
     * kernels), rows rows of them (V rounded up to four): the matrix product then has no scalar tails. The padding
     * is never read.
     */
    final int stride, rows;

    ExtractComponents(Weights w) {
        this(w, true);
    }

    /** shortcuts=false makes a model without LayerNorm take the direct route too, to check the shortcuts against. */
    ExtractComponents(Weights w, boolean shortcuts) {
        this(w, shortcuts, true);
    }

    /**
     * direct=false: the caller reads only what {@link #allLogits}, {@link #logits}, {@link #background} and
     * {@link #attention} read, so a {@link #linear} model skips the direct route's tables (x, k, kByDim, vo; most of
     * the construction), and {@link #forward} and {@link #score} are not available on it. Reading a run's snapshots
     * builds one of these per snapshot.
     */
    ExtractComponents(Weights w, boolean shortcuts, boolean direct) {
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
        double[] wE = d(w, ParamLayout.W_E), wPos = d(w, ParamLayout.W_POS);
        double[] wQ = d(w, ParamLayout.attnWeight(0, "Q")), wK = d(w, ParamLayout.attnWeight(0, "K"));
        double[] wV = d(w, ParamLayout.attnWeight(0, "V"));
        double[] bQ = d(w, ParamLayout.attnBias(0, "Q")), bK = d(w, ParamLayout.attnBias(0, "K"));
        double[] bV = d(w, ParamLayout.attnBias(0, "V"));
        double[] wO = d(w, ParamLayout.attnWeight(0, "O"));
        bO = d(w, ParamLayout.attnBias(0, "O"));
        wU = d(w, ParamLayout.W_U);
        bU = d(w, ParamLayout.B_U);
        if (M > 0) {
            wIn = d(w, ParamLayout.mlp(0, "W_in"));
            bIn = d(w, ParamLayout.mlp(0, "b_in"));
            wOut = d(w, ParamLayout.mlp(0, "W_out"));
            bOut = d(w, ParamLayout.mlp(0, "b_out"));
        } else {
            wIn = bIn = wOut = bOut = null;
        }
        double[] ln1w = ln ? d(w, ParamLayout.ln1(0) + ".w") : null, ln1b = ln ? d(w, ParamLayout.ln1(0) + ".b") : null;
        ln2w = ln && M > 0 ? d(w, ParamLayout.ln2(0) + ".w") : null;
        ln2b = ln && M > 0 ? d(w, ParamLayout.ln2(0) + ".b") : null;
        lnfw = ln ? d(w, ParamLayout.LN_FINAL + ".w") : null;
        lnfb = ln ? d(w, ParamLayout.LN_FINAL + ".b") : null;

        linear = shortcuts && !ln;
        boolean tables = direct || !linear;
        q = new double[V * N * H * Dh];
        x = tables ? new double[V * N * D] : null;
        k = tables ? new double[V * N * H * Dh] : null;
        vo = tables ? new double[V * N * H * D] : null;
        kByDim = tables ? new double[H * Dh * N * V] : null;
        double[] xin = new double[D], sq = new double[Dh], sk = new double[Dh], sv = new double[Dh];
        for (int t = 0; t < V; t++) {
            for (int j = 0; j < N; j++) {
                for (int i = 0; i < D; i++) {
                    xin[i] = wE[t * D + i] + wPos[j * D + i];
                }
                if (tables) {
                    System.arraycopy(xin, 0, x, (t * N + j) * D, D);
                }
                if (ln) {
                    OPS.layerNorm(xin, ln1w, ln1b);
                }
                for (int h = 0; h < H; h++) {
                    int qk = ((t * N + j) * H + h) * Dh;
                    // every sum from its bias over i in order, the inner loop along e (contiguous in W_Q, W_K, W_V)
                    project(xin, wQ, bQ, h, sq);
                    System.arraycopy(sq, 0, q, qk, Dh);
                    if (!tables) {
                        continue;
                    }
                    project(xin, wK, bK, h, sk);
                    project(xin, wV, bV, h, sv);
                    System.arraycopy(sk, 0, k, qk, Dh);
                    for (int e = 0; e < Dh; e++) {
                        kByDim[((h * Dh + e) * N + j) * V + t] = sk[e];
                    }
                    int o = ((t * N + j) * H + h) * D;
                    for (int e = 0; e < Dh; e++) {
                        for (int i = 0; i < D; i++) {
                            vo[o + i] += sv[e] * wO[(h * Dh + e) * D + i];
                        }
                    }
                }
            }
        }
        stride = linear ? (V + OPS.lanes() - 1) / OPS.lanes() * OPS.lanes() : V;
        rows = linear ? (V + 3) / 4 * 4 : V;
        if (!linear) {
            kTok = kPos = voTok = voPos = voU = voIn = base = preBase = wOutU = null;
            return;
        }
        double[] zeros = new double[H * Dh];
        kTok = project(wE, V, wK, zeros);
        kPos = project(wPos, N, wK, bK);
        voTok = new double[V * H * D];
        voPos = new double[N * H * D];
        double[] vTok = project(wE, V, wV, zeros), vPos = project(wPos, N, wV, bV);
        for (int h = 0; h < H; h++) {
            for (int e = 0; e < Dh; e++) {
                for (int i = 0; i < D; i++) {
                    double o = wO[(h * Dh + e) * D + i];
                    for (int t = 0; t < V; t++) {
                        voTok[(t * H + h) * D + i] += vTok[(t * H + h) * Dh + e] * o;
                    }
                    for (int j = 0; j < N; j++) {
                        voPos[(j * H + h) * D + i] += vPos[(j * H + h) * Dh + e] * o;
                    }
                }
            }
        }
        // every table is a token part plus a position part: projected separately, then added
        voU = tokenPlusPosition(times(voTok, V * H, wU, V), times(voPos, N * H, wU, V), H, V);
        double[] bias = bO.clone();
        for (int i = 0; i < D && M > 0; i++) {
            bias[i] += bOut[i];
        }
        base = tokenPlusPosition(times(wE, V, wU, V), plusRow(times(wPos, N, wU, V), times(bias, 1, wU, V), bU),
                1, V);
        if (M > 0) {
            voIn = tokenPlusPosition(times(voTok, V * H, wIn, M), times(voPos, N * H, wIn, M), H, M);
            preBase = tokenPlusPosition(times(wE, V, wIn, M), plusRow(times(wPos, N, wIn, M), times(bO, 1, wIn, M),
                    bIn), 1, M);
            double[] product = times(wOut, M, wU, V);
            wOutU = new double[M * stride];
            for (int m = 0; m < M; m++) {
                System.arraycopy(product, m * V, wOutU, m * stride, V);
            }
        } else {
            voIn = preBase = wOutU = null;
        }
    }

    /** out[t, j, h, :] = byToken[t, h, :] + byPosition[j, h, :], rows of n: [V, N, H, n]. */
    private double[] tokenPlusPosition(double[] byToken, double[] byPosition, int heads, int n) {
        double[] out = new double[V * N * heads * n];
        for (int t = 0; t < V; t++) {
            for (int j = 0; j < N; j++) {
                for (int h = 0; h < heads; h++) {
                    int o = ((t * N + j) * heads + h) * n, ot = (t * heads + h) * n, op = (j * heads + h) * n;
                    for (int c = 0; c < n; c++) {
                        out[o + c] = byToken[ot + c] + byPosition[op + c];
                    }
                }
            }
        }
        return out;
    }

    /** rows[r, :] += a + b for every row of rows (a and b one row each); returns rows. */
    private static double[] plusRow(double[] rows, double[] a, double[] b) {
        for (int r = 0; r < rows.length; r++) {
            rows[r] += a[r % a.length] + b[r % b.length];
        }
        return rows;
    }

    /** out[e] = bias[h, e] + sum over i in order of xin[i] * w[h, i, e] (w [H, D, Dh]). */
    private void project(double[] xin, double[] w, double[] bias, int h, double[] out) {
        System.arraycopy(bias, h * Dh, out, 0, Dh);
        for (int i = 0; i < D; i++) {
            double xi = xin[i];
            int wi = (h * D + i) * Dh;
            for (int e = 0; e < Dh; e++) {
                out[e] += xi * w[wi + e];
            }
        }
    }

    /** rows [n, D] @ w[h] ([H, D, Dh]) + bias[h] ([H, Dh]) for every head: [n, H, Dh]. */
    private double[] project(double[] rows, int n, double[] w, double[] bias) {
        double[] out = new double[n * H * Dh];
        for (int r = 0; r < n; r++) {
            for (int h = 0; h < H; h++) {
                int o = (r * H + h) * Dh;
                System.arraycopy(bias, h * Dh, out, o, Dh);
                for (int i = 0; i < D; i++) {
                    double xi = rows[r * D + i];
                    for (int e = 0; e < Dh; e++) {
                        out[o + e] += xi * w[(h * D + i) * Dh + e];
                    }
                }
            }
        }
        return out;
    }

    /** rows [n, D] @ w [D, cols]: [n, cols]. */
    private double[] times(double[] rows, int n, double[] w, int cols) {
        double[] out = new double[n * cols];
        for (int r = 0; r < n; r++) {
            addTimes(rows, r * D, w, cols, out, r * cols);
        }
        return out;
    }

    /** out[at..at+cols) += rows[from..from+D) @ w [D, cols]. */
    private void addTimes(double[] rows, int from, double[] w, int cols, double[] out, int at) {
        for (int i = 0; i < D; i++) {
            double xi = rows[from + i];
            if (xi != 0) {
                for (int c = 0; c < cols; c++) {
                    out[at + c] += xi * w[i * cols + c];
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
    static final class MeanField {
        final double[] max, mass, value; // [H], [H], [H, D]
        /** For {@link #linear} models: value @ W_U [H, V] and value @ W_in [H, M]. */
        final double[] valueU, valueIn;
        /** For {@link #linear} models: the query's score against every token a at p-1 [H, V], and against itself [H]. */
        final double[] prevScore, selfScore;

        MeanField(ExtractComponents c) {
            max = new double[c.H];
            mass = new double[c.H];
            value = new double[c.H * c.D];
            valueU = new double[c.linear ? c.H * c.V : 0];
            valueIn = new double[c.linear ? c.H * c.M : 0];
            prevScore = new double[c.linear ? c.H * c.V : 0];
            selfScore = new double[c.linear ? c.H : 0];
        }
    }

    /** Scratch for {@link #background}: one head's scores of every key (t, j < N - 1), at j * V + t. */
    double[] backgroundScratch() {
        return new double[N * V + V + N];
    }

    /**
     * Fills bg for query (b, p); with random=false (the two-key reading) the background is empty. scores is
     * {@link #backgroundScratch()}'s.
     */
    void background(MeanField bg, double[] scores, int b, int p, boolean random) {
        java.util.Arrays.fill(bg.mass, 0);
        java.util.Arrays.fill(bg.value, 0);
        java.util.Arrays.fill(bg.max, Double.NEGATIVE_INFINITY);
        java.util.Arrays.fill(bg.valueU, 0);
        java.util.Arrays.fill(bg.valueIn, 0);
        if (linear) {
            separableBackground(bg, scores, b, p, random && p >= 2);
            return;
        }
        if (!random || p < 2) {
            return;
        }
        int keys = (p - 1) * V;
        for (int h = 0; h < H; h++) {
            // the dot products of score(b, p, t, j, h), summed over e in the same order, then scaled as there
            java.util.Arrays.fill(scores, 0, keys, 0);
            int qo = ((b * N + p) * H + h) * Dh;
            for (int e = 0; e < Dh; e++) {
                double qe = q[qo + e];
                int ko = (h * Dh + e) * N * V;
                for (int i = 0; i < keys; i++) {
                    scores[i] += qe * kByDim[ko + i];
                }
            }
            double max = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < keys; i++) {
                scores[i] *= scale;
                max = Math.max(max, scores[i]);
            }
            bg.max[h] = max;
            double mass = 0;
            for (int j = 0; j <= p - 2; j++) {
                for (int t = 0; t < V; t++) {
                    double e = Math.exp(scores[j * V + t] - max) / V;
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
     * The background of a linear model: score(t, j) = tok[t] + pos[j], so exp(score - max) = alpha[t] gamma[j] with
     * max = max tok + max pos, and every sum over (t, j) factors into a sum over t times one over j. The same parts
     * give the scores of a at p-1 and of b itself, which are kept for {@link #attention}; with context=false that is
     * all (no background).
     */
    private void separableBackground(MeanField bg, double[] scratch, int b, int p, boolean context) {
        int bp = b * N + p;
        for (int h = 0; h < H; h++) {
            int qo = (bp * H + h) * Dh;
            double maxTok = Double.NEGATIVE_INFINITY, maxPos = Double.NEGATIVE_INFINITY;
            for (int t = 0; t < V; t++) {
                scratch[t] = dotQ(qo, kTok, (t * H + h) * Dh);
                maxTok = Math.max(maxTok, scratch[t]);
            }
            for (int j = 0; j <= p; j++) {
                scratch[V + j] = dotQ(qo, kPos, (j * H + h) * Dh);
            }
            for (int t = 0; t < V; t++) {
                bg.prevScore[h * V + t] = scratch[t] + scratch[V + p - 1];
            }
            bg.selfScore[h] = scratch[b] + scratch[V + p];
            if (!context) {
                continue;
            }
            for (int j = 0; j <= p - 2; j++) {
                maxPos = Math.max(maxPos, scratch[V + j]);
            }
            double sumTok = 0, sumPos = 0;
            for (int t = 0; t < V; t++) {
                scratch[t] = Math.exp(scratch[t] - maxTok) / V;
                sumTok += scratch[t];
            }
            for (int j = 0; j <= p - 2; j++) {
                scratch[V + j] = Math.exp(scratch[V + j] - maxPos);
                sumPos += scratch[V + j];
            }
            bg.max[h] = maxTok + maxPos;
            bg.mass[h] = sumTok * sumPos;
            int bo = h * D;
            for (int t = 0; t < V; t++) {
                double f = scratch[t] * sumPos;
                for (int i = 0; i < D; i++) {
                    bg.value[bo + i] += f * voTok[(t * H + h) * D + i];
                }
            }
            for (int j = 0; j <= p - 2; j++) {
                double f = scratch[V + j] * sumTok;
                for (int i = 0; i < D; i++) {
                    bg.value[bo + i] += f * voPos[(j * H + h) * D + i];
                }
            }
            addTimes(bg.value, bo, wU, V, bg.valueU, h * V);
            if (M > 0) {
                addTimes(bg.value, bo, wIn, M, bg.valueIn, h * M);
            }
        }
    }

    /** scale * q[qo..] . keys[ko..], a query against one part of a key. */
    private double dotQ(int qo, double[] keys, int ko) {
        double s = 0;
        for (int e = 0; e < Dh; e++) {
            s += q[qo + e] * keys[ko + e];
        }
        return s * scale;
    }

    /**
     * Attention of the query (b, p) per head on a at p-1 (wPrev), on itself (wSelf) and on the background (the
     * rest), from the scores; sPrev/sSelf receive the raw scores. bg must be {@link #background}'s for (b, p).
     */
    void attention(int a, int b, int p, MeanField bg, double[] wPrev, double[] wSelf, double[] sPrev,
                   double[] sSelf) {
        for (int h = 0; h < H; h++) {
            double s1 = linear ? bg.prevScore[h * V + a] : score(b, p, a, p - 1, h);
            double s0 = linear ? bg.selfScore[h] : score(b, p, b, p, h);
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
        /** {@link #allLogits}'s product for a linear model: its factors [rows, M + 2H] and readout [M + 2H, stride]. */
        final double[] factors, readout;
        /** {@link #allLogits}'s per-a weights of one head's background. */
        final double[] rowWeights;
        double lnfScale = 1;

        Resid(ExtractComponents c) {
            int k = c.M + 2 * c.H;
            factors = new double[c.linear ? c.rows * k : 0];
            readout = new double[c.linear ? k * c.stride : 0];
            if (c.linear && c.M > 0) {
                System.arraycopy(c.wOutU, 0, readout, 0, c.M * c.stride);
            }
            rowWeights = new double[c.V];
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
    void forward(Resid r, int a, int b, int p, MeanField bg, double[] wPrev, double[] wSelf, double[] wBg) {
        System.arraycopy(x, (b * N + p) * D, r.embed, 0, D);
        System.arraycopy(bO, 0, r.ovRest, 0, D);
        java.util.Arrays.fill(r.ovPrev, 0);
        for (int h = 0; h < H; h++) {
            int oa = ((a * N + p - 1) * H + h) * D, ob = ((b * N + p) * H + h) * D;
            double bgNorm = backgroundWeight(bg, wBg, h, h);
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
                OPS.layerNorm(r.tmpD, ln2w, ln2b);
            }
            // each sum in order: the bias, then i = 0.. (one row: the kernels' reference loop)
            System.arraycopy(bIn, 0, r.tmpM, 0, M);
            OPS.matmulAdd(r.tmpM, r.tmpD, wIn, 1, D, M);
            for (int m = 0; m < M; m++) {
                r.tmpM[m] = Math.max(0, r.tmpM[m]);
            }
            System.arraycopy(bOut, 0, r.mlpOut, 0, D);
            OPS.matmulAdd(r.mlpOut, r.tmpM, wOut, 1, M, D);
        }
        for (int i = 0; i < D; i++) {
            r.post[i] = r.mid[i] + r.mlpOut[i];
        }
        System.arraycopy(r.post, 0, r.tmpD, 0, D);
        r.lnfScale = ln ? OPS.layerNorm(r.tmpD, lnfw, lnfb) : 1;
        System.arraycopy(bU, 0, r.logits, 0, V);
        OPS.matmulAdd(r.logits, r.tmpD, wU, 1, D, V);
    }

    /**
     * r.logits for the query (b, p) attending a at p-1 with the given weights, as {@link #forward} computes them; a
     * {@link #linear} model adds up its tables instead (the other fields of r are then left as they were).
     */
    void logits(Resid r, int a, int b, int p, MeanField bg, double[] wPrev, double[] wSelf, double[] wBg) {
        if (!linear) {
            forward(r, a, b, p, bg, wPrev, wSelf, wBg);
            return;
        }
        int bp = b * N + p;
        double[] out = r.logits, pre = r.tmpM;
        System.arraycopy(base, bp * V, out, 0, V);
        if (M > 0) {
            System.arraycopy(preBase, bp * M, pre, 0, M);
        }
        for (int h = 0; h < H; h++) {
            double wa = wPrev[h], wb = wSelf[h], wg = backgroundWeight(bg, wBg, h, h);
            int ia = (a * N + p - 1) * H + h, ib = bp * H + h;
            for (int c = 0; c < V; c++) {
                out[c] += wa * voU[ia * V + c] + wb * voU[ib * V + c] + wg * bg.valueU[h * V + c];
            }
            for (int m = 0; m < M; m++) {
                pre[m] += wa * voIn[ia * M + m] + wb * voIn[ib * M + m] + wg * bg.valueIn[h * M + m];
            }
        }
        for (int m = 0; m < M; m++) {
            double act = pre[m];
            if (act > 0) {
                for (int c = 0; c < V; c++) {
                    out[c] += act * wOutU[m * stride + c];
                }
            }
        }
    }

    /**
     * {@link #logits} of every a at once, for the query (b, p): out[a * stride + c], [rows * stride], with the
     * weights of a at wPrev/wSelf/wBg[a * H + h]; r is scratch. A {@link #linear} model computes the MLP's readout of
     * all of them, and what b and the background add, as one matrix product; the others run {@link #forward} per a.
     */
    void allLogits(double[] out, Resid r, int b, int p, MeanField bg, double[] wPrev, double[] wSelf,
                   double[] wBg) {
        if (!linear) {
            double[] wp = new double[H], ws = new double[H], wb = new double[H];
            for (int a = 0; a < V; a++) {
                System.arraycopy(wPrev, a * H, wp, 0, H);
                System.arraycopy(wSelf, a * H, ws, 0, H);
                System.arraycopy(wBg, a * H, wb, 0, H);
                forward(r, a, b, p, bg, wp, ws, wb);
                System.arraycopy(r.logits, 0, out, a * stride, V);
            }
            return;
        }
        // out = base + the OV of a at p-1 (a row of its own for each a), then one product adds the rest:
        // [relu(pre) | w_self, w_background per head] @ [W_out W_U ; OV of b @ W_U ; background @ W_U per head]
        int bp = b * N + p, K = M + 2 * H;
        double[] f = r.factors, readout = r.readout;
        for (int h = 0; h < H; h++) {
            System.arraycopy(voU, (bp * H + h) * V, readout, (M + 2 * h) * stride, V);
            System.arraycopy(bg.valueU, h * V, readout, (M + 2 * h + 1) * stride, V);
        }
        for (int a = 0; a < V; a++) {
            System.arraycopy(base, bp * V, out, a * stride, V);
            if (M > 0) {
                System.arraycopy(preBase, bp * M, f, a * K, M);
            }
        }
        // per head, the same sums as one axpy per a in turn (row a of each: a's own OV at p-1, then b's, then the
        // background's), one call over every a
        int rowA = N * H, prev = (p - 1) * H;
        double[] wg = r.rowWeights;
        for (int h = 0; h < H; h++) {
            for (int a = 0; a < V; a++) {
                wg[a] = backgroundWeight(bg, wBg, a * H + h, h);
            }
            OPS.axpyRows(out, 0, stride, wPrev, h, H, voU, (prev + h) * V, rowA * V, V, V);
            if (M > 0) {
                OPS.axpyRows(f, 0, K, wPrev, h, H, voIn, (prev + h) * M, rowA * M, V, M);
                OPS.axpyRows(f, 0, K, wSelf, h, H, voIn, (bp * H + h) * M, 0, V, M);
                OPS.axpyRows(f, 0, K, wg, 0, 1, bg.valueIn, h * M, 0, V, M);
            }
            for (int a = 0; a < V; a++) {
                f[a * K + M + 2 * h] = wSelf[a * H + h];
                f[a * K + M + 2 * h + 1] = wg[a];
            }
        }
        for (int a = 0; a < V; a++) {
            for (int m = 0; m < M; m++) {
                f[a * K + m] = Math.max(0, f[a * K + m]);
            }
        }
        OPS.matmulAdd(out, f, readout, rows, K, stride);
    }

    /** What head h's background value is multiplied by: its share wBg[i] of the attention over its expected mass. */
    private static double backgroundWeight(MeanField bg, double[] wBg, int i, int h) {
        return bg.mass[h] == 0 || wBg[i] == 0 ? 0 : wBg[i] / bg.mass[h];
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
        OPS.softmax(probs, logits, 0, logits.length);
    }

    /** Softmax of the row logits[from..from + probs.length) into probs. */
    static void softmax(double[] logits, int from, double[] probs) {
        OPS.softmax(probs, logits, from, probs.length);
    }
}
