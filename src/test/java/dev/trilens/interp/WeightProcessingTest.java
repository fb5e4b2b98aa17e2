package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

class WeightProcessingTest {

    static final double TOL = 1e-4;

    static List<ModelConfig> configs() {
        return List.of(CircuitsTestModels.LN_2L2H, CircuitsTestModels.ARENA, CircuitsTestModels.ATTN_ONLY,
                CircuitsTestModels.ATTN_ONLY_NO_LN);
    }

    static double diff(Weights a, Weights b) {
        ModelConfig cfg = a.cfg;
        int B = 4, T = cfg.nCtx();
        return WeightProcessing.maxLogProbDiff(a, b, CircuitsTestModels.tokens(cfg, B, T, 21), B, T);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("configs")
    void eachStepLeavesLogProbsUnchanged(ModelConfig cfg) {
        Weights w = CircuitsTestModels.random(cfg, 17);
        List<UnaryOperator<Weights>> steps = List.of(x -> WeightProcessing.foldLn(x).weights(),
                x -> WeightProcessing.centerWritingWeights(x).weights(),
                x -> WeightProcessing.centerUnembed(x).weights(),
                x -> WeightProcessing.foldValueBiases(x).weights());
        for (UnaryOperator<Weights> step : steps) {
            assertThat(diff(w, step.apply(w))).isLessThan(TOL);
        }
        WeightProcessing all = WeightProcessing.process(w, CircuitsTestModels.tokens(cfg, 4, cfg.nCtx(), 22), 4,
                cfg.nCtx(), "test");
        assertThat(all.maxLogProbDiff()).isLessThan(TOL);
        assertThat(diff(w, all.weights())).isLessThan(TOL);
        assertThat(all.steps()).extracting(WeightProcessing.Step::name).containsExactly("fold_ln",
                "center_writing_weights", "center_unembed", "fold_value_biases");
        if (cfg.layerNorm()) {
            assertThat(all.applied()).containsExactly("fold_ln", "center_writing_weights", "center_unembed",
                    "fold_value_biases");
        } else {
            assertThat(all.applied()).containsExactly("center_unembed", "fold_value_biases");
            assertThat(all.skipped()).containsExactly("fold_ln", "center_writing_weights");
            assertThat(all.steps().get(0).reason()).contains("no LayerNorm");
            assertThat(all.summary()).anyMatch(s -> s.contains("center_writing_weights skipped"));
        }
        // the input is never modified
        assertThat(w.data).isEqualTo(CircuitsTestModels.random(cfg, 17).data);
    }

    @Test
    void processedWeightsHaveTheDocumentedForm() {
        ModelConfig cfg = CircuitsTestModels.LN_2L2H;
        Weights p = WeightProcessing.process(CircuitsTestModels.random(cfg, 5),
                CircuitsTestModels.tokens(cfg, 2, 8, 1), 2, 8, "test").weights();
        for (String ln : new String[] {"blocks.0.ln1", "blocks.1.ln2", "ln_final"}) {
            for (float v : p.copyOf(ln + ".w")) {
                assertThat(v).isEqualTo(1f);
            }
            for (float v : p.copyOf(ln + ".b")) {
                assertThat(v).isEqualTo(0f);
            }
        }
        for (float v : p.copyOf("blocks.1.attn.b_V")) {
            assertThat(v).isEqualTo(0f);
        }
        // rows of W_E / W_pos / W_out sum to 0 over d_model; W_U's rows over the vocabulary; W_Q's columns over d_model
        assertRowSumsZero(p.copyOf("embed.W_E"), cfg.dModel());
        assertRowSumsZero(p.copyOf("pos_embed.W_pos"), cfg.dModel());
        assertRowSumsZero(p.copyOf("blocks.0.mlp.W_out"), cfg.dModel());
        assertRowSumsZero(p.copyOf("blocks.1.attn.W_O"), cfg.dModel());
        assertRowSumsZero(p.copyOf("unembed.W_U"), cfg.dVocab());
        assertRowSumsZero(p.copyOf("unembed.b_U"), cfg.dVocab());
        float[] wq = p.copyOf("blocks.0.attn.W_Q"); // [H, D, Dh]
        for (int h = 0; h < cfg.nHeads(); h++) {
            for (int e = 0; e < cfg.dHead(); e++) {
                double s = 0;
                for (int d = 0; d < cfg.dModel(); d++) {
                    s += wq[(h * cfg.dModel() + d) * cfg.dHead() + e];
                }
                assertThat(s).isCloseTo(0, within(1e-5));
            }
        }
    }

    private static void assertRowSumsZero(float[] m, int n) {
        for (int r = 0; r < m.length / n; r++) {
            double s = 0;
            for (int i = 0; i < n; i++) {
                s += m[r * n + i];
            }
            assertThat(s).isCloseTo(0, within(1e-5));
        }
    }

    @Test
    void reportSerialisesWithoutTheWeights() {
        WeightProcessing wp = WeightProcessing.compute(new AnalysisContext(
                CircuitsTestModels.model(CircuitsTestModels.ARENA, 2), null));
        assertThat(wp.checkedOn()).contains("random tokens");
        JsonNode json = new ObjectMapper().valueToTree(wp);
        assertThat(json.fieldNames()).toIterable().containsExactly("steps", "applied", "skipped",
                "max_log_prob_diff", "checked_on", "summary");
        assertThat(json.get("steps").get(0).get("applied").asBoolean()).isFalse();
        assertThat(json.get("max_log_prob_diff").asDouble()).isLessThan(TOL);
    }

    @Test
    void challengeModel() {
        WeightProcessing wp = WeightProcessing.compute(new AnalysisContext(CircuitsTestModels.challenge(),
                CircuitsTestModels.challengeData()));
        assertThat(wp.applied()).containsExactly("center_unembed", "fold_value_biases");
        assertThat(wp.maxLogProbDiff()).isLessThan(TOL);
    }
}
