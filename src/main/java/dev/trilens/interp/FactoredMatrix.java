package dev.trilens.interp;

import dev.trilens.TrilensException;
import java.util.Arrays;
import java.util.Comparator;
import org.ejml.data.Complex_F64;
import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;
import org.ejml.dense.row.SingularOps_DDRM;
import org.ejml.dense.row.factory.DecompositionFactory_DDRM;
import org.ejml.interfaces.decomposition.EigenDecomposition_F64;
import org.ejml.interfaces.decomposition.SingularValueDecomposition_F64;

/**
 * TransformerLens's {@code FactoredMatrix}: the product A @ B of A [m, k] and B [k, n] kept as its two factors, so
 * that a low-rank [m, n] matrix (a head's QK = W_Q W_K^T or OV = W_V W_O, rank at most d_head) is handled at the
 * cost of its inner dimension k. Everything is double precision, EJML inside; the factors are copied in and never
 * exposed for writing, so a FactoredMatrix is immutable.
 *
 * <p>Names follow TransformerLens: {@code ldim} m, {@code mdim} k, {@code rdim} n; {@link #ab()} is {@code AB},
 * {@link #ba()} is {@code BA}, {@link #transpose()} is {@code T}, {@link #multiply} and {@link #leftMultiply} are
 * {@code @} and its reflection, and keep the smaller inner dimension as TransformerLens's {@code __matmul__} does.
 * Unlike TransformerLens there are no leading batch (head) dimensions: one FactoredMatrix is one matrix.
 */
public final class FactoredMatrix {
    private final DMatrixRMaj a;
    private final DMatrixRMaj b;

    public FactoredMatrix(DMatrixRMaj a, DMatrixRMaj b) {
        if (a.numCols != b.numRows) {
            throw new TrilensException("FactoredMatrix needs A [m, k] and B [k, n] with the same k; got A ["
                    + a.numRows + ", " + a.numCols + "] and B [" + b.numRows + ", " + b.numCols + "]");
        }
        this.a = a.copy();
        this.b = b.copy();
    }

    public static FactoredMatrix of(double[][] a, double[][] b) {
        return new FactoredMatrix(new DMatrixRMaj(a), new DMatrixRMaj(b));
    }

    /** m: the number of rows of the product. */
    public int ldim() {
        return a.numRows;
    }

    /** k: the inner dimension the product is kept at. */
    public int mdim() {
        return a.numCols;
    }

    /** n: the number of columns of the product. */
    public int rdim() {
        return b.numCols;
    }

    /** A copy of the left factor A [m, k]. */
    public DMatrixRMaj a() {
        return a.copy();
    }

    /** A copy of the right factor B [k, n]. */
    public DMatrixRMaj b() {
        return b.copy();
    }

    /** The product A @ B [m, n], computed densely. */
    public DMatrixRMaj ab() {
        DMatrixRMaj out = new DMatrixRMaj(a.numRows, b.numCols);
        CommonOps_DDRM.mult(a, b, out);
        return out;
    }

    /** B @ A [k, k]; defined when the product is square (m == n), as in TransformerLens. */
    public DMatrixRMaj ba() {
        requireSquare("BA");
        DMatrixRMaj out = new DMatrixRMaj(b.numRows, a.numCols);
        CommonOps_DDRM.mult(b, a, out);
        return out;
    }

    /** (A B)^T = B^T A^T, still factored. */
    public FactoredMatrix transpose() {
        return new FactoredMatrix(CommonOps_DDRM.transpose(b, null), CommonOps_DDRM.transpose(a, null));
    }

    /** c A B, with the scale folded into A. */
    public FactoredMatrix scale(double c) {
        DMatrixRMaj s = a.copy();
        CommonOps_DDRM.scale(c, s);
        return new FactoredMatrix(s, b);
    }

    /**
     * this @ m for a dense m [n, p]: (A, B m) when that keeps the inner dimension k (n > k), else (AB, m), as
     * TransformerLens does.
     */
    public FactoredMatrix multiply(DMatrixRMaj m) {
        if (m.numRows != rdim()) {
            throw new TrilensException("cannot multiply a FactoredMatrix [" + ldim() + ", " + rdim() + "] by a ["
                    + m.numRows + ", " + m.numCols + "] matrix: inner dimensions differ");
        }
        if (rdim() > mdim()) {
            DMatrixRMaj bm = new DMatrixRMaj(b.numRows, m.numCols);
            CommonOps_DDRM.mult(b, m, bm);
            return new FactoredMatrix(a, bm);
        }
        return new FactoredMatrix(ab(), m);
    }

    /** this @ other = (this @ other.A) @ other.B, as TransformerLens does. */
    public FactoredMatrix multiply(FactoredMatrix other) {
        return multiply(other.a).multiply(other.b);
    }

    /** m @ this for a dense m [p, m]: (m A, B) when m > k, else (m, AB), as TransformerLens's __rmatmul__. */
    public FactoredMatrix leftMultiply(DMatrixRMaj m) {
        if (m.numCols != ldim()) {
            throw new TrilensException("cannot multiply a [" + m.numRows + ", " + m.numCols + "] matrix by a "
                    + "FactoredMatrix [" + ldim() + ", " + rdim() + "]: inner dimensions differ");
        }
        if (ldim() > mdim()) {
            DMatrixRMaj ma = new DMatrixRMaj(m.numRows, a.numCols);
            CommonOps_DDRM.mult(m, a, ma);
            return new FactoredMatrix(ma, b);
        }
        return new FactoredMatrix(m, ab());
    }

    /** The product applied to one vector: A (B x). */
    public double[] apply(double[] x) {
        if (x.length != rdim()) {
            throw new TrilensException("vector of length " + x.length + " for a FactoredMatrix with " + rdim()
                    + " columns");
        }
        DMatrixRMaj bx = new DMatrixRMaj(b.numRows, 1);
        CommonOps_DDRM.mult(b, DMatrixRMaj.wrap(x.length, 1, x.clone()), bx);
        DMatrixRMaj out = new DMatrixRMaj(a.numRows, 1);
        CommonOps_DDRM.mult(a, bx, out);
        return out.data;
    }

    /**
     * The thin SVD of the product, AB = U diag(S) Vh, with U [m, r], S [r] descending and Vh [r, n], r = min(m, k,
     * n) (zero singular values included up to r). Computed from the factors as TransformerLens does: SVD A =
     * Ua Sa Vha and B = Ub Sb Vhb, then the SVD of the small middle matrix Sa Vha Ub Sb; the dense [m, n] product
     * is never formed.
     *
     * <p>Note that TransformerLens's {@code svd()} returns V (not Vh) as its third value, from torch.svd.
     */
    public Svd svd() {
        Svd sa = denseSvd(a);
        Svd sb = denseSvd(b);
        // middle = diag(Sa) Vha Ub diag(Sb), [ra, rb]
        DMatrixRMaj vhaUb = new DMatrixRMaj(sa.vh.numRows, sb.u.numCols);
        CommonOps_DDRM.mult(sa.vh, sb.u, vhaUb);
        for (int i = 0; i < vhaUb.numRows; i++) {
            for (int j = 0; j < vhaUb.numCols; j++) {
                vhaUb.set(i, j, sa.s[i] * vhaUb.get(i, j) * sb.s[j]);
            }
        }
        Svd sm = denseSvd(vhaUb);
        DMatrixRMaj u = new DMatrixRMaj(a.numRows, sm.u.numCols);
        CommonOps_DDRM.mult(sa.u, sm.u, u);
        DMatrixRMaj vh = new DMatrixRMaj(sm.vh.numRows, b.numCols);
        CommonOps_DDRM.mult(sm.vh, sb.vh, vh);
        return new Svd(u, sm.s, vh);
    }

    /** Singular values of the product, descending (see {@link #svd()}). */
    public double[] singularValues() {
        return svd().s.clone();
    }

    /** Frobenius norm of the product, from its singular values. */
    public double norm() {
        double sum = 0;
        for (double s : svd().s) {
            sum += s * s;
        }
        return Math.sqrt(sum);
    }

    /**
     * Eigenvalues of the (square) product AB, as [re, im] pairs sorted by decreasing magnitude (then by real part,
     * then imaginary part). Computed on the smaller of BA [k, k] and AB [m, m]: AB and BA have the same nonzero
     * eigenvalues with the same multiplicities (TransformerLens always uses BA), so this returns min(m, k) values,
     * the nonzero eigenvalues of AB plus zeros.
     */
    public double[][] eigenvalues() {
        requireSquare("eigenvalues");
        DMatrixRMaj small = mdim() <= ldim() ? ba() : ab();
        return eigenvaluesOf(small);
    }

    /** Eigenvalues of a square dense matrix as [re, im] pairs sorted as in {@link #eigenvalues()}. */
    public static double[][] eigenvaluesOf(DMatrixRMaj square) {
        if (square.numRows != square.numCols) {
            throw new TrilensException("eigenvalues need a square matrix, got [" + square.numRows + ", "
                    + square.numCols + "]");
        }
        int n = square.numRows;
        if (n == 0) {
            return new double[0][];
        }
        EigenDecomposition_F64<DMatrixRMaj> eig = DecompositionFactory_DDRM.eig(n, false);
        if (!eig.decompose(square.copy())) {
            throw new TrilensException("eigen-decomposition of a " + n + " x " + n + " matrix did not converge");
        }
        double[][] out = new double[n][];
        for (int i = 0; i < n; i++) {
            Complex_F64 c = eig.getEigenvalue(i);
            out[i] = new double[] {c.real, c.imaginary};
        }
        Arrays.sort(out, Comparator.<double[]>comparingDouble(z -> -Math.hypot(z[0], z[1]))
                .thenComparingDouble(z -> -z[0]).thenComparingDouble(z -> -z[1]));
        return out;
    }

    /** The thin SVD of a dense matrix with descending singular values: U [m, r], S [r], Vh [r, n], r = min(m, n). */
    public static Svd denseSvd(DMatrixRMaj m) {
        SingularValueDecomposition_F64<DMatrixRMaj> svd =
                DecompositionFactory_DDRM.svd(m.numRows, m.numCols, true, true, true);
        if (!svd.decompose(m.copy())) {
            throw new TrilensException("SVD of a " + m.numRows + " x " + m.numCols + " matrix did not converge");
        }
        DMatrixRMaj u = svd.getU(null, false);
        DMatrixRMaj vh = svd.getV(null, true);
        int r = svd.numberOfSingularValues();
        double[] s = svd.getSingularValues().clone();
        SingularOps_DDRM.descendingOrder(u, false, s, r, vh, true);
        return new Svd(u, Arrays.copyOf(s, r), vh);
    }

    private void requireSquare(String what) {
        if (ldim() != rdim()) {
            throw new TrilensException(what + " needs a square product, this one is [" + ldim() + ", " + rdim() + "]");
        }
    }

    /** A thin SVD, M = U diag(s) Vh, singular values descending. The matrices are the caller's to keep. */
    public record Svd(DMatrixRMaj u, double[] s, DMatrixRMaj vh) {
    }

    @Override
    public String toString() {
        return "FactoredMatrix([" + ldim() + ", " + mdim() + "] @ [" + mdim() + ", " + rdim() + "])";
    }
}
