package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class ConfidenceCutTest {

    @Test
    void theCutsAreDefinedOnEveryInput() {
        float u = 1 / 10f;
        // nothing above uniform: nothing kept, no gap
        ConfidenceCut none = ConfidenceCut.widestGap(new float[] {u, 0.05f, u}, 10);
        assertThat(none.value()).isCloseTo(0.1, within(1e-6));
        assertThat(none.gapLow()).isNaN();
        assertThat(none.gapHigh()).isNaN();
        assertThat(none.keeps(u)).isFalse();
        assertThat(ConfidenceCut.widestGap(new float[0], 10).gapLow()).isNaN();
        // a uniform distribution computed in float is not "above" 1/d_vocab by its rounding
        float[] uniform75 = new float[75 * 75];
        Arrays.fill(uniform75, (float) (1.0 / 75) * (1 + 1e-7f));
        assertThat(ConfidenceCut.widestGap(uniform75, 75).gapHigh()).isNaN();
        // exactly one: the gap runs from 1/d_vocab to it, and it is kept
        ConfidenceCut one = ConfidenceCut.widestGap(new float[] {u, 0.9f, 0.05f}, 10);
        assertThat(one.gapLow()).isEqualTo(0.1);
        assertThat(one.gapHigh()).isEqualTo(0.9f);
        assertThat(one.value()).isCloseTo(0.5, within(1e-7));
        // NaN and infinities are ignored, and never kept; an all-NaN input is the "nothing above" case
        float nan = Float.NaN;
        ConfidenceCut withNaN = ConfidenceCut.widestGap(new float[] {nan, 0.95f, nan, 0.12f, 0.9f,
                Float.POSITIVE_INFINITY}, 10);
        assertThat(withNaN.gapLow()).isEqualTo(0.12f);
        assertThat(withNaN.gapHigh()).isEqualTo(0.9f);
        assertThat(withNaN.keeps(nan)).isFalse();
        assertThat(ConfidenceCut.widestGap(new float[] {nan, nan}, 10).gapHigh()).isNaN();
        // a tie goes to the higher gap, which keeps fewer (d_vocab 8: 1/8, 3/8 and 5/8 are exact in float)
        ConfidenceCut tie = ConfidenceCut.widestGap(new float[] {0.375f, 0.625f}, 8);
        assertThat(tie.gapLow()).isEqualTo(0.375);
        assertThat(tie.gapHigh()).isEqualTo(0.625);

        // an untrained model: every argmax a little above uniform; the gap from 1/d_vocab to them splits noise
        ConfidenceCut noise = ConfidenceCut.widestGap(new float[] {0.11f, 0.12f, 0.13f, 0.125f}, 10);
        assertThat(noise.gapHigh()).isNaN();
        assertThat(noise.keeps(0.13f)).isFalse();
        assertThat(noise.describe("P(c)", 10)).contains("none is 2 times uniform or more");
        // one pair twice uniform or more stands out of that noise
        ConfidenceCut outlier = ConfidenceCut.widestGap(new float[] {0.11f, 0.12f, 0.13f, 0.25f}, 10);
        assertThat(outlier.gapLow()).isEqualTo(0.13f);
        assertThat(outlier.gapHigh()).isEqualTo(0.25f);

        // Otsu's split of log-ratios, with the same edge cases
        assertThat(ConfidenceCut.otsuLog(new float[] {u, nan}, 10).gapHigh()).isNaN();
        assertThat(ConfidenceCut.otsuLog(new float[] {0.2f, nan}, 10).gapHigh()).isEqualTo(0.2f);
        ConfidenceCut bumps = ConfidenceCut.otsuLog(new float[] {0.108f, 0.112f, 0.11f, 0.105f, 0.16f,
                0.17f, 0.15f, nan, Float.NEGATIVE_INFINITY}, 10);
        assertThat(bumps.gapLow()).isEqualTo(0.112f);
        assertThat(bumps.gapHigh()).isEqualTo(0.15f);
        assertThat(bumps.rule()).isEqualTo(ConfidenceCut.RULE_OTSU_LOG);

        // a fixed threshold: the gap it sits in
        ConfidenceCut fixed = ConfidenceCut.threshold(new float[] {0.2f, 0.7f, nan, 0.4f}, 0.5);
        assertThat(fixed.gapLow()).isEqualTo(0.4f);
        assertThat(fixed.gapHigh()).isEqualTo(0.7f);
        assertThat(fixed.describe("P(c)", 10)).contains("a fixed threshold");
    }
}
