package dev.trilens.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.trilens.TrilensException;
import dev.trilens.interp.Analysis;
import dev.trilens.interp.TrainingDynamics;
import dev.trilens.io.AtomicFiles;
import dev.trilens.io.OutputLock;
import dev.trilens.io.OutputSet;
import dev.trilens.report.DynamicsFigures;
import dev.trilens.report.PngFigures;
import dev.trilens.report.ReportPage;
import dev.trilens.train.RunSnapshots;
import dev.trilens.train.Trainer;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "dynamics", mixinStandardHelpOptions = true,
        description = "Watch the circuit form: read a run's metrics.jsonl and the snapshots it kept (train or run "
                + "--snapshot-every N), run the analyses on every snapshot (the trigrams read from the weights, the QK "
                + "prefix-score AUC, the attention on the previous token, direct logit attribution, the weights' "
                + "distance from their initial values) and write DIR/dynamics.json, the figures DIR/figures/"
                + "dynamics_*.png and .svg, and, when DIR holds an analysis (analysis.json), its report.html with "
                + "a Training dynamics section.")
public final class DynamicsCommand implements Callable<Integer> {
    public static final String FILE = "dynamics.json";

    @Option(names = "--run", required = true, paramLabel = "DIR",
            description = "the run folder: snapshots/epoch-NNNN.safetensors and metrics.jsonl")
    Path run;

    @Option(names = "--out", paramLabel = "DIR", description = "folder for dynamics.json and the figures "
            + "(default: the run folder)")
    Path out;

    @Option(names = "--threads", description = "worker threads (default: all cores); results do not depend on it")
    Integer threads;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        CommandLine cl = spec.commandLine();
        TrainCommand.applyThreads(cl, threads);
        Path dir = out != null ? out : run;
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new TrilensException("--out " + dir + " is a file; expected a folder (it is created if missing)");
        }
        RunSnapshots snapshots = RunSnapshots.read(run);
        try (OutputLock lock = OutputLock.acquire(dir, "dynamics")) {
            writeInto(snapshots, dir, cl.getOut());
        }
        return 0;
    }

    /**
     * Computes the dynamics of the run and writes dynamics.json, the figures and (when dir holds analysis.json) the
     * report into dir, as one set: all of them land or none. The caller holds dir's lock.
     */
    static void writeInto(RunSnapshots snapshots, Path dir, PrintWriter term) {
        int n = snapshots.weights().size();
        term.printf("run        %s: %d snapshots, epochs %d..%d, every %d epoch%s%n", snapshots.dir(), n,
                snapshots.weights().firstKey(), snapshots.weights().lastKey(), snapshots.interval(),
                snapshots.interval() == 1 ? "" : "s");
        term.flush();
        int[] reported = {0};
        TrainingDynamics.Result result = TrainingDynamics.compute(snapshots, RunCommand.EVAL_SIZE,
                (epoch, done, total) -> {
                    synchronized (reported) {
                        // a line per tenth, so a long run shows it is moving without flooding the terminal
                        if (!Main.quiet() && (done * 10 / total > reported[0] || done == total)) {
                            reported[0] = done * 10 / total;
                            System.err.printf("dynamics: %d of %d snapshots%n", done, total);
                        }
                    }
                });
        ObjectMapper mapper = Analysis.mapper().enable(SerializationFeature.INDENT_OUTPUT);
        JsonNode tree = mapper.valueToTree(result);
        Path analysisJson = dir.resolve("analysis.json");
        JsonNode analysis = readAnalysis(analysisJson, term);
        Path metrics = dir.resolve(Trainer.METRICS);
        List<Path> figures;
        try (OutputSet set = OutputSet.begin(dir, "dynamics")) {
            List<Runnable> files = new ArrayList<>();
            files.add(() -> AtomicFiles.write(set.path(FILE),
                    os -> mapper.writeValue(new NonClosingOutputStream(os), tree)));
            if (analysis != null) {
                files.add(() -> ReportPage.write(analysis, Files.isRegularFile(metrics) ? metrics : null, tree,
                        set.path("report.html")));
            }
            figures = PngFigures.saveAlongside(DynamicsFigures.charts(tree), set.path("figures"), files);
            set.commit();
        }
        term.println();
        for (String line : result.summary()) {
            term.println("  " + line);
        }
        for (String note : result.notes()) {
            term.println("  note: " + note);
        }
        long png = figures.stream().filter(p -> p.toString().endsWith(".png")).count();
        term.printf("%ndynamics written to %s (%.1fs)%nfigures    %d PNG and %d SVG files in %s%n", dir.resolve(FILE),
                result.seconds(), png, figures.size() - png, dir.resolve("figures"));
        if (analysis != null) {
            term.printf("report     %s (its Training dynamics section)%n", dir.resolve("report.html"));
        }
        term.flush();
    }

    /**
     * The folder's analysis.json, to rewrite its report with the new section; null when there is none, or when it
     * cannot be read (then the report is left as it is, and the terminal says why).
     */
    private static JsonNode readAnalysis(Path file, PrintWriter term) {
        if (!Files.isRegularFile(file)) {
            return null;
        }
        try {
            return new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            term.printf("report     not rewritten: %s cannot be read (%s); trilens analyze --out %s writes it and "
                    + "the report again%n", file, dev.trilens.io.FileText.show(String.valueOf(e.getMessage())), file.getParent());
            return null;
        }
    }

    /** dynamics.json of dir for the report analyze writes there; null when there is none or it cannot be read. */
    static JsonNode readForReport(Path dir) {
        Path file = dir.resolve(FILE);
        if (!Files.isRegularFile(file)) {
            return null;
        }
        try {
            return new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            System.err.println("analyze: " + file + " cannot be read, so the report has no Training dynamics section: "
                    + dev.trilens.io.FileText.show(String.valueOf(e.getMessage())));
            return null;
        }
    }
}
