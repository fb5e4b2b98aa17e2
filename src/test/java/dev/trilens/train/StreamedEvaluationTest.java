package dev.trilens.train;

import static org.assertj.core.api.Assertions.assertThat;

import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** evaluate of any size, a chunk at a time: the same numbers as one batch, in bounded memory. */
class StreamedEvaluationTest {

    @Test
    void chunksConcatenateToTheWholeDataset() {
        TrigramDataset whole = TrigramDataset.generate(20, 9, 0.1, 7, 53);
        List<int[]> parts = new ArrayList<>();
        TrigramDataset.forEachChunk(20, 9, 0.1, 7, 53, 10, c -> {
            assertThat(c.trigrams()).isDeepEqualTo(whole.trigrams());
            parts.add(c.tokens());
        });
        assertThat(parts).hasSize(6);
        int[] joined = parts.stream().flatMapToInt(Arrays::stream).toArray();
        assertThat(joined).isEqualTo(whole.tokens());
    }

    @Test
    void theTwoPassMedianIsTheSortedLowerMedian() {
        Random r = new Random(3);
        for (int n : new int[] {1, 2, 3, 10, 1001, 50_000}) {
            float[] v = new float[n];
            for (int i = 0; i < n; i++) {
                // ties, exact zeros and values a bit apart, as probabilities are
                v[i] = r.nextInt(10) == 0 ? 0f : r.nextInt(4) == 0 ? 0.0133f : r.nextFloat();
            }
            LowerMedian m = new LowerMedian();
            for (float x : v) {
                m.count(x);
            }
            m.locate();
            for (int i = n - 1; i >= 0; i--) {
                m.refine(v[i]);
            }
            float[] sorted = v.clone();
            Arrays.sort(sorted);
            assertThat(m.median()).as("n=" + n).isEqualTo(sorted[(n - 1) / 2]);
        }
    }

    @Test
    void chunksShrinkForLongContextsAndAnImpossibleSequenceIsRefused() {
        assertThat(Metrics.chunkRows(ModelConfig.arena())).isEqualTo(Metrics.CHUNK_ROWS);
        // attention of 4096 x 4096 per sequence: 4 sequences a chunk
        assertThat(Metrics.chunkRows(new ModelConfig(75, 4096, 32, 1, 1, 16, 20, false))).isEqualTo(4);
        assertThat(Metrics.chunkRows(new ModelConfig(75, 30_000, 32, 1, 1, 16, 20, false))).isEqualTo(1);
        // 7 x 306,783,377 = 2^31 - 9 floats of logits: exactly the largest array, still one sequence a chunk
        assertThat(Metrics.chunkRows(new ModelConfig(306_783_377, 7, 32, 1, 1, 16, 20, false))).isEqualTo(1);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> Metrics.chunkRows(
                new ModelConfig(75, 100_000, 32, 1, 1, 16, 20, false)))
                .isInstanceOf(dev.trilens.TrilensException.class).hasMessageContaining("n_ctx 100000")
                .hasMessageContaining("more than one array holds");
    }

    @Test
    void aLargeEvaluationGivesTheOneBatchNumbers() {
        ModelConfig cfg = new ModelConfig(30, 12, 16, 1, 1, 8, 16, false);
        HookedTransformer model = new HookedTransformer(Weights.init(cfg, 5));
        int size = Metrics.CHUNK_ROWS * 2 + 77;
        EvalMetrics whole = Metrics.evaluate(model, TrigramDataset.generate(30, 12, 0.05, 11, size));
        TrigramDataset[] first = {null};
        EvalMetrics streamed = Metrics.evaluate(model, 30, 12, 0.05, 11, size, d -> first[0] = d);
        assertThat(first[0].size()).isEqualTo(Metrics.CHUNK_ROWS);
        assertThat(streamed.medianCorrectProb()).isEqualTo(whole.medianCorrectProb());
        assertThat(streamed.minCorrectProb()).isEqualTo(whole.minCorrectProb());
        assertThat(streamed.trigramNCorrect()).isEqualTo(whole.trigramNCorrect());
        assertThat(streamed.trigramAvgCorrectProb()).isEqualTo(whole.trigramAvgCorrectProb());
        // every sum runs over the positions in the same order chunk after chunk: the same numbers to the last bit
        // (run writes the one-batch numbers and evaluate the streamed ones, for the same model)
        assertThat(streamed).isEqualTo(whole);
        // the probabilities kept for the median (this size) or looked at again in a second pass: the same numbers
        assertThat((long) size * 11).isLessThanOrEqualTo(Metrics.KEEP_PROBS);
        EvalMetrics twoPass = Metrics.evaluate(model, 30, 12, 0.05, 11, size, d -> { }, size * 11 - 1);
        assertThat(twoPass).isEqualTo(streamed);
    }
}
