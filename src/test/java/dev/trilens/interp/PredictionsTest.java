package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.Fixtures;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.Checkpoints;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import dev.trilens.train.EvalMetrics;
import dev.trilens.train.Metrics;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class PredictionsTest {

    @Test
    void matrixMatchesTheCorrectTokenProbabilitiesAndSplitsByTrigram() {
        ModelConfig cfg = new ModelConfig(9, 12, 16, 1, 2, 8, 12, false);
        HookedTransformer model = new HookedTransformer(Weights.init(cfg, 3));
        TrigramDataset data = TrigramDataset.generate(9, 12, 0.2, 5, 40);
        Predictions p = Predictions.compute(new AnalysisContext(model, data));

        assertThat(p.nSequences()).isEqualTo(40);
        assertThat(p.nPositions()).isEqualTo(11);
        assertThat(p.correctProbs().length).isEqualTo(40);
        float[] flat = Metrics.correctTokenProbs(model.forward(data.tokens(), 40, 12), data.tokens());
        List<Float> tri = new ArrayList<>();
        for (int s = 0; s < 40; s++) {
            assertThat(p.correctProbs()[s]).hasSize(11);
            for (int q = 0; q < 11; q++) {
                float v = p.correctProbs()[s][q];
                assertThat(v).isEqualTo(flat[s * 11 + q]).isBetween(0f, 1f);
                if (data.completesTrigram(s, q + 1)) {
                    tri.add(v);
                }
            }
        }
        assertThat(tri).isNotEmpty();
        assertThat(p.trigram().count()).isEqualTo(tri.size());
        assertThat(p.other().count()).isEqualTo(440 - tri.size());
        assertThat(p.trigram().mean()).isCloseTo(tri.stream().mapToDouble(f -> f).average().orElseThrow(),
                org.assertj.core.data.Offset.offset(1e-9));
        assertThat(p.trigram().min()).isEqualTo((double) tri.stream().min(Float::compare).orElseThrow());

        // the top predictions: softmax of the logits, sorted, at every position including the last
        Predictions.Top top = p.topPredictions();
        assertThat(top.k()).isEqualTo(3);
        assertThat(top.nSequences()).isEqualTo(Math.min(Predictions.TOP_SEQUENCES, 40));
        var logits = model.forward(data.tokens(), 40, 12);
        for (int s = 0; s < top.nSequences(); s++) {
            assertThat(top.tokens()[s]).hasNumberOfRows(12);
            for (int q = 0; q < 12; q++) {
                double[] prob = new double[9];
                double z = 0;
                for (int v = 0; v < 9; v++) {
                    prob[v] = Math.exp(logits.get(s, q, v));
                    z += prob[v];
                }
                Integer[] order = {0, 1, 2, 3, 4, 5, 6, 7, 8};
                java.util.Arrays.sort(order, (x, y) -> Double.compare(prob[y], prob[x]));
                for (int i = 0; i < 3; i++) {
                    assertThat(top.tokens()[s][q][i]).as("seq %d pos %d rank %d", s, q, i).isEqualTo(order[i]);
                    assertThat((double) top.probs()[s][q][i]).isCloseTo(prob[order[i]] / z,
                            org.assertj.core.data.Offset.offset(1e-6));
                }
                if (q < 11) {
                    assertThat(top.probs()[s][q][0]).isGreaterThanOrEqualTo(p.correctProbs()[s][q] - 1e-6f);
                }
            }
        }

        EvalMetrics m = Metrics.evaluate(model, data);
        assertThat(p.all().mean()).isEqualTo(m.meanCorrectProb());
        assertThat(p.all().median()).isEqualTo(m.medianCorrectProb());
        assertThat(p.all().min()).isEqualTo(m.minCorrectProb());
    }

    @Test
    void serializesToDocumentedSnakeCaseKeysAndNullsForAnEmptyGroup() throws Exception {
        ModelConfig cfg = new ModelConfig(5, 6, 8, 1, 1, 4, 0, false);
        HookedTransformer model = new HookedTransformer(Weights.init(cfg, 1));
        TrigramDataset data = TrigramDataset.withTrigramCount(5, 6, 0, 1, 3);
        Predictions p = Predictions.compute(new AnalysisContext(model, data));
        JsonNode json = new ObjectMapper().valueToTree(p);
        assertThat(iterable(json.fieldNames())).containsExactly("n_sequences", "n_positions", "correct_probs", "all",
                "trigram", "other", "summary", "top_predictions");
        assertThat(iterable(json.get("top_predictions").fieldNames())).containsExactly("k", "n_sequences", "tokens",
                "probs");
        assertThat(iterable(json.get("all").fieldNames())).containsExactly("count", "mean", "median", "min", "max");
        assertThat(json.get("correct_probs").size()).isEqualTo(3);
        assertThat(json.get("correct_probs").get(0).size()).isEqualTo(5);
        assertThat(json.get("trigram").get("count").asInt()).isZero();
        assertThat(json.get("trigram").get("mean").isNull()).isTrue();
        assertThat(p.summary()).contains("none at the 0 trigram-completion positions");
    }

    @Test
    void saysWhenTheDatasetIsUnknownOrDoesNotFit() {
        HookedTransformer model = new HookedTransformer(Weights.init(new ModelConfig(5, 6, 8, 1, 1, 4, 0, false), 1));
        assertThatThrownBy(() -> Predictions.compute(new AnalysisContext(model, null)))
                .isInstanceOf(TrilensException.class).hasMessage("cannot compute the correct-token probabilities: no evaluation dataset is known for this "
                        + "model; pass --seed and --trigram-prob");
        TrigramDataset wrong = TrigramDataset.generate(7, 6, 0.1, 1, 2);
        assertThatThrownBy(() -> Predictions.compute(new AnalysisContext(model, wrong)))
                .isInstanceOf(TrilensException.class).hasMessageContaining("does not fit the model");
    }

    @Test
    void challengeModel() {
        HookedTransformer model = new HookedTransformer(Checkpoints.load(Fixtures.challengeModel()).weights());
        TrigramDataset data = TrigramDataset.generate(75, 50, 0.05, 40, 2500);
        Predictions p = Predictions.compute(new AnalysisContext(model, data));
        assertThat(p.correctProbs().length).isEqualTo(2500);
        assertThat(p.correctProbs()[0]).hasSize(49);
        int bad = 0;
        for (float[] row : p.correctProbs()) {
            for (float v : row) {
                bad += v >= 0 && v <= 1 ? 0 : 1;
            }
        }
        assertThat(bad).as("NaN or out-of-range probabilities").isZero();
        // measured: mean 0.0496 overall; 0.803 at the 5629 trigram positions vs 0.0133 at the other 116871
        assertThat(p.all().count()).isEqualTo(122500);
        assertThat(p.trigram().count()).isEqualTo(5629);
        assertThat(p.all().mean()).isCloseTo(0.04962, org.assertj.core.data.Offset.offset(1e-4));
        assertThat(p.trigram().mean()).isCloseTo(0.8028, org.assertj.core.data.Offset.offset(1e-3));
        assertThat(p.other().mean()).isCloseTo(0.01334, org.assertj.core.data.Offset.offset(1e-4));
    }

    private static <T> List<T> iterable(java.util.Iterator<T> it) {
        List<T> out = new ArrayList<>();
        it.forEachRemaining(out::add);
        return out;
    }
}
