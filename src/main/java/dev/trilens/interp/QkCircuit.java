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
import java.util.Random;
import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;

/**
 * Analysis 3: the QK circuit of every head, as TransformerLens users decompose it, and how it makes a token attend
 * to its previous token exactly when the two form a trigram prefix.
 *
 * <p><b>QkDecomposition.</b> A query token Y at position p and a key token X at position q enter with residuals
 * e_Y + p_p and e_X + p_q (rows of W_E and W_pos; see {@link Circuits} for LayerNorm models and later layers). The
 * pre-softmax score (TransformerLens's hook_attn_scores) is
 * {@code ((e_Y + p_p) W_Q + b_Q) . ((e_X + p_q) W_K + b_K) / sqrt(d_head)}, which expands into nine parts, each
 * indexed [query][key] ({@link QkDecomposition}): token-token {@code W_E W_Q W_K^T W_E^T / sqrt(d_head)} [V, V],
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
     * One head.
     *
     * <p>JSON keys: {@code layer}, {@code head}, {@code name} ("L0H0"), {@code exact} (true when the weights read
     * are the model's own and the residual is the embeddings: layer 0 of a model without LayerNorm),
     * {@code max_abs_error_vs_model} (max |sum of parts - hook_attn_scores| over the causal scores of 8 random
     * sequences of length n_ctx, run through the model: float rounding when exact, e.g. 4e-5 on the challenge
     * model whose scores reach the hundreds; large otherwise), {@code decomposition} ({@link QkDecomposition}),
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
                       QkDecomposition decomposition, double[] qkSingularValues, double[] tokenTokenSingularValues,
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
     * JSON keys: {@code n_prefixes}, {@code n_other}, {@code auc}, {@code best} ({@link Stats.BestThreshold}:
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
    public record Separation(int nPrefixes, int nOther, double auc, Stats.BestThreshold best, double meanPrefix,
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
                QkDecomposition d = QkDecomposition.of(w, l, h);
                boolean exact = l == 0 && !cw.linearised();
                double err = maxAbsError(d, scores, checkTokens, 8, cfg.nCtx(), h);
                Head head = head(w, l, h, d, exact, err, positions, prefix, learned, threshold);
                heads.add(head);
                summary.addAll(QkSummary.of(head, positions, data));
            }
        }
        if (cw.linearised()) {
            summary.add("LayerNorm model: " + cw.note());
        }
        if (cfg.nLayers() > 1) {
            summary.add("layers after the first: the decomposition is the direct path from the embeddings only");
        }
        return new QkCircuit(cw.linearised(), cw.note(), positions.clone(),
                WeightMatrices.cosineRows(WeightMatrices.matrix(w, ParamLayout.W_POS)), heads, summary);
    }

    /**
     * The prefix advantage of every pair (X, Y), score(Y@p -> X@p-1) - score(Y@p -> Y@p) averaged over the positions,
     * split into its {@link #COMPONENTS}: [component][X * V + Y].
     */
    public static double[][] advantageComponents(QkDecomposition d, int[] positions) {
        int V = d.tokenToken().length, P = positions.length;
        double[][] comp = new double[COMPONENTS.size()][V * V];
        double[] crossQ = new double[V], crossK = new double[V];
        double posPart = 0, biasPos = 0;
        for (int p : positions) {
            for (int t = 0; t < V; t++) {
                crossQ[t] += ((double) d.tokenPos()[t][p - 1] - d.tokenPos()[t][p]) / P;
                crossK[t] += (double) d.posToken()[p][t] / P;
            }
            posPart += ((double) d.posPos()[p][p - 1] - d.posPos()[p][p]) / P;
            biasPos += ((double) d.queryBiasKeyPos()[p - 1] - d.queryBiasKeyPos()[p]) / P;
        }
        for (int x = 0; x < V; x++) {
            for (int y = 0; y < V; y++) {
                int i = x * V + y;
                comp[0][i] = (double) d.tokenToken()[y][x] - d.tokenToken()[y][y];
                comp[1][i] = crossQ[y];
                comp[2][i] = crossK[x] - crossK[y];
                comp[3][i] = posPart;
                comp[4][i] = (double) d.queryBiasKeyToken()[x] - d.queryBiasKeyToken()[y];
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

    private static Head head(Weights w, int l, int h, QkDecomposition d, boolean exact, double err, int[] positions,
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
            positional[p] = (double) d.posPos()[p][p - 1] - d.posPos()[p][p] + d.queryBiasKeyPos()[p - 1]
                    - d.queryBiasKeyPos()[p];
        }
        List<Component> components = new ArrayList<>();
        for (int c = 0; c < comp.length; c++) {
            boolean pairDependent = c != 3 && c != 5;
            if (prefix == null) {
                components.add(new Component(COMPONENTS.get(c), null, null, Stats.mean(comp[c], null, true), null));
            } else {
                components.add(new Component(COMPONENTS.get(c), Stats.mean(comp[c], prefix, true),
                        Stats.mean(comp[c], prefix, false), Stats.mean(comp[c], null, true),
                        pairDependent ? Stats.rocAuc(comp[c], prefix) : null));
            }
        }
        float[][] expected = d.expectedPrevAttention(positions);
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
            sep = new Separation(nPre, nOther, Stats.rocAuc(total, prefix), Stats.bestThreshold(total, prefix),
                    Stats.mean(total, prefix, true), Stats.mean(total, prefix, false), Stats.fracPositive(total, prefix, true, 0),
                    Stats.fracPositive(total, prefix, false, 0), threshold, Stats.rocAuc(expectedFlat, prefix),
                    Stats.fracPositive(expectedFlat, prefix, true, threshold),
                    Stats.fracPositive(expectedFlat, prefix, false, threshold), Stats.mean(expectedFlat, prefix, true),
                    Stats.mean(expectedFlat, prefix, false), LEARNED_PROB, Stats.count(learned),
                    Stats.count(learned) == 0 ? null : Stats.rocAuc(total, learned), Stats.mean(total, learned, true),
                    Stats.meanWhere(total, prefix, learned));
        }
        FactoredMatrix qk = WeightMatrices.qk(w, l, h);
        DMatrixRMaj wE = WeightMatrices.matrix(w, ParamLayout.W_E);
        double[] qkSv = qk.singularValues();
        double[] ttSv = qk.scale(d.scale()).leftMultiply(wE).multiply(CommonOps_DDRM.transpose(wE, null))
                .singularValues();
        return new Head(l, h, WeightMatrices.headName(l, h), exact, err, d, qkSv, ttSv, adv, expected, positional,
                byPosPrefix, byPosOther, components, sep);
    }

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
        ExtractionScore.predictedTrigrams(model, data, probC);
        int[][] tri = data.trigrams();
        boolean[] mask = new boolean[V * V];
        for (int i = 0; i < tri.length; i++) {
            mask[tri[i][0] * V + tri[i][1]] = probC[i] > LEARNED_PROB;
        }
        return mask;
    }
    private static double maxAbsError(QkDecomposition d, Tensor scores, int[] tokens, int B, int T, int h) {
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
}
