package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Weights;
import dev.trilens.train.Metrics;
import dev.trilens.train.TrainConfig;
import dev.trilens.train.Trainer;
import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The explanation and the worklog's verdicts on models where their claims hold and where they fail: a tiny trained
 * model (whose head attends to the previous token almost everywhere, so the worklog's set test fails), the same
 * model at its initial weights (which has learned nothing) and an attention-only model. The challenge model's are
 * in ExplanationOnTheChallengeModelTest, apart from the three analyses here, which mutation testing would otherwise
 * rerun for it.
 */
class ExplanationTest {
    private static TrainConfig cfg;
    private static TrigramDataset data;
    private static Weights init;
    private static JsonNode trained;
    private static JsonNode untrained;
    private static JsonNode attnOnly;

    @BeforeAll
    static void analyse() throws IOException {
        Trainer tiny = TrigramExtractorTestModels.tiny();
        cfg = tiny.config();
        data = TrigramDataset.generate(cfg.dVocab(), cfg.seqLen(), cfg.trigramProb(), cfg.dataSeed(), 300);
        init = Weights.init(cfg.modelConfig(), cfg.initSeed());
        Trainer attn = Trainer.start(cfg.withDMlp(0), Files.createTempDirectory("trilens-explain-attn"));
        attn.run(new Trainer.Listener() {
        });
        var attnMetrics = Metrics.evaluate(new HookedTransformer(attn.weights()), data);
        trained = analyse(tiny.weights(), new Worklog.Inputs(init, attnMetrics, "attn.safetensors"));
        untrained = analyse(init, new Worklog.Inputs(init, null, null));
        attnOnly = analyse(attn.weights(), Worklog.Inputs.none());
    }

    private static JsonNode analyse(Weights w, Worklog.Inputs in) {
        Analysis a = Analysis.run(new AnalysisContext(new HookedTransformer(w), data), in, s -> { });
        return Analysis.mapper().valueToTree(a.toJson("m", w.cfg, data));
    }

    static JsonNode claim(JsonNode json, String topic) {
        for (JsonNode c : json.path("explanation")) {
            if (c.path("topic").asText().equals(topic)) {
                return c;
            }
        }
        throw new AssertionError("no claim on " + topic + " in " + json.path("explanation"));
    }

    static JsonNode answer(JsonNode json, String id) {
        for (JsonNode c : json.path("worklog")) {
            if (c.path("id").asText().equals(id)) {
                return c;
            }
        }
        throw new AssertionError("no answer " + id + " in " + json.path("worklog"));
    }

    private static String f2(double v) {
        return String.format(Locale.ROOT, "%.2f", v);
    }

    @Test
    void everyClaimAndAnswerHasTextEvidenceAndASection() {
        for (JsonNode json : List.of(trained, untrained, attnOnly)) {
            assertThat(json.path("explanation").size()).isGreaterThanOrEqualTo(5);
            for (JsonNode c : json.path("explanation")) {
                assertThat(c.path("text").asText()).isNotBlank();
                assertThat(c.path("evidence").size()).as(c.toString()).isPositive();
                assertThat(c.path("section").asText()).matches("[a-z-]+");
            }
            List<String> ids = new ArrayList<>();
            json.path("worklog").forEach(a -> ids.add(a.path("id").asText()));
            assertThat(ids).containsExactly("layer_norm", "mlp_needed", "set_test", "final_position", "qk_nature");
            for (JsonNode a : json.path("worklog")) {
                assertThat(a.path("question").asText()).contains("?");
                assertThat(a.path("verdict").asText()).isNotBlank();
                assertThat(a.path("evidence").size()).isPositive();
            }
            assertThat(json.path("glossary").size()).isGreaterThanOrEqualTo(5);
        }
    }

    @Test
    void theSameCodeSaysSomethingElseOnAnotherModel() {
        // the tiny model's head attends to the previous token at most positions, learned prefix or not
        JsonNode att = claim(trained, "attention");
        double elsewhere = att.at("/evidence/mean_attention_to_previous_elsewhere").asDouble();
        assertThat(elsewhere).isGreaterThan(Explanation.ATTENDS / 2);
        assertThat(att.path("text").asText()).startsWith("Head L0H0 does not single out learned prefixes")
                .contains(f2(elsewhere));
        // the untrained model has learned no prefix
        assertThat(claim(untrained, "attention").path("text").asText()).contains("No learned prefix occurs");
        assertThat(claim(untrained, "qk").path("text").asText()).contains("the model has learned none of them");
        assertThat(untrained.path("explanation").findValuesAsText("topic")).doesNotContain("causal");
        assertThat(claim(untrained, "necessity").path("text").asText()).contains("too few to tell");
        // the attention-only model has no MLP to ablate
        assertThat(claim(attnOnly, "necessity").path("text").asText()).startsWith("The model has no MLP");
        assertThat(claim(attnOnly, "readout").path("text").asText()).doesNotContain("the MLP adds");
    }

    @Test
    void theWorklogsSetTestFailsWhereTheNumbersSaySo() {
        JsonNode set = answer(trained, "set_test");
        JsonNode ev = set.path("evidence");
        assertThat(ev.path("equal_to_predicted").asBoolean()).isFalse();
        assertThat(set.path("verdict").asText()).startsWith(String.format(Locale.ROOT,
                "No: the sets differ: %,d vs %,d positions", ev.path("n_attending").asInt(),
                ev.path("n_predicted").asInt())).contains("not specific to trigrams");
        assertThat(ev.path("n_attending").asInt()).isEqualTo(
                trained.at("/attention/heads/0/vs_correct_prob/size_a").asInt());
    }

    @Test
    void theFinalPositionIsJudgedAgainstItsInitialValue() {
        // the tiny run trained rows 0..n-2 and only decayed the last: its initial value proves it
        JsonNode fin = answer(trained, "final_position");
        assertThat(fin.at("/evidence/cosine_with_initial").asDouble()).isGreaterThan(Worklog.UNTOUCHED_COSINE);
        assertThat(fin.at("/evidence/mean_cosine_with_initial_trained_rows").asDouble())
                .isLessThan(Worklog.UNTOUCHED_COSINE);
        assertThat(fin.path("verdict").asText()).startsWith("Yes, the worklog's guess holds")
                .contains("only weight decay has touched it");
        // at the init nothing has moved, so nothing can be told apart
        assertThat(answer(untrained, "final_position").path("verdict").asText()).startsWith("Cannot tell");
    }

    @Test
    void theMlpQuestionUsesTheAttentionOnlyModelWhenGiven() {
        JsonNode mlp = answer(trained, "mlp_needed");
        int attnOnlyCorrect = mlp.at("/evidence/attn_only_trigram_n_correct").asInt();
        assertThat(attnOnlyCorrect).isEqualTo(attnOnly.at("/metrics/trigram_n_correct").asInt());
        assertThat(mlp.path("verdict").asText()).contains("The attention-only model attn.safetensors gets "
                + attnOnlyCorrect + " of " + data.nTrigrams() + " right");
        assertThat(answer(attnOnly, "mlp_needed").path("verdict").asText()).startsWith("This model has no MLP");
        assertThat(answer(untrained, "mlp_needed").path("verdict").asText()).startsWith("Cannot tell");
    }

    @Test
    void layerNormAnswerFollowsTheConfig() {
        assertThat(answer(trained, "layer_norm").path("verdict").asText()).startsWith("No: the model has no LayerNorm");
        assertThat(answer(trained, "layer_norm").at("/evidence/layer_norm").asBoolean()).isFalse();
    }
}
