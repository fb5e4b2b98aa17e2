package dev.trilens.sweep;

import dev.trilens.report.PngFigures;
import dev.trilens.train.Comparison;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Function;
import java.util.function.Predicate;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.internal.chartpart.Chart;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * The sweep's figures (XChart, each a PNG and an SVG, as the analysis writes them): trigrams learned (and the average
 * probability of the correct c, which keeps telling widths apart once every trigram is right by argmax) against each
 * axis that is not a seed, with error bars of one sample standard deviation over the seeds, one line per combination
 * of the other axes; and, when the grid has both, attention-only against MLP models.
 */
final class SweepFigures {
    static final int WIDTH = 900, HEIGHT = 650;
    /** Beyond this many combinations of the other axes, one pooled line says more than a tangle of them. */
    static final int MAX_SERIES = 8;

    /** What a figure plots: a results column, its name in titles and its y range's top (null: the data's). */
    private record Metric(String column, String title, Function<SweepTable, Double> top,
                          Function<SweepTable, String> yTitle) {
    }

    private static final Metric TRIGRAMS = new Metric("trigram_n_correct", "Trigrams learned", t -> {
        Integer n = nTrigrams(t);
        return n == null ? null : (double) n;
    }, SweepFigures::yTitle);
    private static final Metric AVG_PROB = new Metric("trigram_avg_correct_prob", "Average P(c | a, b)",
            t -> 1.0, t -> "trigram_avg_correct_prob");

    private SweepFigures() {
    }

    /** Writes every figure the grid has data for into dir; returns the files. */
    static List<Path> write(SweepTable table, Path dir) {
        System.setProperty("java.awt.headless", "true");
        List<Path> written = new ArrayList<>();
        for (Grid.Axis axis : table.pointAxes()) {
            if (axis.values().size() > 1) {
                written.addAll(PngFigures.save(versus(table, axis, TRIGRAMS), dir, "trigrams_vs_" + axis.name()));
                written.addAll(PngFigures.save(versus(table, axis, AVG_PROB), dir, "avg_prob_vs_" + axis.name()));
            }
        }
        boolean attnOnly = table.results().stream().anyMatch(r -> dMlp(r) == 0);
        boolean mlp = table.results().stream().anyMatch(r -> dMlp(r) > 0);
        if (attnOnly && mlp) {
            written.addAll(PngFigures.save(attnOnlyVsMlp(table), dir, "attn_only_vs_mlp"));
        }
        return written;
    }

    private static int dMlp(RunResult r) {
        return ((Number) r.config().get("d_mlp")).intValue();
    }

    /** A metric against one axis: one line (or set of bars, for true/false) per combination of the others. */
    private static Chart<?, ?> versus(SweepTable table, Grid.Axis axis, Metric metric) {
        List<Grid.Axis> others = table.pointAxes().stream().filter(a -> a != axis).toList();
        Map<String, Predicate<RunResult>> series = seriesOf(table, others);
        String title = metric.title() + " vs " + axis.name() + spread(table);
        String yTitle = metric.yTitle().apply(table);
        if (axis.isNumeric()) {
            XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT).title(title).xAxisTitle(axis.name())
                    .yAxisTitle(yTitle).build();
            PngFigures.style(chart);
            chart.getStyler().setErrorBarsColorSeriesColor(true);
            // from none to all: a capacity curve read against its ceiling, not magnified
            chart.getStyler().setYAxisMin(0.0);
            Double top = metric.top().apply(table);
            if (top != null) {
                chart.getStyler().setYAxisMax(top);
            }
            series.forEach((name, member) -> {
                List<Double> x = new ArrayList<>(), y = new ArrayList<>(), err = new ArrayList<>();
                for (String v : axis.values()) {
                    Comparison.Stats s = stats(table, metric, r -> member.test(r)
                            && r.axes().get(axis.name()).equals(v));
                    if (s != null) {
                        x.add(Double.parseDouble(v));
                        y.add(s.mean());
                        err.add(Double.isNaN(s.std()) ? 0 : s.std());
                    }
                }
                chart.addSeries(name, x, y, err).setMarker(SeriesMarkers.CIRCLE);
            });
            return chart;
        }
        CategoryChart chart = new CategoryChartBuilder().width(WIDTH).height(HEIGHT).title(title)
                .xAxisTitle(axis.name()).yAxisTitle(yTitle).build();
        PngFigures.style(chart);
        chart.getStyler().setErrorBarsColorSeriesColor(false);
        series.forEach((name, member) -> {
            List<String> x = new ArrayList<>();
            List<Double> y = new ArrayList<>(), err = new ArrayList<>();
            for (String v : axis.values()) {
                Comparison.Stats s = stats(table, metric, r -> member.test(r) && r.axes().get(axis.name()).equals(v));
                x.add(v);
                y.add(s == null ? 0 : s.mean());
                err.add(s == null || Double.isNaN(s.std()) ? 0 : s.std());
            }
            chart.addSeries(name, x, y, err);
        });
        return chart;
    }

    /** Bars per d_mlp (0: attention-only), grouped by the combinations of the axes other than d_mlp and attn_only. */
    private static CategoryChart attnOnlyVsMlp(SweepTable table) {
        List<Grid.Axis> others = table.pointAxes().stream()
                .filter(a -> !a.name().equals("d_mlp") && !a.name().equals("attn_only")).toList();
        Map<String, Predicate<RunResult>> groups = seriesOf(table, others);
        TreeSet<Integer> widths = new TreeSet<>();
        table.results().forEach(r -> widths.add(dMlp(r)));
        CategoryChart chart = new CategoryChartBuilder().width(WIDTH).height(HEIGHT)
                .title("Attention-only vs MLP" + spread(table)).xAxisTitle(others.isEmpty() ? "" : String.join(", ",
                        others.stream().map(Grid.Axis::name).toList())).yAxisTitle(yTitle(table)).build();
        PngFigures.style(chart);
        chart.getStyler().setErrorBarsColorSeriesColor(false);
        for (int width : widths) {
            List<String> x = new ArrayList<>();
            List<Double> y = new ArrayList<>(), err = new ArrayList<>();
            groups.forEach((group, member) -> {
                Comparison.Stats s = stats(table, TRIGRAMS, r -> member.test(r) && dMlp(r) == width);
                x.add(group);
                y.add(s == null ? 0 : s.mean());
                err.add(s == null || Double.isNaN(s.std()) ? 0 : s.std());
            });
            chart.addSeries(width == 0 ? "attention-only" : "MLP, d_mlp " + width, x, y, err);
        }
        return chart;
    }

    /**
     * One entry per combination of the given axes that some run has, named "d_head=8, trigram_prob=0.05", with the
     * test for its runs; a single pooled entry when there are none or too many.
     */
    private static Map<String, Predicate<RunResult>> seriesOf(SweepTable table, List<Grid.Axis> axes) {
        LinkedHashSet<Map<String, String>> combos = new LinkedHashSet<>();
        for (RunResult r : table.results()) {
            Map<String, String> c = new LinkedHashMap<>();
            axes.forEach(a -> c.put(a.name(), r.axes().get(a.name())));
            combos.add(c);
        }
        Map<String, Predicate<RunResult>> series = new LinkedHashMap<>();
        if (axes.isEmpty() || combos.size() > MAX_SERIES) {
            series.put(axes.isEmpty() ? "all runs" : "all runs (" + String.join(", ", axes.stream()
                    .map(Grid.Axis::name).toList()) + " pooled)", r -> true);
            return series;
        }
        for (Map<String, String> c : combos) {
            List<String> parts = new ArrayList<>();
            c.forEach((k, v) -> parts.add(k + "=" + v));
            series.put(String.join(", ", parts), r -> c.entrySet().stream()
                    .allMatch(e -> r.axes().get(e.getKey()).equals(e.getValue())));
        }
        return series;
    }

    private static Comparison.Stats stats(SweepTable table, Metric metric, Predicate<RunResult> which) {
        double[] v = table.results().stream().filter(which)
                .mapToDouble(r -> ((Number) r.metric(metric.column())).doubleValue()).toArray();
        return v.length == 0 ? null : Comparison.Stats.of(v);
    }

    private static String spread(SweepTable table) {
        List<Grid.Axis> seeds = table.seedAxes();
        return seeds.isEmpty() ? "" : " (mean ± sd over " + String.join(" x ", seeds.stream().map(Grid.Axis::name)
                .toList()) + ")";
    }

    /** The dataset's trigram count when every run has the same, else null. */
    private static Integer nTrigrams(SweepTable table) {
        TreeSet<Integer> n = new TreeSet<>();
        table.results().forEach(r -> n.add(r.nTrigrams()));
        return n.size() == 1 ? n.first() : null;
    }

    private static String yTitle(SweepTable table) {
        Integer n = nTrigrams(table);
        return n != null ? "trigrams learned (of " + n + ")" : "trigrams learned";
    }
}
