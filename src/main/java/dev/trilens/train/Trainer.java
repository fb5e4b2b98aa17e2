package dev.trilens.train;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.Safetensors;
import dev.trilens.io.TorchCheckpoint;
import dev.trilens.model.Backprop;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Weights;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Trains a model with the challenge's recipe into a run folder, epoch by epoch. After each epoch it writes, each
 * file atomically and the training state last (the commit point): model.safetensors, best.safetensors (when
 * trigram_avg_correct_prob improved), metrics.jsonl and train_state.safetensors. A run killed at any moment therefore
 * loses at most the epoch in progress, and {@link #resume} continues it to bit-identical weights. With
 * {@link #exportPt} it also writes model.pt, the same weights as a PyTorch state dict, right after model.safetensors.
 * With {@link #snapshotEvery} it keeps the weights of every n-th epoch, of the last one and the initial weights as
 * snapshots/epoch-NNNN.safetensors (epoch 0 = the initial weights), each written before the commit point like
 * model.safetensors; a resumed run goes on writing them at the interval its first snapshot records.
 *
 * <p>Epochs are numbered from 1 in files and listeners ("epoch 3" = the third); the schedule's e is epoch - 1.
 */
public final class Trainer {
    public static final String MODEL = "model.safetensors";
    public static final String BEST = "best.safetensors";
    public static final String METRICS = "metrics.jsonl";
    public static final String STATE = "train_state.safetensors";
    public static final String MODEL_PT = "model.pt";
    public static final String SNAPSHOTS = "snapshots";
    /** Metadata key of a checkpoint: the epochs done when it was written (0 for the initial weights). */
    public static final String EPOCHS_DONE = "train.epochs_done";
    /** Metadata key of a snapshot: every how many epochs its run writes one. */
    public static final String SNAPSHOT_EVERY = "train.snapshot_every";
    private static final java.util.regex.Pattern SNAPSHOT_NAME =
            java.util.regex.Pattern.compile("epoch-(\\d{4,9})\\.safetensors");

    /** Progress callbacks, called on the training thread. */
    public interface Listener {
        default void epochStarted(int epoch, int nBatches, double lr) {
        }

        default void batchDone(int epoch, int batch, int nBatches, double loss) {
        }

        default void epochDone(EpochMetrics metrics) {
        }
    }

    /** One line of metrics.jsonl. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    @JsonPropertyOrder({"epoch", "train_loss", "train_loss_as_frac", "val_loss", "trigram_n_correct",
            "trigram_frac_correct", "trigram_avg_correct_prob", "lr", "seconds"})
    public record EpochMetrics(int epoch, double trainLoss, double trainLossAsFrac, double valLoss,
                               @JsonProperty("trigram_n_correct") int trigramNCorrect, double trigramFracCorrect, double trigramAvgCorrectProb,
                               double lr, double seconds) {
        /** Reads a line Jackson wrote from this record; where names the file in error messages. */
        public static EpochMetrics fromJson(JsonNode n, String where) {
            String[] keys = {"epoch", "train_loss", "train_loss_as_frac", "val_loss", "trigram_n_correct",
                    "trigram_frac_correct", "trigram_avg_correct_prob", "lr", "seconds"};
            for (String k : keys) {
                // NaN is written as the string "NaN" (no trigrams to score), so a number or a string both do
                if (!n.path(k).isNumber() && !n.path(k).isTextual()) {
                    throw new TrilensException(where + ": a metrics line lacks '" + k + "', expected the lines "
                            + "trilens train writes");
                }
            }
            return new EpochMetrics(n.get("epoch").asInt(), n.get("train_loss").asDouble(),
                    n.get("train_loss_as_frac").asDouble(), n.get("val_loss").asDouble(),
                    n.get("trigram_n_correct").asInt(), n.get("trigram_frac_correct").asDouble(),
                    n.get("trigram_avg_correct_prob").asDouble(), n.get("lr").asDouble(), n.get("seconds").asDouble());
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private final TrainConfig cfg;
    private final Path dir;
    private final Weights weights;
    private final AdamW adam;
    private final List<String> metricsLines;
    private int epochsDone;
    private double bestScore;
    private int bestEpoch;
    private TrigramDataset data;
    private boolean exportPt;
    private int snapshotEvery;

    private Trainer(TrainConfig cfg, Path dir, Weights weights, AdamW adam, int epochsDone, double bestScore,
                    int bestEpoch, List<String> metricsLines) {
        this.cfg = cfg;
        this.dir = dir;
        this.weights = weights;
        this.adam = adam;
        this.epochsDone = epochsDone;
        this.bestScore = bestScore;
        this.bestEpoch = bestEpoch;
        this.metricsLines = metricsLines;
    }

    /** A fresh run in dir (created if missing); refuses a folder that already holds a run's state. */
    public static Trainer start(TrainConfig cfg, Path dir) {
        if (Files.exists(dir.resolve(STATE))) {
            throw new TrilensException(dir + " already holds a training run (" + STATE + "); pass --resume to "
                    + "continue it, or choose another --out");
        }
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new TrilensException("cannot create run folder " + dir + ": " + e, e);
        }
        Weights w = Weights.init(cfg.modelConfig(), cfg.initSeed());
        return new Trainer(cfg, dir, w, new AdamW(w.data.length, cfg.weightDecay()), 0, Double.NaN, 0,
                new ArrayList<>());
    }

    /** Continues the run in dir after its last completed epoch, with the config it was started with. */
    public static Trainer resume(Path dir) {
        Path statePath = dir.resolve(STATE);
        if (!Files.isRegularFile(statePath)) {
            throw new TrilensException("nothing to resume in " + dir + ": no " + STATE + " (a run saves it after "
                    + "its first epoch); start a run without --resume");
        }
        TrainState s = TrainState.read(statePath);
        Weights w = new Weights(s.config().modelConfig(), s.params());
        AdamW adam = new AdamW(w.data.length, s.config().weightDecay());
        adam.restore(s.adamM(), s.adamV(), s.adamStep());
        List<String> lines = committedMetrics(dir.resolve(METRICS), s.epochsDone());
        // an epoch's line is written before its state: fewer lines than epochs means the file was cut or removed,
        // and going on would write a metrics file without the first epochs
        requireOneLinePerEpoch(dir.resolve(METRICS), lines.size(), s.epochsDone());
        Trainer t = new Trainer(s.config(), dir, w, adam, s.epochsDone(), s.bestAvgCorrectProb(), s.bestEpoch(),
                lines);
        // a run that exported keeps exporting, or its model.pt would silently lag model.safetensors
        t.exportPt = Files.isRegularFile(dir.resolve(MODEL_PT));
        // and one that kept snapshots keeps them, at the interval it started with
        Map<Integer, Path> snapshots = snapshots(dir);
        if (!snapshots.isEmpty()) {
            Path first = snapshots.values().iterator().next();
            String every = Safetensors.read(first).metadata().get(SNAPSHOT_EVERY);
            try {
                t.snapshotEvery = every == null ? 0 : Integer.parseInt(every.trim());
            } catch (NumberFormatException e) {
                throw new TrilensException(first + ": metadata " + SNAPSHOT_EVERY + " is '"
                        + dev.trilens.io.FileText.show(every) + "', expected the number of epochs trilens train wrote");
            }
        }
        return t;
    }

    /** The snapshot file of an epoch in a run folder: snapshots/epoch-0042.safetensors. */
    public static Path snapshotPath(Path dir, int epoch) {
        return dir.resolve(SNAPSHOTS).resolve(String.format("epoch-%04d.safetensors", epoch));
    }

    /** The snapshot files in a run folder by epoch, in epoch order; empty when it has none. */
    public static java.util.SortedMap<Integer, Path> snapshots(Path dir) {
        java.util.SortedMap<Integer, Path> found = new java.util.TreeMap<>();
        Path folder = dir.resolve(SNAPSHOTS);
        if (!Files.isDirectory(folder)) {
            return found;
        }
        try (java.util.stream.Stream<Path> files = Files.list(folder)) {
            files.forEach(f -> {
                java.util.regex.Matcher m = SNAPSHOT_NAME.matcher(f.getFileName().toString());
                if (m.matches()) {
                    found.putIfAbsent(Integer.parseInt(m.group(1)), f);
                }
            });
        } catch (IOException e) {
            throw new TrilensException("cannot list " + folder + ": " + e.getMessage(), e);
        }
        return found;
    }

    /**
     * From now on, keep the weights of every n-th epoch and of the last one in snapshots/, and the initial weights as
     * epoch 0 (drawn again from the init seed, so a run that starts keeping snapshots late still has them). A run that
     * already keeps them must keep its interval, or its snapshots would no longer be evenly spaced.
     */
    public Trainer snapshotEvery(int n) {
        if (n < 1) {
            throw new TrilensException("--snapshot-every must be >= 1 epoch, got " + n);
        }
        if (snapshotEvery != 0 && snapshotEvery != n) {
            throw new TrilensException("cannot resume " + dir + " with --snapshot-every " + n + ": its snapshots are "
                    + "every " + snapshotEvery + " epochs; drop the flag or pass --snapshot-every " + snapshotEvery);
        }
        snapshotEvery = n;
        try {
            Files.createDirectories(dir.resolve(SNAPSHOTS));
        } catch (IOException e) {
            throw new TrilensException("cannot create " + dir.resolve(SNAPSHOTS) + ": " + e, e);
        }
        if (!Files.isRegularFile(snapshotPath(dir, 0))) {
            writeSnapshot(Weights.init(cfg.modelConfig(), cfg.initSeed()), 0);
        }
        if (isSnapshotEpoch(epochsDone) && !Files.isRegularFile(snapshotPath(dir, epochsDone))) {
            writeSnapshot(weights, epochsDone);
        }
        return this;
    }

    /** Every how many epochs snapshots are kept; 0 when they are not. */
    public int snapshotInterval() {
        return snapshotEvery;
    }

    private boolean isSnapshotEpoch(int epoch) {
        return snapshotEvery > 0 && epoch > 0 && (epoch % snapshotEvery == 0 || epoch == cfg.epochs());
    }

    private void writeSnapshot(Weights w, int epoch) {
        Map<String, String> meta = cfg.toMetadata();
        meta.put(EPOCHS_DONE, Integer.toString(epoch));
        meta.put(SNAPSHOT_EVERY, Integer.toString(snapshotEvery));
        Safetensors.write(w, meta, snapshotPath(dir, epoch));
    }

    /**
     * From now on, write model.pt (a PyTorch state dict with TransformerLens's keys, see
     * {@link TorchCheckpoint#write}) next to model.safetensors every epoch, before the commit point like it. If
     * epochs are already done it is written at once from the committed weights, so it never holds older ones.
     */
    public Trainer exportPt() {
        exportPt = true;
        if (epochsDone > 0) {
            TorchCheckpoint.write(weights, dir.resolve(MODEL_PT));
        }
        return this;
    }

    public boolean exportsPt() {
        return exportPt;
    }

    /** The metrics of the last committed epoch, or null before the first. */
    public EpochMetrics lastMetrics() {
        if (epochsDone == 0) {
            return null;
        }
        Path file = dir.resolve(METRICS);
        requireOneLinePerEpoch(file, metricsLines.size(), epochsDone);
        try {
            return EpochMetrics.fromJson(JSON.readTree(metricsLines.get(epochsDone - 1)), file.toString());
        } catch (IOException e) {
            throw new IllegalStateException("committed metrics line is not JSON", e);
        }
    }

    private static void requireOneLinePerEpoch(Path file, int lines, int epochsDone) {
        if (lines != epochsDone) {
            throw new TrilensException(file + " holds " + lines + " complete lines, but the run has done " + epochsDone
                    + " epochs: expected one line per epoch as trilens train writes them");
        }
    }

    /** The metrics lines of epochs up to the committed one: later ones (and a torn last line) are redone. */
    private static List<String> committedMetrics(Path file, int epochsDone) {
        List<String> kept = new ArrayList<>();
        if (!Files.isRegularFile(file)) {
            return kept;
        }
        try {
            for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                JsonNode n;
                try {
                    n = JSON.readTree(line);
                } catch (IOException e) {
                    break;
                }
                if (n == null || !n.path("epoch").canConvertToInt() || n.path("epoch").intValue() != kept.size() + 1
                        || kept.size() >= epochsDone) {
                    break;
                }
                kept.add(line);
            }
        } catch (IOException e) {
            throw new TrilensException("cannot read " + file + ": " + e.getMessage(), e);
        }
        return kept;
    }

    public TrainConfig config() {
        return cfg;
    }

    public Path dir() {
        return dir;
    }

    public int epochsDone() {
        return epochsDone;
    }

    /** The live weights (updated in place as training runs). */
    public Weights weights() {
        return weights;
    }

    /**
     * The dataset the run trains on: nTrain + nVal sequences of one generator, generated on first use. Which of
     * them train and which validate, and in which order, is {@link DataOrder}'s.
     */
    public TrigramDataset dataset() {
        if (data == null) {
            data = TrigramDataset.generate(cfg.dVocab(), cfg.seqLen(), cfg.trigramProb(), cfg.dataSeed(),
                    cfg.nTrain() + cfg.nVal());
        }
        return data;
    }

    public List<EpochMetrics> run(Listener listener) {
        return run(listener, cfg.epochs());
    }

    /** Runs the epochs after epochsDone() up to and including untilEpoch (1-based); returns their metrics. */
    public List<EpochMetrics> run(Listener listener, int untilEpoch) {
        if (untilEpoch > cfg.epochs()) {
            throw new IllegalArgumentException("untilEpoch " + untilEpoch + " > epochs " + cfg.epochs());
        }
        TrigramDataset ds = dataset();
        int T = cfg.seqLen(), nTrain = cfg.nTrain(), batch = cfg.batchSize();
        int[] all = ds.tokens();
        DataOrder dataOrder = DataOrder.of(ds, nTrain, cfg.nVal());
        int[] valTokens = gather(all, dataOrder.validationIndices(), T);
        int nBatches = (nTrain + batch - 1) / batch;
        int[] full = new int[Math.min(batch, nTrain) * T];
        int[] last = new int[(nTrain - (nBatches - 1) * batch) * T];
        float[] grads = new float[weights.data.length];
        Backprop backprop = new Backprop(cfg.modelConfig());
        List<EpochMetrics> done = new ArrayList<>();
        KernelWarmUp.beforeRun((long) (untilEpoch - epochsDone) * nTrain * T, backprop, weights, cfg.weightDecay(),
                all, T);
        while (epochsDone < untilEpoch) {
            int epoch = epochsDone + 1;
            long t0 = System.nanoTime();
            double lr = cfg.schedule().lr(epoch - 1);
            listener.epochStarted(epoch, nBatches, lr);
            // on resume this first replays the loader seeds of the epochs already done
            int[] order = dataOrder.epoch(epoch);
            double lossSum = 0;
            for (int b = 0; b < nBatches; b++) {
                int from = b * batch;
                int B = Math.min(batch, nTrain - from);
                int[] tokens = B == batch ? full : last;
                for (int i = 0; i < B; i++) {
                    System.arraycopy(all, order[from + i] * T, tokens, i * T, T);
                }
                double loss = backprop.lossAndGradients(weights, tokens, B, T, grads);
                adam.step(weights.data, grads, lr);
                lossSum += loss * B;
                listener.batchDone(epoch, b + 1, nBatches, loss);
            }
            double trainLoss = lossSum / nTrain;
            // the training kernels, forward only: HookedTransformer's hooks and scalar log-softmax cost 10x more
            double valLoss = cfg.nVal() > 0 ? backprop.loss(weights, valTokens, cfg.nVal(), T) : Double.NaN;
            HookedTransformer model = new HookedTransformer(weights);
            Metrics.TrigramScore tri = Metrics.trigramScore(model, ds);
            EpochMetrics m = new EpochMetrics(epoch, trainLoss,
                    Metrics.lossAsFrac(trainLoss, cfg.dVocab(), cfg.trigramProb()), valLoss,
                    tri.nCorrect(), tri.fracCorrect(), tri.avgCorrectProb(), lr, (System.nanoTime() - t0) / 1e9);
            commit(m);
            done.add(m);
            listener.epochDone(m);
        }
        return done;
    }

    /** The tokens of the given sequences, in that order, row-major. */
    public static int[] gather(int[] all, int[] seqs, int T) {
        int[] out = new int[seqs.length * T];
        for (int i = 0; i < seqs.length; i++) {
            System.arraycopy(all, seqs[i] * T, out, i * T, T);
        }
        return out;
    }

    /** Writes the epoch's files, the training state last: until it lands, the epoch is not done. */
    private void commit(EpochMetrics m) {
        int epoch = m.epoch();
        Map<String, String> meta = cfg.toMetadata();
        meta.put(EPOCHS_DONE, Integer.toString(epoch));
        Safetensors.write(weights, meta, dir.resolve(MODEL));
        if (exportPt) {
            TorchCheckpoint.write(weights, dir.resolve(MODEL_PT));
        }
        // NaN (no trigrams to score) never beats anything; the first epoch still writes a best model
        if (bestEpoch == 0 || m.trigramAvgCorrectProb() > bestScore) {
            bestScore = m.trigramAvgCorrectProb();
            bestEpoch = epoch;
            Safetensors.write(weights, meta, dir.resolve(BEST));
        }
        try {
            metricsLines.add(JSON.writeValueAsString(m));
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        // rewritten whole rather than appended, so a crash can never leave a torn line
        dev.trilens.io.AtomicFiles.write(dir.resolve(METRICS), out -> {
            for (String line : metricsLines) {
                out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
            }
        });
        if (isSnapshotEpoch(epoch)) {
            writeSnapshot(weights, epoch);
        }
        new TrainState(cfg, epoch, adam.stepCount(), bestScore, bestEpoch, weights.data, adam.m(), adam.v())
                .write(dir.resolve(STATE));
        epochsDone = epoch;
    }

    public int bestEpoch() {
        return bestEpoch;
    }
}
