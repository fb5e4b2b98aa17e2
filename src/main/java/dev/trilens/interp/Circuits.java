package dev.trilens.interp;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.TrilensException;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Weights;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;

/**
 * Analyses 3, 4 and 7 of the interpretability engine: the QK circuit ({@link QkCircuit}), the OV circuit
 * ({@link OvCircuit}), the MLP ({@link MlpAnalysis}) and weight processing ({@link WeightProcessing}), plus the
 * weight-reading helpers they share (parameters as EJML matrices, each head's QK and OV {@link FactoredMatrix}, a
 * rank-based ROC AUC, orthonormal bases and principal angles).
 *
 * <p><b>Which weights the circuits read.</b> For a model without LayerNorm, the raw weights: for layer 0 the
 * residual stream a token enters with is exactly W_E[tok] + W_pos[pos], so the circuits are exact. For a LayerNorm
 * model, the weights after {@link WeightProcessing#foldLn} and {@link WeightProcessing#centerWritingWeights}, i.e.
 * TransformerLens's processed model, whose only remaining non-linearity before each layer is LNPre's division by
 * the residual norm; the circuits drop that division (a linearisation) and say so. For layers after the first, the
 * circuits are the direct path from the embeddings only (earlier layers also write into the residual stream).
 *
 * <p>JSON keys: {@code qk_circuit} ({@link QkCircuit}), {@code ov_circuit} ({@link OvCircuit}), {@code mlp}
 * ({@link MlpAnalysis}), {@code weight_processing} ({@link WeightProcessing}), {@code seconds} (wall time of all
 * four), {@code summary} (the four summaries' sentences, in that order).
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record Circuits(QkCircuit qkCircuit, OvCircuit ovCircuit, MlpAnalysis mlp, WeightProcessing weightProcessing,
                       double seconds, List<String> summary) {

    public static Circuits compute(AnalysisContext ctx) {
        long t0 = System.nanoTime();
        QkCircuit qk = QkCircuit.compute(ctx);
        OvCircuit ov = OvCircuit.compute(ctx);
        MlpAnalysis mlp = MlpAnalysis.compute(ctx);
        WeightProcessing wp = WeightProcessing.compute(ctx);
        List<String> summary = new ArrayList<>();
        summary.addAll(qk.summary());
        summary.addAll(ov.summary());
        summary.addAll(mlp.summary());
        summary.addAll(wp.summary());
        return new Circuits(qk, ov, mlp, wp, (System.nanoTime() - t0) / 1e9, summary);
    }

    // ---------------------------------------------------------------------------------------------------------
    // Which weights the circuits read

    /**
     * The weights the circuits are read from, and whether they are exact or linearised.
     *
     * @param linearised true for a LayerNorm model: LNPre's division by the residual norm is dropped
     * @param note one sentence saying which weights these are
     */
    public record CircuitWeights(Weights weights, boolean linearised, String note) {
    }

    public static CircuitWeights circuitWeights(Weights w) {
        if (!w.cfg.layerNorm()) {
            return new CircuitWeights(w, false, "no LayerNorm: circuits read the raw weights and are exact for "
                    + "layer 0 (the residual stream is W_E[tok] + W_pos[pos])");
        }
        Weights folded = WeightProcessing.centerWritingWeights(WeightProcessing.foldLn(w).weights()).weights();
        return new CircuitWeights(folded, true, "LayerNorm model: circuits read the weights after fold_ln and "
                + "center_writing_weights, and drop LNPre's division by the residual norm, so they are a "
                + "linearisation of the model (proportional per position, not equal, to its scores and logits)");
    }

    // ---------------------------------------------------------------------------------------------------------
    // Parameters as matrices

    /** A 2-D parameter ([rows, cols] in TransformerLens's shape) as a double matrix. */
    public static DMatrixRMaj matrix(Weights w, String name) {
        ParamLayout.Param p = w.layout.get(name);
        if (p.shape().length != 2) {
            throw new TrilensException(name + " has shape " + p.shapeString() + ", not a matrix");
        }
        return slice(w, p.offset(), p.shape()[0], p.shape()[1]);
    }

    /** One head's slice [rows, cols] of a [H, rows, cols] parameter (W_Q, W_K, W_V, W_O). */
    public static DMatrixRMaj headMatrix(Weights w, String name, int head) {
        ParamLayout.Param p = w.layout.get(name);
        if (p.shape().length != 3) {
            throw new TrilensException(name + " has shape " + p.shapeString() + ", not [heads, rows, cols]");
        }
        int[] s = p.shape();
        java.util.Objects.checkIndex(head, s[0]);
        return slice(w, p.offset() + head * s[1] * s[2], s[1], s[2]);
    }

    /** A 1-D parameter as doubles. */
    public static double[] vector(Weights w, String name) {
        ParamLayout.Param p = w.layout.get(name);
        double[] out = new double[p.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = w.data[p.offset() + i];
        }
        return out;
    }

    /** One head's row of a [H, Dh] parameter (b_Q, b_K, b_V). */
    public static double[] headVector(Weights w, String name, int head) {
        ParamLayout.Param p = w.layout.get(name);
        int n = p.shape()[p.shape().length - 1];
        java.util.Objects.checkIndex(head, p.size() / n);
        double[] out = new double[n];
        for (int i = 0; i < n; i++) {
            out[i] = w.data[p.offset() + head * n + i];
        }
        return out;
    }

    private static DMatrixRMaj slice(Weights w, int offset, int rows, int cols) {
        DMatrixRMaj m = new DMatrixRMaj(rows, cols);
        for (int i = 0; i < rows * cols; i++) {
            m.data[i] = w.data[offset + i];
        }
        return m;
    }

    /** Head h of layer l's QK circuit W_Q[h] W_K[h]^T, [d_model, d_model] (query side x key side), unscaled. */
    public static FactoredMatrix qk(Weights w, int layer, int head) {
        String p = "blocks." + layer + ".attn.";
        return new FactoredMatrix(headMatrix(w, p + "W_Q", head),
                CommonOps_DDRM.transpose(headMatrix(w, p + "W_K", head), null));
    }

    /** Head h of layer l's OV circuit W_V[h] W_O[h], [d_model, d_model] (read from x right-multiplied, written). */
    public static FactoredMatrix ov(Weights w, int layer, int head) {
        String p = "blocks." + layer + ".attn.";
        return new FactoredMatrix(headMatrix(w, p + "W_V", head), headMatrix(w, p + "W_O", head));
    }

    public static String headName(int layer, int head) {
        return "L" + layer + "H" + head;
    }

    // ---------------------------------------------------------------------------------------------------------
    // Small numeric helpers

    public static float[][] toFloat(DMatrixRMaj m) {
        float[][] out = new float[m.numRows][m.numCols];
        for (int i = 0; i < m.numRows; i++) {
            for (int j = 0; j < m.numCols; j++) {
                out[i][j] = (float) m.get(i, j);
            }
        }
        return out;
    }

    public static float[] toFloat(double[] v) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = (float) v[i];
        }
        return out;
    }

    /** Row-wise x @ M for a matrix of row vectors. */
    static DMatrixRMaj mult(DMatrixRMaj x, DMatrixRMaj m) {
        DMatrixRMaj out = new DMatrixRMaj(x.numRows, m.numCols);
        CommonOps_DDRM.mult(x, m, out);
        return out;
    }

    static double dot(DMatrixRMaj m, int row, double[] v) {
        double s = 0;
        for (int j = 0; j < v.length; j++) {
            s += m.get(row, j) * v[j];
        }
        return s;
    }

    /**
     * ROC AUC of scores for telling positives from negatives, from ranks (the Mann-Whitney U statistic): the
     * probability that a random positive scores above a random negative, ties counting one half. NaN when either
     * class is empty.
     */
    public static double rocAuc(double[] scores, boolean[] positive) {
        int n = scores.length;
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (x, y) -> Double.compare(scores[x], scores[y]));
        double rankSumPos = 0;
        long nPos = 0;
        for (int i = 0; i < n; ) {
            int j = i;
            // Double.compare, not ==: NaN must tie with NaN or a NaN score would never end its group
            while (j + 1 < n && Double.compare(scores[order[j + 1]], scores[order[i]]) == 0) {
                j++;
            }
            double avgRank = (i + j) / 2.0 + 1; // ranks are 1-based; ties share their mean rank
            for (int t = i; t <= j; t++) {
                if (positive[order[t]]) {
                    rankSumPos += avgRank;
                    nPos++;
                }
            }
            i = j + 1;
        }
        long nNeg = n - nPos;
        if (nPos == 0 || nNeg == 0) {
            return Double.NaN;
        }
        return (rankSumPos - nPos * (nPos + 1) / 2.0) / ((double) nPos * nNeg);
    }

    /**
     * The threshold t maximising F1 for the rule "score >= t is positive", over the distinct scores, with precision
     * and recall there. Null when there are no positives.
     */
    public static BestThreshold bestThreshold(double[] scores, boolean[] positive) {
        int n = scores.length;
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (x, y) -> Double.compare(scores[y], scores[x]));
        int nPos = 0;
        for (boolean p : positive) {
            nPos += p ? 1 : 0;
        }
        if (nPos == 0) {
            return null;
        }
        BestThreshold best = null;
        int tp = 0;
        for (int i = 0; i < n; ) {
            int j = i;
            // Double.compare, not ==: with ==, a NaN score never joins its own group and i never advances
            while (j < n && Double.compare(scores[order[j]], scores[order[i]]) == 0) {
                tp += positive[order[j]] ? 1 : 0;
                j++;
            }
            double precision = (double) tp / j, recall = (double) tp / nPos;
            double f1 = tp == 0 ? 0 : 2 * precision * recall / (precision + recall);
            if (best == null || f1 > best.f1) {
                best = new BestThreshold(scores[order[i]], precision, recall, f1, j);
            }
            i = j;
        }
        return best;
    }

    /** The F1-best rule "score >= threshold", with how many pairs it selects. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record BestThreshold(double threshold, double precision, double recall, double f1, int nSelected) {
    }

    /**
     * An orthonormal basis [D, r] of the column space of m, r its numerical rank (singular values above
     * max(rows, cols) * eps * the largest one).
     */
    public static DMatrixRMaj orthonormalBasis(DMatrixRMaj m) {
        FactoredMatrix.Svd svd = FactoredMatrix.denseSvd(m);
        double tol = Math.max(m.numRows, m.numCols) * Math.ulp(1.0) * (svd.s().length == 0 ? 0 : svd.s()[0]);
        int r = 0;
        while (r < svd.s().length && svd.s()[r] > tol) {
            r++;
        }
        DMatrixRMaj q = new DMatrixRMaj(m.numRows, r);
        CommonOps_DDRM.extract(svd.u(), 0, m.numRows, 0, r, q, 0, 0);
        return q;
    }

    /**
     * Cosines of the principal angles between the column spaces of two orthonormal bases q1 [D, r1], q2 [D, r2]:
     * the singular values of q1^T q2, descending (min(r1, r2) of them, clipped to [0, 1]).
     */
    public static double[] principalCosines(DMatrixRMaj q1, DMatrixRMaj q2) {
        if (q1.numCols == 0 || q2.numCols == 0) {
            return new double[0];
        }
        DMatrixRMaj m = new DMatrixRMaj(q1.numCols, q2.numCols);
        CommonOps_DDRM.multTransA(q1, q2, m);
        double[] s = FactoredMatrix.denseSvd(m).s();
        for (int i = 0; i < s.length; i++) {
            s[i] = Math.min(1, Math.max(0, s[i]));
        }
        return s;
    }

    static void requireSameVocab(ModelConfig cfg, dev.trilens.data.TrigramDataset data) {
        if (data != null && data.dVocab() != cfg.dVocab()) {
            throw new TrilensException("the dataset's d_vocab " + data.dVocab() + " differs from the model's "
                    + cfg.dVocab());
        }
    }

    static void requireLayerHead(ModelConfig cfg, int layer, int head) {
        if (layer < 0 || layer >= cfg.nLayers() || head < 0 || head >= cfg.nHeads()) {
            throw new TrilensException("no head L" + layer + "H" + head + " in a model with " + cfg.nLayers()
                    + " layer(s) of " + cfg.nHeads() + " head(s)");
        }
    }
}
