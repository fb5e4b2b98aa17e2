package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.Fixtures;
import dev.trilens.interp.TrigramExtractor;
import dev.trilens.interp.TrigramExtractorTestModels;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `trilens extract` through Main.execute. */
class ExtractCommandTest extends CliTestBase {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    private static List<String> keys(JsonNode n) {
        List<String> k = new ArrayList<>();
        n.fieldNames().forEachRemaining(k::add);
        return k;
    }

    @Test
    void jsonIsOneObjectWithTheDocumentedKeys() throws Exception {
        // a trilens checkpoint carries data.seed and data.trigram_prob, so the comparison comes without flags
        String model = TrigramExtractorTestModels.tinyCheckpoint().toString();
        assertThat(run("extract", "--model", model, "--json", "--top", "3")).isEqualTo(0);
        assertThat(err()).isEmpty();
        assertThat(out().strip()).doesNotContain("\n");
        JsonNode j = JSON.readTree(out());
        assertThat(keys(j)).containsExactlyElementsOf(ExtractCommand.JSON_KEYS);
        assertThat(j.get("trigrams")).hasSize(3);
        assertThat(j.get("n_extracted").intValue()).isGreaterThan(3);
        assertThat(keys(j.get("trigrams").get(0))).containsExactly("a", "b", "c", "confidence", "confidence_min",
                "attn_prev", "qk_advantage", "confidence_no_attn_prev", "confidence_full_attn_prev", "runner_up",
                "logit_margin", "margin_contributions", "decided_by", "explanation");
        assertThat(keys(j.get("trigrams").get(0).get("margin_contributions")))
                .containsExactlyElementsOf(TrigramExtractor.CONTRIBUTIONS);
        assertThat(keys(j.get("cut"))).containsExactly("value", "gap_low", "gap_high", "rule");
        assertThat(j.get("cut").get("rule").asText()).isEqualTo("widest_gap");
        assertThat(j.get("threshold").doubleValue()).isEqualTo(j.get("cut").get("value").doubleValue());
        assertThat(keys(j.get("bigram_cut"))).containsExactly("value", "gap_low", "gap_high", "rule");
        assertThat(j.get("bigram_defaults")).isNotEmpty();
        for (JsonNode d : j.get("bigram_defaults")) {
            assertThat(keys(d)).containsExactly("b", "c", "confidence");
            assertThat(d.get("confidence").doubleValue()).isGreaterThan(j.get("bigram_cut").get("value").doubleValue());
        }
        JsonNode ev = j.get("evaluation");
        assertThat(keys(ev)).containsExactly("seed", "trigram_prob", "vs_dataset", "vs_model", "vs_model_a_dependent",
                "vs_model_confident", "n_predicted_unconfident", "mean_prob_unconfident", "a_dependence_ratio",
                "n_argmax_correct", "n_a_dependent", "recall_vs_argmax_correct", "recall_vs_a_dependent",
                "n_argmax_correct_not_extracted", "n_not_extracted_bigram_defaults", "bigram_defaults_vs_dataset",
                "dataset_trigrams");
        assertThat(ev.get("dataset_trigrams")).hasSize(24);
        assertThat(keys(ev.get("dataset_trigrams").get(0))).containsExactly("a", "b", "c", "argmax_correct", "prob_c",
                "median_other_a", "a_dependent", "extracted", "bigram_default");
        assertThat(ev.get("seed").longValue()).isEqualTo(TrigramExtractorTestModels.TINY.dataSeed());
        assertThat(ev.get("vs_dataset").get("n_reference").intValue()).isEqualTo(24);
        assertThat(ev.get("vs_dataset").get("precision").doubleValue()).isGreaterThan(0.95);
        assertThat(j.get("config").get("d_vocab").intValue()).isEqualTo(16);

        // the table: one line per entry, with the circuit quantities named
        assertThat(run("extract", "--model", model, "--top", "2", "--background", "two_key", "--positions",
                "1,5,10")).isEqualTo(0);
        assertThat(out()).contains("vs dataset:", "precision", "decided_by", "3 query positions 1,5,10",
                "background two_key").contains("more (--top to list more)");
    }

    @Test
    void aCheckpointWithoutMetadataIsComparedWithTheChallengesDataset() throws Exception {
        Path pt = Fixtures.challengeModel();
        assertThat(run("extract", "--model", pt.toString(), "--json", "--top", "0", "--positions", "1")).isEqualTo(0);
        JsonNode j = JSON.readTree(out());
        // a .pt carries no metadata: the challenge's dataset (seed 40, trigram_prob 0.05), as evaluate uses
        assertThat(j.at("/evaluation/vs_dataset/n_reference").intValue()).isEqualTo(277);
        assertThat(j.at("/evaluation/vs_dataset/n_correct").intValue()).isEqualTo(221);
        assertThat(j.get("trigrams")).isEmpty();
        assertThat(j.get("n_extracted").intValue()).isEqualTo(221);
        // measured at position 1 alone: the widest gap runs from 0.029 to 0.943
        assertThat(j.at("/cut/gap_low").doubleValue()).isBetween(0.02, 0.1);
        assertThat(j.at("/cut/gap_high").doubleValue()).isBetween(0.9, 0.95);
        assertThat(j.get("bigram_defaults")).isNotEmpty();
        assertThat(run("extract", "--model", pt.toString(), "--seed", "40", "--top", "1", "--positions", "1"))
                .isEqualTo(0);
        assertThat(out()).contains("vs dataset:          precision 1.000  recall 0.798  (221 of 277)",
                "recall 0.831  (221 of 266): recall against every argmax-correct trigram",
                "recall 1.000  (221 of 221): recall against the argmax-correct trigrams whose prediction depends on a",
                "kept where P(c) > 0.4862 (the middle of the widest gap of the P(c) above 1/d_vocab: 0.02948 to "
                        + "0.9430)",
                "45 argmax-correct trigrams are not extracted",
                "bigram defaults vs the dataset's 275 distinct (b, c) pairs: precision 1.000");
    }

    @Test
    void theThresholdOverridesTheLabelFreeCut() throws Exception {
        String model = TrigramExtractorTestModels.tinyCheckpoint().toString();
        assertThat(run("extract", "--model", model, "--json", "--top", "0")).isEqualTo(0);
        JsonNode free = JSON.readTree(out());
        // a threshold inside the label-free gap keeps the same pairs; one below it keeps more
        double inGap = (free.at("/cut/gap_low").doubleValue() + 3 * free.at("/cut/gap_high").doubleValue()) / 4;
        assertThat(run("extract", "--model", model, "--json", "--top", "0", "--threshold", Double.toString(inGap)))
                .isEqualTo(0);
        JsonNode same = JSON.readTree(out());
        assertThat(same.at("/cut/rule").asText()).isEqualTo("threshold");
        assertThat(same.get("threshold").doubleValue()).isEqualTo(inGap);
        assertThat(same.get("n_extracted").intValue()).isEqualTo(free.get("n_extracted").intValue());
        assertThat(run("extract", "--model", model, "--json", "--top", "0", "--threshold", "0.2")).isEqualTo(0);
        assertThat(JSON.readTree(out()).get("n_extracted").intValue())
                .isGreaterThan(free.get("n_extracted").intValue());
        assertThat(run("extract", "--model", model, "--top", "0", "--threshold", "0.2")).isEqualTo(0);
        assertThat(out()).contains("kept where P(c) > 0.2 (a fixed threshold; the nearest P(c) on either side: ");
    }

    @Test
    void badFlagsGiveOneLineErrors() {
        String model = TrigramExtractorTestModels.tinyCheckpoint().toString();
        assertOneLineErrorOnly(2, "--top must be >= 0, got -1", "extract", "--model", model, "--top", "-1");
        assertOneLineErrorOnly(2, "--threshold must be > 0 and < 1, got 1.5", "extract", "--model", model,
                "--threshold", "1.5");
        assertOneLineErrorOnly(2, "--threshold must be > 0 and < 1, got NaN", "extract", "--model", model,
                "--threshold", "NaN");
        assertOneLineErrorOnly(2, "unknown --background 'both', expected random_context or two_key", "extract", "--model",
                model, "--background", "both");
        assertOneLineErrorOnly(2, "--positions", "extract", "--model", model, "--positions", "one");
        assertOneLineErrorOnly(2, "Missing required option: '--model=<model>'", "extract");
        assertOneLineErrorOnly(2, "Unknown option: '--bogus'", "extract", "--model", model, "--bogus");
        assertOneLineErrorOnly(1, "trilens: error: model file not found: " + tmp.resolve("nope.pt"), "extract",
                "--model", tmp.resolve("nope.pt").toString());
        assertOneLineErrorOnly(1, "trilens: error: query position 12 is outside [1, 11]", "extract", "--model", model,
                "--positions", "12");
        assertOneLineErrorOnly(1, "trilens: error: trigram_prob must be in [0, 1], got 2.0", "extract", "--model",
                model, "--trigram-prob", "2");
    }
}
