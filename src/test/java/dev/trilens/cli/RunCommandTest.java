package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TorchPython;
import dev.trilens.train.TrainConfig;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code run --preset quick --export-pt} end to end: what it prints and writes, that its eval.json is what
 * {@code evaluate} reports on the model it wrote, and that those numbers are PyTorch's on the exported model.pt (a
 * model trilens trained; EvaluateCommandTest does the same on the published model, which it did not).
 */
class RunCommandTest extends CliTestBase {

    @TempDir
    Path tmp;

    @Test
    void quickPresetTrainsEvaluatesAnalysesAndWritesItsFolder() throws Exception {
        Path dir = tmp.resolve("quick");
        assertThat(run("run", "--preset", "quick", "--export-pt", "--snapshot-every", "10", "--out", dir.toString()))
                .as(err()).isZero();
        String printed = out();
        TrainConfig cfg = TrainConfig.quick();
        assertThat(printed).startsWith("training into " + dir + "\n" + cfg.describe() + "\n");
        for (int e = 1; e <= cfg.epochs(); e++) {
            assertThat(printed).contains(String.format("epoch %2d/%d  train_loss ", e, cfg.epochs()));
        }
        for (String f : List.of("model.safetensors", "best.safetensors", "model.pt", "metrics.jsonl",
                "train_state.safetensors", "eval.json", "dynamics.json", "analysis.json")) {
            assertThat(dir.resolve(f)).as(f).isNotEmptyFile();
            assertThat(printed).as("the folder listing names %s", f).containsPattern("(?m)^  " + f.replace(".", "\\.")
                    + " ");
        }
        assertThat(dir.resolve("report.html")).isNotEmptyFile();
        // --snapshot-every: the snapshots, their dynamics, and the report's section on them
        assertThat(dev.trilens.train.Trainer.snapshots(dir).keySet()).containsExactly(0, 10, 20, 30);
        assertThat(printed).containsPattern("(?m)^  snapshots/ ");
        String page = Files.readString(dir.resolve("report.html"));
        JsonNode embedded = new ObjectMapper().readTree(page.substring(page.indexOf("id=\"data\">") + 10,
                page.indexOf("</script>")));
        assertThat(embedded.at("/dynamics/snapshots")).hasSize(4);
        assertThat(dir.resolve("figures").resolve("dynamics_metrics.png")).isNotEmptyFile();
        List<String> lines = Files.readAllLines(dir.resolve("metrics.jsonl"), StandardCharsets.UTF_8);
        assertThat(lines).hasSize(cfg.epochs());

        ObjectMapper json = new ObjectMapper();
        JsonNode eval = json.readTree(dir.resolve("eval.json").toFile());
        // the preset's promise (TrainConfig.quick): every trigram right
        assertThat(eval.get("trigram_n_correct").intValue()).isEqualTo(eval.get("n_trigrams").intValue())
                .isEqualTo((int) (cfg.trigramProb() * cfg.dVocab() * (cfg.dVocab() - 1)));
        // the printed table is eval.json, to its six printed digits
        for (Map.Entry<String, JsonNode> e : (Iterable<Map.Entry<String, JsonNode>>) eval::fields) {
            String v = e.getValue().isInt() ? e.getValue().asText()
                    : String.format(Locale.ROOT, "%.6f", e.getValue().doubleValue());
            assertThat(printed).contains(String.format("%-25s %s%n", e.getKey(), v));
        }
        // the last epoch's line of metrics.jsonl agrees with the final evaluation's trigram score
        JsonNode last = json.readTree(lines.get(lines.size() - 1));
        assertThat(last.get("epoch").intValue()).isEqualTo(cfg.epochs());
        assertThat(last.get("trigram_n_correct").intValue()).isEqualTo(eval.get("trigram_n_correct").intValue());

        // evaluate on the written model, with the dataset parameters from its metadata, says the same (to the last
        // bit on the same kernels: surefire pins the vector ones, which a user's short evaluate swaps for the scalar)
        assertThat(run("evaluate", "--model", dir.resolve("model.safetensors").toString(), "--json")).as(err())
                .isZero();
        assertThat(json.readTree(out())).isEqualTo(eval);

        TorchPython.assumeAvailable("compute evaluate's metrics on a trilens-trained model with PyTorch");
        assertThat(run("evaluate", "--model", dir.resolve("model.pt").toString(), "--json", "--seed",
                Long.toString(cfg.dataSeed()), "--trigram-prob", Double.toString(cfg.trigramProb()))).as(err())
                .isZero();
        JsonNode fromPt = json.readTree(out());
        assertThat(fromPt).isEqualTo(eval);
        EvaluateCommandTest.assertMatchesTorch(fromPt, EvaluateCommandTest.torchMetrics(tmp,
                dir.resolve("model.pt"), cfg.dataSeed(), cfg.trigramProb(), 2500));
    }

    @Test
    void takesTrainsConfigFlagsAndRefusesABadOneBeforeMakingItsFolder() throws Exception {
        Path dir = tmp.resolve("shaped");
        assertThat(run("run", "--preset", "quick", "--epochs", "1", "--n-heads", "2", "--d-head", "8", "--seed", "3",
                "--out", dir.toString())).as(err()).isZero();
        TrainConfig asked = TrainConfig.quick().withEpochs(1).withSeed(3).withModel(
                new dev.trilens.model.ModelConfig(24, 20, 32, 1, 2, 8, 20, false));
        assertThat(out()).contains(asked.describe());
        assertThat(dev.trilens.io.Checkpoints.load(dir.resolve("model.safetensors")).weights().cfg)
                .isEqualTo(asked.modelConfig());
        assertThat(dir.resolve("analysis.json")).isNotEmptyFile();

        Path refused = tmp.resolve("refused");
        assertOneLineErrorOnly(2, "--n-layers must be >= 1, got 0", "run", "--preset", "quick", "--n-layers", "0",
                "--out", refused.toString());
        assertThat(refused).doesNotExist();
    }
}
