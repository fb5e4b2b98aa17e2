package dev.trilens.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Logits;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Tensor;
import dev.trilens.model.Weights;
import org.junit.jupiter.api.Test;

/**
 * The challenge's metrics on logits written by hand, each expected value worked out from the definitions (softmax,
 * mean cross-entropy, torch's lower median and first-index argmax, loss_as_frac's two baselines); EvaluateCommandTest
 * compares the whole report with a PyTorch script.
 */
class MetricsTest {

    private static final double LN2 = Math.log(2), LN3 = Math.log(3);

    @Test
    void lossAsFracIsZeroAtThePerfectModelsLossAndOneAtUniformGuessing() {
        double unif = Math.log(75);
        // a perfect model: every forced position (trigram_prob of them) costs nothing, the rest ln(d_vocab)
        assertThat(Metrics.lossAsFrac(0.95 * unif, 75, 0.05)).isCloseTo(0, within(1e-12));
        assertThat(Metrics.lossAsFrac(unif, 75, 0.05)).isCloseTo(1, within(1e-12));
        assertThat(Metrics.lossAsFrac(0.975 * unif, 75, 0.05)).isCloseTo(0.5, within(1e-12));
        // ln 10 = 2.302585; min = 0.8 ln 10 = 1.842068; (2 - 1.842068) / (2.302585 - 1.842068) = 0.342945
        assertThat(Metrics.lossAsFrac(2.0, 10, 0.2)).isCloseTo((2 - 0.8 * Math.log(10)) / (0.2 * Math.log(10)),
                within(1e-12)).isCloseTo(0.342945, within(1e-6));
    }

    /**
     * Two sequences of three tokens over a vocabulary of 3. Each row's logits are the logs of the probabilities
     * wanted; the last position's row predicts nothing and holds a huge logit that would show if it were read.
     */
    private static Tensor handLogits() {
        float[][] rows = {
            {0f, (float) LN2, 0f}, {(float) LN3, 0f, 0f}, {1e30f, 0f, 0f},   // probs 1/4 1/2 1/4; 3/5 1/5 1/5
            {5f, 5f, 5f}, {0f, 0f, (float) LN2}, {1e30f, 0f, 0f},            // 1/3 each; 1/4 1/4 1/2
        };
        float[] data = new float[18];
        for (int r = 0; r < rows.length; r++) {
            System.arraycopy(rows[r], 0, data, r * 3, 3);
        }
        return new Tensor(new int[] {2, 3, 3}, data);
    }

    // position t predicts token t+1: sequence 0 is (x, 1, 0), sequence 1 is (x, 2, 2)
    private static final int[] TOKENS = {2, 1, 0, 0, 2, 2};

    @Test
    void correctTokenProbsAndLossFollowTheSoftmaxOfEachPosition() {
        assertThat(Metrics.correctTokenProbs(handLogits(), TOKENS))
                .containsExactly(new float[] {0.5f, 0.6f, 1f / 3, 0.5f}, within(1e-6f));
        double loss = -(Math.log(0.5) + Math.log(0.6) + Math.log(1.0 / 3) + Math.log(0.5)) / 4;
        assertThat(Metrics.loss(handLogits(), TOKENS)).isCloseTo(loss, within(1e-7));
        // a row offset and target picked out of a longer array; shifting a row leaves its softmax
        float[] row = {9f, 100f, 100f + (float) LN3, 100f, 9f};
        assertThat(Logits.logProb(row, 1, 3, 1)).isCloseTo(Math.log(0.6), within(1e-5));
        assertThat(Logits.logProb(row, 1, 3, 2)).isCloseTo(Math.log(0.2), within(1e-5));
    }

    @Test
    void argmaxTakesTheFirstOfTiesWithinItsRow() {
        assertThat(Logits.argmax(new float[] {1, 3, 3, 2}, 0, 4)).isEqualTo(1);
        assertThat(Logits.argmax(new float[] {5, 5}, 0, 2)).isZero();
        // the row is [1, 2, 0] at offset 1; the 7 after it belongs to the next row
        assertThat(Logits.argmax(new float[] {9, 1, 2, 0, 7}, 1, 3)).isEqualTo(1);
        assertThat(Logits.argmax(new float[] {9, 4, 2, 0, 7}, 1, 3)).isZero();
    }

    @Test
    void trigramScoreReadsThePredictionAtPositionOne() {
        TrigramDataset data = TrigramDataset.withTrigramCount(5, 6, 4, 3, 2);
        int[][] trigrams = data.trigrams();
        assertThat(trigrams).hasNumberOfRows(4);
        int V = 5;
        float[] logits = new float[4 * 3 * V];
        for (int i = 0; i < 4; i++) {
            int c = trigrams[i][2];
            // the first three right (c at ln 3, P = 3/7), the last wrong (another token at ln 3, P(c) = 1/7);
            // positions 0 and 2 put everything on c, which the score must ignore
            int top = i < 3 ? c : (c + 1) % V;
            logits[(i * 3 + 1) * V + top] = (float) LN3;
            logits[(i * 3) * V + c] = 50f;
            logits[(i * 3 + 2) * V + c] = 50f;
        }
        Metrics.TrigramScore s = Metrics.trigramScore(new Tensor(new int[] {4, 3, V}, logits), data);
        assertThat(s.nCorrect()).isEqualTo(3);
        assertThat(s.fracCorrect()).isEqualTo(0.75);
        assertThat(s.avgCorrectProb()).isCloseTo((3 * 3.0 / 7 + 1.0 / 7) / 4, within(1e-7));

        TrigramDataset none = TrigramDataset.withTrigramCount(5, 6, 0, 3, 2);
        Metrics.TrigramScore empty = Metrics.trigramScore(new Tensor(new int[] {0, 3, V}, new float[0]), none);
        assertThat(empty.nCorrect()).isZero();
        assertThat(empty.fracCorrect()).isNaN();
        assertThat(empty.avgCorrectProb()).isNaN();
        Metrics.TrigramScore emptyModel = Metrics.trigramScore(
                new HookedTransformer(Weights.init(new ModelConfig(5, 6, 8, 1, 1, 4, 8, false), 1)), none);
        assertThat(emptyModel.nCorrect()).isZero();
        assertThat(emptyModel.fracCorrect()).isNaN();
    }

    @Test
    void summarizeTakesTheMeanTheLowerMedianAndTheMinimum() {
        TrigramDataset data = TrigramDataset.generate(10, 6, 0.2, 3, 2);
        Metrics.TrigramScore tri = new Metrics.TrigramScore(7, 0.5, 0.25);
        EvalMetrics m = Metrics.summarize(2.0, new float[] {0.5f, 0.1f, 0.9f, 0.3f}, tri, data);
        assertThat(m.loss()).isEqualTo(2.0);
        assertThat(m.meanCorrectProb()).isCloseTo(0.45, within(1e-7));
        // torch.median of an even count is the lower middle value: 0.3 of 0.1 0.3 0.5 0.9
        assertThat(m.medianCorrectProb()).isEqualTo(0.3f);
        assertThat(m.minCorrectProb()).isEqualTo(0.1f);
        assertThat(m.lossAsFrac()).isCloseTo(Metrics.lossAsFrac(2.0, 10, 0.2), within(1e-15))
                .isCloseTo(0.342945, within(1e-6));
        assertThat(m.trigramNCorrect()).isEqualTo(7);
        assertThat(m.trigramFracCorrect()).isEqualTo(0.5);
        assertThat(m.trigramAvgCorrectProb()).isEqualTo(0.25);
        assertThat(m.nTrigrams()).isEqualTo(18);
        // evaluate --json's keys, in this order
        assertThat(m.toJson().keySet()).containsExactly("loss", "loss_as_frac", "mean_correct_prob",
                "median_correct_prob", "min_correct_prob", "trigram_n_correct", "trigram_frac_correct",
                "trigram_avg_correct_prob", "n_trigrams");
        assertThat(m.toJson()).containsEntry("loss", 2.0).containsEntry("trigram_n_correct", 7)
                .containsEntry("n_trigrams", 18).containsEntry("median_correct_prob", (double) 0.3f);

        // a dataset made by trigram count has no trigram_prob: the baseline uses n_trigrams / (V (V - 1)) = 18 / 90
        TrigramDataset counted = TrigramDataset.withTrigramCount(10, 6, 18, 3, 2);
        EvalMetrics c = Metrics.summarize(2.0, new float[] {0.5f, 0.1f, 0.9f}, tri, counted);
        assertThat(c.lossAsFrac()).isCloseTo(0.342945, within(1e-6));
        assertThat(c.medianCorrectProb()).isEqualTo(0.5f);
    }

    @Test
    void evaluateWithinOneChunkHandsOverItsDatasetAndGivesTheOneBatchNumbers() {
        HookedTransformer model = new HookedTransformer(Weights.init(new ModelConfig(12, 8, 16, 1, 1, 8, 16, false), 2));
        TrigramDataset[] first = {null};
        EvalMetrics small = Metrics.evaluate(model, 12, 8, 0.1, 4, 30, d -> first[0] = d);
        assertThat(first[0]).isNotNull();
        assertThat(first[0].size()).isEqualTo(30);
        assertThat(first[0].tokens()).isEqualTo(TrigramDataset.generate(12, 8, 0.1, 4, 30).tokens());
        assertThat(small).isEqualTo(Metrics.evaluate(model, first[0]));
    }
}
