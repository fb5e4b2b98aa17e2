package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The worklog's answers on analysis sections written by hand, each verdict worked out from the rule it follows. */
class WorklogTest {

    @Test
    void positionalGeometryTellsRotationFromNoise() {
        int n = 40;
        double[][] rot = new double[n][n], rnd = new double[n][n];
        java.util.Random r = new java.util.Random(1);
        double[][] v = new double[n][32];
        for (double[] row : v) {
            for (int k = 0; k < 32; k++) {
                row[k] = r.nextGaussian();
            }
        }
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                rot[i][j] = Math.cos(0.1 * (i - j));
                double dot = 0, ni = 0, nj = 0;
                for (int k = 0; k < 32; k++) {
                    dot += v[i][k] * v[j][k];
                    ni += v[i][k] * v[i][k];
                    nj += v[j][k] * v[j][k];
                }
                rnd[i][j] = dot / Math.sqrt(ni * nj);
            }
        }
        var mapper = Analysis.mapper();
        Worklog.PositionalGeometry g = Worklog.PositionalGeometry.of(mapper.valueToTree(rot));
        assertThat(g.r2()).isGreaterThan(0.99);
        assertThat(g.rotationLike()).isTrue();
        // cos(0.1 d) first turns negative at d = 16
        assertThat(g.signChanges()).isEqualTo(1);
        assertThat(Worklog.PositionalGeometry.of(mapper.valueToTree(rnd)).rotationLike()).isFalse();
    }
}
