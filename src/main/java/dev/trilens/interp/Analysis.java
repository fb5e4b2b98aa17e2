package dev.trilens.interp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.train.Metrics;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Every analysis of the interpretability engine, run in the worklog's order; the sections of analysis.json.
 *
 * <p>Keys of {@link #sections()}: {@code metrics} (evaluate's metrics), {@code predictions} (1),
 * {@code attention} (2), {@code circuits} (3, 4 and 7: QK, OV, MLP, weight processing), {@code attribution} and
 * {@code ablation} (5), {@code patching} (6: the attention swap of the first sequence), {@code extraction} (8:
 * the trigram table read from the weights: {@code table} is {@link TrigramExtractor.Result}, whose
 * {@code trigrams} sit beside {@code bigram_defaults} and the cuts {@code cut} and {@code bigram_cut};
 * {@code evaluation} is {@link ExtractionScore.Evaluation}, precision and recall against the dataset and
 * against what the model predicts), {@code causal_validation} (9) and
 * {@code failure_modes} (10). Each section's own keys are documented on its record; most carry a {@code summary}.
 * A section that cannot be computed for this model says why under {@code error} instead of being left out.
 */
public final class Analysis {
    private static final ObjectMapper JSON = mapper();

    /** How analysis.json is written: every record's fields in snake_case, like the documented keys. */
    public static ObjectMapper mapper() {
        return new ObjectMapper().setPropertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE);
    }

    private final Map<String, Object> sections = new LinkedHashMap<>();
    /**
     * Each section as analysis.json's tree, made once when the section is computed: the explanation and the worklog
     * read it, the terminal's summaries and analysis.json come from it (each used to convert every section again,
     * several MB of JSON).
     */
    private final ObjectNode trees = JSON.createObjectNode();
    private final Map<String, Double> seconds = new LinkedHashMap<>();

    /** Receives each section's name as it starts, for progress output. */
    public interface Progress {
        void started(String section);
    }

    public static Analysis run(AnalysisContext ctx, Progress progress) {
        return run(ctx, Worklog.Inputs.none(), progress);
    }

    /**
     * Every section, then the explanation and the worklog's answers, which read the sections' numbers (so each
     * claim's evidence is what a script finds in analysis.json).
     */
    public static Analysis run(AnalysisContext ctx, Worklog.Inputs worklogInputs, Progress progress) {
        Analysis a = new Analysis();
        HookedTransformer model = ctx.model();
        TrigramDataset data = ctx.data();
        a.section("metrics", progress, () -> Metrics.evaluate(model, data));
        a.section("predictions", progress, () -> Predictions.compute(ctx));
        a.section("attention", progress, () -> AttentionAnalysis.compute(ctx));
        a.section("circuits", progress, () -> Circuits.compute(ctx));
        a.section("attribution", progress, () -> Attribution.compute(ctx));
        a.section("ablation", progress, () -> Ablation.compute(ctx));
        a.section("patching", progress, () -> swapExample(model, data));
        TrigramExtractor.Result[] extracted = new TrigramExtractor.Result[1];
        a.section("extraction", progress, () -> {
            extracted[0] = TrigramExtractor.extract(model.weights());
            ExtractionScore.Evaluation ev = ExtractionScore.evaluate(extracted[0], model, data);
            return new Extraction(TrigramExtractor.METHOD, TrigramExtractor.BIGRAM_METHOD, extracted[0], ev,
                    TrigramExtractor.summaryLines(extracted[0], ev));
        });
        a.section("causal_validation", progress, () -> CausalValidation.run(model, data, needs(extracted[0])));
        a.section("failure_modes", progress, () -> FailureModes.analyze(model, data, needs(extracted[0]),
                FailureModes.DEFAULT_SAMPLES, data.seed()));
        JsonNode tree = a.trees;
        a.section("explanation", progress, () -> Explanation.of(ctx, tree, extracted[0]));
        a.section("worklog", progress, () -> Worklog.answer(ctx, tree, worklogInputs));
        return a;
    }

    /** Sections a reader wants first: what the model does, then the worklog's questions. */
    static final List<String> FIRST = List.of("explanation", "worklog");

    /**
     * The challenge's swap experiment: in sequence 0, position 21's attention moved onto position 15 (the published
     * model's example; shorter sequences use the same offsets from their end).
     */
    static Patching.SwapResult swapExample(HookedTransformer model, TrigramDataset data) {
        int pos = Math.min(21, data.seqLen() - 2);
        return Patching.attentionSwap(model, data.tokensOf(0, 1), pos, Math.max(0, pos - 6));
    }

    /** The later sections build on the extracted table; without it they say so. */
    private static TrigramExtractor.Result needs(TrigramExtractor.Result extracted) {
        if (extracted == null) {
            throw new dev.trilens.TrilensException("needs the extracted trigram table, which could not be computed "
                    + "for this model (see the extraction section)");
        }
        return extracted;
    }

    private void section(String name, Progress progress, Supplier<Object> compute) {
        progress.started(name);
        long t0 = System.nanoTime();
        Object value;
        try {
            value = compute.get();
        } catch (dev.trilens.TrilensException e) {
            value = new SectionError(e.getMessage());
        }
        sections.put(name, value);
        seconds.put(name, (System.nanoTime() - t0) / 1e9);
        trees.set(name, JSON.valueToTree(value));
    }

    public Map<String, Object> sections() {
        return sections;
    }

    /** The section names as a reader takes them: the explanation and the worklog first, then the computation. */
    public List<String> readingOrder() {
        List<String> order = new ArrayList<>();
        FIRST.stream().filter(sections::containsKey).forEach(order::add);
        sections.keySet().stream().filter(k -> !order.contains(k)).forEach(order::add);
        return order;
    }

    public Map<String, Double> seconds() {
        return seconds;
    }

    /** analysis.json's extraction section: how the table is read, the table, its score against the dataset. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Extraction(String method, String bigramMethod, TrigramExtractor.Result table,
                             ExtractionScore.Evaluation evaluation, List<String> summary) {
    }

    /** A section that cannot be computed for this model: {"error": why}. */
    public record SectionError(String error) {
    }

    /** analysis.json's model: where it was read from, its shape and its number of parameters. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record ModelInfo(String path, ModelConfig config, int nParams) {
    }

    /** analysis.json's dataset: the one every section was computed on. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record DatasetInfo(int dVocab, int seqLen, long seed, double trigramProb, int size, int nTrigrams) {
        static DatasetInfo of(TrigramDataset data) {
            return new DatasetInfo(data.dVocab(), data.seqLen(), data.seed(), data.trigramProb(), data.size(),
                    data.nTrigrams());
        }
    }

    /**
     * The whole analysis as analysis.json's object: model and dataset description, then the sections (a map, as
     * which sections there are depends on the model), then each section's seconds.
     */
    public ObjectNode toJson(String modelPath, ModelConfig cfg, TrigramDataset data) {
        ObjectNode root = JSON.createObjectNode();
        root.set("model", JSON.valueToTree(new ModelInfo(modelPath, cfg,
                new dev.trilens.model.ParamLayout(cfg).totalSize())));
        root.set("dataset", JSON.valueToTree(DatasetInfo.of(data)));
        for (String first : FIRST) {
            if (trees.has(first)) {
                root.set(first, trees.get(first));
                if (first.equals("explanation")) {
                    root.set("glossary", JSON.valueToTree(Explanation.GLOSSARY));
                }
            }
        }
        trees.fields().forEachRemaining(e -> {
            if (!root.has(e.getKey())) {
                root.set(e.getKey(), e.getValue());
            }
        });
        root.set("seconds", JSON.valueToTree(seconds));
        return root;
    }

    /** The sentences each section offers as its summary (its "summary" key, a string or a list of them). */
    public List<String> summary(String section) {
        List<String> lines = new ArrayList<>();
        JsonNode node = trees.get(section);
        JsonNode s = node == null ? null : node.get("summary");
        if (node != null && node.isArray()) {
            // the explanation's claims and the worklog's answers are lists of objects, not sections with a summary
            node.forEach(x -> lines.add(x.has("question")
                    ? x.path("question").asText() + "\n    " + x.path("verdict").asText() : x.path("text").asText()));
        } else if (s != null && s.isArray()) {
            s.forEach(x -> lines.add(x.asText()));
        } else if (s != null && s.isTextual()) {
            lines.add(s.asText());
        } else if (node != null && node.has("error")) {
            lines.add("not computed: " + node.get("error").asText());
        } else if (node != null) {
            lines.addAll(derivedSummary(section, node));
        }
        return lines;
    }

    /** Summary lines for the sections whose records carry none, read from their JSON. */
    private static List<String> derivedSummary(String section, JsonNode n) {
        List<String> lines = new ArrayList<>();
        switch (section) {
            case "causal_validation" -> {
                lines.add("attention replaced by rules; recovered = share of the gap between the baseline ("
                        + n.path("baseline").asText() + ") and the clean model");
                for (JsonNode v : n.path("variants")) {
                    JsonNode m = v.path("metrics");
                    lines.add(String.format("  %-28s loss %.4f, trigrams %d correct, recovered loss %.3f, trigram "
                                    + "accuracy %.3f", v.path("name").asText(), m.path("loss").asDouble(),
                            m.path("trigram_n_correct").asInt(), v.path("recovered_loss").asDouble(),
                            v.path("recovered_trigram_frac").asDouble()));
                }
            }
            case "failure_modes" -> {
                JsonNode c = n.path("catalogue");
                lines.add(String.format("%d of %d trigrams missed; causes %s", c.path("n_missed").asInt(),
                        c.path("n_trigrams").asInt(), c.path("counts")));
                for (JsonNode f : n.path("families")) {
                    lines.add(String.format("  %-34s fooled %.1f%% (control %.1f%%)", f.path("name").asText(),
                            100 * f.path("fooled_rate").asDouble(), 100 * f.path("control_fooled_rate").asDouble()));
                }
            }
            default -> {
            }
        }
        return lines;
    }
}
