package dev.trilens.cli;

import dev.trilens.TrilensException;
import dev.trilens.io.OutputLock;
import dev.trilens.model.Parallel;
import dev.trilens.model.kernels.VectorWidth;
import dev.trilens.train.TrainConfig;
import dev.trilens.train.Trainer;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine;

@Command(name = "train", mixinStandardHelpOptions = true,
        description = "Train a trigram transformer with the challenge's recipe (AdamW, linear lr schedule); --resume "
                + "continues an interrupted run exactly. Each epoch updates its files in the run folder: "
                + "model.safetensors, best.safetensors, metrics.jsonl, train_state.safetensors.")
public final class TrainCommand implements Callable<Integer> {

    enum Preset { arena, fast, quick }

    /** The flags train and run share. */
    static final class RunOptions {
        @Option(names = "--preset", description = "arena: the challenge's recipe (default); fast: the challenge's data "
                + "and model on a recipe 25x shorter, for sweeps; quick: a small model that trains in seconds")
        Preset preset;

        @Option(names = "--out", description = "run folder (default: runs/<preset>-<date>-<time>)")
        Path out;

        @Option(names = "--threads", description = "worker threads (default: all cores); results do not depend on it")
        Integer threads;

        @Option(names = "--export-pt", description = "also write model.pt, the final weights as a PyTorch state dict "
                + "with TransformerLens's keys (torch.load(path, weights_only=True)), updated every epoch with "
                + "model.safetensors; a resumed run that has one keeps it updated")
        boolean exportPt;

        @Option(names = "--snapshot-every", paramLabel = "N", description = "also keep the weights of every N-th "
                + "epoch, of the last epoch and the initial weights (epoch 0) as snapshots/epoch-NNNN.safetensors, "
                + "for `trilens dynamics`; a resumed run that has them keeps writing them")
        Integer snapshotEvery;

        /** Applies the flags that act on the trainer rather than on its config. */
        void applyTo(Trainer trainer) {
            if (exportPt) {
                trainer.exportPt();
            }
            if (snapshotEvery != null) {
                trainer.snapshotEvery(snapshotEvery);
            }
        }

        void check(CommandLine cl) {
            TrainCommand.check(cl, snapshotEvery == null || snapshotEvery >= 1, "--snapshot-every must be >= 1 "
                    + "epoch, got " + snapshotEvery);
            applyThreads(cl, threads);
        }
    }

    /** The flags that decide what a run trains beyond its preset; `train` and `run` share them. */
    static final class ConfigOptions {
        @CommandLine.Mixin
        ShapeOptions shape;

        @Option(names = "--epochs", description = "number of epochs")
        Integer epochs;

        @Option(names = "--seed", description = "dataset and init seed (both; --data-seed and --init-seed override "
                + "one)")
        Long seed;

        @Option(names = "--data-seed", description = "dataset seed: the trigrams, the sequences, the "
                + "train/validation split and the batch order (default: the preset's, or --seed)")
        Long dataSeed;

        @Option(names = "--init-seed", description = "seed of the initial weights (default: the preset's, or --seed)")
        Long initSeed;

        @Option(names = "--trigram-prob", description = "fraction of (a, b) pairs that start a trigram (default: the "
                + "preset's, 0.05)")
        Double trigramProb;

        void check(CommandLine cl) {
            TrainCommand.check(cl, epochs == null || epochs >= 1, "--epochs must be >= 1, got " + epochs);
            shape.check(cl);
            TrainCommand.check(cl, trigramProb == null || (trigramProb > 0 && trigramProb < 1), "--trigram-prob must "
                    + "be > 0 and < 1, got " + trigramProb);
        }

        /** The preset with the flags applied, refused in one line if a batch of its shape would not fit. */
        TrainConfig checked(CommandLine cl, TrainConfig preset) {
            TrainConfig c = overrides(preset);
            ShapeOptions.checkFits(cl, c.modelConfig(), c.batchSize());
            return c;
        }

        private TrainConfig overrides(TrainConfig c) {
            c = shape.applyTo(c);
            if (epochs != null) {
                c = c.withEpochs(epochs);
            }
            if (seed != null) {
                c = c.withSeed(seed);
            }
            if (dataSeed != null) {
                c = c.withDataSeed(dataSeed);
            }
            if (initSeed != null) {
                c = c.withInitSeed(initSeed);
            }
            if (trigramProb != null) {
                c = c.withTrigramProb(trigramProb);
            }
            return c;
        }
    }

    @CommandLine.Mixin
    RunOptions run;

    @CommandLine.Mixin
    ConfigOptions config;

    @Option(names = "--resume", description = "continue the run in --out after its last completed epoch")
    boolean resume;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /**
     * The flags that decide what a run trains (its {@link TrainConfig}); the others (--out, --threads, --resume,
     * --export-pt) say where and how. A sweep's axes are these, without their dashes.
     */
    public static final List<String> CONFIG_FLAGS = configFlags();

    private static List<String> configFlags() {
        List<String> flags = new ArrayList<>(List.of("--preset"));
        flags.addAll(ShapeOptions.FLAGS);
        flags.addAll(List.of("--epochs", "--seed", "--data-seed", "--init-seed", "--trigram-prob"));
        return List.copyOf(flags);
    }

    /**
     * The config `train` would train with these flags (only {@link #CONFIG_FLAGS}), checked as train checks them;
     * a bad flag or value throws picocli's ParameterException with train's own one-line message.
     */
    public static TrainConfig configOf(List<String> flags) {
        TrainCommand t = new TrainCommand();
        CommandLine cl = new CommandLine(t);
        cl.parseArgs(flags.toArray(String[]::new));
        for (CommandLine.Model.OptionSpec o : cl.getParseResult().matchedOptions()) {
            check(cl, CONFIG_FLAGS.contains(o.longestName()), o.longestName() + " does not decide a run's config; "
                    + "expected only " + String.join(", ", CONFIG_FLAGS));
        }
        t.config.check(cl);
        return t.config.checked(cl, TrainConfig.preset((t.run.preset == null ? Preset.arena : t.run.preset).name()));
    }

    @Override
    public Integer call() {
        CommandLine cl = spec.commandLine();
        config.check(cl);
        check(cl, !resume || run.out != null, "--resume needs --out, the run folder to continue");
        run.check(cl);
        Preset p = run.preset == null ? Preset.arena : run.preset;
        Path dir = resume ? run.out : outDir(run.out, p);
        if (resume && !Files.isDirectory(dir)) {
            throw new TrilensException("nothing to resume in " + dir + ": no such folder; start a run without --resume");
        }
        // checked before the folder is made: a refused shape leaves nothing behind
        TrainConfig fresh = resume ? null : config.checked(cl, TrainConfig.preset(p.name()));
        try (OutputLock lock = OutputLock.acquire(dir, "train")) {
            return train(cl, dir, fresh);
        }
    }

    private int train(CommandLine cl, Path dir, TrainConfig fresh) {
        PrintWriter out = cl.getOut();
        Trainer trainer;
        if (resume) {
            trainer = Trainer.resume(dir);
            TrainConfig saved = trainer.config();
            VectorWidth.preferFor(saved.dHead());
            checkSameConfig(dir, saved, config.checked(cl, run.preset == null ? saved : TrainConfig.preset(
                    run.preset.name())));
            run.applyTo(trainer);
            if (!Main.quiet()) {
                out.printf("resuming %s after epoch %d of %d%n", dir, trainer.epochsDone(), saved.epochs());
            }
        } else {
            VectorWidth.preferFor(fresh.dHead());
            trainer = Trainer.start(fresh, dir);
            run.applyTo(trainer);
            if (!Main.quiet()) {
                out.printf("training into %s%n", trainer.dir());
            }
        }
        train(trainer, out);
        out.printf("model     %s%nbest      %s (epoch %d)%nmetrics   %s%n", trainer.dir().resolve(Trainer.MODEL),
                trainer.dir().resolve(Trainer.BEST), trainer.bestEpoch(), trainer.dir().resolve(Trainer.METRICS));
        if (trainer.exportsPt()) {
            out.printf("pytorch   %s%n", trainer.dir().resolve(Trainer.MODEL_PT));
        }
        if (trainer.snapshotInterval() > 0) {
            out.printf("snapshots %s (every %d epoch%s; trilens dynamics --run %s)%n",
                    trainer.dir().resolve(Trainer.SNAPSHOTS), trainer.snapshotInterval(),
                    trainer.snapshotInterval() == 1 ? "" : "s", trainer.dir());
        }
        out.flush();
        return 0;
    }

    /** A resumed run must keep its config, or it would no longer be the run it continues. */
    public static void checkSameConfig(Path dir, TrainConfig saved, TrainConfig asked) {
        Map<String, String> s = saved.toMetadata(), a = asked.toMetadata();
        List<String> diff = new ArrayList<>();
        s.forEach((k, v) -> {
            if (!v.equals(a.get(k))) {
                diff.add(k + " " + v + " (flags ask " + a.get(k) + ")");
            }
        });
        if (!diff.isEmpty()) {
            throw new TrilensException("cannot resume " + dir + " with a different config: it has " + String.join(", ",
                    diff) + "; drop those flags or start a new run with another --out");
        }
    }

    static void check(CommandLine cl, boolean ok, String message) {
        if (!ok) {
            throw new CommandLine.ParameterException(cl, message);
        }
    }

    static void applyThreads(CommandLine cl, Integer threads) {
        if (threads != null) {
            check(cl, threads >= 1, "--threads must be >= 1, got " + threads);
            Parallel.setThreads(threads);
        }
    }

    static Path outDir(Path given, Preset preset) {
        return given != null ? given : Path.of("runs", preset.name() + "-"
                + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
    }

    /** Runs the remaining epochs, one line each; a progress bar while an epoch runs when stdout is a terminal. */
    static void train(Trainer trainer, PrintWriter out) {
        if (Main.quiet()) {
            trainer.run(new Trainer.Listener() {
            });
            return;
        }
        TrainConfig cfg = trainer.config();
        out.println(cfg.describe());
        if (trainer.epochsDone() >= cfg.epochs()) {
            out.printf("all %d epochs are already done%n", cfg.epochs());
            out.flush();
            return;
        }
        out.flush();
        boolean terminal = System.console() != null;
        int width = String.valueOf(cfg.epochs()).length();
        trainer.run(new Trainer.Listener() {
            ProgressBar bar;

            @Override
            public void epochStarted(int epoch, int nBatches, double lr) {
                if (terminal) {
                    bar = new ProgressBarBuilder().setTaskName(String.format("epoch %" + width + "d/%d", epoch,
                                    cfg.epochs())).setInitialMax(nBatches).setStyle(ProgressBarStyle.ASCII)
                            .setUpdateIntervalMillis(250).setConsumer(new BarOnStdout()).build();
                }
            }

            @Override
            public void batchDone(int epoch, int batch, int nBatches, double loss) {
                if (bar != null) {
                    bar.stepTo(batch);
                    bar.setExtraMessage(String.format("loss %.4f", loss));
                }
            }

            @Override
            public void epochDone(Trainer.EpochMetrics m) {
                if (bar != null) {
                    bar.close();
                    bar = null;
                }
                out.printf("epoch %" + width + "d/%d  train_loss %.4f (as_frac %.3f)  val_loss %.4f  trigrams %d/%d "
                                + "correct, avg p %.3f  lr %.2e  %.1fs%n", m.epoch(), cfg.epochs(), m.trainLoss(),
                        m.trainLossAsFrac(), m.valLoss(), m.trigramNCorrect(), trainer.dataset().nTrigrams(),
                        m.trigramAvgCorrectProb(), m.lr(), m.seconds());
                out.flush();
            }
        });
    }

    /**
     * The bar redrawn with a carriage return on stdout, where the epoch lines go, and wiped when the epoch ends so
     * its line is taken by the epoch's summary. (The library's default draws on stderr with cursor movements, which
     * interleave badly with lines printed on stdout.)
     */
    private static final class BarOnStdout extends ConsoleProgressBarConsumer {
        BarOnStdout() {
            super(System.out);
        }

        @Override
        public void accept(String rendered) {
            super.accept(rendered);
            System.out.flush();
        }

        @Override
        public void close() {
            System.out.print("\r" + " ".repeat(Math.max(0, getMaxRenderedLength())) + "\r");
            System.out.flush();
        }
    }
}
