package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.Fixtures;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.Checkpoints;
import dev.trilens.io.JsonFields;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Weights;
import dev.trilens.train.EvalMetrics;
import dev.trilens.train.Metrics;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class AblationTest {

    private static final ModelConfig CFG = new ModelConfig(9, 10, 16, 1, 1, 8, 12, false);

    private static TrigramDataset data() {
        return TrigramDataset.generate(9, 10, 0.2, 4, 40);
    }

    private static void assertSameMetrics(EvalMetrics actual, EvalMetrics expected, double tol) {
        assertThat(actual.loss()).isCloseTo(expected.loss(), within(tol));
        assertThat(actual.lossAsFrac()).isCloseTo(expected.lossAsFrac(), within(tol));
        assertThat(actual.meanCorrectProb()).isCloseTo(expected.meanCorrectProb(), within(tol));
        assertThat(actual.trigramNCorrect()).isEqualTo(expected.trigramNCorrect());
        assertThat(actual.trigramFracCorrect()).isCloseTo(expected.trigramFracCorrect(), within(tol));
        assertThat(actual.trigramAvgCorrectProb()).isCloseTo(expected.trigramAvgCorrectProb(), within(tol));
        assertThat(actual.nTrigrams()).isEqualTo(expected.nTrigrams());
    }

    @Test
    void evaluateWithoutHooksIsMetricsEvaluate() {
        HookedTransformer model = new HookedTransformer(AttributionTest.randomWeights(CFG, 1));
        TrigramDataset data = data();
        assertThat(Ablation.evaluate(model, data, List.of())).isEqualTo(Metrics.evaluate(model, data));
    }

    @Test
    void zeroAblatingTheMlpIsTheAttentionOnlyModel() {
        Weights w = AttributionTest.randomWeights(CFG, 2);
        Weights attnOnly = new Weights(CFG.withDMlp(0));
        for (ParamLayout.Param p : attnOnly.layout.params()) {
            System.arraycopy(w.data, w.offset(p.name()), attnOnly.data, p.offset(), p.size());
        }
        TrigramDataset data = data();
        Ablation a = Ablation.compute(new AnalysisContext(new HookedTransformer(w), data),
                List.of(new Ablation.Target("L0.mlp_out", "blocks.0.hook_mlp_out", -1)), List.of(Ablation.Mode.ZERO));
        EvalMetrics expected = Metrics.evaluate(new HookedTransformer(attnOnly), data);
        Map<String, Object> got = a.ablations().get(0).metrics();
        assertThat((double) got.get("loss")).isCloseTo(expected.loss(), within(1e-6));
        assertThat((double) got.get("loss_as_frac")).isCloseTo(expected.lossAsFrac(), within(1e-6));
        assertThat((int) got.get("trigram_n_correct")).isEqualTo(expected.trigramNCorrect());
        assertThat((double) got.get("trigram_avg_correct_prob"))
                .isCloseTo(expected.trigramAvgCorrectProb(), within(1e-6));
        assertThat(a.clean()).isEqualTo(JsonFields.of(Metrics.evaluate(new HookedTransformer(w), data)));
    }

    @Test
    void zeroAblatingTheOnlyHeadIsZeroingItsOutputWeights() {
        Weights w = AttributionTest.randomWeights(CFG, 3);
        Weights noHead = w.copy();
        ParamLayout.Param wo = noHead.layout.get("blocks.0.attn.W_O");
        java.util.Arrays.fill(noHead.data, wo.offset(), wo.offset() + wo.size(), 0f);
        TrigramDataset data = data();
        Ablation.Target head = Ablation.targets(CFG).get(0);
        assertThat(head).isEqualTo(new Ablation.Target("L0H0", "blocks.0.attn.hook_z", 0));
        HookedTransformer model = new HookedTransformer(w);
        EvalMetrics got = Ablation.evaluate(model, data, List.of(Ablation.hook(head, Ablation.Mode.ZERO, null, CFG)));
        assertSameMetrics(got, Metrics.evaluate(new HookedTransformer(noHead), data), 1e-6);
    }

    @Test
    void meanAblatingThePositionalEmbeddingUsesOneMeanOverBatchAndPositions() {
        // the dataset's seq_len is the model's n_ctx, so the mean of hook_pos_embed is the mean row of W_pos
        Weights w = AttributionTest.randomWeights(CFG, 4);
        Weights flatPos = w.copy();
        ParamLayout.Param pos = flatPos.layout.get("pos_embed.W_pos");
        int T = CFG.nCtx(), D = CFG.dModel();
        for (int d = 0; d < D; d++) {
            double m = 0;
            for (int t = 0; t < T; t++) {
                m += w.data[pos.offset() + t * D + d];
            }
            for (int t = 0; t < T; t++) {
                flatPos.data[pos.offset() + t * D + d] = (float) (m / T);
            }
        }
        TrigramDataset data = data();
        HookedTransformer model = new HookedTransformer(w);
        Ablation.Target target = new Ablation.Target("pos_embed", "hook_pos_embed", -1);
        Map<String, float[][]> means = Ablation.means(model, data, List.of(target));
        EvalMetrics got = Ablation.evaluate(model, data,
                List.of(Ablation.hook(target, Ablation.Mode.MEAN, means.get("hook_pos_embed"), CFG)));
        assertSameMetrics(got, Metrics.evaluate(new HookedTransformer(flatPos), data), 1e-5);
        // per position, the mean of the positional embedding is the positional embedding: nothing changes
        EvalMetrics same = Ablation.evaluate(model, data,
                List.of(Ablation.hook(target, Ablation.Mode.MEAN_PER_POSITION, means.get("hook_pos_embed"), CFG)));
        assertSameMetrics(same, Metrics.evaluate(model, data), 1e-6);
    }

    @Test
    void weightEditsGiveTheSameMetricsAsTheHooks() {
        for (ModelConfig cfg : List.of(CFG, new ModelConfig(9, 10, 12, 2, 2, 4, 8, true))) {
            HookedTransformer model = new HookedTransformer(AttributionTest.randomWeights(cfg, 6));
            TrigramDataset data = data();
            List<Ablation.Target> targets = Ablation.targets(cfg);
            Map<String, float[][]> means = Ablation.means(model, data, targets);
            for (Ablation.Target t : targets) {
                for (Ablation.Mode m : List.of(Ablation.Mode.ZERO, Ablation.Mode.MEAN)) {
                    float[][] mean = means.get(t.hook());
                    assertThat(Ablation.ablatedWeights(model.weights(), t, m, mean)).as("%s %s", t, m).isNotNull();
                    EvalMetrics viaWeights = Ablation.evaluate(model, data, t, m, mean);
                    EvalMetrics viaHook = Ablation.evaluate(model, data, List.of(Ablation.hook(t, m, mean, cfg)));
                    assertSameMetrics(viaWeights, viaHook, 1e-5);
                }
                assertThat(Ablation.ablatedWeights(model.weights(), t, Ablation.Mode.MEAN_PER_POSITION,
                        means.get(t.hook()))).isNull();
            }
        }
    }

    @Test
    void defaultAblationsCoverEveryHeadMlpAndPositionalEmbeddingInBothModes() throws Exception {
        ModelConfig cfg = new ModelConfig(9, 10, 12, 2, 2, 4, 8, true);
        TrigramDataset data = data();
        Ablation a = Ablation.compute(new AnalysisContext(new HookedTransformer(AttributionTest.randomWeights(cfg, 5)),
                data));
        assertThat(a.ablations()).extracting(x -> x.target() + "/" + x.mode()).containsExactly(
                "L0H0/zero", "L0H0/mean", "L0H1/zero", "L0H1/mean", "L0.mlp_out/zero", "L0.mlp_out/mean",
                "L1H0/zero", "L1H0/mean", "L1H1/zero", "L1H1/mean", "L1.mlp_out/zero", "L1.mlp_out/mean",
                "pos_embed/zero", "pos_embed/mean");
        for (Ablation.Ablated x : a.ablations()) {
            assertThat(x.lossDelta()).isCloseTo((double) x.metrics().get("loss") - (double) a.clean().get("loss"),
                    within(1e-12));
        }
        JsonNode json = new ObjectMapper().valueToTree(a);
        assertThat(json.fieldNames()).toIterable().containsExactly("mean_over", "clean", "ablations", "summary");
        assertThat(json.get("ablations").get(0).fieldNames()).toIterable().containsExactly("target", "hook", "head",
                "mode", "metrics", "loss_delta", "trigram_frac_correct_delta");
        assertThat(json.get("clean").has("trigram_frac_correct")).isTrue();
    }

    @Test
    void challengeModel() {
        HookedTransformer model = new HookedTransformer(Checkpoints.load(Fixtures.challengeModel()).weights());
        TrigramDataset data = TrigramDataset.generate(75, 50, 0.05, 40, 500);
        Ablation a = Ablation.compute(new AnalysisContext(model, data));
        assertThat((int) a.clean().get("trigram_n_correct")).isEqualTo(266);
        // measured (on 2500 sequences): zero-ablating the head leaves 27 of 277 trigrams, the MLP 50, the
        // positional embedding 206
        Ablation.Ablated head = a.ablations().get(0), mlp = a.ablations().get(2);
        assertThat(head.target() + "/" + head.mode()).isEqualTo("L0H0/zero");
        assertThat((int) head.metrics().get("trigram_n_correct")).isEqualTo(27);
        assertThat(mlp.target() + "/" + mlp.mode()).isEqualTo("L0.mlp_out/zero");
        assertThat((int) mlp.metrics().get("trigram_n_correct")).isEqualTo(50);
        assertThat(head.lossDelta()).isGreaterThan(10);
    }
}
