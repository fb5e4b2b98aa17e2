package dev.trilens.train;

import static org.assertj.core.api.Assertions.assertThat;

import dev.trilens.model.Backprop;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.util.Random;
import org.junit.jupiter.api.Test;

class KernelWarmUpTest {

    private static int[] randomTokens(int n, int vocab, long seed) {
        Random r = new Random(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = r.nextInt(vocab);
        }
        return t;
    }

    @Test
    void theWarmUpLeavesTheWeightsAndTheNextGradientsAsTheyWere() {
        ModelConfig cfg = new ModelConfig(24, 20, 32, 1, 1, 16, 20, false);
        int T = cfg.nCtx();
        Weights w = Weights.init(cfg, 3);
        float[] before = w.data.clone();
        int[] batch = randomTokens(8 * T, cfg.dVocab(), 1);

        float[] fresh = new float[w.data.length];
        double freshLoss = new Backprop(cfg).lossAndGradients(w, batch, 8, T, fresh);

        Backprop warmed = new Backprop(cfg);
        int steps = KernelWarmUp.run(warmed, w, 1e-3, randomTokens(KernelWarmUp.SEQUENCES * T, cfg.dVocab(), 2), T);
        assertThat(steps % KernelWarmUp.BLOCK).as("whole blocks").isZero();
        assertThat(w.data).as("the run's weights").isEqualTo(before);
        float[] after = new float[w.data.length];
        double afterLoss = warmed.lossAndGradients(w, batch, 8, T, after);
        assertThat(afterLoss).isEqualTo(freshLoss);
        assertThat(after).as("gradients of the same Backprop after the warm-up").isEqualTo(fresh);
    }

    @Test
    void itStopsWhenThreeBlocksInARowTakeWithinFifteenPercent() {
        assertThat(KernelWarmUp.settled(new long[] {900, 100, 110}, 2)).as("only two settled").isFalse();
        assertThat(KernelWarmUp.settled(new long[] {900, 100, 110, 114}, 3)).isTrue();
        assertThat(KernelWarmUp.settled(new long[] {100, 110, 116}, 2)).as("16% apart").isFalse();
        assertThat(KernelWarmUp.settled(new long[] {100, 100}, 1)).as("fewer than three blocks").isFalse();
    }

    @Test
    void onlyALongRunWithEnoughSequencesIsWarmedAndOnlyOncePerProcess() {
        ModelConfig cfg = new ModelConfig(24, 20, 32, 1, 1, 16, 20, false);
        int T = cfg.nCtx();
        Weights w = Weights.init(cfg, 4);
        Backprop bp = new Backprop(cfg);
        int[] enough = randomTokens(KernelWarmUp.SEQUENCES * T, cfg.dVocab(), 5);
        long longRun = KernelWarmUp.MIN_RUN_TOKENS;
        KernelWarmUp.forgetForTests();
        try {
            assertThat(KernelWarmUp.beforeRun(longRun - 1, bp, w, 1e-3, enough, T)).as("a short run").isFalse();
            assertThat(KernelWarmUp.beforeRun(longRun, bp, w, 1e-3,
                    java.util.Arrays.copyOf(enough, (KernelWarmUp.SEQUENCES - 1) * T), T)).as("3 sequences").isFalse();
            assertThat(KernelWarmUp.beforeRun(longRun, bp, w, 1e-3, enough, T)).isTrue();
            assertThat(KernelWarmUp.beforeRun(longRun, bp, w, 1e-3, enough, T)).as("the second run").isFalse();
        } finally {
            KernelWarmUp.forgetForTests();
        }
    }

    @Test
    void shortRunsAreNotWarmed() {
        // the quick preset's whole run is below the cut, one arena epoch at it
        TrainConfig quick = TrainConfig.quick(), arena = TrainConfig.arena();
        assertThat((long) quick.nTrain() * quick.seqLen() * quick.epochs()).isLessThan(KernelWarmUp.MIN_RUN_TOKENS);
        assertThat((long) arena.nTrain() * arena.seqLen()).isGreaterThanOrEqualTo(KernelWarmUp.MIN_RUN_TOKENS);
    }
}
