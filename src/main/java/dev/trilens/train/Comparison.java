package dev.trilens.train;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trilens.io.JsonFields;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The final-epoch metrics of model variants, each trained once per seed, summarised per metric as the mean and the
 * sample standard deviation over seeds: what `trilens compare` prints and writes as compare.json and compare.md.
 */
public final class Comparison {

    /** The metrics compared, named as in metrics.jsonl: the challenge's five, then val_loss. */
    public static final List<String> METRICS = List.of("train_loss", "train_loss_as_frac", "trigram_n_correct",
            "trigram_frac_correct", "trigram_avg_correct_prob", "val_loss");

    /** One training run: its seed (data and init), folder name and final-epoch metrics. */
    public record Run(long seed, String dir, Trainer.EpochMetrics last, double seconds) {
        public double value(String metric) {
            Object v = JsonFields.of(last).get(metric);
            if (!(v instanceof Number n)) {
                throw new IllegalArgumentException("unknown metric " + metric);
            }
            return n.doubleValue();
        }
    }

    /** A variant's config is the one of its first seed; its runs differ from it only in the seeds. */
    public record Variant(String name, TrainConfig config, List<Run> runs) {
        public double[] values(String metric) {
            return runs.stream().mapToDouble(r -> r.value(metric)).toArray();
        }
    }

    /** @param std sample standard deviation (n - 1 in the denominator); NaN for a single value */
    public record Stats(double mean, double std, double min, double max) {
        public static Stats of(double[] v) {
            if (v.length == 0) {
                throw new IllegalArgumentException("no values");
            }
            double sum = 0, min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
            for (double x : v) {
                sum += x;
                min = Math.min(min, x);
                max = Math.max(max, x);
            }
            double mean = sum / v.length;
            double sq = 0;
            for (double x : v) {
                sq += (x - mean) * (x - mean);
            }
            return new Stats(mean, v.length > 1 ? Math.sqrt(sq / (v.length - 1)) : Double.NaN, min, max);
        }
    }

    private final String preset;
    private final List<Variant> variants;

    public Comparison(String preset, List<Variant> variants) {
        if (variants.isEmpty() || variants.stream().anyMatch(v -> v.runs().isEmpty())) {
            throw new IllegalArgumentException("a comparison needs at least one variant with at least one run");
        }
        this.preset = preset;
        this.variants = List.copyOf(variants);
    }

    public List<Variant> variants() {
        return variants;
    }

    private List<Long> seeds() {
        return variants.get(0).runs().stream().map(Run::seed).toList();
    }

    private int epochs() {
        return variants.get(0).config().epochs();
    }

    /** How compare.json is written. */
    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * compare.json: per variant its config (the seeds listed apart, as they are what varies), every run's final-epoch
     * values, and per metric the values over seeds with their mean, std (null for one seed), min and max; then how
     * the command ran: runs at once, threads per run and its wall-clock seconds.
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Json(String preset, int epochs, List<Long> seeds, String spread, Map<String, VariantJson> variants,
                       int parallelRuns, int threadsPerRun, double seconds) {
    }

    /** @param config the variant's {@link TrainConfig} without data_seed and init_seed, then its seeds */
    public record VariantJson(ObjectNode config, List<RunJson> runs, Map<String, MetricJson> metrics) {
    }

    /** A run's final-epoch values of {@link #METRICS}, in that order. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    @JsonPropertyOrder({"seed", "dir", "epoch", "train_loss", "train_loss_as_frac", "trigram_n_correct",
            "trigram_frac_correct", "trigram_avg_correct_prob", "val_loss", "seconds"})
    public record RunJson(long seed, String dir, int epoch, double trainLoss, double trainLossAsFrac,
                          @JsonProperty("trigram_n_correct") int trigramNCorrect, double trigramFracCorrect, double trigramAvgCorrectProb,
                          double valLoss, double seconds) {
        static RunJson of(Run r) {
            Trainer.EpochMetrics m = r.last();
            return new RunJson(r.seed(), r.dir(), m.epoch(), m.trainLoss(), m.trainLossAsFrac(),
                    m.trigramNCorrect(), m.trigramFracCorrect(), m.trigramAvgCorrectProb(), m.valLoss(),
                    r.seconds());
        }
    }

    /** @param std null for one seed */
    public record MetricJson(double[] values, double mean, @JsonInclude(JsonInclude.Include.ALWAYS) Double std,
                             double min, double max) {
        static MetricJson of(double[] values) {
            Stats s = Stats.of(values);
            return new MetricJson(values, s.mean(), values.length > 1 ? s.std() : null, s.min(), s.max());
        }
    }

    /** What compare.json holds, for a command that ran parallelRuns at once with threadsPerRun in seconds. */
    public Json toJson(int parallelRuns, int threadsPerRun, double seconds) {
        Map<String, VariantJson> vs = new LinkedHashMap<>();
        for (Variant v : variants) {
            ObjectNode config = JSON.valueToTree(v.config());
            config.remove("data_seed");
            config.remove("init_seed");
            config.putPOJO("seeds", v.runs().stream().map(Run::seed).toList());
            Map<String, MetricJson> metrics = new LinkedHashMap<>();
            for (String metric : METRICS) {
                metrics.put(metric, MetricJson.of(v.values(metric)));
            }
            vs.put(v.name(), new VariantJson(config, v.runs().stream().map(RunJson::of).toList(), metrics));
        }
        return new Json(preset, epochs(), seeds(), "std is the sample standard deviation over seeds (n - 1 in the "
                + "denominator), null for one seed; values are each run's final epoch", vs, parallelRuns, threadsPerRun, seconds);
    }

    /** One line saying what the table's cells are. */
    public String caption() {
        int n = seeds().size();
        return String.format(Locale.ROOT, "final epoch (%d) of each run, %s over %d seed%s (%s)", epochs(),
                n > 1 ? "mean ± sample std" : "one run, no spread", n, n > 1 ? "s" : "",
                seeds().stream().map(String::valueOf).reduce((a, b) -> a + ", " + b).orElse(""));
    }

    /** One right-aligned markdown column per metric: its name on the header row, its alignment on the rule row. */
    private static void appendMetricColumns(StringBuilder header, StringBuilder rule) {
        for (String metric : METRICS) {
            header.append(' ').append(metric).append(" |");
            rule.append("---:|");
        }
    }

    /** The summary as a markdown table: one row per variant, one column per metric. */
    public String table() {
        StringBuilder sb = new StringBuilder("| variant | d_mlp |");
        StringBuilder rule = new StringBuilder("|---|---:|");
        appendMetricColumns(sb, rule);
        sb.append('\n').append(rule).append('\n');
        for (Variant v : variants) {
            sb.append("| ").append(v.name()).append(" | ").append(v.config().dMlp()).append(" |");
            for (String metric : METRICS) {
                Stats s = Stats.of(v.values(metric));
                sb.append(' ').append(format(metric, s.mean()));
                if (v.runs().size() > 1) {
                    sb.append(" ± ").append(format(metric, s.std()));
                }
                sb.append(" |");
            }
            sb.append('\n');
        }
        return sb.toString();
    }

    /** compare.md: the summary table, then every run's values so a reader can see what the spread hides. */
    public String markdown() {
        StringBuilder sb = new StringBuilder();
        sb.append("# trilens compare: ").append(preset).append(" preset\n\n");
        sb.append(caption().substring(0, 1).toUpperCase(Locale.ROOT)).append(caption().substring(1)).append(".\n\n");
        sb.append(table()).append('\n');
        sb.append("## Runs\n\n| run | seed |");
        StringBuilder rule = new StringBuilder("|---|---:|");
        appendMetricColumns(sb, rule);
        sb.append(" seconds |\n").append(rule).append("---:|\n");
        for (Variant v : variants) {
            for (Run r : v.runs()) {
                sb.append("| ").append(r.dir()).append(" | ").append(r.seed()).append(" |");
                for (String metric : METRICS) {
                    double x = r.value(metric);
                    sb.append(' ').append(metric.equals("trigram_n_correct") ? String.valueOf((long) x)
                            : format(metric, x)).append(" |");
                }
                sb.append(String.format(Locale.ROOT, " %.1f |%n", r.seconds()));
            }
        }
        sb.append("\nConfig of each variant (seeds apart): see compare.json.\n");
        return sb.toString();
    }

    private static String format(String metric, double x) {
        return String.format(Locale.ROOT, metric.equals("trigram_n_correct") ? "%.1f" : "%.4f", x);
    }
}
