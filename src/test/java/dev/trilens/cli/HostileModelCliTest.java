package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.trilens.io.Safetensors;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad model files reach the user as one line and exit 1, whichever command loads them. */
class HostileModelCliTest extends CliTestBase {

    private static final ModelConfig SMALL = new ModelConfig(12, 10, 16, 1, 1, 8, 16, false);

    @TempDir
    Path dir;

    @Test
    void nonFiniteWeightsAreRefusedUnlessAllowed() {
        Weights w = Weights.init(SMALL, 3);
        w.data[w.offset("pos_embed.W_pos") + 17] = Float.NaN;
        Path st = dir.resolve("nan.safetensors");
        Safetensors.write(w, Map.of(), st);
        String expected = "parameter 'pos_embed.W_pos' holds NaN at index [1, 1] (the only non-finite value): "
                + "expected finite weights; pass --allow-non-finite to load it anyway";
        for (String cmd : new String[] {"evaluate", "extract"}) {
            assertOneLineErrorOnly(1, expected, cmd, "--model", st.toString());
        }
        assertOneLineErrorOnly(1, expected, "analyze", "--model", st.toString(), "--out", dir.resolve("a").toString());
        assertThat(dir.resolve("a")).doesNotExist();
        assertOneLineErrorOnly(1, expected, "patch", "--model", st.toString(), "--seq", "0", "--pos", "5",
                "--attend", "2");
        assertThat(run("evaluate", "--model", st.toString(), "--size", "20", "--allow-non-finite")).isZero();
        assertThat(out()).contains("trigram_n_correct");
    }

    @Test
    @org.junit.jupiter.api.Timeout(300) // a NaN threshold search once looped forever here: fail rather than hang
    void everyAnalysisEndsOnAModelWithOneNaNWeight() {
        Weights w = Weights.init(SMALL, 3);
        w.data[w.offset("blocks.0.attn.W_K") + 5] = Float.NaN;
        Path st = dir.resolve("nan-k.safetensors");
        Safetensors.write(w, Map.of(), st);
        Path out = dir.resolve("nan-analysis");
        assertThat(run("analyze", "--model", st.toString(), "--size", "20", "--allow-non-finite", "--out",
                out.toString())).as(err()).isZero();
        assertThat(out.resolve("analysis.json")).exists();
        assertThat(out.resolve("report.html")).exists();
    }

    @Test
    void hostilePicklesAndFileTextGiveOneEscapedLine() throws IOException {
        // {[]: 1}: a list as a dict key
        byte[] pkl = {(byte) 0x80, 2, '}', ']', 'K', 1, 's', '.'};
        Path pt = dir.resolve("listkey.pt");
        try (OutputStream out = Files.newOutputStream(pt); ZipOutputStream zip = new ZipOutputStream(out)) {
            zip.putNextEntry(new ZipEntry("a/data.pkl"));
            zip.write(pkl);
        }
        assertOneLineErrorOnly(1, "trilens: error: checkpoint " + pt + ": data.pkl is not a valid state dict pickle "
                + "(a dict key is a list, expected a string", "evaluate", "--model", pt.toString());

        // a header whose only tensor's name and dtype hold a newline and terminal escapes
        String header = "{\"\\n\\u001b]0;pwned\\u0007\": {\"dtype\": \"F32\\u001b[2J\", \"shape\": [1], "
                + "\"data_offsets\": [0, 4]}}";
        byte[] h = header.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        Path st = dir.resolve("escape.safetensors");
        Files.write(st, java.nio.ByteBuffer.allocate(8 + h.length + 4).order(java.nio.ByteOrder.LITTLE_ENDIAN)
                .putLong(h.length).put(h).array());
        assertOneLineErrorOnly(1, "safetensors file " + st + ": tensor '\\x0a\\x1b]0;pwned\\x07' has dtype "
                + "F32\\x1b[2J, expected F32", "evaluate", "--model", st.toString());
        assertThat(err()).doesNotContain("\u001b", "\u0007");
    }
}
