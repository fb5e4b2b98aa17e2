package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.trilens.data.TrigramDataset;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The rules behind dynamics.json's words, on series whose answer is known. */
class TrainingDynamicsTest {

    @Test
    void aJumpIsAPhaseChangeAndASteadyRiseIsNot() {
        int[] epochs = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
        // flat, one jump at epoch 6, flat: the jump and nothing else
        double[] jump = {0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.8, 0.81, 0.82, 0.83, 0.84};
        assertThat(TrainingDynamics.phaseSteps(jump, epochs)).containsExactly(6);
        // a straight line: every step is the median step
        double[] line = {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
        assertThat(TrainingDynamics.phaseSteps(line, epochs)).isEmpty();
        // a ramp of three big steps counts once, at its largest step
        double[] ramp = {0, 0, 0, 0.2, 0.6, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9};
        assertThat(TrainingDynamics.phaseSteps(ramp, epochs)).containsExactly(4);
        // a drop counts as much as a rise; a constant series has none
        double[] drop = {5, 5, 5, 5, 1, 1, 1, 1, 1, 1, 1};
        assertThat(TrainingDynamics.phaseSteps(drop, epochs)).containsExactly(4);
        assertThat(TrainingDynamics.phaseSteps(new double[11], epochs)).isEmpty();
        // per epoch: the same change over a gap of four epochs is a quarter of the rate
        int[] sparse = {0, 1, 2, 3, 7, 8, 9, 10};
        double[] spread = {0, 0.01, 0.02, 0.03, 0.83, 0.84, 0.85, 0.86};
        assertThat(TrainingDynamics.phaseSteps(spread, sparse)).containsExactly(4);
        // NaN values are skipped, not compared
        double[] withNaN = {Double.NaN, 0, 0.01, 0.02, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96};
        assertThat(TrainingDynamics.phaseSteps(withNaN, epochs)).containsExactly(4);
    }

    @Test
    void orderFollowsFrequencyWhenFrequentTrigramsAreLearnedFirst() {
        List<TrainingDynamics.Trigram> follows = new ArrayList<>(), against = new ArrayList<>(),
                unrelated = new ArrayList<>();
        java.util.Random rng = new java.util.Random(5);
        for (int i = 0; i < 60; i++) {
            follows.add(trigram(i, 1000 - 10 * i, i / 3 + 1, i % 2 == 0));
            against.add(trigram(i, 1000 - 10 * i, 30 - i / 3, i % 2 == 0));
            unrelated.add(trigram(i, 1000 - 10 * i, 1 + rng.nextInt(20), i % 2 == 0));
        }
        TrainingDynamics.Order f = TrainingDynamics.order(follows);
        assertThat(f.verdict()).isEqualTo("follows");
        assertThat(f.spearman()).isLessThan(-0.9);
        assertThat(f.pValue()).isLessThan(0.001);
        assertThat(TrainingDynamics.orderSentence(f)).startsWith("Learning order follows frequency");
        assertThat(TrainingDynamics.order(against).verdict()).isEqualTo("against");
        // a weak but clear relation: epochs that follow the counts only in small part
        List<TrainingDynamics.Trigram> weak = new ArrayList<>();
        java.util.Random noise = new java.util.Random(8);
        for (int i = 0; i < 400; i++) {
            weak.add(trigram(i, 1000 - i, (i < 200 && noise.nextInt(4) == 0 ? 0 : 10) + noise.nextInt(30), false));
        }
        TrainingDynamics.Order w = TrainingDynamics.order(weak);
        assertThat(w.spearman()).isBetween(-0.2, 0.0);
        assertThat(w.verdict()).isEqualTo("weakly_follows");
        assertThat(TrainingDynamics.orderSentence(w)).startsWith("Learning order follows frequency only weakly");
        TrainingDynamics.Order u = TrainingDynamics.order(unrelated);
        assertThat(u.verdict()).isEqualTo("does_not_follow");
        assertThat(u.pValue()).isGreaterThan(0.01);
        // shared b: half and half, each group's mean learned epoch
        assertThat(f.nSharedB()).isEqualTo(30);
        assertThat(f.nOtherB()).isEqualTo(30);
        double sharedMean = 0;
        for (TrainingDynamics.Trigram t : follows) {
            sharedMean += t.sharesB() ? t.learnedEpoch() / 30.0 : 0;
        }
        assertThat(f.meanEpochSharedB()).isCloseTo(sharedMean, within(1e-12));
        assertThat(f.fracLearnedSharedB()).isEqualTo(1.0);

        // the never learned rank last: a frequent trigram never learned goes against frequency
        List<TrainingDynamics.Trigram> neverFrequent = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            neverFrequent.add(trigram(i, 200 - i, i < 20 ? null : 1, false));
        }
        assertThat(TrainingDynamics.order(neverFrequent).verdict()).isEqualTo("against");
        assertThat(TrainingDynamics.order(neverFrequent).fracLearnedOtherB()).isEqualTo(0.5);
        assertThat(TrainingDynamics.order(neverFrequent).meanEpochSharedB()).isNaN();
    }

    @Test
    void ranksShareTiesAndPearsonOfConstantsIsUndefined() {
        assertThat(TrainingDynamics.ranks(new double[] {10, 20, 20, Double.POSITIVE_INFINITY, 5,
                Double.POSITIVE_INFINITY})).containsExactly(2, 3.5, 3.5, 5.5, 1, 5.5);
        assertThat(TrainingDynamics.pearson(new double[] {1, 2, 3}, new double[] {2, 4, 6}))
                .isCloseTo(1, within(1e-12));
        assertThat(TrainingDynamics.pearson(new double[] {1, 2, 3}, new double[] {5, 5, 5})).isNaN();
    }

    @Test
    void onsetSaysWhichRoseFirstByTheHalfwayRule() {
        // attention half-way at epoch 2, the MLP at epoch 4
        List<TrainingDynamics.Snapshot> s = new ArrayList<>();
        double[] attention = {0, 0.1, 0.5, 0.7, 0.8, 0.8};
        double[] mlp = {0, 0.5, 1, 2, 6, 10};
        for (int e = 0; e < attention.length; e++) {
            s.add(snapshot(e, attention[e], mlp[e]));
        }
        TrainingDynamics.Onset o = TrainingDynamics.onset(s);
        assertThat(o.verdict()).isEqualTo("attention_first");
        // a tenth of 0.8 is first reached at epoch 1 (0.1), half at epoch 2; a tenth of 10 at epoch 2, half at 4
        assertThat(o.attentionEpoch()).isEqualTo(1);
        assertThat(o.attentionHalfEpoch()).isEqualTo(2);
        assertThat(o.mlpEpoch()).isEqualTo(2);
        assertThat(o.mlpHalfEpoch()).isEqualTo(4);
        assertThat(TrainingDynamics.onsetSentence(o, s.get(5))).startsWith("Attention to the prefix appeared before "
                + "the MLP's contribution").contains("(over other positions, +0.00 to +0.80) covered a tenth of its "
                + "rise by epoch 1 and half by epoch 2")
                .contains("(+0.00 to +10.00) covered a tenth of its rise by epoch 2 and half by epoch 4");

        // an MLP that never rises past the minimum: attention alone
        List<TrainingDynamics.Snapshot> flat = new ArrayList<>();
        for (int e = 0; e < attention.length; e++) {
            flat.add(snapshot(e, attention[e], 0.1 * e / 5));
        }
        assertThat(TrainingDynamics.onset(flat).verdict()).isEqualTo("attention_only");
        assertThat(TrainingDynamics.onset(flat).mlpEpoch()).isNull();
        assertThat(TrainingDynamics.onsetSentence(TrainingDynamics.onset(flat), flat.get(5)))
                .contains("never rose enough to count");
        List<TrainingDynamics.Snapshot> same = List.of(snapshot(0, 0, 0), snapshot(5, 0.9, 9));
        assertThat(TrainingDynamics.onset(same).verdict()).isEqualTo("together");
    }

    @Test
    void theFinalPositionIsCalledUntrainedOnlyWhenItBarelyMoved() {
        assertThat(TrainingDynamics.finalPositionSentence(new TrainingDynamics.FinalPosition(49, 0.7, 1.2, 0.01,
                1.3, 0.9999, 0.1))).contains("W_pos[49] moved 0.010").contains("never trained");
        assertThat(TrainingDynamics.finalPositionSentence(new TrainingDynamics.FinalPosition(49, 0.7, 1.2, 0.5,
                1.3, 0.6, 0.1))).contains("was trained too");
    }

    @Test
    void attributionComponentsFallIntoTheirGroups() {
        assertThat(TrainingDynamics.group("embed")).isEqualTo("embeddings");
        assertThat(TrainingDynamics.group("pos_embed")).isEqualTo("embeddings");
        assertThat(TrainingDynamics.group("L0H0")).isEqualTo("attention");
        assertThat(TrainingDynamics.group("L0H12")).isEqualTo("attention");
        assertThat(TrainingDynamics.group("L0.b_O")).isEqualTo("attention");
        assertThat(TrainingDynamics.group("L0.mlp_out")).isEqualTo("mlp");
        assertThat(TrainingDynamics.group("b_U")).isEqualTo("bias");
        assertThat(TrainingDynamics.group("ln_final.b")).isEqualTo("bias");
        assertThat(TrainingDynamics.joinAnd(List.of("10", "25", "50"))).isEqualTo("10, 25 and 50");
        assertThat(TrainingDynamics.joinAnd(List.of("50"))).isEqualTo("50");
    }

    @Test
    void triplesAreCountedInTheGivenSequencesOnly() {
        TrigramDataset data = TrigramDataset.generate(10, 8, 0.1, 3, 20);
        int[] all = new int[20], firstHalf = new int[10];
        for (int i = 0; i < 20; i++) {
            all[i] = i;
        }
        System.arraycopy(all, 0, firstHalf, 0, 10);
        int[] counts = TrainingDynamics.tripleCounts(data, all), half = TrainingDynamics.tripleCounts(data, firstHalf);
        long total = 0, direct = 0;
        for (int c : counts) {
            total += c;
        }
        assertThat(total).isEqualTo(20L * (8 - 2));
        int[] t = data.trigrams()[0];
        for (int s = 0; s < 10; s++) {
            for (int p = 0; p + 2 < 8; p++) {
                direct += data.token(s, p) == t[0] && data.token(s, p + 1) == t[1] && data.token(s, p + 2) == t[2]
                        ? 1 : 0;
            }
        }
        assertThat((long) half[(t[0] * 10 + t[1]) * 10 + t[2]]).isEqualTo(direct);
    }

    private static TrainingDynamics.Trigram trigram(int i, int count, Integer learned, boolean sharesB) {
        return new TrainingDynamics.Trigram(i % 7, i % 11, i % 13, learned, learned, count, sharesB, true);
    }

    /** A snapshot with the given attention contrast (on a dataset prefix minus elsewhere) and MLP DLA. */
    private static TrainingDynamics.Snapshot snapshot(int epoch, double attention, double mlp) {
        return new TrainingDynamics.Snapshot(epoch, 0, 0, 0, 0, 0, 0, 0, 0, List.of(), 0.5, "L0H0", "L0H0", 0, 0, 0,
                0.1 + attention, 0.1, Map.of("mlp", mlp), Map.of(), Map.of(), Map.of(),
                new TrainingDynamics.FinalPosition(1, 0, 0, 0, 0, 0, 0));
    }
}
