package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.Fixtures;
import dev.trilens.io.Safetensors;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `trilens predict` through Main.execute. */
class PredictCommandTest extends CliTestBase {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    /** A small random model with 2 heads: vocabulary 12, context 8. */
    private Path smallModel() {
        Path p = tmp.resolve("small.safetensors");
        Safetensors.write(Weights.init(new ModelConfig(12, 8, 16, 1, 2, 8, 8, false), 1), Map.of(), p);
        return p;
    }

    @Test
    void badSequencesAreOneLineErrorsNamingTheItem() {
        String m = smallModel().toString();
        assertOneLineErrorOnly(1, "trilens: error: token 12 at position 2 is outside the vocabulary 0..11",
                "predict", "--model", m, "--tokens", "1 2 12");
        assertOneLineErrorOnly(1, "token 3 of the sequence, 'seven', is not a whole number; expected token ids "
                + "0..11", "predict", "--model", m, "--tokens", "1,2,seven");
        assertOneLineErrorOnly(1, "the token sequence has 9 tokens, more than the model's n_ctx of 8", "predict",
                "--model", m, "--tokens", "1 2 3 4 5 6 7 8 9");
        assertOneLineErrorOnly(1, "the token sequence is empty; expected 1..8 token ids", "predict", "--model", m,
                "--tokens", "  ");
        assertOneLineErrorOnly(2, "give the sequence with exactly one of --tokens", "predict", "--model", m);
        assertOneLineErrorOnly(2, "give the sequence with exactly one of --tokens", "predict", "--model", m,
                "--tokens", "1", "--tokens-file", "x");
        assertOneLineErrorOnly(2, "--top must be >= 1, got 0", "predict", "--model", m, "--tokens", "1", "--top",
                "0");
        assertOneLineErrorOnly(2, "--top 13 is more than the model's 12 tokens", "predict", "--model", m,
                "--tokens", "1", "--top", "13");
        assertOneLineErrorOnly(1, "--tokens-file " + tmp.resolve("none.txt") + ": no such file", "predict",
                "--model", m, "--tokens-file", tmp.resolve("none.txt").toString());
    }

    @Test
    void jsonHasEveryPositionFromAFileOrStdin() throws Exception {
        String m = smallModel().toString();
        Path f = tmp.resolve("seq.txt");
        Files.writeString(f, "[3, 4, 5,\n 6]\n");
        assertThat(run("predict", "--model", m, "--tokens-file", f.toString(), "--json", "--top", "2")).isZero();
        String fromFile = out();
        JsonNode j = JSON.readTree(fromFile);
        assertThat(j.fieldNames()).toIterable().containsExactly("tokens", "positions");
        assertThat(j.get("tokens").toString()).isEqualTo("[3,4,5,6]");
        assertThat(j.get("positions").size()).isEqualTo(4);
        JsonNode p1 = j.get("positions").get(1);
        assertThat(p1.fieldNames()).toIterable().containsExactly("pos", "token", "top", "next_token", "next_prob",
                "prev_attention", "attention", "rule");
        assertThat(p1.get("pos").asInt()).isEqualTo(1);
        assertThat(p1.get("token").asInt()).isEqualTo(4);
        assertThat(p1.get("top").size()).isEqualTo(2);
        assertThat(p1.get("top").get(0).get("prob").asDouble())
                .isGreaterThanOrEqualTo(p1.get("top").get(1).get("prob").asDouble());
        assertThat(p1.get("attention").size()).isEqualTo(2); // two heads
        assertThat(p1.get("attention").get(1).get("head").asText()).isEqualTo("L0H1");
        assertThat(p1.get("attention").get(0).get("row").size()).isEqualTo(2);
        double prevMax = Math.max(p1.get("attention").get(0).get("prev").asDouble(),
                p1.get("attention").get(1).get("prev").asDouble());
        assertThat(p1.get("prev_attention").asDouble()).isEqualTo(prevMax);
        assertThat(j.get("positions").get(3).get("next_token").isNull()).isTrue();

        InputStream old = System.in;
        try {
            System.setIn(new ByteArrayInputStream("3 4 5 6".getBytes(StandardCharsets.UTF_8)));
            assertThat(run("predict", "--model", m, "--tokens", "-", "--json", "--top", "2")).isZero();
        } finally {
            System.setIn(old);
        }
        assertThat(out()).isEqualTo(fromFile);
    }

    @Test
    void challengeModelCompletesALearnedTrigram() throws Exception {
        String m = Fixtures.challengeModel().toString();
        assertThat(run("predict", "--model", m, "--tokens", "35 36 28 7 0 44 53 9", "--json")).isZero();
        JsonNode p = JSON.readTree(out()).get("positions");
        assertThat(p.get(1).get("rule").toString()).isEqualTo("{\"a\":35,\"b\":36,\"c\":28}");
        assertThat(p.get(1).get("top").get(0).get("token").asInt()).isEqualTo(28);
        assertThat(p.get(1).get("top").get(0).get("prob").asDouble()).isGreaterThan(0.5);
        assertThat(p.get(1).get("prev_attention").asDouble()).isGreaterThan(0.5);
        assertThat(p.get(2).get("rule").isNull()).isTrue();
        assertThat(run("predict", "--model", m, "--tokens", "35 36 28 7 0 44 53 9")).isZero();
        assertThat(out()).containsPattern("\\n +1 +36 +28 1\\.000 .*\\(35, 36\\) -> 28\\n")
                .contains("the rule fires at 2 of 8 positions; its c is the top prediction at 2 of them");
    }
}
