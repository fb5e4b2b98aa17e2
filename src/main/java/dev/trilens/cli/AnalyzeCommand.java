package dev.trilens.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.Analysis;
import dev.trilens.interp.AnalysisContext;
import dev.trilens.interp.Worklog;
import dev.trilens.io.AtomicFiles;
import dev.trilens.io.Checkpoint;
import dev.trilens.io.Checkpoints;
import dev.trilens.io.OutputLock;
import dev.trilens.io.OutputSet;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Weights;
import dev.trilens.report.PngFigures;
import dev.trilens.report.ReportPage;
import dev.trilens.train.EvalMetrics;
import dev.trilens.train.Metrics;
import dev.trilens.train.TrainConfig;
import dev.trilens.train.Trainer;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine;

@Command(name = "analyze", mixinStandardHelpOptions = true,
        description = "Run every analysis of the interpretability engine (predictions, the worklog's attention test, "
                + "QK/OV circuits, MLP, attribution, ablations, patching, the trigram table read from the weights, "
                + "causal validation, failure modes) and write them to DIR/analysis.json, with figures (PNG "
                + "and SVG) in DIR/figures, DIR/report.html and a summary here.")
public final class AnalyzeCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "checkpoint: PyTorch .pt state dict or .safetensors")
    Path model;

    @Mixin
    DatasetOptions data;

    @Option(names = "--attention-threshold", defaultValue = "0.2",
            description = "the worklog's attention / probability threshold (default: ${DEFAULT-VALUE})")
    double threshold;

    @Option(names = "--attn-only-model", paramLabel = "PATH",
            description = "an attention-only model to set beside this one when answering the worklog's question "
                    + "whether the MLP is needed (evaluated on the same dataset)")
    Path attnOnlyModel;

    @Option(names = "--out", description = "folder for analysis.json (default: runs/analysis-<model file name>)")
    Path out;

    @Option(names = "--json", description = "print one JSON object (the files written, the model, the dataset, the "
            + "metrics and the explanation's sentences) instead of the summary")
    boolean json;

    @Mixin
    LoadOptions loading;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (!(threshold > 0 && threshold < 1)) {
            throw new CommandLine.ParameterException(spec.commandLine(),
                    "--attention-threshold must be between 0 and 1 (exclusive), got " + threshold);
        }
        Checkpoint ckpt = Checkpoints.load(model, loading.allowNonFinite);
        TrigramDataset ds = EvaluateCommand.datasetFor(ckpt, data, spec.commandLine().getParseResult());
        Worklog.Inputs inputs = worklogInputs(ckpt, ds);
        Path dir = out != null ? out : Path.of("runs", "analysis-" + stem(model));
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new TrilensException("--out " + dir + " is a file; expected a folder (it is created if missing)");
        }
        try (OutputLock lock = OutputLock.acquire(dir, "analyze")) {
            return analyze(ckpt, ds, inputs, dir);
        }
    }

    private int analyze(Checkpoint ckpt, TrigramDataset ds, Worklog.Inputs inputs, Path dir) throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter term = json ? new PrintWriter(Writer.nullWriter()) : out;
        term.printf("model    %s (%s)%n", model, ckpt.weights().cfg);
        term.printf("dataset  seed=%d trigram_prob=%s size=%d n_trigrams=%d%n", ds.seed(), ds.trigramProb(),
                ds.size(), ds.nTrigrams());
        term.flush();
        AnalysisContext ctx = new AnalysisContext(new HookedTransformer(ckpt.weights()), ds, threshold);
        Path file = analyzeInto(ctx, inputs, model.toString(), dir, term);
        if (json) {
            out.println(Analysis.mapper().writeValueAsString(jsonSummary(file, dir)));
            out.flush();
        }
        return 0;
    }

    /** What a script wants from a run of analyze, read back from the analysis.json just written. */
    /** What `analyze --json` prints: the files written, then the model, dataset, metrics and explanation. */
    record JsonSummary(String analysis, String report, String figures, JsonNode model, JsonNode dataset,
                       JsonNode metrics, List<String> explanation) {
    }

    private static JsonSummary jsonSummary(Path analysisJson, Path dir) throws IOException {
        JsonNode tree = Analysis.mapper().readTree(analysisJson.toFile());
        List<String> sentences = new ArrayList<>();
        tree.path("explanation").forEach(e -> sentences.add(e.path("text").asText()));
        return new JsonSummary(analysisJson.toString(), dir.resolve("report.html").toString(),
                dir.resolve("figures").toString(), tree.get("model"), tree.get("dataset"), tree.get("metrics"),
                sentences);
    }

    /** The initial weights when the metadata says how they were drawn, and the attention-only model if given. */
    private Worklog.Inputs worklogInputs(Checkpoint ckpt, TrigramDataset ds) {
        Weights initial = null;
        String seed = ckpt.metadata().get(TrainConfig.INIT_SEED);
        if (seed != null) {
            try {
                initial = Weights.init(ckpt.weights().cfg, Long.parseLong(seed));
            } catch (NumberFormatException e) {
                throw new TrilensException(model + ": metadata " + TrainConfig.INIT_SEED + " is '" + seed
                        + "', expected an integer seed");
            }
        }
        EvalMetrics attnOnly = null;
        if (attnOnlyModel != null) {
            Weights other = Checkpoints.load(attnOnlyModel, loading.allowNonFinite).weights();
            if (!other.cfg.attnOnly()) {
                throw new TrilensException("--attn-only-model " + attnOnlyModel + " has an MLP (d_mlp "
                        + other.cfg.dMlp() + "); expected an attention-only model (d_mlp 0)");
            }
            if (other.cfg.dVocab() != ds.dVocab() || other.cfg.nCtx() != ds.seqLen()) {
                throw new TrilensException("--attn-only-model " + attnOnlyModel + " has d_vocab " + other.cfg.dVocab()
                        + " and n_ctx " + other.cfg.nCtx() + "; expected " + ds.dVocab() + " and " + ds.seqLen()
                        + " like --model");
            }
            attnOnly = Metrics.evaluate(new HookedTransformer(other), ds);
        }
        return new Worklog.Inputs(initial, attnOnly, attnOnlyModel == null ? null : attnOnlyModel.toString());
    }

    /** Runs every analysis, writes DIR/analysis.json and prints each section's summary; returns the file. */
    static Path analyzeInto(AnalysisContext ctx, Worklog.Inputs inputs, String modelPath, Path dir,
                            PrintWriter term) {
        Analysis analysis = Analysis.run(ctx, inputs, section -> {
            if (!Main.quiet()) {
                System.err.println("analyze: " + section + " ...");
            }
        });
        com.fasterxml.jackson.databind.JsonNode tree = analysis.toJson(modelPath, ctx.model().config(), ctx.data());
        ObjectMapper mapper = Analysis.mapper().enable(SerializationFeature.INDENT_OUTPUT);
        for (String section : analysis.readingOrder()) {
            term.printf("%n[%s] %.1fs%n", section, analysis.seconds().get(section));
            if (section.equals("metrics")) {
                Map<String, Object> m = dev.trilens.io.JsonFields.of(analysis.sections().get(section));
                m.forEach((k, v) -> term.printf("  %-25s %s%n", k, v instanceof Double d ? String.format("%.6f", d) : v));
            }
            for (String line : analysis.summary(section)) {
                term.println("  " + line);
            }
        }
        // the run's training curves, when the model came out of `trilens run` in this folder
        Path metrics = dir.resolve(Trainer.METRICS);
        Path runMetrics = Files.isRegularFile(metrics) ? metrics : null;
        // analysis.json, the figures and the report are one set: all of them land, or none (a full disk half-way
        // leaves the previous set whole)
        List<Path> figures;
        try (OutputSet set = OutputSet.begin(dir, "analysis")) {
            // and the training dynamics, when `trilens dynamics` wrote them here
            JsonNode dynamics = DynamicsCommand.readForReport(dir);
            figures = PngFigures.saveAlongside(PngFigures.charts(tree, runMetrics), set.path("figures"), List.of(
                    () -> AtomicFiles.write(set.path("analysis.json"),
                            os -> mapper.writeValue(new NonClosingOutputStream(os), tree)),
                    () -> ReportPage.write(tree, runMetrics, dynamics, set.path("report.html"))));
            set.commit();
        }
        Path file = dir.resolve("analysis.json");
        long png = figures.stream().filter(p -> p.toString().endsWith(".png")).count();
        term.printf("%nanalysis written to %s%nfigures    %d PNG and %d SVG files in %s%nreport     %s%n", file, png,
                figures.size() - png, dir.resolve("figures"), dir.resolve("report.html"));
        term.flush();
        return file;
    }

    private static String stem(Path p) {
        String name = p.getFileName().toString();
        int dot = name.lastIndexOf('.');
        return dot > 0 ? name.substring(0, dot) : name;
    }
}
