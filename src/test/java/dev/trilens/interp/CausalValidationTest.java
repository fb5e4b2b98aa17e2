package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.Hook;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Tensor;
import dev.trilens.train.EvalMetrics;
import dev.trilens.train.Metrics;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class CausalValidationTest {

    /** The key each query of a [1, H, T, T] one-hot pattern attends, per head. */
    private static int[][] keys(Tensor t) {
        int H = t.dim(1), T = t.dim(2);
        int[][] out = new int[H][T];
        for (int h = 0; h < H; h++) {
            for (int q = 0; q < T; q++) {
                out[h][q] = -1;
                float sum = 0;
                for (int k = 0; k < T; k++) {
                    float v = t.get(0, h, q, k);
                    sum += v;
                    if (v == 1f) {
                        out[h][q] = k;
                    }
                }
                assertThat(sum).isEqualTo(1f);
            }
        }
        return out;
    }

    private static Tensor apply(Hook.At hook, int H, int T) {
        Tensor t = Tensor.zeros(1, H, T, T);
        for (int h = 0; h < H; h++) {
            for (int q = 0; q < T; q++) {
                for (int k = 0; k <= q; k++) {
                    t.set(1f / (q + 1), 0, h, q, k); // a uniform causal pattern to start from
                }
            }
        }
        assertThat(hook.name()).isEqualTo("blocks.0.attn.hook_pattern");
        hook.hook().apply(t, hook.name());
        return t;
    }

    @Test
    void ruleHookGivesTheExpectedPatternOnAHandMadeSequence() {
        int V = 5;
        boolean[] prefix = new boolean[V * V];
        prefix[1 * V + 2] = true; // (1, 2)
        prefix[3 * V + 3] = true; // (3, 3)
        int[] tokens = {1, 2, 3, 3, 0, 1, 2};
        int T = tokens.length;
        // p0 itself; p1 (1,2) prefix -> 0; p2 (2,3) -> 2; p3 (3,3) prefix -> 2; p4 (3,0) -> 4; p5 (0,1) -> 5;
        // p6 (1,2) prefix -> 5
        int[] expected = {0, 0, 2, 2, 4, 5, 5};
        assertThat(keys(apply(CausalValidation.ruleHook(prefix, V, tokens, T), 2, T)))
                .isDeepEqualTo(new int[][] {expected, expected});
        assertThat(keys(apply(CausalValidation.previousTokenHook(tokens, T), 1, T))[0])
                .containsExactly(0, 0, 1, 2, 3, 4, 5);
        assertThat(keys(apply(CausalValidation.selfHook(tokens, T), 1, T))[0]).containsExactly(0, 1, 2, 3, 4, 5, 6);
        // on head 1 only: head 0 keeps its own (uniform) rows
        Tensor t = apply(CausalValidation.ruleHook(prefix, V, tokens, T, new boolean[] {false, true}), 2, T);
        assertThat(t.get(0, 0, 6, 0)).isEqualTo(1f / 7);
        assertThat(t.get(0, 1, 6, 5)).isEqualTo(1f);
        // the first half of the rule only: the rows of non-prefixes are left alone
        Tensor half = apply(CausalValidation.prefixOnlyHook(prefix, V, tokens, T, null), 1, T);
        assertThat(half.get(0, 0, 3, 2)).isEqualTo(1f);
        assertThat(half.get(0, 0, 4, 0)).isEqualTo(1f / 5);
    }

    @Test
    void theRuleRecoversTheChallengeModel() throws Exception {
        TrigramExtractor.Result r = TrigramExtractorTestModels.challengeExtraction();
        HookedTransformer model = new HookedTransformer(TrigramExtractorTestModels.challenge());
        TrigramDataset data = TrigramExtractorTestModels.challengeData(300);
        CausalValidation.Result cv = CausalValidation.run(model, data, r);

        // the clean variant is exactly what `evaluate` reports (here computed in chunks)
        EvalMetrics clean = cv.variant("clean").metrics();
        EvalMetrics reference = Metrics.evaluate(model, data);
        assertThat(clean.loss()).isCloseTo(reference.loss(), within(1e-9));
        assertThat(clean.medianCorrectProb()).isEqualTo(reference.medianCorrectProb());
        assertThat(clean.trigramNCorrect()).isEqualTo(reference.trigramNCorrect());
        assertThat(clean.trigramAvgCorrectProb()).isCloseTo(reference.trigramAvgCorrectProb(), within(1e-12));

        // measured on 2500 sequences: the rule recovers 95% of the loss gap and 98.6% of the trigram accuracy
        // (263 of 266 vs 49 for the baseline), and agrees with the model's attention at 98.9% of positions
        CausalValidation.Variant rule = cv.variant("rule_extracted");
        assertThat(rule.recoveredLoss()).isGreaterThan(0.85);
        assertThat(rule.recoveredTrigramFrac()).isGreaterThan(0.95);
        assertThat(cv.ruleAgreement()).isGreaterThan(0.97);
        assertThat(cv.ruleHeads()).containsExactly(0);
        assertThat(cv.variant("clean").recoveredLoss()).isEqualTo(1.0);
        assertThat(cv.variant(CausalValidation.BASELINE).recoveredLoss()).isEqualTo(0.0);
        assertThat(cv.variant(CausalValidation.BASELINE).metrics().trigramFracCorrect()).isLessThan(0.3);
        // the simplified readout gets the learned trigrams (219 of 277) but, without the QK gate, ruins every other
        // position (measured loss there: 40 nats vs 4.3)
        CausalValidation.Variant simplified = cv.variant("simplified");
        assertThat(simplified.metrics().trigramNCorrect()).isGreaterThan(200);
        assertThat(simplified.lossOtherPositions()).isGreaterThan(10);

        JsonNode json = Analysis.mapper().valueToTree(cv); // as analysis.json has it
        List<String> names = new ArrayList<>();
        json.get("variants").forEach(v -> names.add(v.get("name").asText()));
        assertThat(names).containsExactly("clean", "rule_extracted", "rule_prefix_only", "rule_dataset",
                "simplified", "ablated_self", "ablated_mean");
        assertThat(json.get("variants").get(1).has("recovered_loss")).isTrue();
        assertThat(json.get("variants").get(1).get("metrics").has("trigram_frac_correct")).isTrue();
    }

    @Test
    void runsOnATinyTrainedModel() {
        HookedTransformer model = TrigramExtractorTestModels.tinyModel();
        TrigramDataset data = TrigramExtractorTestModels.tiny().dataset().slice(0, 300);
        CausalValidation.Result cv = CausalValidation.run(model, data,
                TrigramExtractor.extract(model.weights()));
        // measured: attending a at the extracted prefixes (and leaving the rest alone) recovers all of the loss;
        // "else itself" loses what this model reads from the previous token at other positions
        assertThat(cv.variant("rule_prefix_only").recoveredLoss()).isGreaterThan(0.9);
        assertThat(cv.variant("rule_extracted").recoveredTrigramFrac()).isGreaterThan(0.8);
        assertThat(cv.variants()).hasSize(7);
    }

    @Test
    void theCleanVariantIsEvaluatesMetricsAndItsLossSplitsByPosition() {
        HookedTransformer model = TrigramExtractorTestModels.tinyModel();
        // more sequences than a chunk, so the sums cross a chunk boundary
        TrigramDataset data = TrigramExtractorTestModels.tiny().dataset().slice(0, CausalValidation.CHUNK + 88);
        CausalValidation.Result cv = CausalValidation.run(model, data, TrigramExtractor.extract(model.weights()));
        CausalValidation.Variant clean = cv.variant("clean");
        EvalMetrics want = Metrics.evaluate(model, data);
        EvalMetrics got = clean.metrics();
        assertThat(got.loss()).isCloseTo(want.loss(), within(1e-12 * want.loss()));
        assertThat(got.meanCorrectProb()).isEqualTo(want.meanCorrectProb());
        assertThat(got.medianCorrectProb()).isEqualTo(want.medianCorrectProb());
        assertThat(got.minCorrectProb()).isEqualTo(want.minCorrectProb());
        assertThat(got.trigramNCorrect()).isEqualTo(want.trigramNCorrect());
        assertThat(got.trigramAvgCorrectProb()).isEqualTo(want.trigramAvgCorrectProb());
        assertThat(CausalValidation.evaluate(model, data, null)).isEqualTo(got);
        // the loss at positions that complete a trigram and at the others, by brute force
        int T = data.seqLen(), V = data.dVocab();
        float[] logits = model.forward(data.tokens(), data.size(), T).data();
        double tri = 0, other = 0;
        int nTri = 0, nOther = 0;
        for (int s = 0; s < data.size(); s++) {
            for (int t = 0; t < T - 1; t++) {
                double nll = -dev.trilens.model.Logits.logProb(logits, (s * T + t) * V, V, data.tokens()[s * T + t + 1]);
                if (data.completesTrigram(s, t + 1)) {
                    tri += nll;
                    nTri++;
                } else {
                    other += nll;
                    nOther++;
                }
            }
        }
        assertThat(nTri).isPositive();
        assertThat(nOther).isPositive();
        assertThat(clean.lossTrigramPositions()).isCloseTo(tri / nTri, within(1e-9));
        assertThat(clean.lossOtherPositions()).isCloseTo(other / nOther, within(1e-9));
        // recovered fractions are measured from the baseline (0) to the clean model (1)
        assertThat(clean.recoveredLoss()).isCloseTo(1.0, within(1e-12));
        assertThat(clean.recoveredTrigramFrac()).isCloseTo(1.0, within(1e-12));
        CausalValidation.Variant base = cv.variant(cv.baseline());
        assertThat(base.recoveredLoss()).isZero();
        assertThat(base.recoveredTrigramFrac()).isZero();
        assertThat(cv.ruleAgreement()).isBetween(0.0, 1.0);
        assertThat(cv.nExtracted()).isEqualTo(TrigramExtractor.extract(model.weights()).trigrams().size());
    }
}
