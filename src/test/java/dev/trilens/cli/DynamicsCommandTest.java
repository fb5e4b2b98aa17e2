package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.Checkpoint;
import dev.trilens.io.Checkpoints;
import dev.trilens.io.Safetensors;
import dev.trilens.model.Weights;
import dev.trilens.train.TrainConfig;
import dev.trilens.train.Trainer;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code train --snapshot-every} and {@code dynamics} end to end on a quick run trained once for the class: the
 * snapshots are the run's weights, dynamics.json follows its schema and agrees with the run's files and with
 * {@code extract}; what cannot be read is a one-line error with nothing written, or a skip the output states.
 */
class DynamicsCommandTest extends CliTestBase {
    private static final int EVERY = 4;
    private static final TrainConfig CFG = TrainConfig.quick();
    private static final ObjectMapper JSON = new ObjectMapper();
    private static Path trained;

    @TempDir
    Path tmp;

    @BeforeAll
    static void trainQuickRunWithSnapshots() throws IOException {
        trained = Files.createTempDirectory("trilens-dynamics-run");
        int code = Main.execute("train", "--preset", "quick", "--snapshot-every", Integer.toString(EVERY), "--out",
                trained.toString());
        assertThat(code).isZero();
    }

    @AfterAll
    static void removeRun() throws IOException {
        deleteTree(trained);
    }

    /** The epochs a 30-epoch run keeps every 4: 0, 4, ..., 28 and the last, 30. */
    private static List<Integer> expectedEpochs() {
        List<Integer> e = new ArrayList<>();
        for (int i = 0; i < CFG.epochs(); i += EVERY) {
            e.add(i);
        }
        e.add(CFG.epochs());
        return e;
    }

    @Test
    void theSnapshotsAreTheRunsWeightsAndDynamicsReadsThem() throws Exception {
        Path run = copyRun("run");
        List<Integer> epochs = expectedEpochs();
        assertThat(snapshotEpochs(run)).isEqualTo(epochs);
        for (int e : epochs) {
            Checkpoint c = Checkpoints.load(Trainer.snapshotPath(run, e));
            assertThat(c.metadata()).containsEntry(Trainer.EPOCHS_DONE, Integer.toString(e))
                    .containsEntry(Trainer.SNAPSHOT_EVERY, Integer.toString(EVERY));
            assertThat(TrainConfig.fromMetadata(c.metadata(), "snapshot")).isEqualTo(CFG);
        }
        assertThat(Checkpoints.load(Trainer.snapshotPath(run, 0)).weights().data)
                .as("epoch 0 is the initial weights").containsExactly(Weights.init(CFG.modelConfig(), CFG.initSeed()).data);
        assertThat(Checkpoints.load(Trainer.snapshotPath(run, CFG.epochs())).weights().data)
                .as("the last is model.safetensors").containsExactly(Checkpoints.load(run.resolve(Trainer.MODEL))
                        .weights().data);

        assertThat(run("dynamics", "--run", run.toString())).as(err()).isZero();
        String printed = out();
        JsonNode dyn = JSON.readTree(run.resolve("dynamics.json").toFile());
        assertThat(schemaErrors(dyn)).isEmpty();

        // snapshots in epoch order, the metrics those of metrics.jsonl
        JsonNode snaps = dyn.get("snapshots");
        List<Integer> seen = new ArrayList<>();
        snaps.forEach(s -> seen.add(s.get("epoch").intValue()));
        assertThat(seen).isEqualTo(epochs);
        List<String> lines = Files.readAllLines(run.resolve(Trainer.METRICS), StandardCharsets.UTF_8);
        for (JsonNode s : snaps) {
            for (String key : List.of("epoch", "n_extracted", "trigram_n_correct", "trigram_avg_correct_prob",
                    "qk_auc")) {
                assertThat(s.has(key)).as(key).isTrue();
            }
            int e = s.get("epoch").intValue();
            if (e == 0) {
                // no training yet; the validation loss the trainer's kernels give the initial weights
                assertThat(s.get("train_loss").asText()).isEqualTo("NaN");
                TrigramDataset all = TrigramDataset.generate(CFG.dVocab(), CFG.seqLen(), CFG.trigramProb(),
                        CFG.dataSeed(), CFG.nTrain() + CFG.nVal());
                int[] val = Trainer.gather(all.tokens(), dev.trilens.train.DataOrder.of(all, CFG.nTrain(), CFG.nVal())
                        .validationIndices(), CFG.seqLen());
                double trainers = new dev.trilens.model.Backprop(CFG.modelConfig()).loss(Weights.init(
                        CFG.modelConfig(), CFG.initSeed()), val, CFG.nVal(), CFG.seqLen());
                assertThat(s.get("val_loss").asDouble()).isCloseTo(trainers, org.assertj.core.data.Offset.offset(1e-5));
                continue;
            }
            JsonNode line = JSON.readTree(lines.get(e - 1));
            for (String key : List.of("train_loss", "val_loss", "trigram_n_correct", "trigram_avg_correct_prob",
                    "trigram_frac_correct")) {
                assertThat(s.get(key).asDouble()).as("epoch %d %s", e, key).isEqualTo(line.get(key).asDouble());
            }
            assertThat(s.get("n_extracted").intValue()).isEqualTo(s.get("extracted").size());
        }

        // the count at the end is extract's on the final model, and so are the trigrams
        assertThat(run("extract", "--model", run.resolve(Trainer.MODEL).toString(), "--json")).as(err()).isZero();
        JsonNode extract = JSON.readTree(out());
        JsonNode last = snaps.get(snaps.size() - 1);
        assertThat(last.get("n_extracted").intValue()).isEqualTo(extract.get("n_extracted").intValue())
                .isEqualTo(extract.get("trigrams").size()).isPositive();
        Set<List<Integer>> fromExtract = new HashSet<>(), fromDynamics = new HashSet<>();
        extract.get("trigrams").forEach(t -> fromExtract.add(List.of(t.get("a").intValue(), t.get("b").intValue(),
                t.get("c").intValue())));
        last.get("extracted").forEach(t -> fromDynamics.add(List.of(t.get(0).intValue(), t.get(1).intValue(),
                t.get(2).intValue())));
        assertThat(fromDynamics).isEqualTo(fromExtract);

        // every dataset trigram, learned at the first snapshot from which every later one extracts it
        TrigramDataset data = TrigramDataset.generate(CFG.dVocab(), CFG.seqLen(), CFG.trigramProb(), CFG.dataSeed(), 1);
        JsonNode trigrams = dyn.get("trigrams");
        int inDataset = 0;
        for (JsonNode t : trigrams) {
            List<Integer> abc = List.of(t.get("a").intValue(), t.get("b").intValue(), t.get("c").intValue());
            inDataset += t.get("in_dataset").asBoolean() ? 1 : 0;
            Integer learned = null;
            for (int i = snaps.size() - 1; i >= 0 && extractedAt(snaps.get(i)).contains(abc); i--) {
                learned = snaps.get(i).get("epoch").intValue();
            }
            assertThat(t.get("learned_epoch").isNull() ? null : t.get("learned_epoch").intValue()).as("%s", abc)
                    .isEqualTo(learned);
            assertThat(t.get("count").intValue()).as("a trigram occurs in the training data").isPositive();
        }
        assertThat(inDataset).isEqualTo(data.nTrigrams()).isEqualTo(dyn.get("n_trigrams").intValue());

        // the words: computed from those numbers
        JsonNode summary = dyn.get("summary");
        assertThat(summary).hasSize(6);
        long by10 = countLearnedBy(trigrams, 8), by25 = countLearnedBy(trigrams, 24);
        assertThat(summary.get(1).asText()).contains(by10 + " by epoch 10 (its last snapshot, epoch 8)")
                .contains(by25 + " by epoch 25 (its last snapshot, epoch 24)")
                .contains("the snapshots end before epoch 50");
        assertThat(dyn.at("/milestones/0/n_learned").intValue()).isEqualTo((int) by10);
        assertThat(summary.get(2).asText()).startsWith("Learning order").contains(String.format(
                java.util.Locale.ROOT, "%+.2f", dyn.at("/order/spearman").asDouble()));
        String onset = summary.get(0).asText();
        assertThat(onset).contains(String.format(java.util.Locale.ROOT, "%+.2f", dyn.at("/onset/attention_to")
                .asDouble()));
        if (dyn.at("/onset/verdict").asText().equals("attention_first")) {
            assertThat(onset).startsWith("Attention to the prefix appeared before the MLP's contribution");
        }
        for (JsonNode line : summary) {
            assertThat(printed).contains("  " + line.asText());
        }

        // figures as PNG and SVG; no analysis here, so no report
        for (String f : List.of("dynamics_metrics", "dynamics_attention", "dynamics_dla", "dynamics_weights",
                "dynamics_final_position", "dynamics_learning_order")) {
            byte[] png = Files.readAllBytes(run.resolve("figures").resolve(f + ".png"));
            assertThat(png).as(f).startsWith((byte) 0x89, (byte) 'P', (byte) 'N', (byte) 'G');
            assertThat(Files.readString(run.resolve("figures").resolve(f + ".svg"))).as(f).contains("<svg");
        }
        assertThat(run.resolve("report.html")).doesNotExist();
        assertThat(printed).contains("figures    6 PNG and 6 SVG files").doesNotContain("report     ");

        // analyze in the folder puts the section in its report; dynamics again rewrites that report
        assertThat(run("analyze", "--model", run.resolve(Trainer.MODEL).toString(), "--out", run.toString()))
                .as(err()).isZero();
        assertThat(embedded(run).at("/dynamics/snapshots")).hasSize(epochs.size());
        assertThat(embedded(run).at("/dynamics/summary")).isEqualTo(summary);
        Files.writeString(run.resolve("dynamics.json"), "{}");
        assertThat(run("dynamics", "--run", run.toString())).as(err()).isZero();
        assertThat(out()).contains("report     " + run.resolve("report.html"));
        assertThat(embedded(run).at("/dynamics/summary")).isEqualTo(summary);
        assertThat(leftovers(run)).isEmpty();
    }

    @Test
    void aFolderWithoutSnapshotsIsAOneLineErrorAndNothingIsWritten() throws Exception {
        Path run = copyRun("none");
        deleteTree(run.resolve(Trainer.SNAPSHOTS));
        Set<Path> before = listing(run);
        assertOneLineErrorOnly(1, run + " has no snapshots", "dynamics", "--run", run.toString());
        assertThat(err()).contains("train with --snapshot-every N");
        assertThat(listing(run)).isEqualTo(before);

        assertOneLineErrorOnly(1, "run folder " + tmp.resolve("absent") + " does not exist", "dynamics", "--run",
                tmp.resolve("absent").toString());
        Path file = Files.writeString(tmp.resolve("a-file"), "x");
        assertOneLineErrorOnly(1, "--out " + file + " is a file", "dynamics", "--run", copyRun("out").toString(),
                "--out", file.toString());
        Path noMetrics = copyRun("no-metrics");
        Files.delete(noMetrics.resolve(Trainer.METRICS));
        assertOneLineErrorOnly(1, "no " + noMetrics.resolve(Trainer.METRICS), "dynamics", "--run",
                noMetrics.toString());
    }

    @Test
    void aCorruptSnapshotIsAOneLineErrorAndTheEarlierOutputStays() throws Exception {
        Path run = copyRun("corrupt");
        Files.writeString(run.resolve("dynamics.json"), "{\"earlier\": true}");
        Path bad = Trainer.snapshotPath(run, 8);
        byte[] bytes = Files.readAllBytes(bad);
        Files.write(bad, java.util.Arrays.copyOf(bytes, bytes.length / 2));
        Set<Path> before = listing(run);
        assertOneLineErrorOnly(1, bad.toString(), "dynamics", "--run", run.toString());
        assertThat(Files.readString(run.resolve("dynamics.json"))).isEqualTo("{\"earlier\": true}");
        assertThat(listing(run)).isEqualTo(before);

        // a snapshot of another run's config, or whose weights are not the epoch metrics.jsonl describes
        Weights w = Checkpoints.load(Trainer.snapshotPath(copyRun("other"), 8)).weights();
        Path other = copyRun("other-config");
        Map<String, String> meta = snapshotMetadata(CFG.withSeed(41), 8);
        Safetensors.write(w, meta, Trainer.snapshotPath(other, 8));
        assertOneLineErrorOnly(1, "was written by a run with another config", "dynamics", "--run", other.toString());

        Path wrong = copyRun("wrong-weights");
        Weights perturbed = w.copy();
        for (int i = 0; i < perturbed.data.length; i += 7) {
            perturbed.data[i] *= 0.5f;
        }
        Safetensors.write(perturbed, snapshotMetadata(CFG, 8), Trainer.snapshotPath(wrong, 8));
        assertOneLineErrorOnly(1, Trainer.snapshotPath(wrong, 8) + " does not hold epoch 8 of this run", "dynamics",
                "--run", wrong.toString());
        assertThat(wrong.resolve("dynamics.json")).doesNotExist();
        assertThat(leftovers(wrong)).isEmpty();

        Path renamed = copyRun("renamed");
        Files.copy(Trainer.snapshotPath(renamed, 4), Trainer.snapshotPath(renamed, 8),
                StandardCopyOption.REPLACE_EXISTING);
        assertOneLineErrorOnly(1, "holds the weights of epoch '4'", "dynamics", "--run", renamed.toString());
    }

    @Test
    void missingAndUncommittedSnapshotsAreSkippedAndSaidSo() throws Exception {
        Path run = copyRun("gaps");
        Files.delete(Trainer.snapshotPath(run, 12));
        Files.delete(Trainer.snapshotPath(run, 0));
        // a run stopped while committing epoch 28: its snapshot landed, metrics.jsonl's line did not
        List<String> lines = Files.readAllLines(run.resolve(Trainer.METRICS), StandardCharsets.UTF_8);
        Files.write(run.resolve(Trainer.METRICS), lines.subList(0, 27), StandardCharsets.UTF_8);
        assertThat(run("dynamics", "--run", run.toString())).as(err()).isZero();
        String printed = out();
        JsonNode dyn = JSON.readTree(run.resolve("dynamics.json").toFile());
        assertThat(schemaErrors(dyn)).isEmpty();
        List<Integer> epochs = new ArrayList<>();
        dyn.get("snapshots").forEach(s -> epochs.add(s.get("epoch").intValue()));
        assertThat(epochs).containsExactly(0, 4, 8, 16, 20, 24);
        assertThat(dyn.get("missing_epochs")).hasSize(1);
        assertThat(dyn.at("/missing_epochs/0").intValue()).isEqualTo(12);
        List<String> notes = new ArrayList<>();
        dyn.get("notes").forEach(n -> notes.add(n.asText()));
        assertThat(notes).hasSize(4);
        assertThat(notes.get(0)).contains("initial weights' snapshot").contains("drawn again from init seed 40");
        assertThat(notes.get(1)).contains("epoch-0028.safetensors left out: the run committed 27 epochs");
        assertThat(notes.get(2)).contains("epoch-0030.safetensors left out");
        assertThat(notes.get(3)).contains("1 snapshot the run should have written is missing (epoch 12, one every 4 "
                + "epochs)");
        for (String n : notes) {
            assertThat(printed).contains("  note: " + n);
        }
        // epoch 0, drawn again, gives what its snapshot gave
        Path whole = copyRun("whole");
        assertThat(run("dynamics", "--run", whole.toString())).as(err()).isZero();
        JsonNode complete = JSON.readTree(whole.resolve("dynamics.json").toFile());
        assertThat(dyn.at("/snapshots/0")).isEqualTo(complete.at("/snapshots/0"));
        assertThat(dyn.at("/snapshots/3")).isEqualTo(complete.at("/snapshots/4"));
    }

    private static Map<String, String> snapshotMetadata(TrainConfig cfg, int epoch) {
        Map<String, String> meta = new LinkedHashMap<>(cfg.toMetadata());
        meta.put(Trainer.EPOCHS_DONE, Integer.toString(epoch));
        meta.put(Trainer.SNAPSHOT_EVERY, Integer.toString(EVERY));
        return meta;
    }

    private static Set<List<Integer>> extractedAt(JsonNode snapshot) {
        Set<List<Integer>> out = new HashSet<>();
        snapshot.get("extracted").forEach(t -> out.add(List.of(t.get(0).intValue(), t.get(1).intValue(),
                t.get(2).intValue())));
        return out;
    }

    private static long countLearnedBy(JsonNode trigrams, int epoch) {
        long n = 0;
        for (JsonNode t : trigrams) {
            n += t.get("in_dataset").asBoolean() && t.get("learned_epoch").isInt()
                    && t.get("learned_epoch").intValue() <= epoch ? 1 : 0;
        }
        return n;
    }

    /** The data report.html embeds. */
    private static JsonNode embedded(Path run) throws IOException {
        String page = Files.readString(run.resolve("report.html"));
        return JSON.readTree(page.substring(page.indexOf("id=\"data\">") + 10, page.indexOf("</script>")));
    }

    private static List<String> schemaErrors(JsonNode doc) throws IOException {
        try (InputStream in = Files.newInputStream(Path.of("schema", "dynamics.schema.json"))) {
            JsonSchema schema = JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012).getSchema(in);
            return schema.validate(doc).stream().map(ValidationMessage::getMessage).sorted().toList();
        }
    }

    private static List<Integer> snapshotEpochs(Path run) {
        return new ArrayList<>(Trainer.snapshots(run).keySet());
    }

    private Path copyRun(String name) throws IOException {
        Path to = tmp.resolve(name);
        try (Stream<Path> files = Files.walk(trained)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                Path target = to.resolve(trained.relativize(f).toString());
                if (Files.isDirectory(f)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(f, target);
                }
            }
        }
        return to;
    }

    private static Set<Path> listing(Path dir) throws IOException {
        try (Stream<Path> files = Files.walk(dir)) {
            Set<Path> out = new HashSet<>();
            files.forEach(f -> out.add(dir.relativize(f)));
            return out;
        }
    }

    /** Temp files and staging folders left behind: none after a completed or refused command. */
    private static List<Path> leftovers(Path dir) throws IOException {
        try (Stream<Path> files = Files.walk(dir)) {
            return files.filter(f -> f.getFileName().toString().matches("\\..+\\.\\d+-[0-9a-z]+\\.(tmp|staging)"))
                    .toList();
        }
    }

    private static void deleteTree(Path p) throws IOException {
        if (p == null || !Files.exists(p)) {
            return;
        }
        try (Stream<Path> files = Files.walk(p)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> {
                try {
                    Files.delete(f);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }
    }
}
