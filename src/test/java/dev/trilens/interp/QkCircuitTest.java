package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Tensor;
import java.util.Random;
import org.junit.jupiter.api.Test;

class QkCircuitTest {

    /** The nine parts, summed, are hook_attn_scores of a 1-layer no-LN model with non-zero biases everywhere. */
    @Test
    void partsSumToTheModelsScores() {
        for (ModelConfig cfg : new ModelConfig[] {CircuitsTestModels.ARENA, CircuitsTestModels.ATTN_ONLY_NO_LN,
                new ModelConfig(13, 9, 12, 1, 3, 4, 6, false)}) {
            HookedTransformer model = CircuitsTestModels.model(cfg, 5);
            int B = 3, T = cfg.nCtx();
            int[] tokens = CircuitsTestModels.tokens(cfg, B, T, 8);
            Tensor scores = model.runWithCache(tokens, B, T, n -> n.endsWith("hook_attn_scores")).cache()
                    .get("attn_scores", 0);
            for (int h = 0; h < cfg.nHeads(); h++) {
                QkDecomposition d = QkDecomposition.of(model.weights(), 0, h);
                assertThat(d.scale()).isEqualTo(1 / Math.sqrt(cfg.dHead()));
                assertThat(d.tokenToken()).hasDimensions(cfg.dVocab(), cfg.dVocab());
                assertThat(d.tokenPos()).hasDimensions(cfg.dVocab(), cfg.nCtx());
                assertThat(d.posToken()).hasDimensions(cfg.nCtx(), cfg.dVocab());
                assertThat(d.posPos()).hasDimensions(cfg.nCtx(), cfg.nCtx());
                assertThat(d.queryBiasKeyBias()).isNotZero();
                for (int b = 0; b < B; b++) {
                    for (int p = 0; p < T; p++) {
                        for (int q = 0; q <= p; q++) {
                            double sum = d.score(tokens[b * T + p], p, tokens[b * T + q], q);
                            assertThat(sum).as("%s head %d seq %d query %d key %d", cfg, h, b, p, q)
                                    .isCloseTo(scores.get(b, h, p, q), within(1e-4));
                        }
                    }
                }
            }
            QkCircuit qk = QkCircuit.compute(new AnalysisContext(model, null));
            assertThat(qk.linearised()).isFalse();
            assertThat(qk.heads()).hasSize(cfg.nHeads()).allSatisfy(head -> {
                assertThat(head.exact()).isTrue();
                assertThat(head.maxAbsErrorVsModel()).isLessThan(1e-4);
                assertThat(head.separation()).isNull();
            });
        }
    }

    @Test
    void prefixAdvantageIsTheMeanOfPrevMinusSelfScores() {
        HookedTransformer model = CircuitsTestModels.model(CircuitsTestModels.ARENA, 9);
        int[] positions = {2, 5, 17, 48};
        QkCircuit qk = QkCircuit.compute(model, null, positions, 0.2);
        QkCircuit.Head head = qk.heads().get(0);
        QkDecomposition d = head.decomposition();
        Random rng = new Random(4);
        for (int i = 0; i < 50; i++) {
            int x = rng.nextInt(75), y = rng.nextInt(75);
            double expected = 0;
            for (int p : positions) {
                expected += (d.score(y, p, x, p - 1) - d.score(y, p, y, p)) / positions.length;
            }
            assertThat((double) head.prefixAdvantage()[x][y]).isCloseTo(expected, within(1e-3));
        }
        // the components' means add up to the advantage's mean over all pairs
        double meanAdv = 0;
        for (float[] row : head.prefixAdvantage()) {
            for (float v : row) {
                meanAdv += v / (75.0 * 75);
            }
        }
        assertThat(head.components().stream().mapToDouble(QkCircuit.Component::meanAll).sum())
                .isCloseTo(meanAdv, within(1e-3));
        assertThat(head.positionalAdvantageByPosition()[0]).isZero();
        assertThat(head.positionalAdvantageByPosition()[17]).isCloseTo(
                d.posPos()[17][16] - d.posPos()[17][17] + d.queryBiasKeyPos()[16] - d.queryBiasKeyPos()[17],
                within(1e-4));
        // W_pos cosine matrix: symmetric with a unit diagonal
        assertThat(qk.positionalCosine()).hasDimensions(50, 50);
        for (int i = 0; i < 50; i++) {
            assertThat(qk.positionalCosine()[i][i]).isCloseTo(1f, within(1e-5f));
            assertThat(qk.positionalCosine()[i][7]).isEqualTo(qk.positionalCosine()[7][i]);
        }
    }

    @Test
    void expectedAttentionIsTheSoftmaxWhenThereAreNoEarlierKeys() {
        // at p = 1 the only keys are the previous token and the query itself: a two-way softmax of the advantage
        HookedTransformer model = CircuitsTestModels.model(CircuitsTestModels.ARENA, 12);
        QkCircuit.Head head = QkCircuit.compute(model, null, new int[] {1}, 0.2).heads().get(0);
        for (int x = 0; x < 75; x += 7) {
            for (int y = 0; y < 75; y += 5) {
                double sigmoid = 1 / (1 + Math.exp(-head.prefixAdvantage()[x][y]));
                assertThat((double) head.expectedPrevAttention()[x][y]).isCloseTo(sigmoid, within(1e-5));
            }
        }
        // and it is the model's own attention of [x, y] at position 1
        int[] tokens = {3, 40, 17, 17, 60, 2};
        Tensor pattern = model.runWithCache(tokens, 3, 2, n -> n.endsWith("hook_pattern")).cache().pattern(0);
        for (int b = 0; b < 3; b++) {
            assertThat(head.expectedPrevAttention()[tokens[2 * b]][tokens[2 * b + 1]])
                    .isCloseTo(pattern.get(b, 0, 1, 0), within(1e-5f));
        }
    }

    @Test
    @org.junit.jupiter.api.Timeout(30) // before the fix this looped forever: fail instead of hanging the suite
    void nanScoresEndTheSearches() {
        // a model with one NaN weight gives NaN scores; with ==, NaN never tied with itself and the loop never advanced
        double[] scores = {1, Double.NaN, Double.NaN, 2};
        boolean[] pos = {true, false, true, false};
        assertThat(Stats.bestThreshold(scores, pos)).isNotNull();
        assertThat(Stats.rocAuc(scores, pos)).isBetween(0.0, 1.0);
    }

    /** The AUC by its definition: over every (positive, negative) pair, 1 when the positive ranks above, 1/2 tied. */
    private static double pairwiseAuc(double[] s, boolean[] pos) {
        double wins = 0;
        long pairs = 0;
        for (int i = 0; i < s.length; i++) {
            for (int j = 0; j < s.length; j++) {
                if (pos[i] && !pos[j]) {
                    pairs++;
                    int cmp = Double.compare(s[i], s[j]);
                    wins += cmp > 0 ? 1 : cmp == 0 ? 0.5 : 0;
                }
            }
        }
        return wins / pairs;
    }

    @Test
    void rocAucAndBestThreshold() {
        // perfect, inverted, all tied, and a hand-computed mixed case with a tie across classes
        assertThat(Stats.rocAuc(new double[] {1, 2, 3, 4}, new boolean[] {false, false, true, true})).isEqualTo(1);
        assertThat(Stats.rocAuc(new double[] {1, 2, 3, 4}, new boolean[] {true, true, false, false})).isEqualTo(0);
        assertThat(Stats.rocAuc(new double[] {5, 5, 5}, new boolean[] {true, false, false})).isEqualTo(0.5);
        // positives 3 and 2; negatives 1, 2, 4: pairs (pos > neg) = (3>1, 3>2, 2>1) = 3, tie (2, 2) = 0.5 -> 3.5/6
        double auc = Stats.rocAuc(new double[] {3, 2, 1, 2, 4}, new boolean[] {true, true, false, false, false});
        assertThat(auc).isCloseTo(3.5 / 6, within(1e-12));
        assertThat(Stats.rocAuc(new double[] {1, 2}, new boolean[] {false, false})).isNaN();
        // brute force on random scores with many ties
        Random rng = new Random(2);
        double[] s = new double[300];
        boolean[] pos = new boolean[300];
        for (int i = 0; i < s.length; i++) {
            s[i] = rng.nextInt(20);
            pos[i] = rng.nextDouble() < 0.2 + s[i] / 40;
        }
        assertThat(Stats.rocAuc(s, pos)).isCloseTo(pairwiseAuc(s, pos), within(1e-12));
        // NaN scores rank above every number and tie with each other (Double.compare's order), -0.0 below 0.0
        double[] odd = {Double.NaN, 1, Double.NaN, -0.0, 0.0, 1, Double.NaN, -3};
        boolean[] oddPos = {true, false, false, true, false, true, true, false};
        assertThat(Stats.rocAuc(odd, oddPos)).isEqualTo(pairwiseAuc(odd, oddPos));
        assertThat(pairwiseAuc(odd, oddPos)).isEqualTo(10.5 / 16); // the NaNs 3.5 each, -0.0 1, 1 2.5

        Stats.BestThreshold best = Stats.bestThreshold(new double[] {0.9, 0.8, 0.7, 0.1, 0.6},
                new boolean[] {true, true, false, false, true});
        // >= 0.6 selects 4 with 3 positives: P 0.75 R 1 F1 0.857; >= 0.8: P 1 R 0.667 F1 0.8
        assertThat(best.threshold()).isEqualTo(0.6);
        assertThat(best.precision()).isEqualTo(0.75);
        assertThat(best.recall()).isEqualTo(1);
        assertThat(best.nSelected()).isEqualTo(4);
    }

    @Test
    void layerNormAndLaterLayersAreMarkedNotExact() throws Exception {
        HookedTransformer model = CircuitsTestModels.model(CircuitsTestModels.LN_2L2H, 3);
        TrigramDataset data = TrigramDataset.generate(11, 8, 0.1, 3, 4);
        QkCircuit qk = QkCircuit.compute(new AnalysisContext(model, data));
        assertThat(qk.linearised()).isTrue();
        assertThat(qk.weightsNote()).contains("fold_ln");
        assertThat(qk.heads()).hasSize(4).allSatisfy(h -> assertThat(h.exact()).isFalse());
        assertThat(qk.heads()).extracting(QkCircuit.Head::name).containsExactly("L0H0", "L0H1", "L1H0", "L1H1");
        assertThat(qk.summary()).anyMatch(s -> s.contains("direct path"));
        // a 2-layer model without LayerNorm: layer 0 exact, layer 1 not
        HookedTransformer noLn = CircuitsTestModels.model(new ModelConfig(11, 8, 12, 2, 2, 4, 10, false), 3);
        QkCircuit qk2 = QkCircuit.compute(new AnalysisContext(noLn, data));
        assertThat(qk2.heads()).extracting(QkCircuit.Head::exact).containsExactly(true, true, false, false);
        assertThat(qk2.heads().get(0).maxAbsErrorVsModel()).isLessThan(1e-4);
        assertThat(qk2.heads().get(2).maxAbsErrorVsModel()).isGreaterThan(1e-3);

        QkCircuit.Separation s = qk.heads().get(0).separation();
        assertThat(s.nPrefixes()).isEqualTo(data.nTrigrams());
        assertThat(s.nOther()).isEqualTo(11 * 11 - data.nTrigrams());
        assertThat(s.auc()).isBetween(0.0, 1.0);
        JsonNode json = new ObjectMapper().valueToTree(qk);
        assertThat(json.fieldNames()).toIterable().containsExactly("linearised", "weights_note", "positions",
                "positional_cosine", "heads", "summary");
        JsonNode head = json.get("heads").get(0);
        assertThat(head.has("prefix_advantage")).isTrue();
        assertThat(head.get("decomposition").has("token_token")).isTrue();
        assertThat(head.get("decomposition").has("query_pos_key_bias")).isTrue();
        assertThat(head.get("separation").get("best").has("precision")).isTrue();
        assertThat(head.get("components").get(0).get("name").asText()).isEqualTo("token_token");
    }

    /** The published model: its QK circuit picks out the trigram prefixes. */
    @Test
    void challengeModelSeparatesTrigramPrefixes() {
        HookedTransformer model = CircuitsTestModels.challenge();
        QkCircuit qk = QkCircuit.compute(new AnalysisContext(model, CircuitsTestModels.challengeData()));
        QkCircuit.Head head = qk.heads().get(0);
        QkCircuit.Separation s = head.separation();
        System.out.println("challenge QK: " + String.join("\n  ", qk.summary()));
        assertThat(head.exact()).isTrue();
        assertThat(head.maxAbsErrorVsModel()).isLessThan(1e-3);
        assertThat(s.nPrefixes()).isEqualTo(277);
        // measured: AUC 0.8734 over all 277 prefixes; precision 1.000 / recall 0.801 at the best threshold;
        // AUC 1.0000 for the 221 prefixes the model has learned (p(c) > 0.5)
        assertThat(s.auc()).isBetween(0.84, 0.91);
        assertThat(s.best().precision()).isGreaterThan(0.95);
        assertThat(s.best().recall()).isGreaterThan(0.75);
        assertThat(s.nLearned()).isBetween(200, 240);
        assertThat(s.aucLearned()).isGreaterThan(0.99);
        assertThat(s.fracPositiveOther()).isLessThan(0.01);
        assertThat(s.fracExpectedAttentionAbovePrefix()).isGreaterThan(0.7);
        assertThat(s.fracExpectedAttentionAboveOther()).isLessThan(0.01);
        // the token-token part is what separates them; the positional part favours the current token
        QkCircuit.Component tt = head.components().get(0);
        assertThat(tt.name()).isEqualTo("token_token");
        assertThat(tt.auc()).isGreaterThan(0.8);
        assertThat(tt.meanPrefix()).isGreaterThan(tt.meanOther() + 5);
        assertThat(head.components().get(3).meanAll()).isNegative();
    }
}
