package dev.trilens.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trilens.TrilensException;
import dev.trilens.io.Checkpoint;
import dev.trilens.io.Checkpoints;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Parallel;
import dev.trilens.model.Weights;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrainerTest {

    /** Small enough for a few epochs in about a second; 500 = 7 full batches of 64 + a partial one of 52. */
    static final TrainConfig TINY = new TrainConfig(12, 10, 0.1, 5, 500, 50, 4, 64, 1e-2, 1e-3, 1e-3,
            16, 1, 8, 16, 1, false, 5);

    @TempDir
    Path tmp;

    private static final Trainer.Listener QUIET = new Trainer.Listener() {
    };

    @Test
    void resumedRunIsBitIdenticalAndDropsUncommittedMetrics() throws IOException {
        Path straight = tmp.resolve("straight");
        Trainer.start(TINY, straight).run(QUIET);

        Path split = tmp.resolve("split");
        Trainer first = Trainer.start(TINY, split);
        assertThat(first.run(QUIET, 2)).hasSize(2);
        // what kill -9 during epoch 3 can leave behind: its metrics line already written, then a torn one
        Files.writeString(split.resolve(Trainer.METRICS), "{\"epoch\":3,\"train_loss\":9}\n{\"epoch\":4,\"tr",
                StandardOpenOption.APPEND);
        Trainer resumed = Trainer.resume(split);
        assertThat(resumed.epochsDone()).isEqualTo(2);
        assertThat(resumed.run(QUIET)).extracting(Trainer.EpochMetrics::epoch).containsExactly(3, 4);

        for (String file : List.of(Trainer.MODEL, Trainer.BEST)) {
            assertThat(Checkpoints.load(split.resolve(file)).weights().data)
                    .isEqualTo(Checkpoints.load(straight.resolve(file)).weights().data);
        }
        TrainState a = TrainState.read(straight.resolve(Trainer.STATE));
        TrainState b = TrainState.read(split.resolve(Trainer.STATE));
        assertThat(b.adamM()).isEqualTo(a.adamM());
        assertThat(b.adamV()).isEqualTo(a.adamV());
        assertThat(b.adamStep()).isEqualTo(a.adamStep()).isEqualTo(4 * 8);
        assertThat(b.epochsDone()).isEqualTo(4);

        List<JsonNode> la = metrics(straight), lb = metrics(split);
        assertThat(lb).hasSize(4);
        for (int i = 0; i < 4; i++) {
            assertThat(lb.get(i).get("epoch").intValue()).isEqualTo(i + 1);
            // everything but the wall-clock time is reproduced
            ((com.fasterxml.jackson.databind.node.ObjectNode) la.get(i)).remove("seconds");
            ((com.fasterxml.jackson.databind.node.ObjectNode) lb.get(i)).remove("seconds");
            assertThat(lb.get(i)).isEqualTo(la.get(i));
        }
    }

    /**
     * Snapshots: epoch 0 (the initial weights), every n-th epoch and the last, each the weights of that epoch; a run
     * stopped and resumed writes the same files, bit for bit, without being asked again, and keeps its interval.
     */
    @Test
    void snapshotsSurviveAResumeBitForBit() throws IOException {
        TrainConfig cfg = TINY.withEpochs(7);
        Path straight = tmp.resolve("straight");
        Trainer s = Trainer.start(cfg, straight).snapshotEvery(3);
        assertThat(Trainer.snapshots(straight).keySet()).as("epoch 0 at once").containsExactly(0);
        List<float[]> byEpoch = new ArrayList<>();
        byEpoch.add(s.weights().data.clone());
        s.run(new Trainer.Listener() {
            @Override
            public void epochDone(Trainer.EpochMetrics m) {
                byEpoch.add(s.weights().data.clone());
            }
        });
        assertThat(Trainer.snapshots(straight).keySet()).containsExactly(0, 3, 6, 7);
        for (int e : Trainer.snapshots(straight).keySet()) {
            Checkpoint c = Checkpoints.load(Trainer.snapshotPath(straight, e));
            assertThat(c.weights().data).as("epoch %d", e).isEqualTo(byEpoch.get(e));
            assertThat(c.metadata()).containsEntry(Trainer.EPOCHS_DONE, Integer.toString(e))
                    .containsEntry(Trainer.SNAPSHOT_EVERY, "3");
        }
        assertThat(byEpoch.get(0)).isEqualTo(Weights.init(cfg.modelConfig(), cfg.initSeed()).data);

        Path split = tmp.resolve("split");
        Trainer.start(cfg, split).snapshotEvery(3).run(QUIET, 4);
        assertThat(Trainer.snapshots(split).keySet()).containsExactly(0, 3);
        Trainer resumed = Trainer.resume(split);
        assertThat(resumed.snapshotInterval()).isEqualTo(3);
        assertThatThrownBy(() -> Trainer.resume(split).snapshotEvery(2)).isInstanceOf(TrilensException.class)
                .hasMessage("cannot resume " + split + " with --snapshot-every 2: its snapshots are every 3 epochs; "
                        + "drop the flag or pass --snapshot-every 3");
        resumed.snapshotEvery(3).run(QUIET);
        for (int e : List.of(0, 3, 6, 7)) {
            assertThat(Files.readAllBytes(Trainer.snapshotPath(split, e))).as("epoch %d", e)
                    .isEqualTo(Files.readAllBytes(Trainer.snapshotPath(straight, e)));
        }

        // a run that starts keeping snapshots on resume gets epoch 0 and the epoch it stands at, if it is one
        Path late = tmp.resolve("late");
        Trainer.start(cfg, late).run(QUIET, 6);
        Trainer.resume(late).snapshotEvery(3);
        assertThat(Trainer.snapshots(late).keySet()).containsExactly(0, 6);
        assertThat(Files.readAllBytes(Trainer.snapshotPath(late, 6)))
                .isEqualTo(Files.readAllBytes(Trainer.snapshotPath(straight, 6)));
        assertThatThrownBy(() -> Trainer.start(cfg, tmp.resolve("zero")).snapshotEvery(0))
                .isInstanceOf(TrilensException.class).hasMessageContaining("must be >= 1");
        Path everyEpoch = tmp.resolve("every");
        Trainer.start(cfg.withEpochs(2), everyEpoch).snapshotEvery(1).run(QUIET);
        assertThat(Trainer.snapshots(everyEpoch).keySet()).containsExactly(0, 1, 2);
    }

    /**
     * The config's weight decay reaches the optimiser, decoupled as torch's AdamW applies it: after one step from the
     * same weights on the same batch, a run with decay wd differs from one without by exactly -lr * wd * p0 in every
     * parameter p0 (the Adam update itself is the same in both). TorchReplayTest checks whole runs against torch.
     */
    @Test
    void oneStepShrinksEveryWeightByTheConfigsDecay() {
        double wd = 0.5;
        // one batch of 64 sequences, one epoch: one step
        TrainConfig decayed = new TrainConfig(12, 10, 0.1, 5, 64, 50, 1, 64, 1e-2, 1e-3, wd, 16, 1, 8, 16, 1, false,
                5);
        TrainConfig plain = new TrainConfig(12, 10, 0.1, 5, 64, 50, 1, 64, 1e-2, 1e-3, 0, 16, 1, 8, 16, 1, false,
                5);
        Trainer a = Trainer.start(decayed, tmp.resolve("decayed"));
        Trainer b = Trainer.start(plain, tmp.resolve("plain"));
        float[] p0 = a.weights().data.clone();
        double lr = a.run(QUIET).get(0).lr();
        assertThat(b.run(QUIET).get(0).lr()).isEqualTo(lr);
        float[] pa = a.weights().data, pb = b.weights().data;
        int changed = 0;
        for (int i = 0; i < p0.length; i++) {
            double expected = -lr * wd * p0[i];
            assertThat((double) pa[i] - pb[i]).as("parameter %d", i)
                    .isCloseTo(expected, within(1e-6 * (1 + Math.abs(pa[i]))));
            changed += Math.abs(expected) > 1e-4 ? 1 : 0;
        }
        // (the biases start at 0 and many weights near it: a quarter move by 100 times the tolerance or more)
        assertThat(changed).as("parameters the decay moves visibly").isGreaterThan(p0.length / 4);
    }

    /** best.safetensors keeps the first epoch to reach the best score: a later one that only equals it does not win. */
    @Test
    void aTiedScoreKeepsTheEarlierBestEpoch() {
        // a learning rate so small that no weight moves by a float's rounding: every epoch scores the same
        TrainConfig still = new TrainConfig(12, 10, 0.1, 5, 64, 50, 3, 64, 1e-30, 1e-30, 1e-3, 16, 1, 8, 16, 1, false,
                5);
        Trainer t = Trainer.start(still, tmp.resolve("still"));
        List<Trainer.EpochMetrics> ms = t.run(QUIET);
        assertThat(ms).extracting(Trainer.EpochMetrics::trigramAvgCorrectProb).containsOnly(
                ms.get(0).trigramAvgCorrectProb());
        assertThat(t.bestEpoch()).isEqualTo(1);
    }

    @Test
    void metricsAndCheckpointsCarryWhatEvaluateNeeds() throws IOException {
        Path dir = tmp.resolve("run");
        Trainer t = Trainer.start(TINY.withEpochs(1), dir);
        List<Trainer.EpochMetrics> ms = t.run(QUIET);
        JsonNode line = metrics(dir).get(0);
        List<String> keys = new ArrayList<>();
        line.fieldNames().forEachRemaining(keys::add);
        assertThat(keys).containsExactly("epoch", "train_loss", "train_loss_as_frac", "val_loss",
                "trigram_n_correct", "trigram_frac_correct", "trigram_avg_correct_prob", "lr", "seconds");
        assertThat(line.get("lr").doubleValue()).isEqualTo(TINY.withEpochs(1).schedule().lr(0)).isCloseTo(1e-3,
                org.assertj.core.api.Assertions.within(1e-15));
        assertThat(line.get("train_loss").doubleValue()).isEqualTo(ms.get(0).trainLoss()).isBetween(1.0, 3.0);
        assertThat(line.get("trigram_n_correct").intValue()).isBetween(0, t.dataset().nTrigrams());

        Checkpoint ckpt = Checkpoints.load(dir.resolve(Trainer.MODEL));
        assertThat(ckpt.weights().cfg).isEqualTo(TINY.modelConfig());
        assertThat(ckpt.weights().data).isEqualTo(t.weights().data);
        assertThat(ckpt.metadata()).containsEntry("data.seed", "5").containsEntry("data.trigram_prob", "0.1")
                .containsEntry("train.epochs_done", "1");
        assertThat(TrainConfig.fromMetadata(ckpt.metadata(), "m")).isEqualTo(TINY.withEpochs(1));
        assertThat(dir.resolve(Trainer.BEST)).isRegularFile();
        try (var files = Files.list(dir)) {
            assertThat(files.map(p -> p.getFileName().toString())).as("no temp files left")
                    .containsExactlyInAnyOrder(Trainer.MODEL, Trainer.BEST, Trainer.METRICS, Trainer.STATE);
        }
    }

    @Test
    void startsFromTorchsInitAndValidatesOnTheRandomSplit() {
        Trainer t = Trainer.start(TINY.withEpochs(1), tmp.resolve("v"));
        assertThat(t.weights().data).isEqualTo(
                Weights.init(TINY.modelConfig(), TINY.initSeed()).data);
        Trainer.EpochMetrics m = t.run(QUIET).get(0);
        int T = TINY.seqLen();
        int[] val = DataOrder.of(t.dataset(), TINY.nTrain(), TINY.nVal()).validationIndices();
        int[] tokens = new int[val.length * T];
        for (int i = 0; i < val.length; i++) {
            System.arraycopy(t.dataset().tokens(), val[i] * T, tokens, i * T, T);
        }
        HookedTransformer model = new HookedTransformer(t.weights());
        // trained with the training kernels, checked with the model's: the same up to rounding
        assertThat(m.valLoss()).isCloseTo(Metrics.loss(model.forward(tokens, val.length, T), tokens),
                org.assertj.core.data.Offset.offset(1e-6));
        assertThat(val).as("not simply the last n_val sequences").isNotEqualTo(
                IntStream.range(TINY.nTrain(), TINY.nTrain() + TINY.nVal()).toArray());
    }

    @Test
    void sameWeightsWhateverTheThreadCount() {
        int before = Parallel.threads();
        try {
            TrainConfig cfg = TINY.withEpochs(2);
            Parallel.setThreads(1);
            Trainer one = Trainer.start(cfg, tmp.resolve("one"));
            one.run(QUIET);
            Parallel.setThreads(2);
            Trainer two = Trainer.start(cfg, tmp.resolve("two"));
            two.run(QUIET);
            assertThat(two.weights().data).isEqualTo(one.weights().data);
        } finally {
            Parallel.setThreads(before);
        }
    }

    @Test
    void learnsItsTrigrams() {
        // 16 tokens, 24 trigrams; measured: every trigram right, average probability 0.83, in ~3 s
        TrainConfig cfg = new TrainConfig(16, 12, 0.1, 40, 2000, 200, 15, 64, 1e-2, 1e-3, 1e-3,
                32, 1, 16, 20, 1, false, 40);
        List<Trainer.EpochMetrics> ms = Trainer.start(cfg, tmp.resolve("learn")).run(QUIET);
        Trainer.EpochMetrics first = ms.get(0), last = ms.get(ms.size() - 1);
        assertThat(last.trigramFracCorrect()).isGreaterThanOrEqualTo(0.9);
        assertThat(last.trigramAvgCorrectProb()).isGreaterThan(0.6);
        assertThat(last.trainLossAsFrac()).isLessThan(0.45).isLessThan(first.trainLossAsFrac());
    }

    @Test
    void batchesAreReported() {
        int[] batches = {0};
        Trainer.start(TINY.withEpochs(1), tmp.resolve("b")).run(new Trainer.Listener() {
            @Override
            public void batchDone(int epoch, int batch, int nBatches, double loss) {
                assertThat(nBatches).isEqualTo(8);
                assertThat(batch).isEqualTo(++batches[0]);
            }
        });
        assertThat(batches[0]).isEqualTo(8);
    }

    @Test
    void epochsReportTheirStartTheirBatchesAndTheirTime() {
        // 128 sequences in batches of 64: exactly two batches an epoch, no empty third
        TrainConfig cfg = new TrainConfig(12, 10, 0.1, 5, 128, 50, 2, 64, 1e-2, 1e-3, 1e-3, 16, 1, 8, 16, 1, false, 5);
        List<String> events = new ArrayList<>();
        long t0 = System.nanoTime();
        List<Trainer.EpochMetrics> ms = Trainer.start(cfg, tmp.resolve("events")).run(new Trainer.Listener() {
            @Override
            public void epochStarted(int epoch, int nBatches, double lr) {
                events.add("start " + epoch + " of " + nBatches + " at " + lr);
            }

            @Override
            public void batchDone(int epoch, int batch, int nBatches, double loss) {
                events.add("batch " + epoch + "." + batch);
            }
        });
        double wall = (System.nanoTime() - t0) / 1e9;
        assertThat(events).containsExactly("start 1 of 2 at " + cfg.schedule().lr(0), "batch 1.1", "batch 1.2",
                "start 2 of 2 at " + cfg.schedule().lr(1), "batch 2.1", "batch 2.2");
        assertThat(ms).hasSize(2).allSatisfy(m -> assertThat(m.seconds()).isPositive().isLessThanOrEqualTo(wall));
    }

    @Test
    void bestIsTheEpochWithTheHighestAverageProbability() throws IOException {
        Path dir = tmp.resolve("best");
        Trainer t = Trainer.start(TINY, dir);
        List<float[]> after = new ArrayList<>();
        List<Trainer.EpochMetrics> ms = t.run(new Trainer.Listener() {
            @Override
            public void epochDone(Trainer.EpochMetrics m) {
                after.add(t.weights().data.clone());
            }
        });
        int best = 0;
        for (int e = 1; e < ms.size(); e++) {
            if (ms.get(e).trigramAvgCorrectProb() > ms.get(best).trigramAvgCorrectProb()) {
                best = e;
            }
        }
        assertThat(t.bestEpoch()).isEqualTo(best + 1);
        assertThat(Checkpoints.load(dir.resolve(Trainer.BEST)).weights().data).isEqualTo(after.get(best));
    }

    @Test
    void lastMetricsAreTheCommittedEpochsAndAResumeRereadsThem() throws IOException {
        Path dir = tmp.resolve("last");
        Trainer t = Trainer.start(TINY, dir);
        assertThat(t.lastMetrics()).isNull();
        List<Trainer.EpochMetrics> ms = t.run(QUIET, 2);
        assertThat(t.lastMetrics()).isEqualTo(ms.get(1));
        assertThat(Trainer.resume(dir).lastMetrics()).isEqualTo(ms.get(1));

        Path file = dir.resolve(Trainer.METRICS);
        List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        // cut back to its first line by hand: the run's record no longer matches it
        Files.writeString(file, lines.get(0) + "\n");
        assertThatThrownBy(() -> Trainer.resume(dir).lastMetrics()).isInstanceOf(TrilensException.class)
                .hasMessage(file + " holds 1 complete lines, but the run has done 2 epochs: expected one line per "
                        + "epoch as trilens train writes them");
        Files.delete(file);
        assertThatThrownBy(() -> Trainer.resume(dir).lastMetrics()).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith(file + " holds 0 complete lines");
        // refused by the resume itself, before an epoch runs: going on would write a file without epochs 1 and 2
        assertThatThrownBy(() -> Trainer.resume(dir)).isInstanceOf(TrilensException.class)
                .hasMessage(file + " holds 0 complete lines, but the run has done 2 epochs: expected one line per "
                        + "epoch as trilens train writes them");
        assertThat(file).doesNotExist();
        ObjectNode second = (ObjectNode) new ObjectMapper().readTree(lines.get(1));
        second.remove("lr");
        Files.writeString(file, lines.get(0) + "\n" + second + "\n");
        assertThatThrownBy(() -> Trainer.resume(dir).lastMetrics()).isInstanceOf(TrilensException.class)
                .hasMessage(file + ": a metrics line lacks 'lr', expected the lines trilens train writes");
    }

    @Test
    void startAndResumeRefuseTheWrongFolder() throws IOException {
        Path dir = tmp.resolve("r");
        assertThatThrownBy(() -> Trainer.resume(dir)).isInstanceOf(TrilensException.class)
                .hasMessage("nothing to resume in " + dir + ": no train_state.safetensors (a run saves it after its "
                        + "first epoch); start a run without --resume");
        Trainer.start(TINY.withEpochs(1), dir).run(QUIET);
        assertThatThrownBy(() -> Trainer.start(TINY, dir)).isInstanceOf(TrilensException.class)
                .hasMessage(dir + " already holds a training run (train_state.safetensors); pass --resume to "
                        + "continue it, or choose another --out");
        Files.write(dir.resolve(Trainer.STATE), new byte[] {1, 2, 3});
        assertThatThrownBy(() -> Trainer.resume(dir)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith("training state " + dir.resolve(Trainer.STATE) + " is unusable: ");
    }

    @Test
    void resumeChecksTheSizesTheStateDeclaresAgainstItsTensors() throws IOException {
        Path dir = tmp.resolve("sizes");
        Trainer.start(TINY.withEpochs(1), dir).run(QUIET);
        Path state = dir.resolve(Trainer.STATE);
        byte[] good = Files.readAllBytes(state);
        String where = "training state " + state + " is unusable: ";
        String expected = "; expected the train_state file trilens train writes (start a fresh run with another --out)";

        withMetadata(state, good, "n_layers", "2000000000");
        assertThatThrownBy(() -> Trainer.resume(dir)).isInstanceOf(TrilensException.class)
                .hasMessage(where + "its metadata declares a model (d_vocab=12 n_ctx=10 d_model=16 n_layers=2000000000"
                        + " n_heads=1 d_head=8 d_mlp=16 normalization=none) of " + ParamLayout.count(
                        new ModelConfig(12, 10, 16, 2_000_000_000, 1, 8, 16, false)) + " parameters, but tensor 'params' holds "
                        + ParamLayout.count(TINY.modelConfig()) + expected);

        withMetadata(state, good, "d_model", "2000000000");
        assertThatThrownBy(() -> Trainer.resume(dir)).isInstanceOf(TrilensException.class)
                .hasMessageStartingWith(where + "its metadata declares a model (d_vocab=12 n_ctx=10 "
                        + "d_model=2000000000 ");

        withMetadata(state, good, "n_heads", "x\u001b[31m");
        assertThatThrownBy(() -> Trainer.resume(dir)).isInstanceOf(TrilensException.class)
                .hasMessageContaining("For input string: \"x\\x1b[31m\"");

        // a NaN in the weights: resuming would train on garbage and save it as the model
        long n = ByteBuffer.wrap(good, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        JsonNode header = new ObjectMapper().readTree(new String(good, 8, (int) n, StandardCharsets.UTF_8));
        int at = 8 + (int) n + header.at("/params/data_offsets/0").asInt() + 3 * Float.BYTES;
        byte[] nan = good.clone();
        ByteBuffer.wrap(nan, at, 4).order(ByteOrder.LITTLE_ENDIAN).putFloat(Float.NaN);
        Files.write(state, nan);
        assertThatThrownBy(() -> Trainer.resume(dir)).isInstanceOf(TrilensException.class)
                .hasMessage(where + "tensor 'params' holds NaN at index 3, expected finite values" + expected);

        Files.write(state, good);
        assertThat(Trainer.resume(dir).epochsDone()).isEqualTo(1);
    }

    /** Rewrites the state file with one metadata value changed, its tensors as they were. */
    private static void withMetadata(Path state, byte[] good, String key, String value) throws IOException {
        ObjectMapper json = new ObjectMapper();
        long n = ByteBuffer.wrap(good, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        ObjectNode header = (ObjectNode) json.readTree(new String(good, 8, (int) n, StandardCharsets.UTF_8));
        ((ObjectNode) header.get("__metadata__")).put(key, value);
        byte[] h = json.writeValueAsBytes(header);
        ByteBuffer out = ByteBuffer.allocate(8 + h.length + good.length - 8 - (int) n).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(h.length).put(h).put(good, 8 + (int) n, good.length - 8 - (int) n);
        Files.write(state, out.array());
    }

    static List<JsonNode> metrics(Path dir) throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<JsonNode> out = new ArrayList<>();
        for (String line : Files.readAllLines(dir.resolve(Trainer.METRICS), StandardCharsets.UTF_8)) {
            out.add(json.readTree(line));
        }
        return out;
    }
}
