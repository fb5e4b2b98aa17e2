package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.Fixtures;
import dev.trilens.io.Safetensors;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AnalyzeCommandTest extends CliTestBase {
    static final List<String> SECTIONS = List.of("metrics", "predictions", "attention", "circuits", "attribution",
            "ablation", "patching", "extraction", "causal_validation", "failure_modes");

    @TempDir
    Path tmp;

    private record Result(int code, String out, String err) {
    }

    private Result runCaptured(String... args) {
        int code = run(args);
        return new Result(code, out(), err());
    }

    /** Strict JSON (no NaN or Infinity tokens) with every section, computed or saying why not. */
    private static JsonNode readAnalysis(Path dir) throws Exception {
        JsonNode root = new ObjectMapper().readTree(dir.resolve("analysis.json").toFile());
        assertThat(root.get("model").get("n_params").asInt()).isPositive();
        for (String s : SECTIONS) {
            assertThat(root.has(s)).as(s).isTrue();
        }
        return root;
    }

    @Test
    void analyzesModelsOfOtherShapes() throws Exception {
        for (ModelConfig cfg : List.of(new ModelConfig(13, 12, 16, 1, 2, 8, 0, true),
                new ModelConfig(11, 24, 16, 2, 1, 8, 12, false))) {
            Path model = tmp.resolve("m" + cfg.hashCode() + ".safetensors");
            Safetensors.write(Weights.init(cfg, 3), Map.of(), model);
            Path dir = tmp.resolve("out" + cfg.hashCode());
            Result r = runCaptured("analyze", "--model", model.toString(), "--size", "40", "--out", dir.toString());
            assertThat(r.code()).as(r.err()).isZero();
            JsonNode root = readAnalysis(dir);
            assertThat(root.get("dataset").get("d_vocab").asInt()).isEqualTo(cfg.dVocab());
            assertThat(root.get("predictions").get("correct_probs")).hasSize(40);
            assertThat(r.out()).contains("[attention]").contains("analysis written to");
        }
    }

    /** --json: one object on stdout, naming the files written and carrying what is in them; progress on stderr. */
    @Test
    void jsonIsOneObjectForScripts() throws Exception {
        ModelConfig cfg = new ModelConfig(11, 24, 16, 1, 1, 8, 12, false);
        Path model = tmp.resolve("small.safetensors");
        Safetensors.write(Weights.init(cfg, 5), Map.of(), model);
        Path dir = tmp.resolve("json-out");
        Result r = runCaptured("analyze", "--model", model.toString(), "--size", "30", "--out", dir.toString(),
                "--json");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out().strip()).doesNotContain("\n");
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertThat(Path.of(j.get("analysis").asText())).isEqualTo(dir.resolve("analysis.json")).isRegularFile();
        assertThat(Path.of(j.get("report").asText())).isRegularFile();
        JsonNode written = readAnalysis(dir);
        assertThat(j.get("metrics")).isEqualTo(written.get("metrics"));
        assertThat(j.get("dataset")).isEqualTo(written.get("dataset"));
        assertThat(j.get("explanation")).hasSize(written.get("explanation").size());
        assertThat(j.get("explanation").get(0).asText()).isEqualTo(written.at("/explanation/0/text").asText());
        assertThat(r.err()).contains("analyze: metrics ...");
    }

    @Test
    void explainsTheChallengeModel() throws Exception {
        Path model = Fixtures.challengeModel();
        Path dir = tmp.resolve("challenge");
        Result r = runCaptured("analyze", "--model", model.toString(), "--out", dir.toString());
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode root = readAnalysis(dir);
        for (String s : SECTIONS) {
            assertThat(root.get(s).has("error")).as(s + " computed").isFalse();
        }
        assertThat(root.get("metrics").get("trigram_n_correct").asInt()).isEqualTo(266);
        // the worklog's check holds for the published model at 0.2, and the report says so
        assertThat(r.out()).contains("the sets are equal: 4519 positions");
        // the explanation and the worklog's answers come first, on the terminal as in analysis.json
        assertThat(r.out().indexOf("[explanation]")).isPositive().isLessThan(r.out().indexOf("[worklog]"));
        assertThat(r.out().indexOf("[worklog]")).isLessThan(r.out().indexOf("[metrics]"));
        assertThat(r.out()).contains("At the second token b of a pair, head L0H0 attends to the previous token a");
        assertThat(root.get("explanation").size()).isGreaterThanOrEqualTo(5);
        assertThat(root.get("worklog")).hasSize(5);
        assertThat(root.get("glossary").size()).isPositive();
        assertThat(root.get("patching").get("query_pos").asInt()).isEqualTo(21);
        assertThat(root.get("patching").get("new_key_pos").asInt()).isEqualTo(15);
    }

    @Test
    void anAttentionOnlyModelAnswersTheMlpQuestion() throws Exception {
        ModelConfig withMlp = new ModelConfig(11, 12, 16, 1, 1, 8, 12, false);
        ModelConfig attnOnly = new ModelConfig(11, 12, 16, 1, 1, 8, 0, false);
        Path model = tmp.resolve("mlp.safetensors"), other = tmp.resolve("attn.safetensors");
        Safetensors.write(Weights.init(withMlp, 1), Map.of(), model);
        Safetensors.write(Weights.init(attnOnly, 2), Map.of(), other);
        Path dir = tmp.resolve("with-attn-only");
        Result r = runCaptured("analyze", "--model", model.toString(), "--attn-only-model", other.toString(),
                "--size", "40", "--out", dir.toString());
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode mlp = readAnalysis(dir).at("/worklog/1");
        assertThat(mlp.path("id").asText()).isEqualTo("mlp_needed");
        assertThat(mlp.at("/evidence/attn_only_trigram_n_correct").isInt()).isTrue();
        assertThat(mlp.path("verdict").asText()).contains("The attention-only model " + other);

        // the other way round: a model with an MLP is not an attention-only model
        Result wrong = runCaptured("analyze", "--model", other.toString(), "--attn-only-model", model.toString(),
                "--size", "40", "--out", tmp.resolve("x").toString());
        assertThat(wrong.code()).isEqualTo(1);
        assertThat(wrong.err().strip()).doesNotContain("\n").contains("has an MLP (d_mlp 12)")
                .contains("expected an attention-only model");
        Path bigger = tmp.resolve("bigger.safetensors");
        Safetensors.write(Weights.init(new ModelConfig(13, 12, 16, 1, 1, 8, 0, false), 2), Map.of(), bigger);
        Result shape = runCaptured("analyze", "--model", model.toString(), "--attn-only-model", bigger.toString(),
                "--size", "40", "--out", tmp.resolve("y").toString());
        assertThat(shape.code()).isEqualTo(1);
        assertThat(shape.err().strip()).doesNotContain("\n").contains("d_vocab 13").contains("expected 11");
    }

    @Test
    void aSizeTooLargeForOneBatchIsRefusedBeforeAnythingIsWritten() {
        Path model = Fixtures.challengeModel();
        Path dir = tmp.resolve("big");
        Result r = runCaptured("analyze", "--model", model.toString(), "--size", "10000000", "--out", dir.toString());
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.err().strip()).doesNotContain("\n").contains("--size 10000000 is too large for analyze")
                .contains("evaluate takes any size");
        assertThat(dir).doesNotExist();
    }

    @Test
    void badInputsAreOneLineErrors() {
        Result missing = runCaptured("analyze", "--model", tmp.resolve("nope.pt").toString());
        assertThat(missing.code()).isNotZero();
        assertThat(missing.err().strip()).doesNotContain("\n").contains("model file not found");
        Result threshold = runCaptured("analyze", "--model", "x.pt", "--attention-threshold", "1.5");
        assertThat(threshold.code()).isEqualTo(2);
        assertThat(threshold.err().strip()).doesNotContain("\n").contains("--attention-threshold");
    }
}
