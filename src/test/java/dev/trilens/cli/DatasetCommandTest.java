package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.Fixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** dataset's three outputs (JSON on stdout, --out FILE, --show N) against PyTorch's draws in golden.json. */
class DatasetCommandTest extends CliTestBase {

    @TempDir
    Path tmp;

    @Test
    void jsonOnStdoutAndInAFileIsPyTorchsDataset() throws Exception {
        JsonNode golden = Fixtures.golden();
        assertThat(run("dataset", "--seed", "40", "--size", "2500")).as(err()).isZero();
        String printed = out();
        JsonNode ds = new ObjectMapper().readTree(printed);
        JsonNode config = ds.get("config");
        assertThat(config.get("d_vocab").intValue()).isEqualTo(75);
        assertThat(config.get("seq_len").intValue()).isEqualTo(50);
        assertThat(config.get("trigram_prob").doubleValue()).isEqualTo(0.05);
        assertThat(config.get("n_trigrams").intValue()).isEqualTo(277);
        assertThat(config.get("seed").intValue()).isEqualTo(40);
        assertThat(config.get("size").intValue()).isEqualTo(2500);
        assertThat(ds.get("trigrams")).isEqualTo(golden.get("trigrams_in_generation_order"));
        assertThat(ds.get("tokens")).hasSize(2500);
        JsonNode first = golden.get("first_sequences");
        assertThat(first.size()).isPositive();
        for (int s = 0; s < first.size(); s++) {
            assertThat(ds.get("tokens").get(s)).as("sequence %d", s).isEqualTo(first.get(s));
        }

        Path file = tmp.resolve("ds.json");
        assertThat(run("dataset", "--seed", "40", "--size", "2500", "--out", file.toString())).as(err()).isZero();
        assertThat(out()).as("--out writes the file instead of stdout").isEmpty();
        assertThat(Files.readString(file)).isEqualTo(printed);
    }

    @Test
    void headPrintsTheFirstSequencesWithForcedCompletionsStarred() throws Exception {
        JsonNode golden = Fixtures.golden();
        assertThat(run("dataset", "--size", "2500", "--show", "3")).as(err()).isZero();
        String[] lines = out().split("\n");
        assertThat(lines).hasSize(4);
        assertThat(lines[0]).isEqualTo("d_vocab=75 seq_len=50 seed=40 n_trigrams=277 size=2500");
        Map<Integer, Integer> completion = new HashMap<>();
        for (JsonNode t : golden.get("trigrams_in_generation_order")) {
            completion.put(t.get(0).intValue() * 75 + t.get(1).intValue(), t.get(2).intValue());
        }
        int starred = 0;
        for (int s = 0; s < 3; s++) {
            JsonNode seq = golden.get("first_sequences").get(s);
            StringBuilder want = new StringBuilder(String.format("%4d:", s));
            for (int t = 0; t < seq.size(); t++) {
                int tok = seq.get(t).intValue();
                want.append(' ').append(tok);
                // position t was forced when its two predecessors are a trigram's prefix
                if (t >= 2 && completion.get(seq.get(t - 2).intValue() * 75 + seq.get(t - 1).intValue()) != null) {
                    assertThat(completion.get(seq.get(t - 2).intValue() * 75 + seq.get(t - 1).intValue()))
                            .isEqualTo(tok);
                    want.append('*');
                    starred++;
                }
            }
            assertThat(lines[s + 1]).isEqualTo(want.toString());
        }
        // the check above covered at least one forced completion, not only unmarked tokens
        assertThat(starred).isPositive();
    }
}
