package dev.trilens.model;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trilens.Fixtures;
import dev.trilens.io.Checkpoints;
import dev.trilens.model.kernels.Kernels;
import java.util.Random;
import java.util.stream.Stream;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class BackpropTest {

    @Test
    void gradientsMatchPyTorchOnTheChallengeModel() {
        Weights w = Checkpoints.load(Fixtures.challengeModel()).weights();
        JsonNode golden = Fixtures.golden();
        // golden.json has the first 4 sequences; the 8 come from the same size-2500 dataset
        int[] tokens = dev.trilens.data.TrigramDataset.generate(75, 50, 0.05, 40, 2500).tokensOf(0, 8);
        float[] grads = new float[w.data.length];
        double loss = new Backprop(w.cfg).lossAndGradients(w, tokens, 8, 50, grads);
        assertThat(loss).isCloseTo(golden.get("train_loss_first_8_sequences").asDouble(), Offset.offset(1e-4));
        JsonNode expected = golden.get("grads_first_8_sequences");
        for (ParamLayout.Param p : w.layout.params()) {
            float[] want = Fixtures.tensor(expected.get(p.name()));
            assertThat(want).as(p.name()).hasSize(p.size());
            // b_K's true gradient is exactly zero (softmax ignores a shift shared by a query's scores): its values are
            // rounding noise (~1e-8), so every tensor's scale is floored at 1e-3.
            double largest = 1e-3, worst = 0;
            for (int i = 0; i < want.length; i++) {
                largest = Math.max(largest, Math.abs(want[i]));
                worst = Math.max(worst, Math.abs(grads[p.offset() + i] - want[i]));
            }
            assertThat(worst / largest).as("%s: max |diff| %.3g, largest |grad| %.3g", p.name(), worst, largest)
                    .isLessThanOrEqualTo(1e-4);
        }
    }

    static Stream<ModelConfig> configs() {
        return Stream.of(
                new ModelConfig(7, 6, 8, 1, 2, 4, 6, true),     // LayerNorm, 2 heads, MLP
                new ModelConfig(7, 6, 8, 1, 1, 4, 0, false),    // attention-only
                new ModelConfig(6, 5, 8, 2, 2, 3, 5, false));   // 2 layers, no LayerNorm
    }

    /** Central differences in double through the naive reference forward, against the analytic gradient. */
    @ParameterizedTest
    @MethodSource("configs")
    void gradientsMatchFiniteDifferences(ModelConfig cfg) {
        Weights w = Weights.init(cfg, 17);
        HookedTransformerTest.randomizeBiasesAndNorms(w, 18);
        int B = 3, T = cfg.nCtx();
        int[] tokens = HookedTransformerTest.randomTokens(cfg, B, T, 19);
        float[] grads = new float[w.data.length];
        double loss = new Backprop(cfg).lossAndGradients(w, tokens, B, T, grads);
        assertThat(loss).isCloseTo(referenceLoss(w, tokens, B, T), Offset.offset(1e-5));
        double eps = 1e-3;
        for (ParamLayout.Param p : w.layout.params()) {
            double largest = 1e-3, worst = 0; // floor: b_K's true gradient is zero, its numeric one is noise
            for (int i = 0; i < p.size(); i++) {
                int at = p.offset() + i;
                float orig = w.data[at];
                w.data[at] = (float) (orig + eps);
                double up = referenceLoss(w, tokens, B, T);
                w.data[at] = (float) (orig - eps);
                double down = referenceLoss(w, tokens, B, T);
                w.data[at] = orig;
                double numeric = (up - down) / ((double) (float) (orig + eps) - (float) (orig - eps));
                largest = Math.max(largest, Math.abs(numeric));
                worst = Math.max(worst, Math.abs(numeric - grads[at]));
            }
            assertThat(worst / largest).as("%s (%s): max |diff| %.3g, largest %.3g", p.name(), cfg, worst, largest)
                    .isLessThanOrEqualTo(2e-3);
        }
    }

    @Test
    void sameGradientsWhateverTheThreadCount() {
        ModelConfig cfg = ModelConfig.arena();
        Weights w = Weights.init(cfg, 5);
        int[] tokens = HookedTransformerTest.randomTokens(cfg, 70, 50, 6);
        int before = Parallel.threads();
        try {
            Parallel.setThreads(1);
            float[] one = new float[w.data.length];
            double l1 = new Backprop(cfg).lossAndGradients(w, tokens, 70, 50, one);
            Parallel.setThreads(3);
            float[] three = new float[w.data.length];
            double l3 = new Backprop(cfg).lossAndGradients(w, tokens, 70, 50, three);
            assertThat(three).containsExactly(one);
            assertThat(l3).isEqualTo(l1);
        } finally {
            Parallel.setThreads(before);
        }
    }

    /** Layer 0 through the per-token and per-position tables against the plain matmuls, on a shorter T too. */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(ints = {50, 30, 17, 16})
    void embeddingTablesGiveTheSameGradientsAsTheMatmuls(int T) {
        ModelConfig twoLayersTwoHeads = new ModelConfig(11, 50, 32, 2, 2, 16, 24, false);
        for (ModelConfig cfg : new ModelConfig[] {ModelConfig.arena(), ModelConfig.arena().withDMlp(0),
            twoLayersTwoHeads}) {
            Weights w = Weights.init(cfg, 8);
            HookedTransformerTest.randomizeBiasesAndNorms(w, 9);
            int[] tokens = HookedTransformerTest.randomTokens(cfg, 40, T, 10);
            float[] tables = new float[w.data.length], matmuls = new float[w.data.length];
            double lossTables = new Backprop(cfg, true, Kernels.ops()).lossAndGradients(w, tokens, 40, T, tables);
            double lossMatmuls = new Backprop(cfg, false, Kernels.ops()).lossAndGradients(w, tokens, 40, T, matmuls);
            assertThat(lossTables).isCloseTo(lossMatmuls, Offset.offset(1e-6));
            double overall = 0;
            for (float g : matmuls) {
                overall = Math.max(overall, Math.abs(g));
            }
            for (ParamLayout.Param p : w.layout.params()) {
                // floored: b_K's true gradient is zero, so both of its computed ones are rounding noise
                double largest = 1e-2 * overall, worst = 0;
                for (int i = p.offset(); i < p.offset() + p.size(); i++) {
                    largest = Math.max(largest, Math.abs(matmuls[i]));
                    worst = Math.max(worst, Math.abs(tables[i] - matmuls[i]));
                }
                assertThat(worst / largest).as("%s (%s, T=%d)", p.name(), cfg, T).isLessThanOrEqualTo(1e-5);
            }
        }
    }

    /**
     * The whole training pass on the scalar reference kernels (query-major attention, unpadded widths) and on the
     * vector ones (key-major attention, padded widths): the same loss and gradients, with and without LayerNorm, on a
     * head width that is not a whole number of vectors too.
     */
    @Test
    void scalarAndVectorKernelsGiveTheSameGradients() {
        ModelConfig withLayerNorm = new ModelConfig(13, 50, 32, 2, 2, 16, 24, true);
        ModelConfig oddHead = new ModelConfig(13, 50, 24, 1, 2, 12, 20, false);
        for (ModelConfig cfg : new ModelConfig[] {ModelConfig.arena(), withLayerNorm, oddHead}) {
            Weights w = Weights.init(cfg, 21);
            HookedTransformerTest.randomizeBiasesAndNorms(w, 22);
            int B = 20, T = 50;
            int[] tokens = HookedTransformerTest.randomTokens(cfg, B, T, 23);
            float[] scalar = new float[w.data.length], vector = new float[w.data.length];
            boolean tables = !cfg.layerNorm();
            double scalarLoss = new Backprop(cfg, tables, Kernels.scalar()).lossAndGradients(w, tokens, B, T, scalar);
            double vectorLoss = new Backprop(cfg, tables, Kernels.vector()).lossAndGradients(w, tokens, B, T, vector);
            assertThat(vectorLoss).as("%s", cfg).isCloseTo(scalarLoss, Offset.offset(1e-5));
            for (ParamLayout.Param p : w.layout.params()) {
                double largest = 1e-3, worst = 0;
                for (int i = p.offset(); i < p.offset() + p.size(); i++) {
                    largest = Math.max(largest, Math.abs(scalar[i]));
                    worst = Math.max(worst, Math.abs(vector[i] - scalar[i]));
                }
                assertThat(worst / largest).as("%s (%s)", p.name(), cfg).isLessThanOrEqualTo(1e-4);
            }
        }
    }

    @Test
    void forwardOnlyLossIsTheTrainingLossAndMatchesTheModel() {
        ModelConfig cfg = ModelConfig.arena();
        Weights w = Weights.init(cfg, 11);
        HookedTransformerTest.randomizeBiasesAndNorms(w, 12);
        int B = 37, T = 50;
        int[] tokens = HookedTransformerTest.randomTokens(cfg, B, T, 13);
        Backprop backprop = new Backprop(cfg);
        double withGradients = backprop.lossAndGradients(w, tokens, B, T, new float[w.data.length]);
        assertThat(backprop.loss(w, tokens, B, T)).isEqualTo(withGradients);
        assertThat(withGradients).isCloseTo(referenceLoss(w, tokens, B, T), Offset.offset(1e-5));
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> backprop.loss(w, tokens, B, T + 1))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("B=37, T=51");

        // one instance reused at another length gives what a fresh one gives, whatever the thread count
        int shortT = 20;
        int[] shorter = HookedTransformerTest.randomTokens(cfg, B, shortT, 14);
        int before = Parallel.threads();
        try {
            Parallel.setThreads(3);
            float[] reused = new float[w.data.length], fresh = new float[w.data.length];
            double reusedLoss = backprop.lossAndGradients(w, shorter, B, shortT, reused);
            Parallel.setThreads(1);
            double freshLoss = new Backprop(cfg).lossAndGradients(w, shorter, B, shortT, fresh);
            assertThat(reused).containsExactly(fresh);
            assertThat(reusedLoss).isEqualTo(freshLoss);
            assertThat(backprop.loss(w, shorter, B, shortT)).isEqualTo(freshLoss);
        } finally {
            Parallel.setThreads(before);
        }
    }

    static double referenceLoss(Weights w, int[] tokens, int B, int T) {
        int V = w.cfg.dVocab();
        double[] logits = ReferenceForward.logits(w, tokens, B, T);
        double total = 0;
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T - 1; t++) {
                int row = (b * T + t) * V;
                double max = Double.NEGATIVE_INFINITY;
                for (int i = 0; i < V; i++) {
                    max = Math.max(max, logits[row + i]);
                }
                double sum = 0;
                for (int i = 0; i < V; i++) {
                    sum += Math.exp(logits[row + i] - max);
                }
                total -= logits[row + tokens[b * T + t + 1]] - max - Math.log(sum);
            }
        }
        return total / (B * (T - 1));
    }
}
