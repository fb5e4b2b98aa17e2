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
        assertThat(root.get("patching").get("query_pos").asInt()).isEqualTo(21);
        assertThat(root.get("patching").get("new_key_pos").asInt()).isEqualTo(15);
    }

    @Test
    void badInputsAreOneLineErrors() {
        Result missing = runCaptured("analyze", "--model", tmp.resolve("nope.pt").toString());
        assertThat(missing.code()).isNotZero();
        assertThat(missing.err().strip()).doesNotContain("\n").contains("model file not found");
        Result threshold = runCaptured("analyze", "--model", "x.pt", "--threshold", "1.5");
        assertThat(threshold.code()).isEqualTo(2);
        assertThat(threshold.err().strip()).doesNotContain("\n").contains("--threshold");
    }
}
