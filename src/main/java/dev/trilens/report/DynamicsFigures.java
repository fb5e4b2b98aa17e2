package dev.trilens.report;

import com.fasterxml.jackson.databind.JsonNode;
import java.awt.BasicStroke;
import java.awt.Color;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.function.ToDoubleFunction;
import org.knowm.xchart.AnnotationLine;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * dynamics.json's curves as figures (PNG and SVG, like {@link PngFigures}): the metrics, the attention, the direct
 * logit attribution and the weights' distance from their initial values over the epochs, with the phase changes as
 * vertical lines, and the learning order against frequency.
 */
public final class DynamicsFigures {
    private static final Color[] COLORS = {new Color(0x2166ac), new Color(0x1a9850), new Color(0xb2182b),
            new Color(0xef8a62), new Color(0x762a83), new Color(0x8c510a), new Color(0x01665e), new Color(0x999999),
            new Color(0xc51b7d), new Color(0x4d4d4d)};
    private static final Color PHASE = new Color(0x888888);

    private DynamicsFigures() {
    }

    /** The figures of dynamics.json, built but not drawn (PngFigures.saveAlongside draws and writes them). */
    public static List<PngFigures.Named> charts(JsonNode dynamics) {
        System.setProperty("java.awt.headless", "true");
        JsonNode snaps = dynamics.path("snapshots");
        double nTrigrams = Math.max(1, dynamics.path("n_trigrams").asDouble(1));
        List<Double> phases = phaseEpochs(dynamics);
        List<String> names = new ArrayList<>();
        List<XYChart> charts = new ArrayList<>();

        XYChart metrics = chart("Training dynamics (grey lines: phase changes)", "fraction / probability / AUC",
                phases);
        // from 0, and past 1 only when the extractor reads more triples than the dataset has
        metrics.getStyler().setYAxisMin(0.0);
        line(metrics, snaps, "trigram_avg_correct_prob", s -> s.path("trigram_avg_correct_prob").asDouble(), 0);
        line(metrics, snaps, "trigram_frac_correct", s -> s.path("trigram_frac_correct").asDouble(), 1);
        line(metrics, snaps, "extracted / n_trigrams", s -> s.path("n_extracted").asDouble() / nTrigrams, 2);
        line(metrics, snaps, "qk_auc", s -> number(s.path("qk_auc")), 3);
        names.add("dynamics_metrics");
        charts.add(metrics);

        XYChart attention = chart("Attention on the previous token a", "mean attention", phases);
        attention.getStyler().setYAxisMin(0.0).setYAxisMax(1.0);
        line(attention, snaps, "at learned prefixes", s -> number(s.path("attn_prev_learned")), 0);
        line(attention, snaps, "elsewhere", s -> number(s.path("attn_prev_elsewhere")), 3);
        line(attention, snaps, "at the dataset's prefixes", s -> number(s.path("attn_prev_dataset")), 1);
        line(attention, snaps, "at other pairs", s -> number(s.path("attn_prev_not_dataset")), 7);
        names.add("dynamics_attention");
        charts.add(attention);

        XYChart dla = chart("Direct logit attribution at trigram positions", "mean logit difference", phases);
        List<String> groups = new ArrayList<>();
        snaps.path(0).path("dla_trigram").fieldNames().forEachRemaining(groups::add);
        for (int g = 0; g < groups.size(); g++) {
            String name = groups.get(g);
            line(dla, snaps, name, s -> number(s.path("dla_trigram").path(name)), g);
        }
        names.add("dynamics_dla");
        charts.add(dla);

        XYChart weights = chart("Distance from the initial weights, over the initial norm", "relative distance", phases);
        List<String> params = new ArrayList<>();
        JsonNode lastRel = snaps.path(snaps.size() - 1).path("weight_relative_distance");
        lastRel.fieldNames().forEachRemaining(n -> {
            if (Double.isFinite(number(lastRel.path(n)))) {
                params.add(n);
            }
        });
        for (int i = 0; i < params.size(); i++) {
            String name = params.get(i);
            line(weights, snaps, name.substring(name.lastIndexOf('.') + 1), s -> number(
                    s.path("weight_relative_distance").path(name)), i);
        }
        names.add("dynamics_weights");
        charts.add(weights);

        int last = snaps.path(0).path("final_position").path("position").asInt();
        XYChart pos = chart("W_pos[" + last + "] against the other rows", "distance from the initial row", phases);
        line(pos, snaps, "W_pos[" + last + "]", s -> number(s.at("/final_position/distance_from_initial")), 2);
        line(pos, snaps, "median of W_pos[0.." + (last - 1) + "]",
                s -> number(s.at("/final_position/median_other_distance_from_initial")), 0);
        names.add("dynamics_final_position");
        charts.add(pos);

        names.add("dynamics_learning_order");
        charts.add(learningOrder(dynamics));
        List<PngFigures.Named> named = new ArrayList<>();
        for (int i = 0; i < charts.size(); i++) {
            named.add(new PngFigures.Named(charts.get(i), names.get(i)));
        }
        return named;
    }

    /** Each learned dataset trigram at (its count in the training data, the epoch it was learned). */
    private static XYChart learningOrder(JsonNode dynamics) {
        List<List<Double>> xs = List.of(new ArrayList<>(), new ArrayList<>()), ys = List.of(new ArrayList<>(),
                new ArrayList<>());
        int never = 0;
        for (JsonNode t : dynamics.path("trigrams")) {
            if (!t.path("in_dataset").asBoolean()) {
                continue;
            }
            if (!t.path("learned_epoch").isNumber()) {
                never++;
                continue;
            }
            int k = t.path("shares_b").asBoolean() ? 0 : 1;
            xs.get(k).add(t.path("count").asDouble());
            ys.get(k).add(t.path("learned_epoch").asDouble());
        }
        XYChart chart = new XYChartBuilder().width(PngFigures.WIDTH).height(PngFigures.HEIGHT)
                .title("Learning order against frequency" + (never > 0 ? " (" + never + " never learned, not shown)"
                        : "")).xAxisTitle("occurrences in the training data").yAxisTitle("epoch learned").build();
        PngFigures.style(chart);
        chart.getStyler().setDefaultSeriesRenderStyle(XYSeries.XYSeriesRenderStyle.Scatter);
        chart.getStyler().setMarkerSize(8);
        String[] names = {"its b is another trigram's b", "its b is its own"};
        for (int k = 0; k < 2; k++) {
            if (!xs.get(k).isEmpty()) {
                XYSeries s = chart.addSeries(names[k], xs.get(k), ys.get(k));
                s.setMarker(SeriesMarkers.CIRCLE);
                s.setMarkerColor(COLORS[k == 0 ? 0 : 2]);
            }
        }
        if (chart.getSeriesMap().isEmpty()) {
            // XChart draws no axes without a series: an empty one keeps the figure readable
            chart.addSeries("no trigram learned", new double[] {0}, new double[] {0}).setMarker(SeriesMarkers.NONE);
        }
        return chart;
    }

    private static XYChart chart(String title, String yTitle, List<Double> phases) {
        XYChart chart = new XYChartBuilder().width(PngFigures.WIDTH).height(PngFigures.HEIGHT).title(title)
                .xAxisTitle("epoch").yAxisTitle(yTitle).build();
        PngFigures.style(chart);
        chart.getStyler().setLegendPosition(Styler.LegendPosition.OutsideS);
        chart.getStyler().setAnnotationLineColor(PHASE);
        chart.getStyler().setAnnotationLineStroke(new BasicStroke(1.5f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER,
                10f, new float[] {6f, 4f}, 0f));
        for (double e : phases) {
            chart.addAnnotation(new AnnotationLine(e, true, false));
        }
        // XChart labels some long runs every third epoch; upright, those labels run into each other
        chart.getStyler().setXAxisLabelRotation(90);
        return chart;
    }

    /** One curve over the snapshots; points where the value is not a finite number are left out. */
    private static void line(XYChart chart, JsonNode snaps, String name, ToDoubleFunction<JsonNode> value,
                             int color) {
        List<Double> x = new ArrayList<>(), y = new ArrayList<>();
        for (JsonNode s : snaps) {
            double v = value.applyAsDouble(s);
            if (Double.isFinite(v)) {
                x.add(s.path("epoch").asDouble());
                y.add(v);
            }
        }
        if (x.isEmpty()) {
            return;
        }
        XYSeries s = chart.addSeries(name, x, y);
        s.setMarker(x.size() == 1 ? SeriesMarkers.CIRCLE : SeriesMarkers.NONE);
        s.setLineColor(COLORS[color % COLORS.length]);
        s.setMarkerColor(COLORS[color % COLORS.length]);
        s.setLineWidth(2.5f);
    }

    /** A number of dynamics.json, where NaN is written as the string "NaN". */
    private static double number(JsonNode n) {
        return n.isNumber() ? n.asDouble() : Double.NaN;
    }

    private static List<Double> phaseEpochs(JsonNode dynamics) {
        TreeSet<Double> epochs = new TreeSet<>();
        for (JsonNode p : dynamics.path("phase_changes")) {
            epochs.add(p.path("epoch").asDouble());
        }
        return new ArrayList<>(epochs);
    }
}
