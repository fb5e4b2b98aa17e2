package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.model.Parallel;
import dev.trilens.train.Comparison;
import dev.trilens.train.Trainer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `trilens compare` through Main.execute, on two-epoch runs of the quick preset. */
class CompareCommandTest extends CliTestBase {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> RUNS = List.of("mlp-seed40", "mlp-seed41", "attn-only-seed40",
            "attn-only-seed41");

    @TempDir
    Path tmp;

    @Test
    void badFlagsGiveOneLineErrors() {
        String d = tmp.resolve("x").toString();
        assertOneLineError(2, "unknown variant 'mlp2' in --variants, expected a comma-separated list of mlp, "
                + "attn-only", "compare", "--variants", "mlp,mlp2", "--out", d);
        assertOneLineError(2, "variant 'mlp' is given twice in --variants", "compare", "--variants", "mlp,mlp");
        assertOneLineError(2, "unknown variant ''", "compare", "--variants", "");
        assertOneLineError(2, "--seeds must be >= 1, got 0", "compare", "--seeds", "0", "--out", d);
        assertOneLineError(2, "--epochs must be >= 1, got -2", "compare", "--epochs", "-2", "--out", d);
        assertOneLineError(2, "--parallel-runs must be >= 1, got 0", "compare", "--parallel-runs", "0");
        assertOneLineError(2, "--threads must be >= 1, got 0", "compare", "--threads", "0", "--out", d);
        assertOneLineError(2, "--resume needs --out", "compare", "--resume");
        assertOneLineError(2, "expected one of [arena, fast, quick]", "compare", "--preset", "tiny");
        assertOneLineError(2, "'x' is not an int", "compare", "--seeds", "x");
        assertThat(tmp.resolve("x")).as("nothing is created before the flags are checked").doesNotExist();
    }

    @Test
    void aFailingRunStopsTheComparisonWithOneLine() throws IOException {
        Path dir = tmp.resolve("cmp");
        // a folder where the first run's model file must go: its first epoch cannot be saved
        Files.createDirectories(dir.resolve("mlp-seed40").resolve(Trainer.MODEL));
        assertOneLineError(1, "trilens: error: mlp-seed40: cannot write " + dir.resolve("mlp-seed40")
                        .resolve(Trainer.MODEL) + ": it is a folder", "compare", "--preset", "quick", "--seeds", "2",
                "--threads", "2", "--out", dir.toString());
        assertThat(dir.resolve("compare.json")).doesNotExist();
        Path partner = dir.resolve("mlp-seed41").resolve(Trainer.METRICS);
        if (Files.exists(partner)) {
            assertThat(Files.readAllLines(partner)).as("the run beside the failed one stops early").hasSizeLessThan(30);
        }
        for (String r : List.of("attn-only-seed40", "attn-only-seed41")) {
            assertThat(dir.resolve(r).resolve(Trainer.STATE)).as(r + " was not trained after the failure")
                    .doesNotExist();
        }
    }

    @Test
    void trainsEveryVariantAndSeedAndSummarisesTheirFinalEpochs() throws IOException {
        Path dir = tmp.resolve("cmp");
        String[] args = {"compare", "--preset", "quick", "--epochs", "2", "--seeds", "2", "--threads", "2",
                "--out", dir.toString()};
        assertThat(run(args)).as(err()).isEqualTo(0);
        assertThat(out()).contains("comparing mlp, attn-only over seeds 40, 41 (preset quick, 2 epochs): 4 runs, "
                        + "2 at a time with 1 thread each, into " + dir)
                .contains("final epoch (2) of each run, mean ± sample std over 2 seeds (40, 41)")
                .contains("| variant | d_mlp | train_loss | train_loss_as_frac | trigram_n_correct | "
                        + "trigram_frac_correct | trigram_avg_correct_prob | val_loss |")
                .containsPattern("\\| mlp \\| 20 \\| \\d\\.\\d{4} ± \\d\\.\\d{4} \\|")
                .containsPattern("\\| attn-only \\| 0 \\| \\d\\.\\d{4} ± \\d\\.\\d{4} \\|");
        assertThat(Parallel.threads()).as("the split between runs is undone").isEqualTo(2);
        try (Stream<Path> files = Files.list(dir)) {
            List<String> names = new ArrayList<>(RUNS);
            names.addAll(List.of("compare.json", "compare.md"));
            assertThat(files.map(p -> p.getFileName().toString())).containsExactlyInAnyOrderElementsOf(names);
        }
        for (String r : RUNS) {
            try (Stream<Path> files = Files.list(dir.resolve(r))) {
                assertThat(files.map(p -> p.getFileName().toString())).as(r).containsExactlyInAnyOrder(
                        Trainer.MODEL, Trainer.BEST, Trainer.METRICS, Trainer.STATE);
            }
        }

        JsonNode json = JSON.readTree(dir.resolve("compare.json").toFile());
        assertThat(json.get("preset").asText()).isEqualTo("quick");
        assertThat(json.get("epochs").asInt()).isEqualTo(2);
        assertThat(json.get("seeds").toString()).isEqualTo("[40,41]");
        assertThat(json.get("parallel_runs").asInt()).isEqualTo(2);
        assertThat(fieldNames(json.get("variants"))).containsExactly("mlp", "attn-only");
        assertThat(json.at("/variants/mlp/config/d_mlp").asInt()).isEqualTo(20);
        assertThat(json.at("/variants/attn-only/config/d_mlp").asInt()).isEqualTo(0);
        assertThat(json.at("/variants/mlp/config/epochs").asInt()).isEqualTo(2);
        for (String variant : List.of("mlp", "attn-only")) {
            JsonNode v = json.get("variants").get(variant);
            assertThat(fieldNames(v.get("metrics"))).containsExactlyElementsOf(Comparison.METRICS);
            List<JsonNode> finals = new ArrayList<>();
            for (long seed : new long[] {40, 41}) {
                finals.add(lastMetricsLine(dir.resolve(variant + "-seed" + seed)));
            }
            assertThat(v.get("runs")).extracting(r -> r.get("dir").asText())
                    .containsExactly(variant + "-seed40", variant + "-seed41");
            for (String metric : Comparison.METRICS) {
                JsonNode m = v.get("metrics").get(metric);
                double a = m.get("values").get(0).asDouble(), b = m.get("values").get(1).asDouble();
                String what = variant + " " + metric;
                assertThat(a).as(what).isEqualTo(finals.get(0).get(metric).asDouble());
                assertThat(b).as(what).isEqualTo(finals.get(1).get(metric).asDouble());
                assertThat(m.get("mean").asDouble()).as(what).isCloseTo((a + b) / 2, within(1e-12));
                assertThat(m.get("std").asDouble()).as(what).isCloseTo(Math.abs(a - b) / Math.sqrt(2),
                        within(1e-12));
                assertThat(m.get("min").asDouble()).as(what).isEqualTo(Math.min(a, b));
            }
            assertThat(v.get("metrics").get("train_loss").get("values").get(0).asDouble())
                    .as("seeds give different runs").isNotEqualTo(v.get("metrics").get("train_loss").get("values")
                            .get(1).asDouble());
        }
        String md = Files.readString(dir.resolve("compare.md"), StandardCharsets.UTF_8);
        assertThat(md).startsWith("# trilens compare: quick preset\n")
                .contains("| variant | d_mlp | train_loss |").contains("| mlp | 20 |").contains("| attn-only | 0 |")
                .contains("| attn-only-seed41 | 41 |");

        // a run lost is trained again on --resume, one at a time on both threads, to the very same numbers
        JsonNode before = json.get("variants");
        deleteTree(dir.resolve("mlp-seed41"));
        String[] resume = {"compare", "--preset", "quick", "--epochs", "2", "--seeds", "2", "--threads", "2",
                "--parallel-runs", "1", "--resume", "--out", dir.toString()};
        assertThat(run(resume)).as(err()).isEqualTo(0);
        assertThat(out()).contains("1 at a time with 2 threads each").containsPattern("mlp-seed41 +epoch 2/2")
                .doesNotContainPattern("mlp-seed40 +epoch");
        JsonNode after = JSON.readTree(dir.resolve("compare.json").toFile()).get("variants");
        for (String variant : List.of("mlp", "attn-only")) {
            assertThat(after.get(variant).get("metrics")).as(variant).isEqualTo(before.get(variant).get("metrics"));
        }

        assertOneLineError(1, "trilens: error: " + dir.resolve("mlp-seed40") + " already holds a training run; pass "
                + "--resume to continue the comparison, or choose another --out", args);
        assertOneLineError(1, "cannot resume " + dir.resolve("mlp-seed40") + " with a different config: it has "
                + "train.epochs 2 (flags ask 3)", "compare", "--preset", "quick", "--epochs", "3", "--seeds", "2",
                "--resume", "--out", dir.toString());
    }

    private static List<String> fieldNames(JsonNode n) {
        List<String> names = new ArrayList<>();
        n.fieldNames().forEachRemaining(names::add);
        return names;
    }

    private static JsonNode lastMetricsLine(Path runDir) throws IOException {
        List<String> lines = Files.readAllLines(runDir.resolve(Trainer.METRICS), StandardCharsets.UTF_8);
        assertThat(lines).as(runDir + " metrics").hasSize(2);
        return JSON.readTree(lines.get(1));
    }

    private static void deleteTree(Path dir) throws IOException {
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
