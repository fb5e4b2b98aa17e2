package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.trilens.TrilensException;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;
import org.ejml.dense.row.NormOps_DDRM;
import org.ejml.dense.row.factory.DecompositionFactory_DDRM;
import org.ejml.interfaces.decomposition.EigenDecomposition_F64;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/** FactoredMatrix against EJML on the dense product. */
class FactoredMatrixTest {

    static final double TOL = 1e-9;

    static DMatrixRMaj random(int rows, int cols, Random rng) {
        DMatrixRMaj m = new DMatrixRMaj(rows, cols);
        for (int i = 0; i < m.data.length; i++) {
            m.data[i] = rng.nextGaussian();
        }
        return m;
    }

    /** A [rows, cols] matrix of rank at most r. */
    static DMatrixRMaj lowRank(int rows, int cols, int r, Random rng) {
        DMatrixRMaj out = new DMatrixRMaj(rows, cols);
        CommonOps_DDRM.mult(random(rows, r, rng), random(r, cols, rng), out);
        return out;
    }

    static DMatrixRMaj dense(DMatrixRMaj a, DMatrixRMaj b) {
        DMatrixRMaj out = new DMatrixRMaj(a.numRows, b.numCols);
        CommonOps_DDRM.mult(a, b, out);
        return out;
    }

    static void assertClose(DMatrixRMaj actual, DMatrixRMaj expected, double tol) {
        assertThat(actual.numRows).isEqualTo(expected.numRows);
        assertThat(actual.numCols).isEqualTo(expected.numCols);
        for (int i = 0; i < expected.data.length; i++) {
            assertThat(actual.data[i]).isCloseTo(expected.data[i], within(tol));
        }
    }

    /** Cases: m, k, n, rank of A (k = full). Non-square, inner dimension larger and smaller, rank-deficient. */
    @ParameterizedTest(name = "A [{0}, {1}] (rank {3}) @ B [{1}, {2}]")
    @CsvSource({"6, 3, 8, 3", "8, 3, 6, 3", "4, 9, 5, 4", "7, 5, 7, 2", "10, 4, 10, 4", "5, 6, 5, 5", "1, 1, 1, 1"})
    void matchesDenseProduct(int m, int k, int n, int rankA) {
        Random rng = new Random(31L * m + 7L * k + n + rankA);
        DMatrixRMaj a = rankA < Math.min(m, k) ? lowRank(m, k, rankA, rng) : random(m, k, rng);
        DMatrixRMaj b = random(k, n, rng);
        FactoredMatrix f = new FactoredMatrix(a, b);
        DMatrixRMaj ab = dense(a, b);
        assertThat(f.ldim()).isEqualTo(m);
        assertThat(f.mdim()).isEqualTo(k);
        assertThat(f.rdim()).isEqualTo(n);
        assertClose(f.ab(), ab, TOL);
        assertClose(f.transpose().ab(), CommonOps_DDRM.transpose(ab, null), TOL);
        DMatrixRMaj scaled = ab.copy();
        CommonOps_DDRM.scale(-2.5, scaled);
        assertClose(f.scale(-2.5).ab(), scaled, TOL);

        // SVD: U S Vh reproduces the product, U and Vh are orthonormal, S matches EJML's dense SVD
        FactoredMatrix.Svd svd = f.svd();
        int r = svd.s().length;
        assertThat(r).isEqualTo(Math.min(Math.min(m, k), n));
        DMatrixRMaj us = svd.u().copy();
        for (int i = 0; i < us.numRows; i++) {
            for (int j = 0; j < r; j++) {
                us.set(i, j, us.get(i, j) * svd.s()[j]);
            }
        }
        assertClose(dense(us, svd.vh()), ab, 1e-8);
        assertOrthonormalColumns(svd.u());
        assertOrthonormalColumns(CommonOps_DDRM.transpose(svd.vh(), null));
        double[] expectedS = FactoredMatrix.denseSvd(ab).s();
        for (int i = 0; i < expectedS.length; i++) {
            double e = i < r ? svd.s()[i] : 0;
            assertThat(e).as("singular value %d", i).isCloseTo(expectedS[i], within(1e-8));
        }
        for (int i = 1; i < r; i++) {
            assertThat(svd.s()[i]).isLessThanOrEqualTo(svd.s()[i - 1]);
        }
        assertThat(f.norm()).isCloseTo(NormOps_DDRM.normF(ab), within(1e-8));

        // products with dense and factored matrices, both ways
        DMatrixRMaj right = random(n, 3, rng);
        assertClose(f.multiply(right).ab(), dense(ab, right), 1e-8);
        DMatrixRMaj left = random(2, m, rng);
        assertClose(f.leftMultiply(left).ab(), dense(left, ab), 1e-8);
        FactoredMatrix g = new FactoredMatrix(random(n, 2, rng), random(2, 4, rng));
        assertClose(f.multiply(g).ab(), dense(ab, g.ab()), 1e-8);
        double[] x = random(n, 1, rng).data;
        double[] fx = f.apply(x);
        DMatrixRMaj ax = dense(ab, DMatrixRMaj.wrap(n, 1, x));
        for (int i = 0; i < m; i++) {
            assertThat(fx[i]).isCloseTo(ax.data[i], within(1e-8));
        }

        if (m == n) {
            assertClose(f.ba(), dense(b, a), TOL);
            assertEigenvaluesMatchDense(f.eigenvalues(), ab, Math.min(m, k));
        } else {
            assertThatThrownBy(f::ba).isInstanceOf(TrilensException.class).hasMessageContaining("square");
            assertThatThrownBy(f::eigenvalues).isInstanceOf(TrilensException.class);
        }
    }

    @Test
    void keepsTheSmallerInnerDimensionAsTransformerLensDoes() {
        Random rng = new Random(3);
        FactoredMatrix f = new FactoredMatrix(random(32, 16, rng), random(16, 32, rng));
        // W_E [75, 32] @ QK [32, 32] @ W_E^T: stays at rank 16
        DMatrixRMaj wE = random(75, 32, rng);
        FactoredMatrix full = f.leftMultiply(wE).multiply(CommonOps_DDRM.transpose(wE, null));
        assertThat(full.mdim()).isEqualTo(16);
        assertThat(full.ldim()).isEqualTo(75);
        assertThat(full.rdim()).isEqualTo(75);
        // a product whose rdim is at most mdim collapses to (AB, other)
        FactoredMatrix wide = new FactoredMatrix(random(3, 8, rng), random(8, 3, rng));
        assertThat(wide.multiply(random(3, 5, rng)).mdim()).isEqualTo(3);
    }

    @Test
    void eigenvaluesOfARotationAreComplexPairs() {
        // AB = [[0, -2], [2, 0]] (A = I): eigenvalues +-2i
        DMatrixRMaj a = CommonOps_DDRM.identity(2);
        DMatrixRMaj b = new DMatrixRMaj(new double[][] {{0, -2}, {2, 0}});
        double[][] eig = new FactoredMatrix(a, b).eigenvalues();
        assertThat(eig).hasDimensions(2, 2);
        assertThat(eig[0][0]).isCloseTo(0, within(TOL));
        assertThat(eig[0][1]).isCloseTo(2, within(TOL));
        assertThat(eig[1][1]).isCloseTo(-2, within(TOL));
    }

    @Test
    void rejectsMismatchedShapes() {
        Random rng = new Random(1);
        assertThatThrownBy(() -> new FactoredMatrix(random(3, 4, rng), random(5, 2, rng)))
                .isInstanceOf(TrilensException.class).hasMessageContaining("same k");
        FactoredMatrix f = new FactoredMatrix(random(3, 2, rng), random(2, 4, rng));
        assertThatThrownBy(() -> f.multiply(random(3, 3, rng))).isInstanceOf(TrilensException.class);
        assertThatThrownBy(() -> f.leftMultiply(random(2, 4, rng))).isInstanceOf(TrilensException.class);
    }

    static void assertOrthonormalColumns(DMatrixRMaj q) {
        DMatrixRMaj qtq = new DMatrixRMaj(q.numCols, q.numCols);
        CommonOps_DDRM.multTransA(q, q, qtq);
        assertClose(qtq, CommonOps_DDRM.identity(q.numCols), 1e-8);
    }

    /** Ours are min(m, k) values; the dense product's m eigenvalues are those plus zeros. Matched greedily. */
    static void assertEigenvaluesMatchDense(double[][] ours, DMatrixRMaj square, int expectedCount) {
        assertThat(ours).hasNumberOfRows(expectedCount);
        EigenDecomposition_F64<DMatrixRMaj> eig = DecompositionFactory_DDRM.eig(square.numRows, false);
        assertThat(eig.decompose(square.copy())).isTrue();
        List<double[]> dense = new ArrayList<>();
        for (int i = 0; i < square.numRows; i++) {
            dense.add(new double[] {eig.getEigenvalue(i).real, eig.getEigenvalue(i).imaginary});
        }
        double scale = 1 + Math.abs(ours.length == 0 ? 0 : Math.hypot(ours[0][0], ours[0][1]));
        for (double[] z : ours) {
            int best = -1;
            double bestD = Double.POSITIVE_INFINITY;
            for (int i = 0; i < dense.size(); i++) {
                double d = Math.hypot(z[0] - dense.get(i)[0], z[1] - dense.get(i)[1]);
                if (d < bestD) {
                    bestD = d;
                    best = i;
                }
            }
            assertThat(bestD).as("eigenvalue %s + %si", z[0], z[1]).isLessThan(1e-7 * scale);
            dense.remove(best);
        }
        for (double[] z : dense) {
            assertThat(Math.hypot(z[0], z[1])).as("leftover dense eigenvalue").isLessThan(1e-7 * scale);
        }
        for (int i = 1; i < ours.length; i++) {
            assertThat(Math.hypot(ours[i][0], ours[i][1]))
                    .isLessThanOrEqualTo(Math.hypot(ours[i - 1][0], ours[i - 1][1]) + 1e-12);
        }
    }
}
