package dev.trilens.sweep;

import com.fasterxml.jackson.dataformat.csv.CsvMapper;
import com.fasterxml.jackson.dataformat.csv.CsvSchema;
import dev.trilens.train.Comparison;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The sweep's results, one row per run in the grid's order: results.csv (and, through Spark, results.parquet) and
 * sweep.md, which summarises each grid point (the runs that differ only in their seeds) as mean ± sample standard
 * deviation over its seeds.
 */
final class SweepTable {

    /** The columns after run_id and the axes, as results.csv and results.parquet have them. */
    static final List<String> METRICS = List.of("trigram_n_correct", "trigram_frac_correct",
            "trigram_avg_correct_prob", "loss", "loss_as_frac", "n_trigrams", "n_extracted", "extracted_precision",
            "extracted_recall", "train_loss", "val_loss", "mean_correct_prob", "epochs", "seconds", "run_seconds",
            "attempt", "resumed_after_epoch");

    /** The columns sweep.md summarises per grid point. */
    static final List<String> SUMMARY = List.of("trigram_n_correct", "trigram_frac_correct",
            "trigram_avg_correct_prob", "loss", "loss_as_frac", "n_extracted", "extracted_recall", "seconds");

    private static final List<String> COUNTS = List.of("trigram_n_correct", "n_trigrams", "n_extracted", "epochs",
            "attempt", "resumed_after_epoch");

    /** Runs that differ only in their seed axes. */
    record Point(Map<String, String> values, List<RunResult> runs) {
        double[] values(String metric) {
            return runs.stream().mapToDouble(r -> ((Number) r.metric(metric)).doubleValue()).toArray();
        }

        Comparison.Stats stats(String metric) {
            return Comparison.Stats.of(values(metric));
        }
    }

    private final Grid grid;
    private final List<RunResult> results;

    SweepTable(Grid grid, List<RunResult> results) {
        this.grid = grid;
        this.results = List.copyOf(results);
    }

    List<RunResult> results() {
        return results;
    }

    Grid grid() {
        return grid;
    }

    List<String> columns() {
        List<String> c = new ArrayList<>(List.of("run_id"));
        grid.axes().forEach(a -> c.add(a.name()));
        c.addAll(METRICS);
        return c;
    }

    /** A cell: the run id, an axis value typed as train reads it, or a metric. */
    Object value(RunResult r, String column) {
        if (column.equals("run_id")) {
            return r.runId();
        }
        for (Grid.Axis a : grid.axes()) {
            if (a.name().equals(column)) {
                return Grid.typed(column, r.axes().get(column));
            }
        }
        return r.metric(column);
    }

    /** results.csv: a header, then one row per run; numbers in full (Java's shortest round-trip form). */
    byte[] csv() {
        CsvSchema.Builder schema = CsvSchema.builder();
        columns().forEach(schema::addColumn);
        List<Map<String, Object>> rows = new ArrayList<>();
        for (RunResult r : results) {
            Map<String, Object> row = new LinkedHashMap<>();
            for (String c : columns()) {
                row.put(c, value(r, c));
            }
            rows.add(row);
        }
        try {
            return new CsvMapper().writer(schema.build().withHeader()).writeValueAsBytes(rows);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The non-seed axes: what a grid point is. */
    List<Grid.Axis> pointAxes() {
        return grid.axes().stream().filter(a -> !a.isSeed()).toList();
    }

    List<Grid.Axis> seedAxes() {
        return grid.axes().stream().filter(Grid.Axis::isSeed).toList();
    }

    /** The grid points in the order their first run comes. */
    List<Point> points() {
        Map<Map<String, String>, List<RunResult>> byPoint = new LinkedHashMap<>();
        for (RunResult r : results) {
            Map<String, String> key = new LinkedHashMap<>();
            pointAxes().forEach(a -> key.put(a.name(), r.axes().get(a.name())));
            byPoint.computeIfAbsent(key, k -> new ArrayList<>()).add(r);
        }
        List<Point> points = new ArrayList<>();
        byPoint.forEach((k, v) -> points.add(new Point(k, v)));
        return points;
    }

    /** What each summary cell is, in words. */
    String caption() {
        List<Grid.Axis> seeds = seedAxes();
        if (seeds.isEmpty()) {
            return "One run per grid point (no seed axis), so no spread.";
        }
        int perPoint = results.size() / Math.max(1, points().size());
        return "Each cell: mean ± sample standard deviation (n - 1) over " + String.join(" x ", seeds.stream()
                .map(a -> a.name() + " " + a.values()).toList()) + ", " + perPoint + " run" + (perPoint == 1 ? ""
                : "s") + " per grid point; the final model of each run.";
    }

    /** sweep.md: what was swept, the grid points' summary, then every run. */
    String markdown(String wall) {
        StringBuilder sb = new StringBuilder();
        sb.append("# trilens sweep: ").append(grid.source()).append("\n\n");
        sb.append(results.size()).append(" runs: ").append(grid.shape()).append("; ").append(grid.fixedText())
                .append(". Each final model is evaluated on the 2500-sequence dataset of its seed and trigram_prob, as "
                        + "`trilens evaluate` does; n_extracted and extracted_recall are the trigrams `trilens "
                        + "extract` reads from its weights, and their recall of the dataset's. seconds is the run's "
                        + "training time. ").append(wall).append("\n\n");
        sb.append("## Grid points\n\n").append(caption()).append("\n\n").append(pointsTable());
        sb.append("\n## Runs\n\n");
        List<String> runHead = new ArrayList<>(List.of("run_id"));
        grid.axes().forEach(a -> runHead.add(a.name()));
        runHead.addAll(SUMMARY);
        runHead.add("attempt");
        header(sb, runHead);
        for (RunResult r : results) {
            List<String> cells = new ArrayList<>(List.of(r.runId()));
            grid.axes().forEach(a -> cells.add(r.axes().get(a.name())));
            for (String m : SUMMARY) {
                cells.add(format(m, ((Number) r.metric(m)).doubleValue(), false));
            }
            cells.add(String.valueOf(r.attempt()));
            row(sb, cells);
        }
        sb.append("\nEvery column of every run is in results.csv and results.parquet.\n");
        return sb.toString();
    }

    /** The grid points' table: one row per point, each summary column as mean ± sd over its seeds. */
    String pointsTable() {
        StringBuilder sb = new StringBuilder();
        List<String> head = new ArrayList<>();
        pointAxes().forEach(a -> head.add(a.name()));
        head.add("runs");
        head.addAll(SUMMARY);
        header(sb, head);
        for (Point p : points()) {
            List<String> cells = new ArrayList<>(p.values().values());
            cells.add(String.valueOf(p.runs().size()));
            for (String m : SUMMARY) {
                Comparison.Stats s = p.stats(m);
                cells.add(p.runs().size() > 1 ? format(m, s.mean(), true) + " ± " + format(m, s.std(), true)
                        : format(m, s.mean(), false));
            }
            row(sb, cells);
        }
        return sb.toString();
    }

    private static void header(StringBuilder sb, List<String> names) {
        row(sb, names);
        sb.append('|');
        names.forEach(n -> sb.append(n.equals("run_id") ? "---|" : "---:|"));
        sb.append('\n');
    }

    private static void row(StringBuilder sb, List<String> cells) {
        sb.append("| ").append(String.join(" | ", cells)).append(" |\n");
    }

    /** Counts as whole numbers for one run and to one decimal as a mean; seconds to 0.1; the rest to 4 places. */
    static String format(String metric, double x, boolean statistic) {
        if (Double.isNaN(x)) {
            return "NaN";
        }
        if (COUNTS.contains(metric)) {
            return statistic ? String.format(Locale.ROOT, "%.1f", x) : String.valueOf(Math.round(x));
        }
        return String.format(Locale.ROOT, metric.endsWith("seconds") ? "%.1f" : "%.4f", x);
    }
}
