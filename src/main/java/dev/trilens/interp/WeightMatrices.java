package dev.trilens.interp;

import dev.trilens.TrilensException;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Weights;
import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;

/**
 * The weights as linear algebra, what every circuit reads: parameters as EJML matrices, each head's QK and OV
 * {@link FactoredMatrix}, orthonormal bases and the principal angles between them.
 */
public final class WeightMatrices {
    private WeightMatrices() {
    }

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
        return new FactoredMatrix(headMatrix(w, ParamLayout.attnWeight(layer, "Q"), head),
                CommonOps_DDRM.transpose(headMatrix(w, ParamLayout.attnWeight(layer, "K"), head), null));
    }

    /** Head h of layer l's OV circuit W_V[h] W_O[h], [d_model, d_model] (read from x right-multiplied, written). */
    public static FactoredMatrix ov(Weights w, int layer, int head) {
        return new FactoredMatrix(headMatrix(w, ParamLayout.attnWeight(layer, "V"), head),
                headMatrix(w, ParamLayout.attnWeight(layer, "O"), head));
    }

    public static String headName(int layer, int head) {
        return "L" + layer + "H" + head;
    }

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
