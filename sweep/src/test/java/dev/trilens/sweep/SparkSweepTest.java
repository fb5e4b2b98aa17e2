package dev.trilens.sweep;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.csv.CsvMapper;
import com.fasterxml.jackson.dataformat.csv.CsvSchema;
import dev.trilens.train.Comparison;
import dev.trilens.train.TrainState;
import dev.trilens.train.Trainer;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Sweeps on embedded Spark, as CI runs them on one machine: a run failing its first attempt is retried and resumes
 * from its checkpoint, the table equals a sequential run's, a finished sweep trains nothing again, and a sweep killed
 * half-way trains only what is missing when started again.
 */
class SparkSweepTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Columns that say how a run went, not what it learned: they may differ between two sweeps of one grid. */
    private static final List<String> HOW = List.of("seconds", "run_seconds", "attempt", "resumed_after_epoch");
    private static final List<String> IDS = List.of("d_mlp=0_init_seed=0", "d_mlp=0_init_seed=1",
            "d_mlp=20_init_seed=0", "d_mlp=20_init_seed=1");
    private static final String FAILING = "d_mlp=20_init_seed=1";

    @TempDir
    Path tmp;

    private Path grid(String yaml) throws IOException {
        Path g = tmp.resolve("g.yaml");
        Files.writeString(g, yaml);
        return g;
    }

    @Test
    void aFailedAttemptIsRetriedFromItsCheckpointAndTheTableEqualsASequentialRun() throws IOException {
        String g = grid("preset: quick\ntrain: {epochs: 3}\naxes: {d_mlp: [0, 20], init_seed: [0, 1]}\n").toString();
        Path par = tmp.resolve("parallel"), seq = tmp.resolve("sequential");
        SweepCli p = SweepCli.run("--grid", g, "--out", par.toString(), "--master", "local[2,3]", "--conf",
                SparkSweep.INJECT + "=" + FAILING + "@2").ok();
        assertThat(p.out()).contains("sweep " + g + ": 4 runs (d_mlp 2 x init_seed 2; preset quick, epochs 3) into "
                        + par)
                .contains("0 already done, 4 to train on local[2,3], 1 thread per run, up to 3 attempts per run")
                .contains("run " + FAILING + ": an attempt failed (InjectedFailure: injected failure after epoch 2 of "
                        + "run " + FAILING + " (first attempt)); Spark retries it, from its checkpoint")
                .containsPattern("\\[4/4] d_mlp=\\S+  trigrams \\d+/27")
                .contains(FAILING + "  trigrams").contains("(resumed after epoch 2)");
        for (String id : IDS) {
            JsonNode r = JSON.readTree(par.resolve("runs").resolve(id).resolve("result.json").toFile());
            boolean failing = id.equals(FAILING);
            assertThat(r.get("attempt").asInt()).as(id).isEqualTo(failing ? 1 : 0);
            assertThat(r.get("resumed_after_epoch").asInt()).as(id).isEqualTo(failing ? 2 : 0);
            assertThat(r.get("kernels").asText()).isEqualTo("vector");
            assertThat(Files.readAllLines(par.resolve("runs").resolve(id).resolve(Trainer.METRICS)))
                    .extracting(line -> JSON.readTree(line).get("epoch").asInt()).containsExactly(1, 2, 3);
        }
        assertThat(JSON.readTree(par.resolve("sweep.json").toFile()).get("failed_attempts").asInt()).isEqualTo(1);

        SweepCli s = SweepCli.run("--grid", g, "--out", seq.toString(), "--master", "local[1]").ok();
        assertThat(s.out()).contains("0 already done, 4 to train on local[1,3]").doesNotContain("attempt failed");
        List<Map<String, String>> parallel = csv(par.resolve("results.csv")), sequential = csv(seq.resolve(
                "results.csv"));
        assertThat(parallel).extracting(r -> r.get("run_id")).containsExactlyElementsOf(IDS);
        assertThat(parallel.get(0).keySet()).containsExactly("run_id", "d_mlp", "init_seed", "trigram_n_correct",
                "trigram_frac_correct", "trigram_avg_correct_prob", "loss", "loss_as_frac", "n_trigrams",
                "n_extracted", "extracted_precision", "extracted_recall", "train_loss", "val_loss",
                "mean_correct_prob", "epochs", "seconds", "run_seconds", "attempt", "resumed_after_epoch");
        assertThat(withoutHow(parallel)).isEqualTo(withoutHow(sequential));
        for (String id : IDS) {
            // the retried run ends with the very weights of the run that never stopped
            assertThat(par.resolve("runs").resolve(id).resolve(Trainer.MODEL)).as(id)
                    .hasSameBinaryContentAs(seq.resolve("runs").resolve(id).resolve(Trainer.MODEL));
        }

        // sweep.md: per d_mlp, mean ± sample sd over the two init seeds of each metric, as in the CSV
        String md = Files.readString(par.resolve("sweep.md"));
        for (String dMlp : List.of("0", "20")) {
            StringBuilder row = new StringBuilder("| " + dMlp + " | 2 |");
            for (String m : SweepTable.SUMMARY) {
                double[] v = parallel.stream().filter(r -> r.get("d_mlp").equals(dMlp))
                        .mapToDouble(r -> Double.parseDouble(r.get(m))).toArray();
                Comparison.Stats st = Comparison.Stats.of(v);
                row.append(' ').append(SweepTable.format(m, st.mean(), true)).append(" ± ")
                        .append(SweepTable.format(m, st.std(), true)).append(" |");
            }
            assertThat(md).contains(row);
        }
        assertThat(md).contains("over init_seed [0, 1], 2 runs per grid point");
        for (String f : List.of("trigrams_vs_d_mlp", "attn_only_vs_mlp")) {
            BufferedImage png = ImageIO.read(par.resolve("figures").resolve(f + ".png").toFile());
            assertThat(png.getWidth()).as(f).isEqualTo(SweepFigures.WIDTH);
            assertThat(Files.readString(par.resolve("figures").resolve(f + ".svg"))).startsWith("<?xml")
                    .contains("<svg");
        }

        // Parquet holds the same table, typed, as Spark SQL reads it
        assertThat(par.resolve("results.parquet")).isRegularFile();
        SparkSweep.Settings local = SparkSweep.settings("local[1]", null, 1, Map.of(), "read");
        try (SparkSweep spark = SparkSweep.start(local)) {
            List<Map<String, Object>> rows = spark.readParquet(par.resolve("results.parquet"));
            assertThat(rows).hasSize(4);
            assertThat(rows.get(0).get("d_mlp")).isInstanceOf(Integer.class);
            assertThat(rows.get(0).get("init_seed")).isInstanceOf(Long.class);
            for (int i = 0; i < rows.size(); i++) {
                Map<String, String> asText = new LinkedHashMap<>();
                rows.get(i).forEach((k, v) -> asText.put(k, String.valueOf(v)));
                assertThat(asText).isEqualTo(parallel.get(i));
            }
        }

        // the same sweep again: every run has its result, nothing trains (Spark does not even start), no run's file
        // is rewritten, and the tables come out the same
        Map<String, FileTime> before = resultTimes(par);
        byte[] parquet = Files.readAllBytes(par.resolve("results.parquet"));
        Files.delete(par.resolve("results.csv"));
        SweepCli again = SweepCli.run("--grid", g, "--out", par.toString(), "--master", "local[2]").ok();
        assertThat(again.out()).contains("4 already done, 0 to train").doesNotContain("[1/").doesNotContain("Spark 4");
        assertThat(resultTimes(par)).isEqualTo(before);
        assertThat(csv(par.resolve("results.csv"))).isEqualTo(parallel);
        assertThat(par.resolve("results.parquet")).hasBinaryContent(parquet);
    }

    /** Kills a sweep (kill -9) while a run is half-way, then starts it again: only what was missing trains. */
    @Test
    void aKilledSweepStartedAgainTrainsOnlyWhatIsMissing() throws Exception {
        Path g = grid("preset: quick\ntrain: {epochs: 4}\naxes: {init_seed: [0, 1, 2, 3]}\n");
        Path out = tmp.resolve("out");
        List<String> ids = List.of("init_seed=0", "init_seed=1", "init_seed=2", "init_seed=3");
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString()));
        cmd.addAll(Arrays.asList(System.getProperty("trilens.sparkJvmArgs").split(" ")));
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), SweepMain.class.getName(), "--grid",
                g.toString(), "--out", out.toString(), "--master", "local[1]"));
        Path log = tmp.resolve("first.log");
        Process first = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            long deadline = System.nanoTime() + 480_000_000_000L;
            while (!halfWay(out, ids)) {
                assertThat(first.isAlive()).as("the sweep ended before it was half-way:%n%s", Files.exists(log)
                        ? Files.readString(log) : "").isTrue();
                assertThat(System.nanoTime()).as("half-way within 8 minutes").isLessThan(deadline);
                Thread.sleep(20);
            }
        } finally {
            first.destroyForcibly();
            first.waitFor();
        }

        Map<String, byte[]> results = new HashMap<>();
        Map<String, FileTime> times = resultTimes(out);
        Map<String, List<String>> metrics = new HashMap<>();
        Map<String, Integer> epochs = new HashMap<>();
        for (String id : ids) {
            Path dir = out.resolve("runs").resolve(id);
            if (Files.exists(dir.resolve("result.json"))) {
                results.put(id, Files.readAllBytes(dir.resolve("result.json")));
            } else if (Files.exists(dir.resolve(Trainer.STATE))) {
                epochs.put(id, TrainState.read(dir.resolve(Trainer.STATE)).epochsDone());
                metrics.put(id, Files.readAllLines(dir.resolve(Trainer.METRICS)).subList(0, epochs.get(id)));
            }
        }
        assertThat(results).as("finished before the kill").isNotEmpty();
        assertThat(epochs).as("half-way at the kill").isNotEmpty();

        SweepCli again = SweepCli.run("--grid", g.toString(), "--out", out.toString(), "--master", "local[2]").ok();
        assertThat(again.out()).contains(results.size() + " already done, " + (4 - results.size()) + " to train");
        for (String id : ids) {
            Path dir = out.resolve("runs").resolve(id);
            JsonNode r = JSON.readTree(dir.resolve("result.json").toFile());
            if (results.containsKey(id)) {
                assertThat(dir.resolve("result.json")).as(id + " is not trained again")
                        .hasBinaryContent(results.get(id));
                assertThat(Files.getLastModifiedTime(dir.resolve("result.json"))).isEqualTo(times.get(id));
            } else if (epochs.containsKey(id)) {
                assertThat(r.get("resumed_after_epoch").asInt()).as(id + " continues from its checkpoint")
                        .isEqualTo(epochs.get(id));
                assertThat(Files.readAllLines(dir.resolve(Trainer.METRICS))).as(id).hasSize(4)
                        .startsWith(metrics.get(id).toArray(String[]::new));
            } else {
                assertThat(r.get("resumed_after_epoch").asInt()).as(id + " had not started").isZero();
            }
        }
        assertThat(csv(out.resolve("results.csv"))).extracting(m -> m.get("run_id")).containsExactlyElementsOf(ids);
    }

    /** At least one run finished and another with a checkpoint but no result. */
    private static boolean halfWay(Path out, List<String> ids) {
        boolean finished = false, partial = false;
        for (String id : ids) {
            Path dir = out.resolve("runs").resolve(id);
            boolean result = Files.exists(dir.resolve("result.json"));
            finished |= result;
            partial |= !result && Files.exists(dir.resolve(Trainer.STATE));
        }
        return finished && partial;
    }

    private static Map<String, FileTime> resultTimes(Path out) throws IOException {
        Map<String, FileTime> m = new HashMap<>();
        try (Stream<Path> runs = Files.list(out.resolve("runs"))) {
            for (Path dir : runs.toList()) {
                if (Files.exists(dir.resolve("result.json"))) {
                    m.put(dir.getFileName().toString(), Files.getLastModifiedTime(dir.resolve("result.json")));
                }
            }
        }
        return m;
    }

    static List<Map<String, String>> csv(Path file) throws IOException {
        try (MappingIterator<Map<String, String>> it = new CsvMapper().readerForMapOf(String.class)
                .with(CsvSchema.emptySchema().withHeader()).readValues(file.toFile())) {
            return it.readAll();
        }
    }

    private static List<Map<String, String>> withoutHow(List<Map<String, String>> rows) {
        return rows.stream().map(r -> {
            Map<String, String> m = new LinkedHashMap<>(r);
            HOW.forEach(m::remove);
            return m;
        }).toList();
    }
}
