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
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;

/**
 * Analysis 3: the QK circuit of every head, as TransformerLens users decompose it, and how it makes a token attend
 * to its previous token exactly when the two form a trigram prefix.
 *
 * <p><b>Decomposition.</b> A query token Y at position p and a key token X at position q enter with residuals
 * e_Y + p_p and e_X + p_q (rows of W_E and W_pos; see {@link Circuits} for LayerNorm models and later layers). The
 * pre-softmax score (TransformerLens's hook_attn_scores) is
 * {@code ((e_Y + p_p) W_Q + b_Q) . ((e_X + p_q) W_K + b_K) / sqrt(d_head)}, which expands into nine parts, each
 * indexed [query][key] ({@link Decomposition}): token-token {@code W_E W_Q W_K^T W_E^T / sqrt(d_head)} [V, V],
 * token-query x position-key [V, n_ctx], position-query x token-key [n_ctx, V], position-position [n_ctx, n_ctx],
 * and five bias terms. The three terms that depend on the query only (b_K's) shift every score of a row equally
 * and cannot change the pattern.
 *
 * <p><b>Prefix score advantage.</b> For every pair (X, Y): score("Y at p attends X at p - 1") minus
 * score("Y at p attends itself"), averaged over the positions p listed in {@code positions} (2 .. n_ctx - 2 by
 * default): a [V, V] matrix indexed [X][Y]. A head that implements "attend the previous token iff (prev, current)
 * is a trigram prefix (a, b)" gives it large values exactly at the dataset's prefixes (X, Y) = (a, b); how well it
 * separates them from every other pair is a ROC AUC (rank-based, ties count one half), with the F1-best threshold.
 * The advantage is the sum of the {@code components} (token-token, the two cross terms, position-position and the
 * two key-bias terms), each reported with its mean over prefixes and over other pairs, and its own AUC.
 *
 * <p>JSON keys: {@code linearised}, {@code weights_note} (which weights were read, see {@link Circuits}),
 * {@code positions} (the query positions p averaged over), {@code positional_cosine} ([n_ctx][n_ctx] cosine
 * similarity of W_pos rows), {@code heads} (list of {@link Head}), {@code summary} (list of sentences).
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record QkCircuit(boolean linearised, String weightsNote, int[] positions, float[][] positionalCosine,
                        List<Head> heads, List<String> summary) {

    /**
     * The nine parts of one head's pre-softmax score, scale 1/sqrt(d_head) included, each indexed [query][key].
     *
     * <p>JSON keys: {@code scale}, {@code token_token} [V][V] (query token Y, key token X),
     * {@code token_pos} [V][n_ctx] (query token, key position), {@code pos_token} [n_ctx][V] (query position, key
     * token), {@code pos_pos} [n_ctx][n_ctx], {@code query_bias_key_token} [V] (b_Q . e_X W_K),
     * {@code query_bias_key_pos} [n_ctx] (b_Q . p_q W_K), {@code query_token_key_bias} [V] (e_Y W_Q . b_K),
     * {@code query_pos_key_bias} [n_ctx] (p_p W_Q . b_K), {@code query_bias_key_bias} (b_Q . b_K).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Decomposition(double scale, float[][] tokenToken, float[][] tokenPos, float[][] posToken,
                                float[][] posPos, float[] queryBiasKeyToken, float[] queryBiasKeyPos,
                                float[] queryTokenKeyBias, float[] queryPosKeyBias, double queryBiasKeyBias) {

        /** The sum of the parts: the score of query token y at position p for key token x at position q. */
        public double score(int y, int p, int x, int q) {
            return (double) tokenToken[y][x] + tokenPos[y][q] + posToken[p][x] + posPos[p][q]
                    + queryBiasKeyToken[x] + queryBiasKeyPos[q] + queryTokenKeyBias[y] + queryPosKeyBias[p]
                    + queryBiasKeyBias;
        }

        /** Score("y at p attends x at p - 1") - score("y at p attends itself"); the query-only terms cancel. */
        public double prefixAdvantage(int x, int y, int p) {
            return (double) tokenToken[y][x] - tokenToken[y][y] + tokenPos[y][p - 1] - tokenPos[y][p]
                    + posToken[p][x] - posToken[p][y] + posPos[p][p - 1] - posPos[p][p]
                    + queryBiasKeyToken[x] - queryBiasKeyToken[y] + queryBiasKeyPos[p - 1] - queryBiasKeyPos[p];
        }
    }

    /**
     * One head.
     *
     * <p>JSON keys: {@code layer}, {@code head}, {@code name} ("L0H0"), {@code exact} (true when the weights read
     * are the model's own and the residual is the embeddings: layer 0 of a model without LayerNorm),
     * {@code max_abs_error_vs_model} (max |sum of parts - hook_attn_scores| over the causal scores of 8 random
     * sequences of length n_ctx, run through the model: float rounding when exact, e.g. 4e-5 on the challenge
     * model whose scores reach the hundreds; large otherwise), {@code decomposition} ({@link Decomposition}),
     * {@code qk_singular_values} (of W_Q W_K^T, [d_model, d_model], via {@link FactoredMatrix}),
     * {@code token_token_singular_values} (of the token-token part, at most d_head of them),
     * {@code prefix_advantage} [V][V] indexed [X][Y], {@code expected_prev_attention} [V][V] indexed [X][Y] (the
     * attention of Y at p to X at p - 1 predicted from the scores alone, averaged over the positions, with the keys
     * at 0 .. p - 2 taken as uniformly random tokens: e^{s_prev} / (e^{s_prev} + e^{s_self} + sum_q E_t[e^{s(t,
     * q)}]), a mean-field estimate), {@code positional_advantage_by_position} [n_ctx] (the
     * token-independent part of the advantage at each query position p: pos_pos[p][p-1] - pos_pos[p][p] +
     * query_bias_key_pos[p-1] - query_bias_key_pos[p]; 0 at p = 0, which has no previous token),
     * {@code mean_advantage_by_position_prefix}, {@code mean_advantage_by_position_other} ([n_ctx], the full
     * advantage at each p averaged over prefix pairs / other pairs; empty without a dataset, 0 at p = 0),
     * {@code components} (list of {@link Component}), {@code separation} ({@link Separation}, null without a
     * dataset).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Head(int layer, int head, String name, boolean exact, double maxAbsErrorVsModel,
                       Decomposition decomposition, double[] qkSingularValues, double[] tokenTokenSingularValues,
                       float[][] prefixAdvantage, float[][] expectedPrevAttention,
                       double[] positionalAdvantageByPosition,
                       double[] meanAdvantageByPositionPrefix, double[] meanAdvantageByPositionOther,
                       List<Component> components, Separation separation) {
    }

    /**
     * One additive part of the prefix advantage, averaged over the positions. JSON keys: {@code name},
     * {@code mean_prefix}, {@code mean_other} (over the dataset's trigram prefixes / all other pairs; null without
     * a dataset), {@code mean_all} (over all V x V pairs), {@code auc} (how well this part alone separates the
     * prefixes; null without a dataset or when the part does not depend on the pair).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Component(String name, Double meanPrefix, Double meanOther, double meanAll, Double auc) {
    }

    /**
     * How the prefix advantage separates the dataset's trigram prefixes (a, b) = (X, Y) from all other pairs.
     * JSON keys: {@code n_prefixes}, {@code n_other}, {@code auc}, {@code best} ({@link Circuits.BestThreshold}:
     * the F1-best rule advantage >= threshold), {@code mean_prefix}, {@code mean_other}, {@code frac_positive_prefix},
     * {@code frac_positive_other} (fraction with advantage > 0, i.e. scoring the previous token above itself),
     * {@code threshold} (the worklog's attention threshold), {@code auc_expected_attention} (the AUC of
     * expected_prev_attention), {@code frac_expected_attention_above_prefix}, {@code
     * frac_expected_attention_above_other} (fraction whose expected attention to the previous token exceeds the
     * threshold), {@code mean_expected_attention_prefix}, {@code mean_expected_attention_other},
     * {@code learned_prob} (the cut for "learned": {@value #LEARNED_PROB}), {@code n_learned} (prefixes whose
     * completion c the model gives probability > learned_prob at the b of the sequence [a, b, c]: run once through
     * the model), {@code auc_learned} (learned prefixes against every other pair, unlearned prefixes included;
     * null when none is learned), {@code mean_learned}, {@code mean_not_learned} (mean advantage of learned /
     * unlearned prefixes; 0 when empty).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Separation(int nPrefixes, int nOther, double auc, Circuits.BestThreshold best, double meanPrefix,
                             double meanOther, double fracPositivePrefix, double fracPositiveOther, double threshold,
                             double aucExpectedAttention, double fracExpectedAttentionAbovePrefix,
                             double fracExpectedAttentionAboveOther, double meanExpectedAttentionPrefix,
                             double meanExpectedAttentionOther, double learnedProb, int nLearned,
                             Double aucLearned, double meanLearned, double meanNotLearned) {
    }

    /** A prefix counts as learned when the model gives its completion more than this probability. */
    public static final double LEARNED_PROB = 0.5;

    /** Names of the advantage components, in the order of {@link Head#components()}. */
    public static final List<String> COMPONENTS = List.of("token_token", "query_token_key_position",
            "query_position_key_token", "position_position", "query_bias_key_token", "query_bias_key_position");

    /** Query positions p averaged over: 2 .. n_ctx - 2, or 1 .. n_ctx - 1 when n_ctx < 4. */
    public static int[] defaultPositions(int nCtx) {
        if (nCtx < 2) {
            throw new TrilensException("the prefix score advantage needs n_ctx >= 2 (a query with a previous token), "
                    + "the model has n_ctx=" + nCtx);
        }
        int lo = 2, hi = nCtx - 2;
        if (hi < lo) {
            lo = 1;
            hi = nCtx - 1;
        }
        int[] p = new int[hi - lo + 1];
        for (int i = 0; i < p.length; i++) {
            p[i] = lo + i;
        }
        return p;
    }

    public static QkCircuit compute(AnalysisContext ctx) {
        return compute(ctx.model(), ctx.data(), defaultPositions(ctx.model().config().nCtx()), ctx.threshold());
    }

    /** data may be null (no separation is then measured); threshold is the worklog's attention threshold. */
    public static QkCircuit compute(HookedTransformer model, TrigramDataset data, int[] positions, double threshold) {
        ModelConfig cfg = model.config();
        if (positions.length == 0) {
            throw new TrilensException("the prefix score advantage needs at least one query position");
        }
        for (int p : positions) {
            if (p < 1 || p >= cfg.nCtx()) {
                throw new TrilensException("query position " + p + " out of range 1 .. n_ctx-1 = "
                        + (cfg.nCtx() - 1));
            }
        }
        Circuits.requireSameVocab(cfg, data);
        Circuits.CircuitWeights cw = Circuits.circuitWeights(model.weights());
        Weights w = cw.weights();
        boolean[] prefix = data == null || data.nTrigrams() == 0 ? null : prefixMask(data);
        boolean[] learned = prefix == null ? null : learnedMask(model, data);
        List<Head> heads = new ArrayList<>();
        List<String> summary = new ArrayList<>();
        int[] checkTokens = randomTokens(cfg, 8, 1234);
        HookedTransformer.Run run = model.runWithCache(checkTokens, 8, cfg.nCtx(),
                n -> n.endsWith("attn.hook_attn_scores"));
        for (int l = 0; l < cfg.nLayers(); l++) {
            Tensor scores = run.cache().get(HookNames.full("attn_scores", l));
            for (int h = 0; h < cfg.nHeads(); h++) {
                Decomposition d = decompose(w, l, h);
                boolean exact = l == 0 && !cw.linearised();
                double err = maxAbsError(d, scores, checkTokens, 8, cfg.nCtx(), h);
                Head head = head(w, l, h, d, exact, err, positions, prefix, learned, threshold);
                heads.add(head);
                summary.addAll(describe(head, positions, data));
            }
        }
        if (cw.linearised()) {
            summary.add("LayerNorm model: " + cw.note());
        }
        if (cfg.nLayers() > 1) {
            summary.add("layers after the first: the decomposition is the direct path from the embeddings only");
        }
        return new QkCircuit(cw.linearised(), cw.note(), positions.clone(),
                cosineRows(Circuits.matrix(w, "pos_embed.W_pos")), heads, summary);
    }

    /** The nine parts of head h of layer l's score, from the given weights (see {@link Circuits#circuitWeights}). */
    public static Decomposition decompose(Weights w, int layer, int head) {
        Circuits.requireLayerHead(w.cfg, layer, head);
        String pre = "blocks." + layer + ".attn.";
        double scale = 1.0 / Math.sqrt(w.cfg.dHead());
        DMatrixRMaj wE = Circuits.matrix(w, "embed.W_E"), wPos = Circuits.matrix(w, "pos_embed.W_pos");
        DMatrixRMaj wETrans = CommonOps_DDRM.transpose(wE, null);
        DMatrixRMaj wPosTrans = CommonOps_DDRM.transpose(wPos, null);
        FactoredMatrix qk = Circuits.qk(w, layer, head).scale(scale);
        // W_E QK W_E^T etc., kept at rank d_head until the product
        FactoredMatrix fromTok = qk.leftMultiply(wE), fromPos = qk.leftMultiply(wPos);
        DMatrixRMaj tt = fromTok.multiply(wETrans).ab();
        DMatrixRMaj tp = fromTok.multiply(wPosTrans).ab();
        DMatrixRMaj pt = fromPos.multiply(wETrans).ab();
        DMatrixRMaj pp = fromPos.multiply(wPosTrans).ab();
        double[] bQ = Circuits.headVector(w, pre + "b_Q", head), bK = Circuits.headVector(w, pre + "b_K", head);
        DMatrixRMaj wQ = Circuits.headMatrix(w, pre + "W_Q", head), wK = Circuits.headMatrix(w, pre + "W_K", head);
        DMatrixRMaj qE = Circuits.mult(wE, wQ), qP = Circuits.mult(wPos, wQ);
        DMatrixRMaj kE = Circuits.mult(wE, wK), kP = Circuits.mult(wPos, wK);
        double bb = 0;
        for (int e = 0; e < bQ.length; e++) {
            bb += bQ[e] * bK[e];
        }
        return new Decomposition(scale, Circuits.toFloat(tt), Circuits.toFloat(tp), Circuits.toFloat(pt),
                Circuits.toFloat(pp), rowDots(kE, bQ, scale), rowDots(kP, bQ, scale), rowDots(qE, bK, scale),
                rowDots(qP, bK, scale), bb * scale);
    }

    private static float[] rowDots(DMatrixRMaj m, double[] v, double scale) {
        float[] out = new float[m.numRows];
        for (int i = 0; i < m.numRows; i++) {
            out[i] = (float) (Circuits.dot(m, i, v) * scale);
        }
        return out;
    }

    private static Head head(Weights w, int l, int h, Decomposition d, boolean exact, double err, int[] positions,
                             boolean[] prefix, boolean[] learned, double threshold) {
        int V = w.cfg.dVocab(), N = w.cfg.nCtx();
        double[][] comp = advantageComponents(d, positions);
        double[] total = advantage(comp);
        float[][] adv = new float[V][V];
        for (int x = 0; x < V; x++) {
            for (int y = 0; y < V; y++) {
                adv[x][y] = (float) total[x * V + y];
            }
        }
        double[] positional = new double[N];
        for (int p = 1; p < N; p++) {
            positional[p] = (double) d.posPos[p][p - 1] - d.posPos[p][p] + d.queryBiasKeyPos[p - 1]
                    - d.queryBiasKeyPos[p];
        }
        List<Component> components = new ArrayList<>();
        for (int c = 0; c < comp.length; c++) {
            boolean pairDependent = c != 3 && c != 5;
            if (prefix == null) {
                components.add(new Component(COMPONENTS.get(c), null, null, mean(comp[c], null, true), null));
            } else {
                components.add(new Component(COMPONENTS.get(c), mean(comp[c], prefix, true),
                        mean(comp[c], prefix, false), mean(comp[c], null, true),
                        pairDependent ? Circuits.rocAuc(comp[c], prefix) : null));
            }
        }
        float[][] expected = expectedPrevAttention(d, positions);
        double[] expectedFlat = new double[V * V];
        for (int x = 0; x < V; x++) {
            for (int y = 0; y < V; y++) {
                expectedFlat[x * V + y] = expected[x][y];
            }
        }
        double[] byPosPrefix = new double[0], byPosOther = new double[0];
        Separation sep = null;
        if (prefix != null) {
            byPosPrefix = new double[N];
            byPosOther = new double[N];
            int nPre = 0;
            for (boolean b : prefix) {
                nPre += b ? 1 : 0;
            }
            int nOther = V * V - nPre;
            for (int p = 1; p < N; p++) {
                double sp = 0, so = 0;
                for (int x = 0; x < V; x++) {
                    for (int y = 0; y < V; y++) {
                        double a = d.prefixAdvantage(x, y, p);
                        if (prefix[x * V + y]) {
                            sp += a;
                        } else {
                            so += a;
                        }
                    }
                }
                byPosPrefix[p] = nPre == 0 ? 0 : sp / nPre;
                byPosOther[p] = nOther == 0 ? 0 : so / nOther;
            }
            sep = new Separation(nPre, nOther, Circuits.rocAuc(total, prefix), Circuits.bestThreshold(total, prefix),
                    mean(total, prefix, true), mean(total, prefix, false), fracPositive(total, prefix, true, 0),
                    fracPositive(total, prefix, false, 0), threshold, Circuits.rocAuc(expectedFlat, prefix),
                    fracPositive(expectedFlat, prefix, true, threshold),
                    fracPositive(expectedFlat, prefix, false, threshold), mean(expectedFlat, prefix, true),
                    mean(expectedFlat, prefix, false), LEARNED_PROB, count(learned),
                    count(learned) == 0 ? null : Circuits.rocAuc(total, learned), mean(total, learned, true),
                    meanWhere(total, prefix, learned));
        }
        FactoredMatrix qk = Circuits.qk(w, l, h);
        DMatrixRMaj wE = Circuits.matrix(w, "embed.W_E");
        double[] qkSv = qk.singularValues();
        double[] ttSv = qk.scale(d.scale()).leftMultiply(wE).multiply(CommonOps_DDRM.transpose(wE, null))
                .singularValues();
        return new Head(l, h, Circuits.headName(l, h), exact, err, d, qkSv, ttSv, adv, expected, positional,
                byPosPrefix, byPosOther, components, sep);
    }

    /**
     * The prefix advantage of every pair (X, Y), score(Y@p -> X@p-1) - score(Y@p -> Y@p) averaged over the positions,
     * split into its {@link #COMPONENTS}: [component][X * V + Y].
     */
    public static double[][] advantageComponents(Decomposition d, int[] positions) {
        int V = d.tokenToken.length, P = positions.length;
        double[][] comp = new double[COMPONENTS.size()][V * V];
        double[] crossQ = new double[V], crossK = new double[V];
        double posPart = 0, biasPos = 0;
        for (int p : positions) {
            for (int t = 0; t < V; t++) {
                crossQ[t] += ((double) d.tokenPos[t][p - 1] - d.tokenPos[t][p]) / P;
                crossK[t] += (double) d.posToken[p][t] / P;
            }
            posPart += ((double) d.posPos[p][p - 1] - d.posPos[p][p]) / P;
            biasPos += ((double) d.queryBiasKeyPos[p - 1] - d.queryBiasKeyPos[p]) / P;
        }
        for (int x = 0; x < V; x++) {
            for (int y = 0; y < V; y++) {
                int i = x * V + y;
                comp[0][i] = (double) d.tokenToken[y][x] - d.tokenToken[y][y];
                comp[1][i] = crossQ[y];
                comp[2][i] = crossK[x] - crossK[y];
                comp[3][i] = posPart;
                comp[4][i] = (double) d.queryBiasKeyToken[x] - d.queryBiasKeyToken[y];
                comp[5][i] = biasPos;
            }
        }
        return comp;
    }

    /** The advantage itself, [X * V + Y]: the sum of its components, in their order. */
    public static double[] advantage(double[][] components) {
        double[] total = new double[components[0].length];
        for (int i = 0; i < total.length; i++) {
            double s = 0;
            for (double[] c : components) {
                s += c[i];
            }
            total[i] = s;
        }
        return total;
    }

    /**
     * Mean-field attention of Y at p to X at p - 1, averaged over the positions: the keys at 0 .. p - 2 are
     * uniformly random tokens, and the expectation of their softmax weight is taken inside the denominator. The
     * query-only terms are left out (they shift every key's score equally). [X][Y].
     */
    public static float[][] expectedPrevAttention(Decomposition d, int[] positions) {
        int V = d.tokenToken.length;
        double[][] acc = new double[V][V];
        double[] keyTok = new double[V];
        for (int p : positions) {
            for (int y = 0; y < V; y++) {
                // key score without its position part, per key token t: tt[y][t] + pt[p][t] + b_Q . k_t
                double m = Double.NEGATIVE_INFINITY;
                for (int t = 0; t < V; t++) {
                    keyTok[t] = (double) d.tokenToken[y][t] + d.posToken[p][t] + d.queryBiasKeyToken[t];
                    m = Math.max(m, keyTok[t]);
                }
                double sumTok = 0;
                for (int t = 0; t < V; t++) {
                    sumTok += Math.exp(keyTok[t] - m);
                }
                double logMeanTok = m + Math.log(sumTok / V);
                // log sum over q < p - 1 of E_t[e^{s(t, q)}]
                double logBg = Double.NEGATIVE_INFINITY;
                for (int q = 0; q < p - 1; q++) {
                    double s = logMeanTok + d.tokenPos[y][q] + d.posPos[p][q] + d.queryBiasKeyPos[q];
                    logBg = logAdd(logBg, s);
                }
                double self = keyTok[y] + d.tokenPos[y][p] + d.posPos[p][p] + d.queryBiasKeyPos[p];
                double prevPos = (double) d.tokenPos[y][p - 1] + d.posPos[p][p - 1] + d.queryBiasKeyPos[p - 1];
                for (int x = 0; x < V; x++) {
                    double prev = keyTok[x] + prevPos;
                    double rest = logAdd(self, logBg) - prev;
                    acc[x][y] += 1 / (1 + Math.exp(rest)) / positions.length;
                }
            }
        }
        float[][] out = new float[V][V];
        for (int x = 0; x < V; x++) {
            for (int y = 0; y < V; y++) {
                out[x][y] = (float) acc[x][y];
            }
        }
        return out;
    }

    private static double logAdd(double a, double b) {
        if (a == Double.NEGATIVE_INFINITY) {
            return b;
        }
        if (b == Double.NEGATIVE_INFINITY) {
            return a;
        }
        double m = Math.max(a, b);
        return m + Math.log(Math.exp(a - m) + Math.exp(b - m));
    }

    private static List<String> describe(Head head, int[] positions, TrigramDataset data) {
        List<String> out = new ArrayList<>();
        String where = "p = " + positions[0] + ".." + positions[positions.length - 1];
        String exact = head.exact()
                ? String.format("parts sum to the model's scores (max error %.1e)", head.maxAbsErrorVsModel())
                : String.format("parts are not the model's scores (max difference %.3g; see weights_note)",
                head.maxAbsErrorVsModel());
        out.add(head.name() + " QK: " + exact + "; top singular values of W_Q W_K^T "
                + top(head.qkSingularValues(), 3));
        Separation s = head.separation();
        if (s == null) {
            out.add(head.name() + " QK: " + (data == null ? "dataset unknown" : "the dataset has no trigrams")
                    + ", so the prefix advantage's separation of trigram prefixes is not measured");
            return out;
        }
        out.add(String.format("%s QK: the prefix score advantage (attend X at p-1 rather than itself, mean over %s) "
                        + "separates the %d trigram prefixes from the %d other pairs with AUC %.4f; best threshold "
                        + "%.3f: precision %.3f, recall %.3f (F1 %.3f)", head.name(), where, s.nPrefixes(), s.nOther(),
                s.auc(), s.best() == null ? Double.NaN : s.best().threshold(),
                s.best() == null ? Double.NaN : s.best().precision(),
                s.best() == null ? Double.NaN : s.best().recall(), s.best() == null ? Double.NaN : s.best().f1()));
        out.add(String.format("%s QK: mean advantage %.3f for prefixes (%.1f%% > 0, i.e. the previous token outscores "
                        + "the current one) vs %.3f for other pairs (%.1f%% > 0)", head.name(), s.meanPrefix(),
                100 * s.fracPositivePrefix(), s.meanOther(), 100 * s.fracPositiveOther()));
        if (s.nLearned() > 0 && s.nLearned() < s.nPrefixes() + s.nOther()) {
            out.add(String.format("%s QK: the model has learned %d of the %d prefixes (probability of c > %.2f at the "
                            + "b of [a, b, c]); the advantage separates those from all other pairs with AUC %.4f (mean "
                            + "advantage %.3f learned vs %.3f for the %d unlearned prefixes)", head.name(),
                    s.nLearned(), s.nPrefixes(), s.learnedProb(), s.aucLearned(), s.meanLearned(), s.meanNotLearned(),
                    s.nPrefixes() - s.nLearned()));
        }
        out.add(String.format("%s QK: expected attention to the previous token (mean-field: earlier keys random "
                        + "tokens) is %.3f for prefixes (%.1f%% > %.2f) vs %.3f for other pairs (%.1f%% > %.2f); "
                        + "AUC %.4f",
                head.name(), s.meanExpectedAttentionPrefix(), 100 * s.fracExpectedAttentionAbovePrefix(),
                s.threshold(), s.meanExpectedAttentionOther(), 100 * s.fracExpectedAttentionAboveOther(),
                s.threshold(), s.aucExpectedAttention()));
        StringBuilder sb = new StringBuilder(head.name() + " QK: components (prefix vs other mean, AUC):");
        for (Component c : head.components()) {
            sb.append(String.format(" %s %.3f vs %.3f%s;", c.name(), c.meanPrefix(), c.meanOther(),
                    c.auc() == null ? "" : String.format(" (AUC %.3f)", c.auc())));
        }
        out.add(sb.substring(0, sb.length() - 1));
        double[] pos = head.positionalAdvantageByPosition();
        double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
        int argMin = -1, argMax = -1;
        for (int p : positions) {
            if (pos[p] < min) {
                min = pos[p];
                argMin = p;
            }
            if (pos[p] > max) {
                max = pos[p];
                argMax = p;
            }
        }
        StringBuilder outside = new StringBuilder();
        Set<Integer> averaged = new HashSet<>();
        for (int p : positions) {
            averaged.add(p);
        }
        // the positions left out of the average (with the defaults, p = 1 and the last one) can stand out
        for (int p = 1; p < pos.length && pos.length - 1 - averaged.size() <= 5; p++) {
            if (!averaged.contains(p)) {
                outside.append(outside.length() == 0 ? "; outside that range: " : ", ")
                        .append(String.format("%.3f at p=%d", pos[p], p));
            }
        }
        out.add(String.format("%s QK: the positional (token-independent) term favours the previous token over the "
                        + "current one by %.3f on average over %s (min %.3f at p=%d, max %.3f at p=%d)%s", head.name(),
                head.components().get(3).meanAll() + head.components().get(5).meanAll(), where, min, argMin, max,
                argMax, outside));
        return out;
    }

    private static String top(double[] v, int k) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < Math.min(k, v.length); i++) {
            sb.append(i == 0 ? "" : ", ").append(String.format("%.3f", v[i]));
        }
        return sb.append(v.length > k ? ", ...]" : "]").toString();
    }

    /** mask[a * V + b] = (a, b) is a trigram prefix of the dataset. */
    static boolean[] prefixMask(TrigramDataset data) {
        int V = data.dVocab();
        boolean[] mask = new boolean[V * V];
        for (int[] t : data.trigrams()) {
            mask[t[0] * V + t[1]] = true;
        }
        return mask;
    }

    /** learned[a * V + b]: the model gives c probability > LEARNED_PROB at position 1 of [a, b, c]. */
    static boolean[] learnedMask(HookedTransformer model, TrigramDataset data) {
        int V = data.dVocab();
        double[] probC = new double[data.nTrigrams()];
        TrigramExtractor.predictedTrigrams(model, data, probC);
        int[][] tri = data.trigrams();
        boolean[] mask = new boolean[V * V];
        for (int i = 0; i < tri.length; i++) {
            mask[tri[i][0] * V + tri[i][1]] = probC[i] > LEARNED_PROB;
        }
        return mask;
    }

    private static int count(boolean[] mask) {
        int n = 0;
        for (boolean b : mask) {
            n += b ? 1 : 0;
        }
        return n;
    }

    /** Mean of v where prefix holds and learned does not. */
    private static double meanWhere(double[] v, boolean[] prefix, boolean[] learned) {
        double s = 0;
        int n = 0;
        for (int i = 0; i < v.length; i++) {
            if (prefix[i] && !learned[i]) {
                s += v[i];
                n++;
            }
        }
        return n == 0 ? 0 : s / n;
    }

    private static double mean(double[] v, boolean[] mask, boolean want) {
        double s = 0;
        int n = 0;
        for (int i = 0; i < v.length; i++) {
            if (mask == null || mask[i] == want) {
                s += v[i];
                n++;
            }
        }
        return n == 0 ? 0 : s / n;
    }

    private static double fracPositive(double[] v, boolean[] mask, boolean want, double above) {
        int pos = 0, n = 0;
        for (int i = 0; i < v.length; i++) {
            if (mask[i] == want) {
                n++;
                pos += v[i] > above ? 1 : 0;
            }
        }
        return n == 0 ? 0 : (double) pos / n;
    }

    private static double maxAbsError(Decomposition d, Tensor scores, int[] tokens, int B, int T, int h) {
        int H = scores.dim(1);
        double max = 0;
        for (int b = 0; b < B; b++) {
            for (int p = 0; p < T; p++) {
                for (int q = 0; q <= p; q++) {
                    double model = scores.data()[((b * H + h) * T + p) * T + q];
                    double sum = d.score(tokens[b * T + p], p, tokens[b * T + q], q);
                    max = Math.max(max, Math.abs(model - sum));
                }
            }
        }
        return max;
    }

    static int[] randomTokens(ModelConfig cfg, int B, long seed) {
        Random rng = new Random(seed);
        int[] t = new int[B * cfg.nCtx()];
        for (int i = 0; i < t.length; i++) {
            t[i] = rng.nextInt(cfg.dVocab());
        }
        return t;
    }

    /** Cosine similarity of every pair of rows, [rows][rows]. */
    public static float[][] cosineRows(DMatrixRMaj m) {
        int n = m.numRows;
        double[] norm = new double[n];
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < m.numCols; j++) {
                s += m.get(i, j) * m.get(i, j);
            }
            norm[i] = Math.sqrt(s);
        }
        float[][] out = new float[n][n];
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < n; k++) {
                double s = 0;
                for (int j = 0; j < m.numCols; j++) {
                    s += m.get(i, j) * m.get(k, j);
                }
                double den = norm[i] * norm[k];
                out[i][k] = den == 0 ? 0f : (float) (s / den);
            }
        }
        return out;
    }
}
