package dev.trilens.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.Checkpoint;
import dev.trilens.io.Checkpoints;
import dev.trilens.io.Safetensors;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Weights;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A run folder's snapshots as the dynamics analysis reads them: the usable ones with their metrics, what is skipped
 * said in notes, and a folder that is not one run's refused naming what is wrong. On a 9-epoch run that kept every
 * 2nd epoch (0, 2, 4, 6, 8 and the last, 9), trained once for the class in well under a second and copied for each
 * change; the command around it is DynamicsCommandTest's.
 */
class RunSnapshotsTest {
    private static final TrainConfig CFG = TrainerTest.TINY.withEpochs(9);
    private static final int EVERY = 2;

    @TempDir
    static Path shared;
    private static Path trained;

    @TempDir
    Path tmp;

    @BeforeAll
    static void trainOnce() {
        trained = shared.resolve("trained");
        Trainer.start(CFG, trained).snapshotEvery(EVERY).run(new Trainer.Listener() {
        });
    }

    /** A copy of the trained run to change. */
    private Path run(String name) throws IOException {
        Path dir = tmp.resolve(name);
        try (Stream<Path> files = Files.walk(trained)) {
            for (Path f : files.toList()) {
                Files.copy(f, dir.resolve(trained.relativize(f).toString()));
            }
        }
        return dir;
    }

    private static List<String> metricsLines(Path run) throws IOException {
        return Files.readAllLines(run.resolve(Trainer.METRICS), StandardCharsets.UTF_8);
    }

    private static void writeMetrics(Path run, List<String> lines) throws IOException {
        Files.write(run.resolve(Trainer.METRICS), lines, StandardCharsets.UTF_8);
    }

    /** Rewrites a snapshot with the same weights and one metadata entry changed (null: removed). */
    private static void setMetadata(Path run, int epoch, String key, String value) {
        Checkpoint c = Checkpoints.load(Trainer.snapshotPath(run, epoch));
        Map<String, String> meta = new LinkedHashMap<>(c.metadata());
        if (value == null) {
            meta.remove(key);
        } else {
            meta.put(key, value);
        }
        Safetensors.write(c.weights(), meta, Trainer.snapshotPath(run, epoch));
    }

    private static void assertRefused(Path run, String message) {
        assertThatThrownBy(() -> RunSnapshots.read(run)).isInstanceOf(TrilensException.class).hasMessage(message);
    }

    @Test
    void readsEverySnapshotWithItsEpochsMetrics() throws IOException {
        Path run = run("whole");
        RunSnapshots s = RunSnapshots.read(run);
        assertThat(s.config()).isEqualTo(CFG);
        assertThat(s.interval()).isEqualTo(EVERY);
        assertThat(s.weights().keySet()).containsExactly(0, 2, 4, 6, 8, 9);
        for (int e : s.weights().keySet()) {
            assertThat(s.weights().get(e).data).as("epoch %d", e)
                    .isEqualTo(Checkpoints.load(Trainer.snapshotPath(run, e)).weights().data);
        }
        assertThat(s.metrics().keySet()).containsExactly(2, 4, 6, 8, 9);
        List<String> lines = metricsLines(run);
        s.metrics().forEach((e, m) -> {
            assertThat(m.epoch()).isEqualTo(e);
            assertThat(m).isEqualTo(Trainer.EpochMetrics.fromJson(readJson(lines.get(e - 1)), "line " + e));
        });
        assertThat(s.missing()).isEmpty();
        assertThat(s.notes()).isEmpty();
        // the scores read checked, epoch 0's included: each is the snapshot's own, as its metrics line has it
        assertThat(s.scores().keySet()).containsExactly(0, 2, 4, 6, 8, 9);
        TrigramDataset trigrams = TrigramDataset.generate(CFG.dVocab(), CFG.seqLen(), CFG.trigramProb(),
                CFG.dataSeed(), 1);
        assertThat(s.scores().get(0)).isEqualTo(Metrics.trigramScore(new HookedTransformer(s.weights().get(0)),
                trigrams));
        s.metrics().forEach((e, m) -> assertThat(s.scores().get(e).nCorrect()).isEqualTo(m.trigramNCorrect()));
    }

    @Test
    void oneTrainedEpochKeptEveryEpochIsEnoughEvenWithoutTrigrams() {
        // trigram_prob 0.005 of 12 tokens draws no trigram: the score is NaN in metrics.jsonl and from the snapshot
        TrainConfig none = new TrainConfig(12, 10, 0.005, 5, 64, 50, 1, 64, 1e-2, 1e-3, 1e-3, 16, 1, 8, 16, 1, false,
                5);
        Path dir = tmp.resolve("no-trigrams");
        List<Trainer.EpochMetrics> ms = Trainer.start(none, dir).snapshotEvery(1).run(new Trainer.Listener() {
        });
        assertThat(ms.get(0).trigramAvgCorrectProb()).isNaN();
        RunSnapshots s = RunSnapshots.read(dir);
        assertThat(s.interval()).isEqualTo(1);
        assertThat(s.weights().keySet()).containsExactly(0, 1);
        assertThat(s.metrics().get(1)).isEqualTo(ms.get(0));
        assertThat(s.notes()).isEmpty();
    }

    private static JsonNode readJson(String line) {
        try {
            return new ObjectMapper().readTree(line);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void missingInitialAndUncommittedSnapshotsAreNotes() throws IOException {
        Path run = run("gaps");
        Files.delete(Trainer.snapshotPath(run, 0));
        Files.delete(Trainer.snapshotPath(run, 4));
        // stopped while committing epoch 9: its snapshot landed, its metrics line did not
        writeMetrics(run, metricsLines(run).subList(0, 8));
        RunSnapshots s = RunSnapshots.read(run);
        assertThat(s.weights().keySet()).containsExactly(0, 2, 6, 8);
        assertThat(s.weights().get(0).data).isEqualTo(Weights.init(CFG.modelConfig(), CFG.initSeed()).data);
        assertThat(s.missing()).containsExactly(4);
        assertThat(s.notes()).containsExactly(
                "the initial weights' snapshot (" + Path.of("snapshots", "epoch-0000.safetensors") + ") is missing; "
                        + "they are drawn again from init seed 5, as the run drew them",
                Path.of("snapshots", "epoch-0009.safetensors") + " left out: the run committed 8 epochs "
                        + "(metrics.jsonl), so it holds an epoch that was being written when the run stopped",
                "1 snapshot the run should have written is missing (epoch 4, one every 2 epochs): the curves skip it");

        Path more = run("more-gaps");
        for (int e : new int[] {4, 8, 9}) {
            Files.delete(Trainer.snapshotPath(more, e));
        }
        RunSnapshots m = RunSnapshots.read(more);
        assertThat(m.missing()).containsExactly(4, 8, 9);
        assertThat(m.notes()).containsExactly("3 snapshots the run should have written are missing (epochs 4, 8-9, "
                + "one every 2 epochs): the curves skip them");
    }

    @Test
    void aFolderThatIsNotARunWithSnapshotsIsRefused() throws IOException {
        assertRefused(tmp.resolve("absent"), "run folder " + tmp.resolve("absent") + " does not exist; expected a "
                + "folder written by trilens train or run");
        Path plain = run("plain");
        try (Stream<Path> snapshots = Files.list(plain.resolve(Trainer.SNAPSHOTS))) {
            for (Path f : snapshots.toList()) {
                Files.delete(f);
            }
        }
        Files.delete(plain.resolve(Trainer.SNAPSHOTS));
        assertRefused(plain, plain + " has no snapshots (" + plain.resolve("snapshots")
                + "/epoch-NNNN.safetensors): train with --snapshot-every N to keep them");

        Path run = run("run");
        Path metrics = run.resolve(Trainer.METRICS);
        List<String> lines = metricsLines(run);
        Files.delete(metrics);
        assertRefused(run, "no " + metrics + ": expected the run folder of trilens train or run, which writes it "
                + "beside its snapshots");
        writeMetrics(run, List.of(lines.get(0), "", "{\"epoch\": 2,"));
        assertThatThrownBy(() -> RunSnapshots.read(run)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith(metrics + " line 3 is not JSON (")
                .hasMessageEndingWith("): expected the lines trilens train writes");
        writeMetrics(run, List.of(lines.get(0), "[2]"));
        assertRefused(run, metrics + " line 2 is not a JSON object: expected the lines trilens train writes");
        writeMetrics(run, List.of(lines.get(0), lines.get(2)));
        assertRefused(run, metrics + " line 2 is epoch 3, expected epoch 2: one line per epoch, in order");
        List<String> tooMany = new ArrayList<>(lines);
        tooMany.add(lines.get(8).replace("\"epoch\":9", "\"epoch\":10"));
        assertThat(tooMany.get(9)).isNotEqualTo(lines.get(8));
        writeMetrics(run, tooMany);
        assertRefused(run, metrics + " has 10 epochs, but the run trains 9: expected the metrics of this run");

        // nothing committed: every snapshot but epoch 0's is of an epoch being written, then not even that one
        writeMetrics(run, List.of());
        assertRefused(run, run + " has only the initial weights' snapshot: dynamics needs the snapshot of at least "
                + "one trained epoch (the run saves one every 2 epochs)");
        Files.delete(Trainer.snapshotPath(run, 0));
        assertThatThrownBy(() -> RunSnapshots.read(run)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith(run + " has no snapshot of a committed epoch: "
                        + Path.of("snapshots", "epoch-0002.safetensors") + " left out: the run committed 0 epochs");
    }

    @Test
    void aSnapshotThatIsNotThisRunsEpochIsRefused() throws IOException {
        Path run = run("interval");
        Path second = Trainer.snapshotPath(run, 2);
        for (String every : new String[] {"0", "two", null}) {
            setMetadata(run, 2, Trainer.SNAPSHOT_EVERY, every);
            assertRefused(run, second + ": metadata train.snapshot_every is '" + every + "', expected the interval "
                    + "trilens train --snapshot-every writes (an integer >= 1)");
        }

        Path renamed = run("renamed");
        for (String done : new String[] {"4", null}) {
            setMetadata(renamed, 2, Trainer.EPOCHS_DONE, done);
            assertRefused(renamed, Trainer.snapshotPath(renamed, 2) + " holds the weights of epoch '" + done
                    + "' (metadata train.epochs_done), expected 2 as its name says");
        }

        Path other = run("other");
        Map<String, String> meta = new LinkedHashMap<>(CFG.withSeed(41).toMetadata());
        meta.put(Trainer.EPOCHS_DONE, "4");
        meta.put(Trainer.SNAPSHOT_EVERY, "2");
        Safetensors.write(Checkpoints.load(Trainer.snapshotPath(other, 4)).weights(), meta,
                Trainer.snapshotPath(other, 4));
        assertRefused(other, Trainer.snapshotPath(other, 4) + " was written by a run with another config than "
                + Trainer.snapshotPath(other, 0) + " (" + CFG.withSeed(41).describe() + "): expected the snapshots "
                + "of one run");

        // epoch 6's weights under epoch 4's name and metadata: its trigram score is not the one metrics.jsonl has
        Path swapped = run("swapped");
        Checkpoint four = Checkpoints.load(Trainer.snapshotPath(swapped, 4));
        Safetensors.write(Checkpoints.load(Trainer.snapshotPath(swapped, 6)).weights(), four.metadata(),
                Trainer.snapshotPath(swapped, 4));
        assertThatThrownBy(() -> RunSnapshots.read(swapped)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith(Trainer.snapshotPath(swapped, 4) + " does not hold epoch 4 of this run: its "
                        + "trigram score is ")
                .hasMessageEndingWith("; expected the snapshots the run wrote");
        // the scores are computed in parallel, the check is in epoch order: with 8 swapped too, 4 is still the one named
        Checkpoint eight = Checkpoints.load(Trainer.snapshotPath(swapped, 8));
        Safetensors.write(Checkpoints.load(Trainer.snapshotPath(swapped, 2)).weights(), eight.metadata(),
                Trainer.snapshotPath(swapped, 8));
        assertThatThrownBy(() -> RunSnapshots.read(swapped)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith(Trainer.snapshotPath(swapped, 4) + " does not hold epoch 4 of this run");
    }
}
