package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import org.junit.jupiter.api.Test;

/** The masked means, the fraction above a level and the F1-best threshold, on values worked out by hand. */
class StatsTest {
    private static final double[] V = {1, 2, 4, 8, 16};
    private static final boolean[] PREFIX = {true, true, true, false, false};
    private static final boolean[] LEARNED = {true, false, false, false, true};

    @Test
    void maskedMeansTakeExactlyTheSelectedEntries() {
        // prefix and not learned: entries 1 and 2 -> (2 + 4) / 2
        assertThat(Stats.meanWhere(V, PREFIX, LEARNED)).isEqualTo(3.0);
        assertThat(Stats.meanWhere(V, new boolean[5], LEARNED)).isZero();
        assertThat(Stats.mean(V, PREFIX, true)).isCloseTo(7.0 / 3, within(1e-15));
        assertThat(Stats.mean(V, PREFIX, false)).isEqualTo(12.0);
        assertThat(Stats.mean(V, null, true)).isEqualTo(31.0 / 5);
        assertThat(Stats.mean(V, new boolean[5], true)).isZero();
        assertThat(Stats.count(PREFIX)).isEqualTo(3);
        assertThat(Stats.count(new boolean[4])).isZero();
    }

    @Test
    void theFractionAboveALevelCountsOnlyStrictlyGreaterValuesOfTheSelectedClass() {
        // the prefix class holds 1, 2, 4: above 2 is only 4 (2 itself is not above)
        assertThat(Stats.fracPositive(V, PREFIX, true, 2)).isCloseTo(1.0 / 3, within(1e-15));
        assertThat(Stats.fracPositive(V, PREFIX, false, 8)).isEqualTo(0.5);
        assertThat(Stats.fracPositive(V, PREFIX, true, 0)).isEqualTo(1.0);
        assertThat(Stats.fracPositive(new double[] {1}, new boolean[] {false}, true, 0)).isZero();
    }

    @Test
    void theBestThresholdMaximisesF1OverTiedGroupsOfScores() {
        // scores 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.7 (pos), 0.1 (neg): taking everything >= 0.7 gives tp 3 of 4
        // selected and all 3 positives, F1 = 2 * 0.75 * 1 / 1.75 = 6/7, above >= 0.9 (F1 0.5) and >= 0.8 (0.4)
        double[] scores = {0.7, 0.1, 0.9, 0.8, 0.7};
        boolean[] pos = {true, false, true, false, true};
        Stats.BestThreshold b = Stats.bestThreshold(scores, pos);
        assertThat(b.threshold()).isEqualTo(0.7);
        assertThat(b.nSelected()).isEqualTo(4);
        assertThat(b.precision()).isEqualTo(0.75);
        assertThat(b.recall()).isEqualTo(1.0);
        assertThat(b.f1()).isCloseTo(6.0 / 7, within(1e-15));
        // a tie keeps the first (highest) threshold: >= 0.9 and >= 0.5 both give F1 2/3 here
        Stats.BestThreshold tie = Stats.bestThreshold(new double[] {0.9, 0.5, 0.5, 0.5},
                new boolean[] {true, true, false, false});
        assertThat(tie.threshold()).isEqualTo(0.9);
        assertThat(tie.f1()).isCloseTo(2.0 / 3, within(1e-15));
        assertThat(Stats.bestThreshold(scores, new boolean[5])).isNull();
    }
}
