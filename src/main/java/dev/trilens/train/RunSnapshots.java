package dev.trilens.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.Checkpoint;
import dev.trilens.io.FileText;
import dev.trilens.io.Safetensors;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Parallel;
import dev.trilens.model.Weights;
import dev.trilens.model.kernels.VectorWidth;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * A run folder's snapshots (train --snapshot-every) with the metrics of their epochs, read and checked to belong to
 * one run: every snapshot carries the run's config in its metadata and the epoch its file name says, and every trained
 * epoch has its line in metrics.jsonl, whose trigram score the snapshot's weights give again. What cannot be used is
 * said in {@link #notes}: a snapshot of an epoch the run never committed (it was being written when the run was
 * killed) is left out, and snapshots the interval promises but the folder lacks are listed in {@link #missing}; the
 * initial weights, if their snapshot is gone, are drawn again from the init seed, as the run drew them.
 *
 * @param weights  the usable snapshots by epoch, epoch 0 (the initial weights) first
 * @param metrics  metrics.jsonl's line of every trained epoch in weights
 * @param scores   the trigram score of every snapshot in weights, as read computes it to check it (epoch 0's too)
 * @param interval the run's --snapshot-every
 */
public record RunSnapshots(Path dir, TrainConfig config, int interval, SortedMap<Integer, Weights> weights,
                           Map<Integer, Trainer.EpochMetrics> metrics, Map<Integer, Metrics.TrigramScore> scores,
                           List<Integer> missing, List<String> notes) {

    private static final ObjectMapper JSON = new ObjectMapper();

    public static RunSnapshots read(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new TrilensException("run folder " + dir + " does not exist; expected a folder written by trilens "
                    + "train or run");
        }
        SortedMap<Integer, Path> files = Trainer.snapshots(dir);
        if (files.isEmpty()) {
            throw new TrilensException(dir + " has no snapshots (" + dir.resolve(Trainer.SNAPSHOTS)
                    + "/epoch-NNNN.safetensors): train with --snapshot-every N to keep them");
        }
        List<Trainer.EpochMetrics> lines = metricsLines(dir.resolve(Trainer.METRICS));
        int committed = lines.size();
        List<String> notes = new ArrayList<>();
        TrainConfig cfg = null;
        Path cfgFrom = null;
        int interval = 0;
        SortedMap<Integer, Weights> weights = new TreeMap<>();
        for (Map.Entry<Integer, Path> e : files.entrySet()) {
            int epoch = e.getKey();
            Path file = e.getValue();
            if (epoch > committed) {
                notes.add(String.format("%s left out: the run committed %d epochs (%s), so it holds an epoch that was "
                        + "being written when the run stopped", dir.relativize(file), committed, Trainer.METRICS));
                continue;
            }
            Checkpoint c = Safetensors.read(file);
            Map<String, String> meta = c.metadata();
            TrainConfig fileCfg = TrainConfig.fromMetadata(meta, file.toString());
            if (cfg == null) {
                cfg = fileCfg;
                cfgFrom = file;
                // before the snapshots' trigram scores run the kernels
                VectorWidth.preferFor(cfg.dHead());
            } else if (!fileCfg.equals(cfg)) {
                throw new TrilensException(file + " was written by a run with another config than " + cfgFrom
                        + " (" + fileCfg.describe() + "): expected the snapshots of one run");
            }
            String done = meta.get(Trainer.EPOCHS_DONE);
            if (done == null || !done.trim().equals(Integer.toString(epoch))) {
                throw new TrilensException(file + " holds the weights of epoch '" + FileText.show(String.valueOf(done))
                        + "' (metadata " + Trainer.EPOCHS_DONE + "), expected " + epoch + " as its name says");
            }
            interval = Math.max(interval, parseInterval(meta.get(Trainer.SNAPSHOT_EVERY), file));
            weights.put(epoch, c.weights());
        }
        if (cfg == null) {
            throw new TrilensException(dir + " has no snapshot of a committed epoch: " + String.join("; ", notes));
        }
        if (!weights.containsKey(0)) {
            notes.add(0, "the initial weights' snapshot (" + dir.relativize(Trainer.snapshotPath(dir, 0)) + ") is "
                    + "missing; they are drawn again from init seed " + cfg.initSeed() + ", as the run drew them");
            weights.put(0, Weights.init(cfg.modelConfig(), cfg.initSeed()));
        }
        if (weights.size() < 2) {
            throw new TrilensException(dir + " has only the initial weights' snapshot: dynamics needs the snapshot "
                    + "of at least one trained epoch (the run saves one every " + interval + " epochs)");
        }
        if (committed > cfg.epochs()) {
            throw new TrilensException(dir.resolve(Trainer.METRICS) + " has " + committed + " epochs, but the run "
                    + "trains " + cfg.epochs() + ": expected the metrics of this run");
        }
        Map<Integer, Trainer.EpochMetrics> metrics = new LinkedHashMap<>();
        // the trigrams alone: the score is computed on them, for every snapshot at once, then checked in epoch order
        TrigramDataset trigrams = TrigramDataset.generate(cfg.dVocab(), cfg.seqLen(), cfg.trigramProb(),
                cfg.dataSeed(), 1);
        List<Integer> epochs = new ArrayList<>(weights.keySet());
        Metrics.TrigramScore[] computed = new Metrics.TrigramScore[epochs.size()];
        Parallel.forEachItem(epochs.size(), (worker, i) -> computed[i] = Metrics.trigramScore(
                new HookedTransformer(weights.get(epochs.get(i))), trigrams));
        Map<Integer, Metrics.TrigramScore> scores = new LinkedHashMap<>();
        for (int i = 0; i < epochs.size(); i++) {
            int epoch = epochs.get(i);
            scores.put(epoch, computed[i]);
            if (epoch > 0) {
                Trainer.EpochMetrics m = lines.get(epoch - 1);
                requireSameScore(Trainer.snapshotPath(dir, epoch), epoch, computed[i], m);
                metrics.put(epoch, m);
            }
        }
        List<Integer> missing = new ArrayList<>();
        for (int epoch = 1; epoch <= committed; epoch++) {
            boolean expected = epoch % interval == 0 || epoch == cfg.epochs();
            if (expected && !weights.containsKey(epoch)) {
                missing.add(epoch);
            }
        }
        if (!missing.isEmpty()) {
            notes.add(String.format("%d snapshot%s the run should have written %s missing (epoch%s %s, one every %d "
                            + "epochs): the curves skip %s", missing.size(), missing.size() == 1 ? "" : "s",
                    missing.size() == 1 ? "is" : "are", missing.size() == 1 ? "" : "s", ranges(missing), interval,
                    missing.size() == 1 ? "it" : "them"));
        }
        return new RunSnapshots(dir, cfg, interval, weights, metrics, scores, List.copyOf(missing), List.copyOf(notes));
    }

    /**
     * A snapshot must be the epoch metrics.jsonl describes: its trigram score, recomputed, must be the same. The
     * average probability is compared to 1e-6, not exactly: float kernels of another width (scalar, AVX2, AVX-512)
     * round it differently in its last digits, while a neighbouring epoch's differs in the third or fourth.
     */
    static final double SCORE_TOLERANCE = 1e-6;

    private static void requireSameScore(Path file, int epoch, Metrics.TrigramScore tri, Trainer.EpochMetrics m) {
        boolean same = tri.nCorrect() == m.trigramNCorrect() && (Double.isNaN(tri.avgCorrectProb())
                ? Double.isNaN(m.trigramAvgCorrectProb())
                : Math.abs(tri.avgCorrectProb() - m.trigramAvgCorrectProb()) <= SCORE_TOLERANCE);
        if (!same) {
            throw new TrilensException(String.format(java.util.Locale.ROOT, "%s does not hold epoch %d of this run: "
                            + "its trigram score is %d correct, avg p %.9f, where %s says %d, %.9f; expected the "
                            + "snapshots the run wrote", file, epoch, tri.nCorrect(), tri.avgCorrectProb(),
                    Trainer.METRICS, m.trigramNCorrect(), m.trigramAvgCorrectProb()));
        }
    }

    private static int parseInterval(String every, Path file) {
        try {
            int n = every == null ? 0 : Integer.parseInt(every.trim());
            if (n >= 1) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new TrilensException(file + ": metadata " + Trainer.SNAPSHOT_EVERY + " is '"
                + FileText.show(String.valueOf(every)) + "', expected the interval trilens train --snapshot-every "
                + "writes (an integer >= 1)");
    }

    /** metrics.jsonl's lines, which must be epochs 1, 2, ... in order. */
    static List<Trainer.EpochMetrics> metricsLines(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new TrilensException("no " + file + ": expected the run folder of trilens train or run, which "
                    + "writes it beside its snapshots");
        }
        List<Trainer.EpochMetrics> out = new ArrayList<>();
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new TrilensException("cannot read " + file + ": " + e.getMessage(), e);
        }
        for (int i = 0; i < lines.size(); i++) {
            if (lines.get(i).isBlank()) {
                continue;
            }
            String where = file + " line " + (i + 1);
            JsonNode n;
            try {
                n = JSON.readTree(lines.get(i));
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw new TrilensException(where + " is not JSON (" + FileText.show(e.getOriginalMessage())
                        + "): expected the lines trilens train writes", e);
            }
            if (n == null || !n.isObject()) {
                throw new TrilensException(where + " is not a JSON object: expected the lines trilens train writes");
            }
            Trainer.EpochMetrics m = Trainer.EpochMetrics.fromJson(n, where);
            if (m.epoch() != out.size() + 1) {
                throw new TrilensException(where + " is epoch " + m.epoch() + ", expected epoch " + (out.size() + 1)
                        + ": one line per epoch, in order");
            }
            out.add(m);
        }
        return out;
    }

    /** 3, 5-8, 12. */
    static String ranges(List<Integer> sorted) {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < sorted.size(); ) {
            int j = i;
            while (j + 1 < sorted.size() && sorted.get(j + 1) == sorted.get(j) + 1) {
                j++;
            }
            s.append(s.length() == 0 ? "" : ", ").append(sorted.get(i));
            if (j > i) {
                s.append('-').append(sorted.get(j));
            }
            i = j + 1;
        }
        return s.toString();
    }
}
