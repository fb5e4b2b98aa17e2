package dev.trilens.sweep;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TrilensException;
import dev.trilens.cli.RunCommand;
import dev.trilens.cli.TrainCommand;
import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.ExtractionScore;
import dev.trilens.interp.TrigramExtractor;
import dev.trilens.io.AtomicFiles;
import dev.trilens.io.FileText;
import dev.trilens.io.JsonFields;
import dev.trilens.io.OutputLock;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.kernels.Kernels;
import dev.trilens.model.Parallel;
import dev.trilens.train.EvalMetrics;
import dev.trilens.train.Metrics;
import dev.trilens.train.TrainConfig;
import dev.trilens.train.TrainState;
import dev.trilens.train.Trainer;
import java.io.IOException;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * One run of a sweep, in OUT/runs/ID/: trained as `train` trains (checkpoint, metrics.jsonl and the models, each
 * written atomically every epoch), then evaluated and its trigrams extracted into result.json, written atomically
 * last. A run whose result.json exists is done; one with a checkpoint continues from it, bit for bit as if it had
 * never stopped. Nothing here knows about Spark: {@link SweepTask} calls it inside a Spark task.
 */
final class SweepRun {
    static final String RUNS = "runs";
    static final String RESULT = "result.json";

    private static final ObjectMapper JSON = new ObjectMapper();

    private SweepRun() {
    }

    /**
     * A failure forced into a run's first attempt right after it committed an epoch, to show a retry resuming from
     * the checkpoint (the tests, and anyone who wants to see it: --conf spark.trilens.injectFailure=ID@EPOCH).
     */
    record Injection(String runId, int epoch) implements Serializable {
        static Injection parse(String spec, List<Grid.Run> runs) {
            int at = spec.lastIndexOf('@');
            String id = at < 0 ? spec : spec.substring(0, at);
            Grid.Run run = runs.stream().filter(r -> r.id().equals(id)).findFirst().orElse(null);
            int epoch;
            try {
                epoch = at < 0 ? -1 : Integer.parseInt(spec.substring(at + 1));
            } catch (NumberFormatException e) {
                epoch = -1;
            }
            if (run == null || epoch < 1 || epoch > run.config().epochs()) {
                throw new TrilensException("spark.trilens.injectFailure is '" + spec + "'; expected RUN_ID@EPOCH with "
                        + "a run of the grid and one of its epochs");
            }
            return new Injection(id, epoch);
        }
    }

    /** Thrown by an injected failure. */
    static final class InjectedFailure extends RuntimeException {
        InjectedFailure(String message) {
            super(message);
        }
    }

    static Path dir(Path out, String id) {
        return out.resolve(RUNS).resolve(id);
    }

    /**
     * The result a finished run left, or null when it has none; a result of another config than the run's (the grid
     * changed under the same --out) is an error, as a silently reused result would answer another question.
     */
    static RunResult finished(Path out, Grid.Run run) {
        Path file = dir(out, run.id()).resolve(RESULT);
        if (!Files.isRegularFile(file)) {
            return null;
        }
        RunResult r;
        try {
            r = JSON.readValue(file.toFile(), RunResult.class);
        } catch (IOException e) {
            throw new TrilensException(file + " is not a result trilens sweep wrote (" + FileText.show(String.valueOf(
                    e.getMessage()).lines().findFirst().orElse("")) + "); remove that run's folder to train it again");
        }
        List<String> diff = configDiff(r.config(), JsonFields.of(run.config()));
        if (!diff.isEmpty()) {
            throw new TrilensException(file + " is a run of another config: it has " + String.join(", ", diff)
                    + "; expected the grid's: use another --out, or remove that run's folder");
        }
        return r;
    }

    /** "epochs 10 (the grid asks 20)" for each key whose values differ, compared as JSON. */
    private static List<String> configDiff(Map<String, Object> saved, Map<String, Object> asked) {
        JsonNode s = JSON.valueToTree(saved), a = JSON.valueToTree(asked);
        List<String> diff = new ArrayList<>();
        a.fieldNames().forEachRemaining(k -> {
            if (!s.path(k).asText().equals(a.get(k).asText())) {
                diff.add(k + " " + s.path(k).asText("none") + " (the grid asks " + a.get(k).asText() + ")");
            }
        });
        return diff;
    }

    /**
     * Checks, before any run starts, that a run's checkpoint (if any) is of the run's config; a run a retry or a
     * second sweep would continue with other settings must stop the sweep at once, not hours in.
     */
    static void checkCheckpoint(Path out, Grid.Run run) {
        Path dir = dir(out, run.id());
        if (Files.isRegularFile(dir.resolve(Trainer.STATE))) {
            TrainCommand.checkSameConfig(dir, TrainState.read(dir.resolve(Trainer.STATE)).config(), run.config());
        }
    }

    /** How much of a run is done: an epoch count from its checkpoint (0 without one), for progress lines. */
    static int epochsDone(Path out, String id) {
        Path state = dir(out, id).resolve(Trainer.STATE);
        try {
            return Files.isRegularFile(state) ? TrainState.read(state).epochsDone() : 0;
        } catch (TrilensException e) {
            return 0; // being replaced right now: the next look sees it
        }
    }

    /**
     * Trains the run (or continues it from its checkpoint) with the given threads, evaluates it and writes its
     * result.json; returns the result, or the one already there. attempt is Spark's attempt number, for the
     * injected failure and the record.
     */
    static RunResult execute(Path out, Grid.Run run, int threads, int attempt, Injection inject, String host) {
        long t0 = System.nanoTime();
        RunResult done = finished(out, run);
        if (done != null) {
            return done;
        }
        Path dir = dir(out, run.id());
        // one attempt per run at a time, even should a cluster run a lost executor's task twice
        try (OutputLock lock = OutputLock.acquire(dir, "sweep")) {
            done = finished(out, run);
            if (done != null) {
                return done;
            }
            Parallel.setThreads(threads);
            TrainConfig cfg = run.config();
            Trainer trainer;
            if (Files.isRegularFile(dir.resolve(Trainer.STATE))) {
                trainer = Trainer.resume(dir);
                TrainCommand.checkSameConfig(dir, trainer.config(), cfg);
            } else {
                trainer = Trainer.start(cfg, dir);
            }
            int resumedAfter = trainer.epochsDone();
            trainer.run(new Trainer.Listener() {
                @Override
                public void epochDone(Trainer.EpochMetrics m) {
                    if (inject != null && attempt == 0 && inject.runId().equals(run.id())
                            && m.epoch() == inject.epoch()) {
                        throw new InjectedFailure("injected failure after epoch " + m.epoch() + " of run "
                                + run.id() + " (first attempt)");
                    }
                }
            });
            HookedTransformer model = new HookedTransformer(trainer.weights());
            TrigramDataset ds = TrigramDataset.generate(cfg.dVocab(), cfg.seqLen(), cfg.trigramProb(),
                    cfg.dataSeed(), RunCommand.EVAL_SIZE);
            EvalMetrics m = Metrics.evaluate(model, ds);
            TrigramExtractor.Result extracted = TrigramExtractor.extract(trainer.weights());
            ExtractionScore.Agreement vsData = ExtractionScore.evaluate(extracted, model, ds).vsDataset();
            Trainer.EpochMetrics last = trainer.lastMetrics();
            RunResult r = new RunResult(run.id(), run.axes(), JsonFields.of(cfg), cfg.epochs(), m.loss(), m.lossAsFrac(),
                    m.meanCorrectProb(), m.medianCorrectProb(), m.minCorrectProb(), m.trigramNCorrect(),
                    m.trigramFracCorrect(), m.trigramAvgCorrectProb(), m.nTrigrams(), extracted.trigrams().size(),
                    vsData.precision(), vsData.recall(), last.trainLoss(), last.valLoss(),
                    trainingSeconds(dir.resolve(Trainer.METRICS)), (System.nanoTime() - t0) / 1e9, attempt,
                    resumedAfter, threads, Kernels.VECTOR ? "vector" : "scalar", host);
            byte[] json = JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(r);
            AtomicFiles.write(dir.resolve(RESULT), o -> {
                o.write(json);
                o.write('\n');
            });
            return r;
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The sum of the epochs' seconds in metrics.jsonl: the run's training time, over every attempt. */
    private static double trainingSeconds(Path metrics) throws IOException {
        double sum = 0;
        for (String line : Files.readAllLines(metrics, StandardCharsets.UTF_8)) {
            sum += JSON.readTree(line).path("seconds").asDouble();
        }
        return sum;
    }
}
