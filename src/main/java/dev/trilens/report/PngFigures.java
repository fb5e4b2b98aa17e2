package dev.trilens.report;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import java.awt.Color;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.HeatMapChart;
import org.knowm.xchart.HeatMapChartBuilder;
import org.knowm.xchart.HeatMapSeries;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.internal.chartpart.Chart;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * The analysis as PNG figures (XChart), from analysis.json's tree: what a reader looks at first, with the numbers
 * in analysis.json beside them. Each file is written whole or not at all.
 */
public final class PngFigures {
    public static final int WIDTH = 900, HEIGHT = 700;
    /** How many sequences the probability heatmap shows. */
    static final int SAMPLE_SEQUENCES = 40;
    private static final Color[] DIVERGING = {new Color(0x2166ac), new Color(0xf7f7f7), new Color(0xb2182b)};
    private static final Color[] SEQUENTIAL = {new Color(0xfff7ec), new Color(0xfc8d59), new Color(0x7f0000)};

    private PngFigures() {
    }

    /**
     * Writes every figure the analysis has data for into outDir; training_curves.png only when metricsJsonl exists.
     * Returns the files written.
     */
    public static List<Path> writeAll(JsonNode analysis, Path metricsJsonl, Path outDir) {
        System.setProperty("java.awt.headless", "true");
        try {
            Files.createDirectories(outDir);
        } catch (IOException e) {
            throw new TrilensException("cannot create the figures folder " + outDir + ": " + e.getMessage(), e);
        }
        List<Path> written = new ArrayList<>();
        JsonNode probs = analysis.at("/predictions/correct_probs");
        if (probs.isArray() && probs.size() > 0) {
            written.add(save(sampleProbs(probs, analysis), outDir, "sample_probs"));
        }
        JsonNode head = analysis.at("/attention/heads/0");
        JsonNode patterns = head.path("patterns");
        for (int n = 0; n < Math.min(2, patterns.size()); n++) {
            written.add(save(heatmap("Attention pattern, sequence " + n + " (" + head.path("name").asText() + ")",
                    "key position", "query position", patterns.get(n), SEQUENTIAL, 0.0, 1.0), outDir,
                    "attn_pattern_seq" + n));
        }
        JsonNode prev = head.path("mean_prev_attention_by_position");
        if (prev.isArray() && prev.size() > 0) {
            written.add(save(prevTokenAttention(prev, analysis.at("/attention/threshold").asDouble(0.2)), outDir,
                    "prev_token_attention"));
        }
        JsonNode qk = analysis.at("/circuits/qk_circuit/heads/0");
        if (!qk.isMissingNode()) {
            written.add(save(symmetricHeatmap("QK token-token scores (query token x key token)", "key token",
                    "query token", qk.at("/decomposition/token_token")), outDir, "qk_token_token"));
            written.add(save(symmetricHeatmap("QK position-position scores (query x key position)", "key position",
                    "query position", qk.at("/decomposition/pos_pos")), outDir, "qk_pos_pos"));
            written.add(save(prefixScores(qk.path("prefix_advantage"), analysis), outDir, "prefix_scores"));
        }
        JsonNode cos = analysis.at("/circuits/qk_circuit/positional_cosine");
        if (cos.isArray() && cos.size() > 0) {
            written.add(save(heatmap("Cosine similarity of W_pos rows", "position", "position", cos, DIVERGING, -1.0,
                    1.0), outDir, "wpos_similarity"));
        }
        JsonNode ov = analysis.at("/circuits/ov_circuit/heads/0");
        if (!ov.isMissingNode()) {
            written.add(save(ovSpectra(ov), outDir, "ov_svd"));
        }
        JsonNode components = analysis.at("/attribution/components");
        if (components.isArray() && components.size() > 0) {
            written.add(save(dla(components), outDir, "dla"));
        }
        if (metricsJsonl != null && Files.isRegularFile(metricsJsonl)) {
            written.add(save(trainingCurves(metricsJsonl), outDir, "training_curves"));
        }
        return written;
    }

    private static HeatMapChart sampleProbs(JsonNode probs, JsonNode analysis) {
        int S = Math.min(SAMPLE_SEQUENCES, probs.size());
        List<Number[]> cells = new ArrayList<>();
        for (int s = 0; s < S; s++) {
            JsonNode row = probs.get(s);
            for (int p = 0; p < row.size(); p++) {
                cells.add(new Number[] {p, s, row.get(p).asDouble()});
            }
        }
        HeatMapChart chart = heatmapChart("Probability of the correct next token (first " + S + " sequences)",
                "position (predicting the next token)", "sequence", SEQUENTIAL);
        HeatMapSeries series = chart.addSeries("p(correct)", range(probs.get(0).size()), range(S), cells);
        series.setMin(0);
        series.setMax(1);
        return chart;
    }

    private static XYChart prevTokenAttention(JsonNode prev, double threshold) {
        XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT)
                .title("Mean attention to the previous token, per query position").xAxisTitle("query position")
                .yAxisTitle("mean attention to position - 1").build();
        double[] x = new double[prev.size()], y = new double[prev.size()], t = new double[prev.size()];
        for (int i = 0; i < x.length; i++) {
            x[i] = i;
            y[i] = prev.get(i).asDouble();
            t[i] = threshold;
        }
        chart.addSeries("mean attention", x, y).setMarker(SeriesMarkers.CIRCLE);
        chart.addSeries("threshold " + threshold, x, t).setMarker(SeriesMarkers.NONE);
        return chart;
    }

    private static HeatMapChart prefixScores(JsonNode adv, JsonNode analysis) {
        TrigramDataset data = dataset(analysis);
        String prefixes = data == null ? "" : "; the dataset has " + data.nTrigrams() + " prefixes (see analysis.json)";
        return symmetricHeatmap("Prefix score advantage: Y at p attending X at p-1 rather than itself" + prefixes,
                "Y (current token)", "X (previous token)", adv);
    }

    private static CategoryChart ovSpectra(JsonNode ov) {
        CategoryChart chart = new CategoryChartBuilder().width(WIDTH).height(HEIGHT)
                .title("OV circuit singular values (" + ov.path("name").asText() + ")").xAxisTitle("index")
                .yAxisTitle("singular value").build();
        addSpectrum(chart, "W_V W_O", ov.path("ov_singular_values"));
        addSpectrum(chart, "W_E W_V W_O W_U / 10", scaled(ov.path("full_ov_singular_values"), 0.1));
        return chart;
    }

    private static void addSpectrum(CategoryChart chart, String name, JsonNode values) {
        int n = Math.min(16, values.size());
        List<Integer> x = new ArrayList<>();
        List<Double> y = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            x.add(i);
            y.add(values.get(i).asDouble());
        }
        if (n > 0) {
            chart.addSeries(name, x, y);
        }
    }

    private static JsonNode scaled(JsonNode values, double factor) {
        com.fasterxml.jackson.databind.node.ArrayNode out = new ObjectMapper().createArrayNode();
        values.forEach(v -> out.add(v.asDouble() * factor));
        return out;
    }

    private static CategoryChart dla(JsonNode components) {
        CategoryChart chart = new CategoryChartBuilder().width(WIDTH).height(HEIGHT)
                .title("Direct logit attribution of the correct next token").xAxisTitle("component")
                .yAxisTitle("mean contribution (logit minus mean logit)").build();
        List<String> names = new ArrayList<>();
        List<Double> tri = new ArrayList<>(), other = new ArrayList<>();
        for (JsonNode c : components) {
            names.add(c.path("name").asText());
            tri.add(c.path("mean_trigram").asDouble(0));
            other.add(c.path("mean_other").asDouble(0));
        }
        chart.addSeries("trigram positions", names, tri);
        chart.addSeries("other positions", names, other);
        chart.getStyler().setXAxisLabelRotation(30);
        return chart;
    }

    private static XYChart trainingCurves(Path metricsJsonl) {
        ObjectMapper json = new ObjectMapper();
        List<Double> epoch = new ArrayList<>(), train = new ArrayList<>(), frac = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(metricsJsonl, StandardCharsets.UTF_8)) {
                if (line.isBlank()) {
                    continue;
                }
                JsonNode n = json.readTree(line);
                epoch.add(n.path("epoch").asDouble());
                train.add(n.path("train_loss_as_frac").asDouble());
                frac.add(n.path("trigram_frac_correct").asDouble());
            }
        } catch (IOException e) {
            throw new TrilensException("cannot read " + metricsJsonl + ": " + e.getMessage()
                    + "; expected metrics.jsonl as trilens train writes it", e);
        }
        XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT).title("Training").xAxisTitle("epoch")
                .yAxisTitle("fraction").build();
        if (!epoch.isEmpty()) {
            chart.addSeries("train_loss_as_frac", epoch, train).setMarker(SeriesMarkers.NONE);
            chart.addSeries("trigram_frac_correct", epoch, frac).setMarker(SeriesMarkers.NONE);
        }
        return chart;
    }

    private static HeatMapChart symmetricHeatmap(String title, String x, String y, JsonNode matrix) {
        double max = 1e-9;
        for (JsonNode row : matrix) {
            for (JsonNode v : row) {
                if (Double.isFinite(v.asDouble())) {
                    max = Math.max(max, Math.abs(v.asDouble()));
                }
            }
        }
        return heatmap(title, x, y, matrix, DIVERGING, -max, max);
    }

    /** matrix[row][col] drawn with col along x and row along y. */
    private static HeatMapChart heatmap(String title, String x, String y, JsonNode matrix, Color[] colors,
                                        double min, double max) {
        HeatMapChart chart = heatmapChart(title, x, y, colors);
        List<Number[]> cells = new ArrayList<>();
        for (int r = 0; r < matrix.size(); r++) {
            JsonNode row = matrix.get(r);
            for (int c = 0; c < row.size(); c++) {
                double v = row.get(c).asDouble();
                // -inf (masked scores) and NaN draw as the low end of the scale
                cells.add(new Number[] {c, r, Double.isFinite(v) ? v : min});
            }
        }
        HeatMapSeries series = chart.addSeries(title, range(matrix.get(0).size()), range(matrix.size()), cells);
        series.setMin(min);
        series.setMax(max);
        return chart;
    }

    private static HeatMapChart heatmapChart(String title, String x, String y, Color[] colors) {
        HeatMapChart chart = new HeatMapChartBuilder().width(WIDTH).height(HEIGHT).title(title).xAxisTitle(x)
                .yAxisTitle(y).build();
        chart.getStyler().setRangeColors(colors);
        chart.getStyler().setShowValue(false);
        chart.getStyler().setPlotContentSize(1.0);
        chart.getStyler().setLegendVisible(true);
        chart.getStyler().setAxisTicksVisible(true);
        return chart;
    }

    private static List<Integer> range(int n) {
        List<Integer> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            out.add(i);
        }
        return out;
    }

    private static TrigramDataset dataset(JsonNode analysis) {
        JsonNode d = analysis.path("dataset");
        if (!d.path("trigram_prob").isNumber()) {
            return null;
        }
        return TrigramDataset.generate(d.path("d_vocab").asInt(), d.path("seq_len").asInt(),
                d.path("trigram_prob").asDouble(), d.path("seed").asLong(), 1);
    }

    /** Renders to a temporary name, then renames: no half-written PNG is ever left under the final name. */
    private static Path save(Chart<?, ?> chart, Path dir, String name) {
        Path target = dir.resolve(name + ".png");
        Path tmp = dir.resolve("." + name + ".tmp");
        Path tmpPng = dir.resolve("." + name + ".tmp.png");
        try {
            BitmapEncoder.saveBitmap(chart, tmp.toString(), BitmapEncoder.BitmapFormat.PNG);
            Files.move(tmpPng, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            return target;
        } catch (IOException e) {
            try {
                Files.deleteIfExists(tmpPng);
            } catch (IOException ignored) {
                // the write already failed; that is the error to report
            }
            throw new TrilensException("cannot write " + target + ": " + e.getMessage(), e);
        }
    }
}
