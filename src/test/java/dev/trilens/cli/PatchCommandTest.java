package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.Fixtures;
import dev.trilens.io.Safetensors;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `trilens patch` through Main.execute. */
class PatchCommandTest extends CliTestBase {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    /** A random model of the challenge's shape (2 heads, so --head can be checked both ways). */
    private Path randomModel() {
        Path p = tmp.resolve("random.safetensors");
        Safetensors.write(Weights.init(new ModelConfig(75, 50, 32, 1, 2, 16, 20, false), 1), Map.of(), p);
        return p;
    }

    @Test
    void badPositionsAndFlagsAreOneLineErrors() {
        String m = randomModel().toString();
        assertOneLineErrorOnly(2, "--attend 22 is after --pos 21: a position can only attend itself and earlier "
                + "positions (0..21)", "patch", "--model", m, "--seq", "0", "--pos", "21", "--attend", "22");
        assertOneLineErrorOnly(2, "--pos 50 is outside the sequence: the model's sequences have 50 positions (0..49)",
                "patch", "--model", m, "--seq", "0", "--pos", "50", "--attend", "3");
        assertOneLineErrorOnly(2, "--seq 2500 is outside the evaluation batch of --size 2500 sequences (0..2499)",
                "patch", "--model", m, "--seq", "2500", "--pos", "5", "--attend", "3");
        assertOneLineErrorOnly(2, "--seq 10 is outside the evaluation batch of --size 10 sequences",
                "patch", "--model", m, "--seq", "10", "--pos", "5", "--attend", "3", "--size", "10");
        assertOneLineErrorOnly(2, "--seq must be >= 0, got -1", "patch", "--model", m, "--seq", "-1", "--pos", "5",
                "--attend", "3");
        assertOneLineErrorOnly(2, "--pos must be >= 0, got -2", "patch", "--model", m, "--seq", "0", "--pos", "-2",
                "--attend", "0");
        assertOneLineErrorOnly(2, "--attend must be >= 0, got -1", "patch", "--model", m, "--seq", "0", "--pos", "2",
                "--attend", "-1");
        assertOneLineErrorOnly(2, "--head 2 is out of range: the model has 2 head(s) (0..1)", "patch", "--model", m,
                "--seq", "0", "--pos", "5", "--attend", "3", "--head", "2");
        assertOneLineErrorOnly(2, "--layer 1 is out of range: the model has 1 layer(s) (0..0)", "patch", "--model", m,
                "--seq", "0", "--pos", "5", "--attend", "3", "--layer", "1");
        assertOneLineErrorOnly(2, "Missing required option: '--attend", "patch", "--model", m, "--seq", "0", "--pos", "5");
        assertOneLineErrorOnly(2, "'x' is not an int", "patch", "--model", m, "--seq", "x", "--pos", "5", "--attend", "1");
        assertOneLineErrorOnly(1, "trilens: error:", "patch", "--model", tmp.resolve("missing.pt").toString(), "--seq",
                "0", "--pos", "5", "--attend", "3");
    }

    @Test
    void jsonIsOneObjectWithTheSwap() throws Exception {
        String m = randomModel().toString();
        assertThat(run("patch", "--model", m, "--seq", "3", "--pos", "10", "--attend", "4", "--head", "1",
                "--size", "20", "--json")).isZero();
        assertThat(out().strip()).doesNotContain("\n");
        JsonNode j = JSON.readTree(out());
        assertThat(j.fieldNames()).toIterable().startsWith("model", "sequence", "seed", "trigram_prob", "size",
                "tokens", "query_pos", "new_key_pos", "layer", "head").contains("trigram_before", "trigram_after",
                "before", "after");
        assertThat(j.get("sequence").asInt()).isEqualTo(3);
        assertThat(j.get("head").asInt()).isEqualTo(1);
        assertThat(j.get("layer").asInt()).isEqualTo(-1);
        assertThat(j.get("tokens").size()).isEqualTo(50);
        assertThat(j.get("before").get("rank").asInt()).isEqualTo(1);
        assertThat(j.get("attention_to_new_key_before").get(0).size()).isEqualTo(2);
    }

    @Test
    void challengeModelsPublishedExample() throws Exception {
        String m = Fixtures.challengeModel().toString();
        assertThat(run("patch", "--model", m, "--seq", "0", "--pos", "21", "--attend", "15")).isZero();
        String text = out();
        assertThat(text).contains("14:62 <15:22> 16:19 17:7 18:38 19:50 20:70 [21:8] (22:18)")
                .contains("before     top-1 token 62  p=0.0148")
                .contains("after      top-1 token 38  p=1.0000")
                .contains("(22, 8) starts the dataset's trigram -> 38");
        assertThat(run("patch", "--model", m, "--seq", "0", "--pos", "21", "--attend", "15", "--json")).isZero();
        JsonNode j = JSON.readTree(out());
        assertThat(j.get("after").get("token").asInt()).isEqualTo(38);
        assertThat(j.get("before").get("token").asInt()).isEqualTo(62);
        assertThat(j.get("trigram_after").asInt()).isEqualTo(38);
        assertThat(j.get("trigram_before").asInt()).isEqualTo(-1);
    }

    @Test
    void windowShowsBothEndsWhenTheNewKeyIsFarBack() {
        int[] t = new int[30];
        for (int i = 0; i < 30; i++) {
            t[i] = 100 + i;
        }
        assertThat(PatchCommand.window(t, 20, 3)).isEqualTo("2:102 <3:103> 4:104 ... 15:115 16:116 17:117 18:118 "
                + "19:119 [20:120] (21:121)");
        assertThat(PatchCommand.window(t, 20, 14)).isEqualTo("13:113 <14:114> 15:115 16:116 17:117 18:118 19:119 "
                + "[20:120] (21:121)");
        assertThat(PatchCommand.window(t, 29, 29)).isEqualTo("24:124 25:125 26:126 27:127 28:128 [<29:129>]");
        assertThat(PatchCommand.window(t, 1, 0)).isEqualTo("<0:100> [1:101] (2:102)");
    }
}
