package dev.trilens.interp;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Weights;
import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;

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
public record QkDecomposition(double scale, float[][] tokenToken, float[][] tokenPos, float[][] posToken,
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

        /** The nine parts of head h of layer l's score, from the given weights (see {@link Circuits#circuitWeights}). */
        public static QkDecomposition of(Weights w, int layer, int head) {
            Circuits.requireLayerHead(w.cfg, layer, head);
                    double scale = 1.0 / Math.sqrt(w.cfg.dHead());
            DMatrixRMaj wE = WeightMatrices.matrix(w, ParamLayout.W_E), wPos = WeightMatrices.matrix(w, ParamLayout.W_POS);
            DMatrixRMaj wETrans = CommonOps_DDRM.transpose(wE, null);
            DMatrixRMaj wPosTrans = CommonOps_DDRM.transpose(wPos, null);
            FactoredMatrix qk = WeightMatrices.qk(w, layer, head).scale(scale);
            // W_E QK W_E^T etc., kept at rank d_head until the product
            FactoredMatrix fromTok = qk.leftMultiply(wE), fromPos = qk.leftMultiply(wPos);
            DMatrixRMaj tt = fromTok.multiply(wETrans).ab();
            DMatrixRMaj tp = fromTok.multiply(wPosTrans).ab();
            DMatrixRMaj pt = fromPos.multiply(wETrans).ab();
            DMatrixRMaj pp = fromPos.multiply(wPosTrans).ab();
            double[] bQ = WeightMatrices.headVector(w, ParamLayout.attnBias(layer, "Q"), head), bK = WeightMatrices.headVector(w, ParamLayout.attnBias(layer, "K"), head);
            DMatrixRMaj wQ = WeightMatrices.headMatrix(w, ParamLayout.attnWeight(layer, "Q"), head), wK = WeightMatrices.headMatrix(w, ParamLayout.attnWeight(layer, "K"), head);
            DMatrixRMaj qE = WeightMatrices.mult(wE, wQ), qP = WeightMatrices.mult(wPos, wQ);
            DMatrixRMaj kE = WeightMatrices.mult(wE, wK), kP = WeightMatrices.mult(wPos, wK);
            double bb = 0;
            for (int e = 0; e < bQ.length; e++) {
                bb += bQ[e] * bK[e];
            }
            return new QkDecomposition(scale, WeightMatrices.toFloat(tt), WeightMatrices.toFloat(tp), WeightMatrices.toFloat(pt),
                    WeightMatrices.toFloat(pp), rowDots(kE, bQ, scale), rowDots(kP, bQ, scale), rowDots(qE, bK, scale),
                    rowDots(qP, bK, scale), bb * scale);
        }

        private static float[] rowDots(DMatrixRMaj m, double[] v, double scale) {
            float[] out = new float[m.numRows];
            for (int i = 0; i < m.numRows; i++) {
                out[i] = (float) (WeightMatrices.dot(m, i, v) * scale);
            }
            return out;
        }

        /**
         * Mean-field attention of Y at p to X at p - 1, averaged over the positions: the keys at 0 .. p - 2 are
         * uniformly random tokens, and the expectation of their softmax weight is taken inside the denominator. The
         * query-only terms are left out (they shift every key's score equally). [X][Y].
         */
        public float[][] expectedPrevAttention(int[] positions) {
            QkDecomposition d = this;
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
}
