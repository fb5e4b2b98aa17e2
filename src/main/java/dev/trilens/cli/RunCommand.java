package dev.trilens.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.AnalysisContext;
import dev.trilens.interp.Worklog;
import dev.trilens.io.AtomicFiles;
import dev.trilens.io.OutputLock;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Weights;
import dev.trilens.model.kernels.VectorWidth;
import dev.trilens.train.EvalMetrics;
import dev.trilens.train.Metrics;
import dev.trilens.train.RunSnapshots;
import dev.trilens.train.TrainConfig;
import dev.trilens.train.Trainer;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine;

@Command(name = "run", mixinStandardHelpOptions = true,
        description = "Train a preset from scratch (with train's flags), then evaluate the final model on the 2500-sequence dataset of the "
                + "same seed and trigram_prob (as evaluate does), write eval.json next to the model, and run every "
                + "analysis of `analyze` on it into analysis.json. With --snapshot-every N it also runs `dynamics` "
                + "on the run before the analysis, so the report has its Training dynamics section.")
public final class RunCommand implements Callable<Integer> {

    /** evaluate's default dataset size, so run's numbers match `trilens evaluate --model DIR/model.safetensors`. */
    public static final int EVAL_SIZE = 2500;

    @CommandLine.Mixin
    TrainCommand.RunOptions run;

    @CommandLine.Mixin
    TrainCommand.ConfigOptions config;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        CommandLine cl = spec.commandLine();
        run.check(cl);
        config.check(cl);
        TrainCommand.Preset p = run.preset == null ? TrainCommand.Preset.arena : run.preset;
        TrainConfig trainConfig = config.checked(cl, TrainConfig.preset(p.name()));
        Path runDir = TrainCommand.outDir(run.out, p);
        try (OutputLock lock = OutputLock.acquire(runDir, "run")) {
            return run(cl, runDir, trainConfig);
        }
    }

    private int run(CommandLine cl, Path runDir, TrainConfig trainConfig) throws Exception {
        PrintWriter out = cl.getOut();
        VectorWidth.preferFor(trainConfig.dHead());
        Trainer trainer = Trainer.start(trainConfig, runDir);
        run.applyTo(trainer);
        Path dir = trainer.dir();
        if (!Main.quiet()) {
            out.printf("training into %s%n", dir);
        }
        TrainCommand.train(trainer, out);

        TrainConfig cfg = trainer.config();
        TrigramDataset ds = TrigramDataset.generate(cfg.dVocab(), cfg.seqLen(), cfg.trigramProb(), cfg.dataSeed(),
                EVAL_SIZE);
        EvalMetrics m = Metrics.evaluate(new HookedTransformer(trainer.weights()), ds);
        out.printf("%nfinal model on dataset seed=%d trigram_prob=%s size=%d seq_len=%d n_trigrams=%d%n", ds.seed(),
                ds.trigramProb(), ds.size(), ds.seqLen(), ds.nTrigrams());
        for (Map.Entry<String, Object> e : dev.trilens.io.JsonFields.of(m).entrySet()) {
            Object v = e.getValue();
            out.printf("%-25s %s%n", e.getKey(), v instanceof Double d ? String.format("%.6f", d) : v);
        }
        Path evalJson = dir.resolve("eval.json");
        byte[] json = new ObjectMapper().writerWithDefaultPrettyPrinter().writeValueAsBytes(m);
        AtomicFiles.write(evalJson, o -> {
            o.write(json);
            o.write('\n');
        });

        if (trainer.snapshotInterval() > 0) {
            out.println();
            DynamicsCommand.writeInto(RunSnapshots.read(dir), dir, out);
        }

        Weights initial = Weights.init(trainer.config().modelConfig(), trainer.config().initSeed());
        AnalyzeCommand.analyzeInto(new AnalysisContext(new HookedTransformer(trainer.weights()), ds),
                new Worklog.Inputs(initial, null, null), dir.resolve(Trainer.MODEL).toString(), dir, out);

        out.printf("%nrun folder  %s%n", dir);
        out.printf("  %-24s final weights (evaluate --model it)%n", Trainer.MODEL);
        out.printf("  %-24s best trigram_avg_correct_prob (epoch %d)%n", Trainer.BEST, trainer.bestEpoch());
        if (run.exportPt) {
            out.printf("  %-24s final weights for torch.load(path, weights_only=True)%n", Trainer.MODEL_PT);
        }
        out.printf("  %-24s one line per epoch%n", Trainer.METRICS);
        if (trainer.snapshotInterval() > 0) {
            out.printf("  %-24s the initial weights and those of every %d epoch%s and the last%n",
                    Trainer.SNAPSHOTS + "/", trainer.snapshotInterval(), trainer.snapshotInterval() == 1 ? "" : "s");
            out.printf("  %-24s the circuit forming, snapshot by snapshot (see dynamics --help)%n",
                    DynamicsCommand.FILE);
        }
        out.printf("  %-24s optimizer state for train --resume%n", Trainer.STATE);
        out.printf("  %-24s the table above%n", "eval.json");
        out.printf("  %-24s every analysis (see analyze --help)%n", "analysis.json");
        out.flush();
        return 0;
    }
}
